"""``modify`` (ENG-80 .. ENG-82): one key's read-modify-write as one step, without a transaction."""

from __future__ import annotations

import threading
from itertools import islice

import pytest

import catlog
from catlog.codec import MAX_EXPIRING_VALUE_SIZE, MAX_KEY_SIZE
from catlog.simfs import SimFileSystem
from tests.crash.faulty_fs import FaultyFileSystem
from tests.failing_store import failing

NOW_MS = 1_700_000_000_000


def plus_one(old: bytes | None) -> bytes:
    return b"%d" % (int(old or b"0") + 1)


@pytest.mark.spec("ENG-80", "ENG-82", "ENG-50")
@pytest.mark.parametrize("policy", ["always", "interval", "never"])
def test_threads_incrementing_one_key_lose_no_increment_even_while_compacting(
    data_dir: str, policy: catlog.FsyncPolicy
) -> None:
    threads, each = 6, 60 if policy == "always" else 300
    seen: list[int] = []
    with catlog.open(data_dir, fsync=policy, segment_size=4096) as store:
        for i in range(200):
            store.put(b"filler%d" % i, b"x" * 50)  # sealed segments for compaction to rewrite

        def work() -> None:
            for _ in range(each):
                written = store.modify(b"counter", plus_one)
                assert written is not None
                seen.append(int(written))

        workers = [threading.Thread(target=work) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for _ in range(3):
            store.compact()
        for worker in workers:
            worker.join(timeout=60)
        assert store[b"counter"] == b"%d" % (threads * each)
        assert sorted(seen) == list(range(1, threads * each + 1)), "each saw the one before"
    with catlog.open(data_dir) as reopened:
        assert reopened[b"counter"] == b"%d" % (threads * each)


@pytest.mark.spec("ENG-80", "ENG-81", "ENG-51", "ENG-28")
def test_modify_is_shown_a_put_still_waiting_for_its_fsync(data_dir: str) -> None:
    """A pipelined ``SET k 1`` then ``INCR k`` gives 2: the change reads the waiting put."""
    with catlog.open(data_dir, fsync="always") as store:
        ticket = store.put_nowait(b"k", b"1")
        assert b"k" not in store, "the put has not taken effect"
        shown: list[bytes | None] = []

        def change(old: bytes | None) -> bytes:
            shown.append(old)
            return plus_one(old)

        assert store.modify_nowait(b"k", change) == (b"2", ticket + 1)
        assert shown == [b"1"]
        assert store.modify_nowait(b"k", change) == (b"3", ticket + 2)
        assert shown == [b"1", b"2"], "and a modify still waiting, too"
        store.wait_durable(ticket + 2)
        assert store[b"k"] == b"3"


@pytest.mark.spec("ENG-81", "ENG-51")
def test_a_modify_that_writes_nothing_answers_once_what_it_saw_has_taken_effect(
    data_dir: str,
) -> None:
    with catlog.open(data_dir, fsync="always") as store:
        ticket = store.put_nowait(b"k", b"not a number")
        assert store.modify_nowait(b"k", lambda old: None) == (None, ticket)
        assert b"k" not in store
        assert store.modify(b"k", lambda old: None) is None
        assert store[b"k"] == b"not a number", "modify waited for the put it was shown"
        assert store.last_ticket == ticket, "nothing was written"


@pytest.mark.spec("ENG-80", "ENG-33", "ENG-34")
def test_modify_keeps_the_expiry_and_an_expired_value_is_shown_as_none(data_dir: str) -> None:
    clock = catlog.ManualClock(NOW_MS)
    with catlog.open(data_dir, clock=clock) as store:
        store.put(b"t", b"5", ttl=10)
        assert store.modify(b"t", plus_one) == b"6"
        assert store.expires_at(b"t") == NOW_MS + 10_000
        clock.advance(10.001)
        shown: list[bytes | None] = []

        def fresh(old: bytes | None) -> bytes:
            shown.append(old)
            return b"fresh"

        store.modify(b"t", fresh)
        assert shown == [None]
        assert store[b"t"] == b"fresh"
        assert store.expires_at(b"t") is None, "a new value of an expired key has no expiry"
    with catlog.open(data_dir, clock=clock) as reopened:
        assert reopened[b"t"] == b"fresh"


@pytest.mark.spec("ENG-80", "ENG-2", "ENG-3")
def test_a_change_that_raises_or_returns_a_bad_value_writes_nothing(data_dir: str) -> None:
    clock = catlog.ManualClock(NOW_MS)
    with catlog.open(data_dir, clock=clock) as store:
        store.put(b"k", b"1")
        store.put(b"t", b"1", ttl=10)
        before = store.last_ticket

        def boom(old: bytes | None) -> bytes:
            raise ZeroDivisionError

        with pytest.raises(ZeroDivisionError):
            store.modify(b"k", boom)
        with pytest.raises(catlog.InvalidTypeError):
            store.modify(b"k", lambda old: "text")  # type: ignore[arg-type, return-value]
        with pytest.raises(catlog.ValueTooLargeError):
            store.modify(b"t", lambda old: b"x" * (MAX_EXPIRING_VALUE_SIZE + 1))
        with pytest.raises(catlog.KeyTooLargeError):
            store.modify(b"k" * (MAX_KEY_SIZE + 1), plus_one)
        assert store.last_ticket == before, "nothing was written"
        store.put(b"k", b"2")  # the lock was let go
        assert store.modify(bytearray(b"k"), plus_one) == b"3"  # type: ignore[arg-type]


@pytest.mark.spec("ENG-80", "ENG-19", "REC-10")
def test_a_failed_or_closed_store_refuses_before_calling_the_change(data_dir: str) -> None:
    called: list[bytes | None] = []

    def change(old: bytes | None) -> bytes:
        called.append(old)
        return b"v"

    fs = FaultyFileSystem()
    with failing(catlog.open(data_dir, fs=fs)) as store:
        fs.fail("sync")
        with pytest.raises(catlog.StoreFailedError):
            store.put(b"k", b"v")
        with pytest.raises(catlog.StoreFailedError):
            store.modify(b"k", change)
    with pytest.raises(catlog.StoreClosedError):
        store.modify(b"k", change)
    assert called == []


@pytest.mark.spec("ENG-81", "ENG-82", "ENG-14", "REC-2")
def test_a_modify_that_returned_under_always_survives_every_crash() -> None:
    fs = SimFileSystem()
    store = catlog.open("/db", fs=fs, fsync="always", clock=catlog.ManualClock(NOW_MS))
    store.put(b"n", b"41")
    assert store.modify(b"n", plus_one) == b"42"
    for state in islice(fs.crash_states(tears=1), 100):
        with catlog.open("/db", fs=fs.crash(state), clock=catlog.ManualClock(NOW_MS)) as crashed:
            assert crashed.get(b"n") == b"42", state
    store.close()


@pytest.mark.spec("ENG-80", "ENG-73", "ENG-41")
@pytest.mark.parametrize("policy", ["always", "interval", "never"])
@pytest.mark.parametrize("overwrite", ["put", "modify"])
def test_a_segment_modify_overwrote_is_as_dead_to_a_bounded_compaction_as_one_put_overwrote(
    data_dir: str, policy: catlog.FsyncPolicy, overwrite: str
) -> None:
    """Three segments of four live records each, then the middle one's keys overwritten: its
    dead fraction (ENG-73) is 1, above the store's, so a compaction bounded to the first two
    takes both. Counted dead only in all (ENG-41) and not in its segment, the middle one would
    look live and be left for later, whichever of ``put`` or ``modify`` overwrote it."""
    with catlog.open(data_dir, fsync=policy, segment_size=256) as store:
        for group in b"abc":
            for i in range(4):
                store.put(b"%c%d" % (group, i), b"v" * 30)  # 53 bytes: four to a segment
        assert store.stats().segments == 3
        for i in range(4):
            key = b"b%d" % i
            if overwrite == "put":
                store.put(key, b"w" * 30)
            else:
                store.modify(key, lambda old: b"w" * 30)
        report = store.compact(max_bytes=2 * 256)
        assert report.segments_removed == 2, "the middle segment is all dead: worth copying"
        assert report.records_copied == 4, "only the first segment's records were live"
        store._check_invariants()
        for group in b"ac":
            for i in range(4):
                assert store[b"%c%d" % (group, i)] == b"v" * 30
        for i in range(4):
            assert store[b"b%d" % i] == b"w" * 30
