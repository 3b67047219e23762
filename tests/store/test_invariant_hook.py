"""The store's own invariant check (``Store._check_invariants``, the test hook of
catlog/maintenance.py) in the states a running store passes through but the model tests rarely
stop in: failed, with writes waiting for their fsync, at its segment limit; and what a store
dropped without ``close()`` logs when its close fails (ENG-110).
"""

from __future__ import annotations

import errno
import gc
import logging

import pytest

import catlog
from tests.crash.faulty_fs import FaultyFileSystem


@pytest.mark.spec("REC-10", "ENG-47", "ENG-110", "ENG-27")
def test_a_failed_store_keeps_its_invariants_and_dropped_logs_its_failing_close(
    data_dir: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A store refusing writes since an fsync failed is a sound state (REC-10): the check
    passes. Dropped without ``close()``, its close raises, and the error is logged naming it."""
    fs = FaultyFileSystem()
    store = catlog.open(data_dir, fs=fs)
    store.put(b"k", b"v")
    fs.fail("sync", error=errno.EIO, persistent=True)
    with pytest.raises(catlog.StoreFailedError):
        store.put(b"k", b"w")
    assert store.failure is not None
    store._check_invariants()
    path = store.path
    with caplog.at_level(logging.ERROR, logger="catlog"):
        del store
        gc.collect()
    dropped = [r for r in caplog.records if r.name == "catlog"]
    assert [r.getMessage() for r in dropped] == [f"closing {path} when it was dropped failed"]
    assert dropped[0].exc_info is not None
    assert isinstance(dropped[0].exc_info[1], catlog.StoreFailedError)


@pytest.mark.spec("ENG-14", "ENG-29")
def test_writes_waiting_for_their_fsync_keep_the_invariants(data_dir: str) -> None:
    """Under ``always`` a ``put_nowait`` takes effect once durable: until someone waits, its
    effect waits, in ticket order, the newest ticket among them."""
    with catlog.open(data_dir) as store:
        store.put(b"first", b"durable")
        tickets = [store.put_nowait(b"z", b"1"), store.put_nowait(b"a", b"2")]
        store._check_invariants()
        outcomes, ticket = store.modify_many_nowait(
            [(b"y", lambda old: b"3"), (b"b", lambda old: b"4")]
        )
        assert outcomes == [b"3", b"4"]
        assert ticket == tickets[-1] + 2
        store._check_invariants()
        store.wait_durable(ticket)
        store._check_invariants()
        assert dict(store.items()) == {
            b"first": b"durable",
            b"z": b"1",
            b"a": b"2",
            b"y": b"3",
            b"b": b"4",
        }


@pytest.mark.spec("ENG-74", "ENG-75")
def test_a_store_opened_with_every_slot_in_use_keeps_its_invariants(data_dir: str) -> None:
    """32 segments opened with ``max_segments=32``: every slot is in use, which ENG-74 allows
    (at most, not fewer than); writes are refused and the check passes."""
    with catlog.open(data_dir, segment_size=64, fsync="never") as store:
        for i in range(32):
            store.put(b"k%02d" % i, b"%040d" % i)  # 63 bytes: a segment each
        assert store.stats().segments == 32
    with catlog.open(data_dir, segment_size=64, max_segments=32) as store:
        store._check_invariants()
        with pytest.raises(catlog.CatlogError, match="compact the store"):
            store.put(b"k99", b"%040d" % 99)
        store._check_invariants()
        assert store[b"k31"] == b"%040d" % 31
