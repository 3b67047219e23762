"""Expired keys are forgotten a bounded number at a time, and counted exactly meanwhile.

Forgetting is observed through ``stats().dead_bytes``: each forgotten key adds its record to
the estimate (ENG-41, ENG-63), and nothing else in these tests adds to it. The work is counted,
never timed: the clock is a :class:`ManualClock`.
"""

from __future__ import annotations

import os

import pytest

import catlog
import catlog.testing
from catlog.clock import ManualClock
from catlog.segment import parse_segment_name, segment_name

MANY = 200_000 if os.environ.get("HYPOTHESIS_PROFILE") == "nightly" else 20_000
"""Keys that expire together: issue 17's 200,000 in the nightly run, fewer in CI."""

LIVE = 10
VALUE = b"v"
KEY_SIZE = 7  # b"k%06d"
RECORD = 21 + KEY_SIZE + len(VALUE) + 8
"""ENG-41's size of each expiring record: the header, the key, the value and its expiry."""


def _key(i: int) -> bytes:
    return b"k%06d" % i


def _fill(store: catlog.Store, clock: ManualClock, expiring: int) -> None:
    """``expiring`` keys with a ttl of 10 s and ``LIVE`` keys without, then 11 s pass."""
    for i in range(expiring):
        store.put(_key(i), VALUE, ttl=10)
    for i in range(LIVE):
        store.put(b"live%d" % i, VALUE)
    clock.advance(11)


def _forgotten(store: catlog.Store, dead_before: int) -> int:
    grown = store.stats().dead_bytes - dead_before
    assert grown % RECORD == 0, "only expired records were added to the estimate"
    return grown // RECORD


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.mark.spec("ENG-60", "ENG-61", "ENG-6", "ENG-34")
def test_counting_after_many_keys_expire_is_exact_and_forgets_none(
    data_dir: str, clock: ManualClock
) -> None:
    with catlog.open(data_dir, fsync="never", clock=clock) as store:
        _fill(store, clock, MANY)
        dead = store.stats().dead_bytes
        assert len(store) == LIVE
        forgotten = _forgotten(store, dead)
        assert forgotten == 0, f"one len() forgot {forgotten} expired keys; reads forget none"
        stats = store.stats()
        assert (stats.keys, stats.expiring_keys) == (LIVE, 0)
        assert _forgotten(store, dead) == 0


@pytest.mark.spec("ENG-61")
@pytest.mark.parametrize("call", ["put_many_nowait", "modify_many_nowait"])
def test_a_call_appending_many_records_across_rotations_forgets_at_most_20(
    data_dir: str, clock: ManualClock, call: str
) -> None:
    """300 new keys of 28-byte records do not fit one 4 KiB segment: the call appends them one
    at a time, rotating twice, and still forgets 20 expired keys in all, not 20 a record."""
    with catlog.open(data_dir, fsync="never", clock=clock, segment_size=4096) as store:
        _fill(store, clock, 1000)
        dead = store.stats().dead_bytes
        before = store.stats().segments
        keys = [b"n%05d" % i for i in range(300)]
        if call == "put_many_nowait":
            store.put_many_nowait([(key, VALUE) for key in keys])
        else:
            store.modify_many_nowait([(key, lambda old: VALUE) for key in keys])
        assert store.stats().segments > before, "the call rotated"
        assert _forgotten(store, dead) == 20
        assert all(store[key] == VALUE for key in keys)


@pytest.mark.spec("ENG-60", "ENG-26")
def test_stats_count_expired_keys_out_before_any_is_forgotten(
    data_dir: str, clock: ManualClock
) -> None:
    with catlog.open(data_dir, fsync="never", clock=clock) as store:
        _fill(store, clock, 1000)
        stats = store.stats()
        assert (stats.keys, stats.expiring_keys) == (LIVE, 0)


@pytest.mark.spec("ENG-61", "ENG-62", "ENG-60", "ENG-63")
def test_writes_and_purge_steps_forget_a_bounded_number_and_counts_stay_exact(
    data_dir: str, clock: ManualClock
) -> None:
    with catlog.open(data_dir, fsync="never", clock=clock) as store:
        _fill(store, clock, MANY)
        dead = store.stats().dead_bytes
        left = MANY
        live = LIVE
        for i in range(5):
            before = _forgotten(store, dead)
            store.put(b"w%d" % i, VALUE)
            live += 1
            now = _forgotten(store, dead)
            assert now - before == min(20, left), "ENG-61: a write forgets at most 20"
            left -= now - before
            assert len(store) == store.stats().keys == live
        stats = store.stats()
        written = stats.disk_bytes + stats.unflushed_bytes
        while True:
            before = _forgotten(store, dead)
            step = store.purge_expired()
            assert step == _forgotten(store, dead) - before, "it returns how many it forgot"
            assert 0 <= step <= 1000, "ENG-62: a step forgets at most 1000"
            left -= step
            assert len(store) == store.stats().keys == live
            if not step:
                break
        assert left == 0
        assert _forgotten(store, dead) == MANY, "ENG-63: every forgotten record is dead"
        stats = store.stats()
        assert stats.disk_bytes + stats.unflushed_bytes == written, (
            "ENG-63: forgetting writes nothing"
        )
        assert store.purge_expired(5) == 0
        store._check_invariants()


