"""REC-2's "acknowledged as durable", operation by operation: each way a call can acknowledge a
write, followed by every crash the simulated file system allows at that moment (REC-1)."""

from __future__ import annotations

from collections.abc import Callable
from itertools import islice

import pytest

import catlog
from catlog.simfs import SimFileSystem

NOW_MS = 1_700_000_000_000
Step = Callable[[catlog.Store], object]
Check = Callable[[catlog.Store], bool]

ALWAYS: dict[str, tuple[Step, Check]] = {
    "put": (lambda s: s.put(b"n", b"new"), lambda s: s.get(b"n") == b"new"),
    "delete": (lambda s: s.delete(b"k"), lambda s: b"k" not in s),
    "write_batch": (
        lambda s: s.write_batch([("put", b"b1", b"1"), ("delete", b"k"), ("put", b"b2", b"2")]),
        lambda s: (s.get(b"b1"), s.get(b"b2"), b"k" in s) == (b"1", b"2", False),
    ),
    "expire": (lambda s: s.expire(b"k", 100), lambda s: s.expires_at(b"k") == NOW_MS + 100_000),
    "expire_at": (
        lambda s: s.expire_at(b"k", NOW_MS + 5),
        lambda s: s.expires_at(b"k") == NOW_MS + 5,
    ),
    "persist": (lambda s: s.persist(b"t"), lambda s: s.expires_at(b"t") is None),
    "wait_durable": (
        lambda s: s.wait_durable(s.put_nowait(b"n", b"new")),
        lambda s: s.get(b"n") == b"new",
    ),
}
"""Under fsync="always", the return of each of these acknowledges its write."""


def survives_every_crash(fs: SimFileSystem, check: Check) -> None:
    for state in islice(fs.crash_states(tears=1), 200):
        with catlog.open("/db", fs=fs.crash(state), clock=catlog.ManualClock(NOW_MS)) as store:
            assert check(store), state


def prepared(fsync: str) -> tuple[SimFileSystem, catlog.Store]:
    fs = SimFileSystem()
    store = catlog.open("/db", fs=fs, fsync=fsync, clock=catlog.ManualClock(NOW_MS))  # type: ignore[arg-type]
    store.put(b"k", b"old")
    store.put(b"t", b"ttl", ttl=1000)
    store.sync()
    return fs, store


@pytest.mark.spec("REC-2", "REC-8", "ENG-14", "ENG-29")
@pytest.mark.parametrize("operation", ALWAYS)
def test_each_call_that_returns_under_always_acknowledges_its_write(operation: str) -> None:
    step, check = ALWAYS[operation]
    fs, store = prepared("always")
    step(store)
    survives_every_crash(fs, check)  # the store is still open: nothing more was done for it
    store.close()


@pytest.mark.spec("REC-2", "REC-8", "ENG-17", "ENG-18")
@pytest.mark.parametrize("fsync", ["always", "interval", "never"])
@pytest.mark.parametrize("call", ["sync", "close"])
def test_sync_and_close_acknowledge_every_write_before_them(fsync: str, call: str) -> None:
    fs, store = prepared(fsync)
    store.put(b"n", b"new")
    store.write_batch([("put", b"b", b"1")])
    store.persist(b"t")
    getattr(store, call)()
    survives_every_crash(
        fs, lambda s: (s.get(b"n"), s.get(b"b"), s.expires_at(b"t")) == (b"new", b"1", None)
    )
    store.close()
