"""Keys that expire: ttl and absolute expiry, what an expired key looks like, and persistence.

Cites spec/engine.md section 3a (ENG-33 .. ENG-36) and FMT-21. Time moves only through a
``ManualClock`` (ENG-24); no test sleeps.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

import catlog
from catlog.clock import ManualClock
from catlog.codec import RecordType
from tests.store.segments import records

START_MS = 1_700_000_000_000


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(now_ms=START_MS)


@pytest.fixture(params=["always", "never"])
def store(
    data_dir: str, clock: ManualClock, request: pytest.FixtureRequest
) -> Iterator[catlog.Store]:
    with catlog.open(data_dir, fsync=request.param, clock=clock) as opened:
        yield opened


@pytest.mark.spec("ENG-33", "FMT-21")
def test_a_put_with_a_ttl_writes_one_expiring_put(
    store: catlog.Store, data_dir: str, clock: ManualClock
) -> None:
    store.put(b"k", b"v", ttl=1.5)
    store.put(b"j", b"w", ttl=0.0001)  # rounded up to a whole millisecond
    store.put(b"i", b"x", expires_at_ms=START_MS + 7)
    store.flush()
    found = records(data_dir)
    assert [(r.type, r.key, r.value, r.expires_at_ms) for r in found] == [
        (RecordType.PUT_EXPIRING, b"k", b"v", START_MS + 1500),
        (RecordType.PUT_EXPIRING, b"j", b"w", START_MS + 1),
        (RecordType.PUT_EXPIRING, b"i", b"x", START_MS + 7),
    ]
    assert store.expires_at(b"k") == START_MS + 1500
    assert store[b"k"] == b"v"


@pytest.mark.spec("ENG-34")
def test_a_key_expires_once_the_clock_is_past_its_expiry(
    store: catlog.Store, clock: ManualClock
) -> None:
    store.put(b"k", b"v", ttl=1)
    store.put(b"forever", b"f")
    clock.advance(1.0)  # exactly at the expiry: still there, as in Redis
    assert store.get(b"k") == b"v"
    assert b"k" in store
    assert len(store) == 2
    assert sorted(store) == [b"forever", b"k"], "a listing agrees with get (ENG-64)"
    assert dict(store.items()) == {b"forever": b"f", b"k": b"v"}
    with store.snapshot() as frozen:
        assert dict(frozen.items()) == {b"forever": b"f", b"k": b"v"}
    clock.advance(0.001)
    assert store.get(b"k") is None
    assert store.get(b"k", b"default") == b"default"
    assert b"k" not in store
    assert len(store) == 1
    assert list(store) == [b"forever"]
    assert dict(store.items()) == {b"forever": b"f"}
    with pytest.raises(KeyError):
        store[b"k"]
    with pytest.raises(KeyError):
        store.expires_at(b"k")
    assert store.delete(b"k") is False, "an expired key has no value to delete"


@pytest.mark.spec("ENG-34", "ENG-33")
@pytest.mark.parametrize("policy", ["always", "never"])
def test_a_plain_put_ends_an_expiry_and_expiry_survives_a_reopen(
    data_dir: str, clock: ManualClock, policy: catlog.FsyncPolicy
) -> None:
    with catlog.open(data_dir, clock=clock, fsync=policy) as store:
        store.put(b"a", b"1", ttl=10)
        store.put(b"b", b"2", ttl=10)
        store.put(b"b", b"3")
        store.put(b"c", b"4", ttl=20)
        assert store.expires_at(b"b") is None
        assert store.stats().expiring_keys == 2
    with catlog.open(data_dir, clock=clock) as store:
        assert store.expires_at(b"a") == START_MS + 10_000
        assert store.expires_at(b"b") is None
        clock.advance(15)
        assert dict(store.items()) == {b"b": b"3", b"c": b"4"}
    clock.advance(10)
    with catlog.open(data_dir, clock=clock) as store:
        assert dict(store.items()) == {b"b": b"3"}
        assert store.stats().keys == 1


@pytest.mark.spec("ENG-35")
def test_expire_rewrites_the_value_with_a_new_expiry(
    store: catlog.Store, data_dir: str, clock: ManualClock
) -> None:
    assert store.expire(b"missing", 5) is False
    store.put(b"k", b"value")
    assert store.expire(b"k", 5) is True
    assert store.expires_at(b"k") == START_MS + 5000
    assert store.expire_at(b"k", START_MS + 9000) is True
    assert store.expires_at(b"k") == START_MS + 9000
    assert store[b"k"] == b"value"
    store.flush()
    assert [(r.type, r.value, r.expires_at_ms) for r in records(data_dir)] == [
        (RecordType.PUT, b"value", 0),
        (RecordType.PUT_EXPIRING, b"value", START_MS + 5000),
        (RecordType.PUT_EXPIRING, b"value", START_MS + 9000),
    ]
    clock.advance(9.001)
    assert store.expire(b"k", 5) is False, "an expired key has no value to give an expiry"


@pytest.mark.spec("ENG-35")
def test_an_expiry_in_the_past_deletes_the_key(
    store: catlog.Store, data_dir: str, clock: ManualClock
) -> None:
    store.put(b"k", b"v")
    assert store.expire_at(b"k", START_MS) is True
    assert b"k" not in store
    store.flush()
    assert [r.type for r in records(data_dir)] == [RecordType.PUT, RecordType.DELETE]


@pytest.mark.spec("ENG-36")
def test_persist_removes_an_expiry(store: catlog.Store, data_dir: str, clock: ManualClock) -> None:
    store.put(b"k", b"v", ttl=5)
    store.put(b"plain", b"p")
    assert store.persist(b"plain") is False
    assert store.persist(b"missing") is False
    assert store.persist(b"k") is True
    assert store.expires_at(b"k") is None
    clock.advance(60)
    assert store[b"k"] == b"v"
    store.flush()
    assert [r.type for r in records(data_dir)] == [
        RecordType.PUT_EXPIRING,
        RecordType.PUT,
        RecordType.PUT,
    ]


@pytest.mark.spec("ENG-33", "FMT-21")
@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"ttl": 0}, ValueError),
        ({"ttl": -1}, ValueError),
        ({"ttl": float("nan")}, ValueError),
        ({"ttl": float("inf")}, ValueError),
        ({"ttl": True}, TypeError),
        ({"ttl": "5"}, TypeError),
        ({"expires_at_ms": 0}, ValueError),
        ({"expires_at_ms": 1 << 63}, ValueError),
        ({"expires_at_ms": 1.5}, TypeError),
        ({"ttl": 1, "expires_at_ms": START_MS}, ValueError),
    ],
)
def test_bad_expiries_are_refused_and_write_nothing(
    store: catlog.Store, data_dir: str, kwargs: dict[str, object], error: type[Exception]
) -> None:
    with pytest.raises(error):
        store.put(b"k", b"v", **kwargs)  # type: ignore[arg-type]
    store.flush()
    assert os.path.getsize(f"{data_dir}/segment-00001.log") == 16
    assert b"k" not in store


@pytest.mark.spec("ENG-33", "FMT-21")
def test_a_value_with_an_expiry_has_eight_bytes_less_room(store: catlog.Store) -> None:
    store.put(b"k", bytes(catlog.MAX_VALUE_SIZE - 8), ttl=5)
    limit = catlog.MAX_VALUE_SIZE - 8
    with pytest.raises(
        catlog.ValueTooLargeError,
        match=f"^value with an expiry of {limit + 1} bytes exceeds the limit of {limit}$",
    ):
        store.put(b"k", bytes(catlog.MAX_VALUE_SIZE - 7), ttl=5)
    with pytest.raises(
        catlog.ValueTooLargeError,
        match=f"^value of {catlog.MAX_VALUE_SIZE + 1} bytes exceeds the limit of ",
    ):
        store.put(b"k", bytes(catlog.MAX_VALUE_SIZE + 1))
    store.put(b"j", bytes(catlog.MAX_VALUE_SIZE - 7))
    with pytest.raises(catlog.ValueTooLargeError):
        store.expire(b"j", 5)
    assert len(store[b"k"]) == catlog.MAX_VALUE_SIZE - 8


@pytest.mark.spec("ENG-34", "ENG-60")
def test_rewriting_expiring_keys_leaves_one_expiry_each(
    store: catlog.Store, clock: ManualClock
) -> None:
    """The keyspace keeps exactly one expiry pair per expiring key (the invariant check says
    so), however often the keys' expiries change; forgetting empties it."""
    for round_ in range(3):
        for i in range(600):
            store.put(b"%d" % i, b"v", ttl=1000 + round_)
        assert len(store) == 600
        store._check_invariants()
    clock.advance(2000)
    assert len(store) == 0
    while store.purge_expired():
        pass
    assert store.stats().expiring_keys == 0
    store._check_invariants()