@pytest.mark.spec("ENG-62")
def test_a_tick_forgets_at_most_a_thousand_expired_keys(data_dir: str, clock: ManualClock) -> None:
    with catlog.open(data_dir, fsync="never", clock=clock) as store:
        _fill(store, clock, 2500)
        dead = store.stats().dead_bytes
        counts = []
        for _ in range(4):
            before = _forgotten(store, dead)
            store.tick()
            counts.append(_forgotten(store, dead) - before)
        assert counts == [1000, 1000, 500, 0]
        assert store.purge_expired(3) == 0


@pytest.mark.spec("ENG-64", "ENG-60", "ENG-7", "ENG-38")
def test_iteration_and_snapshots_leave_out_expired_keys_without_forgetting_them(
    data_dir: str, clock: ManualClock
) -> None:
    with catlog.open(data_dir, fsync="never", clock=clock) as store:
        _fill(store, clock, 100)
        store.put(_key(3), b"again")  # no longer expires: listed again
        dead = store.stats().dead_bytes
        expected = sorted([b"live%d" % i for i in range(LIVE)] + [_key(3)])
        assert sorted(store) == expected
        assert sorted(store.keys()) == expected
        with store.snapshot() as snapshot:
            assert sorted(snapshot) == expected
            assert len(snapshot) == LIVE + 1
        assert sorted(key for key, _ in store.items()) == expected
        assert _forgotten(store, dead) == 0
        assert len(store) == LIVE + 1


@pytest.mark.spec("ENG-63", "ENG-55", "ENG-60")
def test_compaction_forgets_the_expired_keys_it_skips_in_bounded_steps(
    data_dir: str, clock: ManualClock
) -> None:
    """More than one step's worth (1000) of skipped keys: each is forgotten, none is left
    pointing into a removed segment, and none of them is counted."""
    with catlog.open(data_dir, fsync="never", segment_size=64 * 1024, clock=clock) as store:
        _fill(store, clock, 2500)
        store.compact()
        assert store.purge_expired() == 0, "compaction forgot every key it skipped"
        assert len(store) == store.stats().keys == LIVE
        assert sorted(store) == sorted(b"live%d" % i for i in range(LIVE))
        store._check_invariants()


BIG = bytes(60 * 1024)


def _until_a_compaction_starts(store: catlog.Store, dead: int, write: str) -> None:
    """60 KiB overwrites of one key, each in a segment of its own, until one's rotation makes a
    compaction due and chooses its inputs (ENG-39 step 1; the compaction is held in its thread):
    each write, that one too, forgets at most 20 expired keys (ENG-61, ENG-63). What the
    writes themselves add to the estimate (ENG-41: the record each overwrites, and a batch's
    frame) is taken off before counting what forgetting added."""
    frame = 21 if write == "batch" else 0
    for writes in range(1, 20):
        if write == "batch":
            store.write_batch([("put", b"big", BIG)])
        else:
            store.put(b"big", BIG)
        own = writes * frame + (writes - 1) * (21 + 3 + len(BIG))
        assert _forgotten(store, dead + own) <= 20 * writes, "ENG-61, ENG-63"
        if store.stats().compacting:
            return
    pytest.fail("no compaction became due")


@pytest.mark.spec("ENG-63", "ENG-61")
@pytest.mark.parametrize("write", ["batch", "put"])
def test_the_write_whose_rotation_starts_a_compaction_forgets_at_most_twenty(
    data_dir: str, clock: ManualClock, write: str
) -> None:
    """1,100 keys expired, then writes that rotate until one makes a compaction due."""
    with catlog.open(
        data_dir, fsync="never", segment_size=64 * 1024, compact_threshold=0.1, clock=clock
    ) as store:
        _fill(store, clock, 1100)
        dead = store.stats().dead_bytes
        with catlog.testing.parked_background_compactions(store):
            _until_a_compaction_starts(store, dead, write)
        assert store.wait_for_compaction(timeout=30)
        assert store.stats().compaction_error is None
        assert len(store) == LIVE + 1


@pytest.mark.spec("ENG-63", "ENG-73")
def test_a_compaction_forgets_no_expired_key_outside_its_inputs(
    data_dir: str, clock: ManualClock
) -> None:
    """1,500 keys expired in the newest segments; ``compact(max_bytes=b)`` takes the oldest
    segment alone, of dead records only: it forgets none of them, before copying or after."""
    with catlog.open(data_dir, fsync="never", segment_size=4096, clock=clock) as store:
        for i in range(60):
            store.put(b"old", b"%0100d" % i)
        oldest = min(n for n in map(parse_segment_name, os.listdir(data_dir)) if n is not None)
        _fill(store, clock, 1500)
        bound = os.path.getsize(os.path.join(data_dir, segment_name(oldest)))
        report = store.compact(max_bytes=bound)
        assert (report.segments_removed, report.records_copied) == (1, 0)
        assert store.purge_expired(2000) == 1500, "ENG-63: none forgotten"
