"""Closed stores, failed stores and old snapshots: what the API promises after the fact.

Three promises here were once broken while every test passed (issue 13): a ``close()`` that
returned normally after the background flusher had failed, losing acknowledged writes; a
snapshot taken before a compaction that read later values once a new segment reused a removed
segment's slot; and operations on a closed store that still answered. The closed-store check
enumerates the public methods by introspection, so a method added later is covered the day it
is added: the table of arguments below must name it, or the test fails.
"""

from __future__ import annotations

import dataclasses
import errno
import inspect
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import catlog
from catlog.options import StoreOptions
from catlog.simfs import Operation, SimFileSystem
from tests.crash.faulty_fs import FaultyFileSystem
from tests.failing_store import CLOSED_FAILED

NOW_MS = 1_700_000_000_000

STORE_CALLS: dict[str, Callable[[catlog.Store], object]] = {
    "get": lambda s: s.get(b"k"),
    "get_many": lambda s: s.get_many([b"k"]),
    "put": lambda s: s.put(b"k", b"v"),
    "put_nowait": lambda s: s.put_nowait(b"k", b"v"),
    "put_many_nowait": lambda s: s.put_many_nowait([]),
    "delete": lambda s: s.delete(b"k"),
    "delete_nowait": lambda s: s.delete_nowait(b"k"),
    "expire": lambda s: s.expire(b"k", 10),
    "expire_at": lambda s: s.expire_at(b"k", NOW_MS + 10_000),
    "expire_at_nowait": lambda s: s.expire_at_nowait(b"k", NOW_MS + 1),
    "expires_at": lambda s: s.expires_at(b"k"),
    "persist": lambda s: s.persist(b"k"),
    "purge_expired": lambda s: s.purge_expired(),
    "persist_nowait": lambda s: s.persist_nowait(b"k"),
    "modify": lambda s: s.modify(b"k", lambda old: b"v"),
    "modify_nowait": lambda s: s.modify_nowait(b"k", lambda old: b"v"),
    "modify_many_nowait": lambda s: s.modify_many_nowait([(b"k", lambda old: b"v")]),
    "write_batch": lambda s: s.write_batch([]),
    "write_batch_nowait": lambda s: s.write_batch_nowait([]),
    "batch": lambda s: s.batch(),
    "transaction": lambda s: s.transaction(),
    "wait_durable": lambda s: s.wait_durable(0),
    "sync": lambda s: s.sync(),
    "flush": lambda s: s.flush(),
    "tick": lambda s: s.tick(),
    "now_ms": lambda s: s.now_ms(),
    "snapshot": lambda s: s.snapshot(),
    "stats": lambda s: s.stats(),
    "compact": lambda s: s.compact(),
    "compact_in_background": lambda s: s.compact_in_background(),
    "wait_for_compaction": lambda s: s.wait_for_compaction(),
    # The mapping's own and its mixins (collections.abc.MutableMapping):
    "__getitem__": lambda s: s[b"k"],
    "__setitem__": lambda s: s.__setitem__(b"k", b"v"),
    "__delitem__": lambda s: s.__delitem__(b"k"),
    "__contains__": lambda s: b"k" in s,
    "__len__": len,
    "__iter__": iter,
    "keys": lambda s: list(s.keys()),
    "items": lambda s: s.items(),
    "values": lambda s: s.values(),
    "pop": lambda s: s.pop(b"k", None),
    "popitem": lambda s: s.popitem(),
    "clear": lambda s: s.clear(),
    "update": lambda s: s.update({b"k": b"v"}),
    "setdefault": lambda s: s.setdefault(b"k", b"v"),
    "__eq__": lambda s: s == {},
}
"""ENG-19: one call of each operation, as a user would make it."""

NOT_OPERATIONS = {
    "close",
    "open_again",
    "__enter__",
    "__exit__",
    "__repr__",
    "__del__",
    "__init__",
}
"""What ENG-19 allows on a closed store: closing again, opening again (ENG-116), and what Python
calls on any object."""

SNAPSHOT_CALLS: dict[str, Callable[[catlog.Snapshot], object]] = {
    "get": lambda s: s.get(b"k"),
    "__getitem__": lambda s: s[b"k"],
    "__contains__": lambda s: b"k" in s,
    "__len__": len,
    "__iter__": list,
    "items": lambda s: s.items(),
}


