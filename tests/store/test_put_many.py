"""``put_many_nowait`` (ENG-44): a group of puts appended at once, as many ``put_nowait`` calls.

The property test is the clause itself: two stores on the same manual clock, one fed groups and
one fed the same pairs one by one, must end with the same segment files byte for byte, the same
index, tickets, expiries and dead-byte estimate. Small segments make groups cross rotations.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import catlog
from catlog.clock import ManualClock
from catlog.codec import MAX_KEY_SIZE, MAX_VALUE_SIZE
from catlog.index import LARGE_VALUE
from tests.crash.faulty_fs import FaultyFileSystem
from tests.failing_store import failing
from tests.store.test_group_commit import DurabilityWitness, put_a_during_its_fsync

KEYS = st.one_of(st.sampled_from([b"", b"a", b"b", b"key"]), st.binary(max_size=3))
"""Mostly a few keys, so that groups overwrite each other's keys and keys with expiries."""
VALUES = st.one_of(
    st.binary(max_size=40),
    st.integers(LARGE_VALUE - 2, LARGE_VALUE + 2).map(lambda n: b"L" * n),
)
GROUPS = st.lists(st.lists(st.tuples(KEYS, VALUES), max_size=6), max_size=8)


def segment_bytes(directory: str) -> dict[str, bytes]:
    return {
        name: Path(directory, name).read_bytes()
        for name in sorted(os.listdir(directory))
        if name.endswith(".log")
    }


def contents(store: catlog.Store) -> tuple[dict[bytes, bytes], dict[bytes, int | None], int, int]:
    values = dict(store.items())
    expiries = {key: store.expires_at(key) for key in values}
    return values, expiries, store.stats().dead_bytes, store.last_ticket


def written(store: catlog.Store) -> int:
    stats = store.stats()
    return stats.disk_bytes + stats.unflushed_bytes


@pytest.mark.spec("ENG-44", "ENG-28")
@pytest.mark.parametrize("fsync", ["never", "always"])
@given(groups=GROUPS, expiring=st.sets(KEYS, max_size=3))
@example(  # overwrites within and across groups, cleared expiries, a rotation, a large value
    groups=[
        [(b"a", b"1"), (b"a", b"2"), (b"b", b"")],
        [(b"c", b""), (b"a", b"3"), (b"b", b"v")],
        [(b"d", b"x" * 1500), (b"e", b"y" * 1500), (b"a", b"z" * 1500)],
        [(b"b", b"L" * (LARGE_VALUE + 1))],
    ],
    expiring={b"a", b"z"},
)
def test_a_group_leaves_what_the_same_puts_one_by_one_leave(
    tmp_path_factory: pytest.TempPathFactory,
    fsync: str,
    groups: list[list[tuple[bytes, bytes]]],
    expiring: set[bytes],
) -> None:
    grouped_dir = str(tmp_path_factory.mktemp("grouped"))
    single_dir = str(tmp_path_factory.mktemp("single"))
    options = {"fsync": fsync, "segment_size": 4096, "clock": ManualClock()}
    with (
        catlog.open(grouped_dir, **options) as grouped,  # type: ignore[arg-type]
        catlog.open(single_dir, **options) as single,  # type: ignore[arg-type]
    ):
        for store in (grouped, single):
            for key in expiring:  # a plain put must clear an expiry (ENG-33)
                store.put(key, b"old", ttl=60)
        for group in groups:
            before = grouped.last_ticket
            ticket = grouped.put_many_nowait(group)
            grouped.wait_durable(ticket)
            assert ticket == before + len(group)
            for key, value in group:
                single.wait_durable(single.put_nowait(key, value))
            assert contents(grouped) == contents(single)
    assert segment_bytes(grouped_dir) == segment_bytes(single_dir)


@pytest.mark.spec("ENG-44")
def test_an_empty_group_appends_nothing_and_returns_the_latest_ticket(
    store: catlog.Store,
) -> None:
    store.put(b"a", b"1")
    before = written(store)
    assert store.put_many_nowait([]) == store.last_ticket == 1
    assert written(store) == before


@pytest.mark.spec("ENG-44", "ENG-2", "ENG-3")
@pytest.mark.parametrize(
    ("bad", "error"),
    [
        ((b"k" * (MAX_KEY_SIZE + 1), b"v"), catlog.KeyTooLargeError),
        ((b"k", b"v" * (MAX_VALUE_SIZE + 1)), catlog.ValueTooLargeError),
        (("k", b"v"), catlog.InvalidTypeError),
        ((b"k", 7), catlog.InvalidTypeError),
    ],
)
def test_one_bad_pair_raises_its_error_and_nothing_of_the_group_is_appended(
    store: catlog.Store, bad: tuple[bytes, bytes], error: type[Exception]
) -> None:
    before = written(store)
    with pytest.raises(error):
        store.put_many_nowait([(b"a", b"1"), bad, (b"b", b"2")])
    assert store.last_ticket == 0
    assert written(store) == before
    assert store.get(b"a") is None