@pytest.mark.spec("ENG-34", "ENG-35", "ENG-36", "ENG-19")
def test_an_expired_key_not_yet_forgotten_has_no_expiry_and_nothing_to_persist(
    data_dir: str, clock: ManualClock
) -> None:
    """Nothing here lists or counts keys, so the expired key is still in the index: each call
    must judge the expiry itself."""
    with catlog.open(data_dir, fsync="never", clock=clock) as store:
        store.put(b"k", b"v", ttl=1)
        clock.advance(2)
        with pytest.raises(KeyError) as caught:
            store.expires_at(b"k")
        assert caught.value.args == (b"k",)
        assert store.persist(b"k") is False
        assert store.delete(b"k") is False
        store.flush()
        assert [r.type for r in records(data_dir)] == [RecordType.PUT_EXPIRING]
    with pytest.raises(catlog.StoreClosedError, match=f"^{data_dir} is closed$"):
        store.expires_at(b"k")


@pytest.mark.spec("ENG-33")
@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"ttl": "5"}, catlog.InvalidTypeError, "ttl must be a number of seconds, not str"),
        ({"ttl": 0}, ValueError, "ttl must be a positive number of seconds, not 0"),
        ({"ttl": 2**53}, ValueError, f"ttl must be a positive number of seconds, not {2**53}"),
        (
            {"ttl": 2**53 + 2},
            ValueError,
            f"ttl must be a positive number of seconds, not {2**53 + 2}",
        ),
        ({"expires_at_ms": 1.5}, catlog.InvalidTypeError, "expiry times must be int, not float"),
        ({"expires_at_ms": 0}, ValueError, "expiry time 0 ms is out of range 1 .. 2**63-1"),
        (
            {"ttl": 5, "expires_at_ms": START_MS + 5000},
            ValueError,
            "give ttl or expires_at_ms, not both",
        ),
    ],
)
def test_a_refused_expiry_says_why(
    store: catlog.Store, kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as caught:
        store.put(b"k", b"v", **kwargs)  # type: ignore[arg-type]
    assert str(caught.value) == message


@pytest.mark.spec("ENG-33", "ENG-34")
def test_the_expiry_range_is_inclusive_at_both_ends(store: catlog.Store) -> None:
    store.put(b"first", b"v", expires_at_ms=1)
    store.put(b"last", b"v", expires_at_ms=(1 << 63) - 1)
    store.put(b"long", b"v", ttl=2**53 - 1)
    assert b"first" not in store, "expired long ago"
    assert store.expires_at(b"last") == (1 << 63) - 1
    assert store.expires_at(b"long") == START_MS + (2**53 - 1) * 1000