def _operations(cls: type, exempt: set[str]) -> set[str]:
    """Every public method of ``cls`` and every dunder it defines beyond ``object``'s."""
    names = set()
    for name, member in inspect.getmembers(cls):
        if not callable(member) or isinstance(member, type) or name in exempt:
            continue
        if "ǁ" in name:  # mutmut's copies of a method under mutation, not the API
            continue
        if name.startswith("__") and name.endswith("__"):
            if getattr(object, name, None) is member or name in {"__class_getitem__"}:
                continue
            if name in {"__subclasshook__", "__init_subclass__", "__reversed__", "__hash__"}:
                continue
            if name.startswith(("__get", "__set", "__del", "__ne", "__weakref")) and name not in {
                "__getitem__",
                "__setitem__",
                "__delitem__",
            }:
                continue
        elif name.startswith("_"):
            continue
        names.add(name)
    return names


@pytest.mark.spec("ENG-19")
def test_every_operation_of_a_closed_store_raises_store_closed_error(data_dir: str) -> None:
    operations = _operations(catlog.Store, NOT_OPERATIONS)
    assert operations - set(STORE_CALLS) == set(), "give each new operation a call above"
    store = catlog.open(data_dir, clock=catlog.ManualClock(NOW_MS))
    store.put(b"k", b"v", ttl=100)
    store.close()
    answered = []
    for name in sorted(operations):
        try:
            STORE_CALLS[name](store)
        except catlog.StoreClosedError:
            continue
        answered.append(name)
    assert answered == []
    assert store.closed
    assert store.failure is None
    store.close()  # ENG-18: the one operation a closed store accepts


@pytest.mark.spec("ENG-19", "ENG-38")
@pytest.mark.parametrize("policy", ["always", "never"])
def test_every_operation_of_a_snapshot_of_a_closed_store_raises(
    data_dir: str, policy: catlog.FsyncPolicy
) -> None:
    operations = _operations(catlog.Snapshot, {"close", "__enter__", "__exit__", "__init__"})
    assert operations - set(SNAPSHOT_CALLS) == set(), "give each new operation a call above"
    store = catlog.open(data_dir, fsync=policy)
    store.put(b"k", b"v")
    snapshot = store.snapshot()
    keys = iter(snapshot)
    items = snapshot.items()
    store.close()
    answered = []
    for name in sorted(operations):
        try:
            SNAPSHOT_CALLS[name](snapshot)
        except catlog.StoreClosedError:
            continue
        answered.append(name)
    assert answered == []
    with pytest.raises(catlog.StoreClosedError):
        next(keys)  # an iteration begun before the close
    with pytest.raises(catlog.StoreClosedError):
        next(items)
    snapshot.close()  # letting go of a snapshot is always allowed


@pytest.mark.spec("ENG-38", "ENG-48", "ENG-40")
@pytest.mark.parametrize("policy", ["always", "interval", "never"])
def test_a_snapshot_taken_before_a_compaction_keeps_its_values_after_slots_are_reused(
    data_dir: str, policy: catlog.FsyncPolicy
) -> None:
    """Issue 13's reproduction: a snapshot location in a removed segment must not be read from
    the write buffer of the new active segment that took over its slot."""
    keys = [b"key-%04d" % i for i in range(1000)]
    with catlog.open(data_dir, fsync=policy, segment_size=32768) as store:
        for key in keys:
            store.put(key, key[-4:] * 25)
        with store.snapshot() as view:
            store.compact()
            for round_ in range(3):
                for n, key in enumerate(keys):
                    store.put(key, b"%04d" % round_ * 25)
                    if n % 50 == 0:
                        for probe in keys[::97]:
                            assert view[probe] == probe[-4:] * 25
            assert dict(view.items()) == {key: key[-4:] * 25 for key in keys}


