"""Transactions (ENG-54): a read-modify-write no other writer interleaves with, written whole."""

from __future__ import annotations

import threading

import pytest

import catlog
import catlog.codec
from tests.crash.faulty_fs import FaultyFileSystem
from tests.failing_store import failing

NOW_MS = 1_700_000_000_000


def increment(store: catlog.Store, key: bytes) -> int:
    with store.transaction() as tx:
        value = int(tx.get(key) or b"0") + 1
        tx.put(key, b"%d" % value)
    return value


@pytest.mark.spec("ENG-54", "ENG-37")
@pytest.mark.parametrize("policy", ["always", "interval", "never"])
def test_concurrent_increments_are_each_counted_once(
    data_dir: str, policy: catlog.FsyncPolicy
) -> None:
    threads, each = 6, 60 if policy == "always" else 300
    seen: list[int] = []
    with catlog.open(data_dir, fsync=policy, segment_size=4096) as store:

        def work() -> None:
            for _ in range(each):
                seen.append(increment(store, b"counter"))

        workers = [threading.Thread(target=work) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert store[b"counter"] == b"%d" % (threads * each)
        assert sorted(seen) == list(range(1, threads * each + 1)), "no two saw the same value"
    with catlog.open(data_dir) as reopened:
        assert reopened[b"counter"] == b"%d" % (threads * each)


@pytest.mark.spec("ENG-54", "ENG-51", "ENG-28")
def test_a_transaction_sees_a_put_still_waiting_for_its_fsync(data_dir: str) -> None:
    """A pipelined ``SET k 1`` then ``INCR k`` gives 2: the increment reads the waiting put."""
    with catlog.open(data_dir, fsync="always") as store:
        ticket = store.put_nowait(b"k", b"1")
        assert b"k" not in store, "the put has not taken effect"
        with store.transaction(wait=False) as tx:
            assert tx.get(b"k") == b"1"
            tx.put(b"k", b"2")
        assert tx.ticket == ticket + 1
        store.wait_durable(tx.ticket)
        assert store[b"k"] == b"2"


@pytest.mark.spec("ENG-54")
def test_a_transaction_reads_its_own_writes_and_writes_them_as_one_batch(data_dir: str) -> None:
    clock = catlog.ManualClock(NOW_MS)
    with catlog.open(data_dir, clock=clock) as store:
        store.put(b"a", b"1")
        store.put(b"gone", b"x")
        with store.transaction() as tx:
            assert tx.get(b"missing") is None
            assert tx.delete(b"missing") is False
            tx.put(b"b", b"2", ttl=10)
            assert tx.get(b"b") == b"2"
            assert tx.expires_at(b"b") == NOW_MS + 10_000
            assert tx.expires_at(b"a") is None
            assert tx.delete(b"gone") is True
            assert tx.get(b"gone") is None
            with pytest.raises(KeyError):
                tx.expires_at(b"gone")
            tx.put(b"a", b"3", expires_at_ms=NOW_MS + 5)
            assert b"b" not in store, "nothing is written before the block ends"
        assert store.get_many([b"a", b"b", b"gone"]) == [b"3", b"2", None]
        assert store.expires_at(b"a") == NOW_MS + 5
        segments = store.stats().segments
    records = catlog.open  # the batch is one record: a reopen replays it whole (REC-17)
    with records(data_dir, clock=clock) as reopened:
        assert dict(reopened.items()) == {b"a": b"3", b"b": b"2"}
        assert reopened.stats().segments == segments


@pytest.mark.spec("ENG-54")
def test_a_transaction_that_raises_writes_nothing_and_lets_go_of_the_lock(data_dir: str) -> None:
    with catlog.open(data_dir) as store:
        ticket = store.last_ticket

        def raising() -> None:
            with store.transaction() as tx:
                tx.put(b"k", b"v")
                _ = 1 / 0

        with pytest.raises(ZeroDivisionError):
            raising()
        assert store.last_ticket == ticket
        assert b"k" not in store
        store.put(b"after", b"v")  # the lock was released
        with store.transaction() as tx:
            assert tx.get(b"after") == b"v"
        assert tx.ticket == 0, "a transaction that wrote nothing appends nothing"
        assert store.last_ticket == ticket + 1
        with pytest.raises(RuntimeError):
            tx.get(b"after")
        with pytest.raises(catlog.KeyTooLargeError), store.transaction() as tx:
            tx.put(bytes(catlog.MAX_KEY_SIZE + 1), b"v")
        store.put(b"still", b"writable")


@pytest.mark.spec("ENG-54", "FMT-22")
def test_a_transaction_too_large_for_one_batch_writes_nothing(data_dir: str) -> None:
    with catlog.open(data_dir, fsync="never") as store:
        big = bytes(catlog.MAX_VALUE_SIZE // 3)

        def too_large() -> None:
            with store.transaction() as tx:
                for i in range(4):
                    tx.put(b"k%d" % i, big)

        with pytest.raises(catlog.BatchTooLargeError):
            too_large()
        assert len(store) == 0
        store.put(b"after", b"v")


@pytest.mark.spec("ENG-54", "REC-10", "ENG-19")
def test_a_failed_or_closed_store_refuses_to_begin_a_transaction(data_dir: str) -> None:
    fs = FaultyFileSystem()
    with failing(catlog.open(data_dir, fs=fs)) as store:
        fs.fail("sync")
        with pytest.raises(catlog.StoreFailedError), store.transaction() as tx:
            tx.put(b"k", b"v")
        with pytest.raises(catlog.StoreFailedError):
            store.transaction().__enter__()
        assert store.get(b"k") is None
    with pytest.raises(catlog.StoreClosedError):
        store.transaction()


@pytest.mark.spec("ENG-54", "ENG-33", "ENG-34", "ENG-3")
def test_a_transactions_own_expiries_and_limits_are_the_stores(data_dir: str) -> None:
    clock = catlog.ManualClock(NOW_MS)
    with catlog.open(data_dir, clock=clock, fsync="never") as store:
        with store.transaction() as tx:
            assert tx.ticket == 0, "no ticket until the block has written"
            tx.put(b"now", b"v", expires_at_ms=NOW_MS)
            assert tx.get(b"now") == b"v", "ENG-34: it expires once the clock is past it"
            clock.advance(0.001)
            assert tx.get(b"now") is None
            with pytest.raises(KeyError) as missing:
                tx.expires_at(b"now")
            assert missing.value.args == (b"now",)
            with pytest.raises(ValueError, match=r"^give ttl or expires_at_ms, not both$"):
                tx.put(b"k", b"v", ttl=1, expires_at_ms=NOW_MS + 1)
            plain = bytes(catlog.codec.MAX_EXPIRING_VALUE_SIZE + 1)
            with pytest.raises(catlog.ValueTooLargeError):
                tx.put(b"big", plain, ttl=1)  # beyond an expiring PUT's limit (FMT-21)

        def too_large_for_a_batch() -> None:
            with store.transaction() as tx:
                tx.put(b"big", plain)  # within a plain PUT's limit, but not a batch's (FMT-22)

        with pytest.raises(catlog.BatchTooLargeError):
            too_large_for_a_batch()
        assert b"big" not in store
        unopened = store.transaction()
        with pytest.raises(RuntimeError, match=r"^a transaction is used only inside its with"):
            unopened.get(b"now")
