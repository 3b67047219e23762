"""Writes that land while a compaction copies, then a crash: REC-2 across the removal of inputs.

The crash-point suite runs compactions between writes, never beside them. Under ``never`` and
``interval`` a write is in the index as soon as it is buffered, so a compaction that starts
after it sees the key live in the active segment and copies nothing of its older record; once
the inputs are gone, the only record of the key is one a crash may drop. Each test here puts a
write in that window through the progress callback (which the compactor calls between inputs,
with no lock held), crashes in every state REC-1 allows, and asks for a prefix.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

import catlog
from catlog.simfs import CrashState, SimFileSystem
from catlog.store import Store

DIRECTORY = "/data"
LOSE_UNSYNCED = CrashState("everything unsynced lost", keep_rest=False)
BOUNDS = [None, 600]
"""A full compaction, and one bounded to the oldest segments (ENG-73)."""


def _store(fs: SimFileSystem, fsync: catlog.FsyncPolicy) -> Store:
    return catlog.open(DIRECTORY, fs=fs, fsync=fsync, segment_size=256)


def _filled(fsync: catlog.FsyncPolicy, *, k_first: bool = False) -> tuple[SimFileSystem, Store]:
    """A store whose key ``k`` is written last, so its record is in the last input; or in the
    second segment, so that a compaction bounded to the oldest segments takes it after the
    first."""
    fs = SimFileSystem()
    fs.makedirs(DIRECTORY)
    fs.sync_dir("/")
    store = _store(fs, fsync)
    if k_first:
        for number in range(3):  # three fill the first segment
            store.put(b"first-%02d" % number, b"x" * 50)
        store.put(b"k", b"v1")
    for number in range(12):
        store.put(b"filler-%02d" % number, b"x" * 40)
    if not k_first:
        store.put(b"k", b"v1")
    store.put(b"gone", b"soon")
    store.sync()
    return fs, store


def _during_first_input(action: Callable[[], None]) -> Callable[[int, int], None]:
    done: list[bool] = []

    def progress(_copied: int, _total: int) -> None:
        if not done:
            done.append(True)
            action()

    return progress


@pytest.mark.spec("REC-2", "ENG-78")
@pytest.mark.parametrize("max_bytes", BOUNDS)
@pytest.mark.parametrize("fsync", ["never", "interval"])
def test_a_put_during_compaction_survives_a_crash_or_leaves_the_value_it_replaced(
    fsync: catlog.FsyncPolicy, max_bytes: int | None
) -> None:
    fs, store = _filled(fsync, k_first=max_bytes is not None)
    store.compact(_during_first_input(lambda: store.put(b"k", b"v2")), max_bytes=max_bytes)
    image = fs.image()
    store.close()
    states = 0
    for state in image.crash_states():
        states += 1
        reopened = catlog.open(DIRECTORY, fs=image.crash(state))
        try:
            value = reopened.get(b"k")
            assert value in (b"v1", b"v2"), f"{state.label}: k is {value!r}, not a prefix (REC-2)"
            assert len(reopened) == 14 + 3 * (max_bytes is not None), state.label
        finally:
            reopened.close()
    assert states > 1


@pytest.mark.spec("REC-2", "ENG-78")
@pytest.mark.parametrize("fsync", ["never", "interval"])
def test_writes_before_a_delete_during_compaction_are_not_lost_while_the_delete_stays(
    fsync: catlog.FsyncPolicy,
) -> None:
    fs, store = _filled(fsync)

    def put_then_delete() -> None:
        store.put(b"new", b"value")
        store.delete(b"gone")

    store.compact(_during_first_input(put_then_delete))
    reopened = catlog.open(DIRECTORY, fs=fs.crash(LOSE_UNSYNCED))
    try:
        gone, new = reopened.get(b"gone"), reopened.get(b"new")
        assert (new, gone) in ((None, b"soon"), (b"value", b"soon"), (b"value", None)), (
            f"new={new!r}, gone={gone!r}: the delete survived without the put before it"
        )
    finally:
        reopened.close()
        store.close()