@pytest.mark.spec("ENG-46", "REC-20", "ENG-15", "ENG-47")
@pytest.mark.parametrize(
    ("policy", "operation"),
    [("interval", "append"), ("interval", "sync"), ("never", "append")],
    ids=["interval-write", "interval-fsync", "never-write"],
)
def test_close_after_a_failed_background_flush_raises_and_synced_writes_survive(
    data_dir: str, policy: catlog.FsyncPolicy, operation: Operation
) -> None:
    """Issue 13's first defect, without a full disk: the flusher's write or fsync fails (under
    never the flusher only writes, ENG-16)."""
    fs = FaultyFileSystem()
    clock = catlog.ManualClock(NOW_MS)
    store = catlog.open(data_dir, fs=fs, fsync=policy, fsync_interval_ms=200, clock=clock)
    for i in range(10):
        store.put(b"synced-%d" % i, b"v")
    store.sync()
    for i in range(20):
        store.put(b"acknowledged-%d" % i, b"v")
    fs.fail(operation, error=errno.ENOSPC, persistent=True)
    clock.advance(1)
    with pytest.raises(catlog.StoreFailedError):
        store.tick()  # the flusher's step, as its thread runs it (ENG-15, ENG-16)
    assert store.failure is not None, "the background write failed"
    assert store.failure.fsync_failed is (operation == "sync")
    fs.heal()
    with pytest.raises(catlog.StoreFailedError):
        store.sync()
    with pytest.raises(catlog.StoreFailedError, match=CLOSED_FAILED):
        store.close()
    assert store.closed
    with catlog.open(data_dir) as reopened:
        assert {b"synced-%d" % i for i in range(10)} <= set(reopened)


@pytest.mark.spec("ENG-46", "REC-20")
def test_close_after_the_background_thread_failed_raises(data_dir: str) -> None:
    """The same through the real flusher thread, as a server under ``--fsync interval`` runs."""
    fs = FaultyFileSystem()
    store = catlog.open(data_dir, fs=fs, fsync="interval", fsync_interval_ms=5)
    store.put(b"before", b"v")
    store.sync()
    fs.fail("append", error=errno.ENOSPC, persistent=True)
    store.put(b"lost", b"v")
    deadline = time.monotonic() + 10
    while store.failure is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert store.failure is not None
    fs.heal()
    with pytest.raises(catlog.StoreFailedError, match=CLOSED_FAILED):
        store.close()
    with catlog.open(data_dir) as reopened:
        assert reopened.get(b"before") == b"v"


OTHER_SETTINGS: dict[str, object] = {
    "fsync": "interval",
    "segment_size": 4096,
    "fsync_interval_ms": 250,
    "hints": True,
    "compact_threshold": 0.3,
    "compact_max_bytes": 123_456,
    "max_segments": 40,
    "max_open_files": 17,
    "compaction_yield_ms": 0.5,
}
"""A value other than the default for every setting of ENG-25 but the path, fs and clock."""


@pytest.mark.spec("ENG-116", "ENG-25")
def test_open_again_opens_with_every_setting_the_store_was_opened_with(tmp_path: Path) -> None:
    """The whole class: each field of the checked settings is compared, so a setting added to
    ``catlog.open`` later that ``open_again`` forgets fails here; the data lives only in the
    simulated file system, so an open that forgot ``fs`` finds an empty directory on disk."""
    names = {field.name for field in dataclasses.fields(StoreOptions)}
    assert names == set(OTHER_SETTINGS) | {"path"}, "give each new setting a value above"
    path = str(tmp_path / "data")
    fs = SimFileSystem()
    clock = catlog.ManualClock(NOW_MS)
    store = catlog.open(path, fs=fs, clock=clock, **OTHER_SETTINGS)  # type: ignore[arg-type]
    store.put(b"k", b"v", ttl=100)
    store.close()
    clock.advance(30)
    with store.open_again() as again:
        settings = {name: getattr(again, name) for name in names}
        assert settings == {name: getattr(store, name) for name in names}
        assert settings == OTHER_SETTINGS | {"path": path}
        assert again.get(b"k") == b"v", "opened on the same file system"
        assert again.now_ms() == NOW_MS + 30_000, "and with the same clock"
        assert again.expires_at(b"k") == NOW_MS + 100_000
    assert not os.path.exists(path), "nothing was opened on the real disk"


@pytest.mark.spec("ENG-116", "ENG-20")
def test_open_again_of_a_store_still_open_is_refused_as_a_second_open(data_dir: str) -> None:
    with catlog.open(data_dir, fsync="never") as store:
        store.put(b"k", b"v")
        with pytest.raises(catlog.LockedError):
            store.open_again()
        assert store.get(b"k") == b"v", "the refused open left the store as it was"
