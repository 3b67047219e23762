"""The writes that read first (catlog/updates.py) at the edges their other tests pass by: a
pending write judged at exactly its expiry, expiries kept on disk and across a rotation by
``modify`` and ``modify_many_nowait``, bytes-like keys and values, values past the limits of an
expiring value and of the index's length field, and the flusher's due flag after a run.
"""

from __future__ import annotations

import pytest

import catlog
from catlog.codec import MAX_EXPIRING_VALUE_SIZE, MAX_VALUE_SIZE
from tests.crash.faulty_fs import FaultyFileSystem

NOW_MS = 1_700_000_000_000


def plus_one(old: bytes | None) -> bytes:
    return b"%d" % (int(old or b"0") + 1)


@pytest.mark.spec("ENG-34", "ENG-51")
def test_a_pending_put_is_live_at_exactly_its_expiry(data_dir: str) -> None:
    """Under ``always`` a ``put_nowait`` not yet waited for is judged from the pending writes:
    at its expiry the key still has its value (it expires once the clock is *past* it)."""
    clock = catlog.ManualClock(NOW_MS)
    with catlog.open(data_dir, clock=clock) as store:
        store.put_nowait(b"k", b"v", expires_at_ms=NOW_MS + 10)
        clock.advance(0.010)
        deleted, ticket = store.delete_nowait(b"k")
        assert deleted, "at its expiry the key has a value"
        store.wait_durable(ticket)
        assert b"k" not in store


@pytest.mark.parametrize("fsync", ["always", "never"])
@pytest.mark.spec("ENG-80", "ENG-90", "ENG-33")
def test_modify_and_modify_many_keep_the_expiry_on_disk(
    data_dir: str, fsync: catlog.FsyncPolicy
) -> None:
    """The expiring PUT they append carries the expiry, so a reopened store still has it."""
    clock = catlog.ManualClock(NOW_MS)
    with catlog.open(data_dir, clock=clock, fsync=fsync) as store:
        store.put(b"one", b"1", expires_at_ms=NOW_MS + 60_000)
        store.put(b"many", b"1", expires_at_ms=NOW_MS + 70_000)
        assert store.modify(b"one", plus_one) == b"2"
        outcomes, ticket = store.modify_many_nowait([(b"many", plus_one)])
        assert outcomes == [b"2"]
        store.wait_durable(ticket)
    with catlog.open(data_dir, clock=clock) as store:
        assert (store.expires_at(b"one"), store[b"one"]) == (NOW_MS + 60_000, b"2")
        assert (store.expires_at(b"many"), store[b"many"]) == (NOW_MS + 70_000, b"2")


@pytest.mark.spec("ENG-80", "ENG-90", "ENG-9")
def test_a_modify_many_run_that_rotates_keeps_each_expiry(data_dir: str) -> None:
    """A run that does not fit the active segment is appended one record at a time, rotating
    where one does not fit; each record keeps its key's expiry all the same."""
    clock = catlog.ManualClock(NOW_MS)
    with catlog.open(data_dir, clock=clock, fsync="never", segment_size=256) as store:
        for i in range(4):
            store.put(b"k%d" % i, b"1", expires_at_ms=NOW_MS + 1000 + i)
        store.put(b"fill", b"f" * 120)
        before = store.stats().segments
        outcomes, _ = store.modify_many_nowait([(b"k%d" % i, plus_one) for i in range(4)] * 2)
        assert outcomes == [b"2"] * 4 + [b"3"] * 4
        assert store.stats().segments > before, "the run rotated"
        assert [store.expires_at(b"k%d" % i) for i in range(4)] == [
            NOW_MS + 1000 + i for i in range(4)
        ]
        clock.advance(2)
        assert [b"k%d" % i in store for i in range(4)] == [False] * 4


@pytest.mark.spec("ENG-2", "ENG-90")
def test_modify_many_takes_bytes_like_keys_and_values_and_shows_none_for_a_missing_key(
    data_dir: str,
) -> None:
    seen: list[bytes | None] = []

    def to_bytearray(old: bytes | None) -> bytearray:
        seen.append(old)
        return bytearray(b"new")

    for fsync in ("never", "always"):
        with catlog.open(f"{data_dir}-{fsync}", fsync=fsync) as store:
            store.put(b"present", b"old")
            seen.clear()
            outcomes, ticket = store.modify_many_nowait(
                [(bytearray(b"missing"), to_bytearray), (b"present", to_bytearray)]  # type: ignore[list-item]
            )
            store.wait_durable(ticket)
            assert outcomes == [b"new", b"new"]
            assert [type(outcome) for outcome in outcomes] == [bytes, bytes]
            assert seen == [None, b"old"]
            assert dict(store.items()) == {b"missing": b"new", b"present": b"new"}


@pytest.mark.spec("ENG-33", "ENG-80", "ENG-90")
def test_modify_many_refuses_a_value_too_large_for_an_expiry(data_dir: str) -> None:
    """A value of exactly ``MAX_VALUE_SIZE`` is too large for a key with an expiry (8 bytes
    of it are the expiry's): that pair's outcome is the error, and nothing is written."""
    big = b"x" * MAX_VALUE_SIZE
    with catlog.open(data_dir, fsync="never") as store:
        store.put(b"k", b"1", ttl=60)
        outcomes, _ = store.modify_many_nowait([(b"k", lambda old: big)])
        assert isinstance(outcomes[0], catlog.ValueTooLargeError)
        assert str(outcomes[0]) == (
            f"value with an expiry of {MAX_VALUE_SIZE} bytes exceeds the limit of"
            f" {MAX_EXPIRING_VALUE_SIZE}"
        )
        assert store[b"k"] == b"1"


@pytest.mark.spec("ENG-90", "FMT-12")
def test_modify_many_writes_a_value_longer_than_the_index_can_count(data_dir: str) -> None:
    """The index records 65,535 for a longer value (FMT-12); the run's inline location must
    not let a longer length spill into the offset."""
    value = b"%070000d" % 7
    with catlog.open(data_dir, fsync="never") as store:
        store.put(b"before", b"b" * 100)
        outcomes, _ = store.modify_many_nowait([(b"k", lambda old: value), (b"j", plus_one)])
        assert outcomes == [value, b"1"]
        assert (store[b"k"], store[b"j"], store[b"before"]) == (value, b"1", b"b" * 100)


@pytest.mark.spec("ENG-15", "ENG-90")
def test_the_flusher_syncs_what_a_modify_many_run_appended(data_dir: str) -> None:
    fs = FaultyFileSystem()
    clock = catlog.ManualClock(NOW_MS)
    with catlog.open(
        data_dir, fs=fs, clock=clock, fsync="interval", fsync_interval_ms=100
    ) as store:
        store.sync()
        syncs = fs.calls["sync"]
        store.modify_many_nowait([(b"k", plus_one)])
        clock.advance(0.2)
        store.tick()
        assert fs.calls["sync"] == syncs + 1, "the run's record was due for an fsync"
