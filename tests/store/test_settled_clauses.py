"""Clauses that once contradicted each other, each checked as the spec now settles it.

ENG-28 against ENG-19 (wait_durable on a closed store), the LOCK file against "changes no file"
(ENG-53), ENG-25's `hints` compared by identity, and ENG-27 under the policies with a flusher.
"""

from __future__ import annotations

import gc
import os
import weakref
from pathlib import Path

import pytest

import catlog
from catlog.cli import main
from tests.tools.layout import snapshot


@pytest.mark.spec("ENG-28", "ENG-19")
@pytest.mark.parametrize("fsync", ["always", "interval", "never"])
def test_wait_durable_on_a_closed_store_raises_whatever_the_policy(
    data_dir: str, fsync: str
) -> None:
    store = catlog.open(data_dir, fsync=fsync)  # type: ignore[arg-type]
    ticket = store.put_nowait(b"k", b"v")
    store.wait_durable(ticket)
    store.close()
    for asked in (0, ticket, ticket + 1):
        with pytest.raises(catlog.StoreClosedError):
            store.wait_durable(asked)


def without_lock(files: dict[str, bytes]) -> dict[str, bytes]:
    return {name: data for name, data in files.items() if name != "LOCK"}


@pytest.mark.spec("ENG-53", "REC-13", "TOOL-5", "TOOL-16", "TOOL-19")
def test_what_changes_no_file_changes_only_the_pid_in_lock(
    data_dir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with catlog.open(data_dir, segment_size=200) as store:
        for i in range(20):
            store.put(b"k%d" % i, b"v" * 20)
    Path(data_dir, "LOCK").write_text("12345")
    before = snapshot(data_dir)
    for step in ("open", "check", "repair --dry-run", "repair"):
        if step == "open":
            catlog.open(data_dir).close()
        else:
            assert main([*step.split(), data_dir]) == 0, capsys.readouterr()
        after = snapshot(data_dir)
        assert without_lock(after) == without_lock(before), step
        assert after["LOCK"].decode().strip() == str(os.getpid()), step
        Path(data_dir, "LOCK").write_text("12345")


@pytest.mark.spec("ENG-25")
@pytest.mark.parametrize("hints", [1, 0, 1.0])
def test_hints_equal_to_but_not_a_bool_is_refused(data_dir: str, hints: object) -> None:
    with pytest.raises(ValueError, match="hints"):
        catlog.open(data_dir, hints=hints)  # type: ignore[arg-type]
    assert not os.path.exists(data_dir), "refused before anything is touched"


@pytest.mark.spec("ENG-27", "ENG-20")
@pytest.mark.parametrize("fsync", ["interval", "never"])
def test_a_dropped_store_with_a_flusher_is_closed_when_collected(data_dir: str, fsync: str) -> None:
    store = catlog.open(data_dir, fsync=fsync)  # type: ignore[arg-type]
    store.put(b"k", b"v")
    alive = weakref.ref(store)
    del store
    gc.collect()
    try:
        with catlog.open(data_dir) as again:
            assert again[b"k"] == b"v"
    finally:
        left = alive()
        if left is not None:  # the bug: close it here rather than leave a thread behind
            left.close()