@pytest.mark.spec("ENG-44", "ENG-4")
def test_a_value_too_large_for_the_index_length_field_reads_back(store: catlog.Store) -> None:
    large = bytes(range(256)) * 300  # 76,800 bytes; an index entry holds lengths up to 65,535
    store.wait_durable(store.put_many_nowait([(b"small", b"s"), (b"large", large), (b"z", b"")]))
    assert [store.get(k) for k in (b"small", b"large", b"z")] == [b"s", large, b""]


@pytest.mark.spec("ENG-44", "ENG-2")
def test_bytes_like_keys_and_values_are_copied(store: catlog.Store) -> None:
    key = bytearray(b"key")
    value = bytearray(b"value")
    pairs = [(key, value), (memoryview(b"k2"), b"v2")]
    store.wait_durable(store.put_many_nowait(pairs))  # type: ignore[arg-type]
    key[0:3] = b"xxx"
    value[0:5] = b"yyyyy"
    assert store.get(b"key") == b"value"
    assert store.get(b"k2") == b"v2"
    assert all(type(k) is bytes for k in store)


@pytest.mark.spec("ENG-44", "REC-10")
def test_a_store_that_refuses_writes_refuses_the_group_and_appends_nothing(
    data_dir: str,
) -> None:
    fs = FaultyFileSystem()
    with failing(catlog.open(data_dir, fs=fs, fsync="always")) as store:
        ticket = store.put_nowait(b"k", b"v")
        fs.fail("sync")
        with pytest.raises(catlog.StoreFailedError):
            store.wait_durable(ticket)
        with pytest.raises(catlog.StoreFailedError):
            store.put_many_nowait([(b"a", b"1"), (b"b", b"2")])
        assert store.last_ticket == ticket


@pytest.mark.spec("ENG-44", "REC-10")
def test_a_write_that_fails_while_appending_the_group_raises_and_the_store_refuses(
    data_dir: str,
) -> None:
    fs = FaultyFileSystem()
    with failing(catlog.open(data_dir, fs=fs, fsync="never")) as store:
        fs.fail("append")
        big = b"v" * 40_000  # two of these fill the 64 KiB write buffer: it is handed to the OS
        with pytest.raises(catlog.StoreFailedError, match=r": write failed \(\[Errno 5\] "):
            store.put_many_nowait([(b"a", big), (b"b", big)])
        assert store.get(b"a") is None
        with pytest.raises(catlog.StoreFailedError):
            store.put(b"c", b"3")


@pytest.mark.spec("ENG-44", "ENG-28", "ENG-14")
def test_under_always_a_group_takes_effect_when_its_fsync_returns(data_dir: str) -> None:
    with catlog.open(data_dir, fsync="always") as store:
        ticket = store.put_many_nowait([(b"a", b"1"), (b"b", b"2"), (b"a", b"3")])
        assert ticket == 3
        assert store.get(b"a") is None
        store.wait_durable(ticket)
        assert store.get(b"a") == b"3"
        assert store.get(b"b") == b"2"


@pytest.mark.spec("ENG-41", "ENG-28")
def test_a_put_overwritten_by_a_put_its_fsync_also_covers_is_counted_dead(data_dir: str) -> None:
    """Found by the property test above: under ``always`` the writes one fsync covers take
    effect together, and a PUT superseded within them went uncounted."""
    with catlog.open(data_dir, fsync="always") as store:
        store.put_nowait(b"key", b"first")
        store.wait_durable(store.put_nowait(b"key", b"second"))
        assert store.stats().dead_bytes == 21 + len(b"key") + len(b"first")


@pytest.mark.spec("ENG-44", "ENG-29", "ENG-14")
def test_a_group_appended_during_a_commit_takes_effect_with_the_fsync_that_covers_it(
    data_dir: str,
) -> None:
    """As for put_nowait: the group is appended while the fsync of a's commit is under way, so
    that commit must not make it visible; only the next one does."""
    fs = DurabilityWitness(fsync_seconds=0.3)
    with catlog.open(data_dir, fs=fs, fsync="always") as store:
        leader = put_a_during_its_fsync(store, fs)
        ticket = store.put_many_nowait([(b"b", b"2"), (b"c", b"3")])
        leader.join()
        assert [store.get(k) for k in (b"a", b"b", b"c")] == [b"1", None, None]
        assert ticket == 3
        store.wait_durable(ticket)
        assert [store.get(k) for k in (b"a", b"b", b"c")] == [b"1", b"2", b"3"]


@pytest.mark.spec("ENG-44", "ENG-15")
def test_under_interval_a_group_is_synced_when_the_interval_has_passed(data_dir: str) -> None:
    clock = ManualClock()
    with catlog.open(data_dir, fsync="interval", clock=clock) as store:
        store.put_many_nowait([(b"a", b"1"), (b"b", b"2")])
        assert store.stats().unflushed_bytes > 0
        clock.advance(store.fsync_interval_ms / 1000)
        store.tick()
        assert store.stats().unflushed_bytes == 0
