"""INCR, DECR, INCRBY and DECRBY in the command layer (PROTO-87), against a real store."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import catlog
from catlog import ManualClock
from catlog.commands import Session
from catlog.protocol.replies import OK, Error, Reply, SimpleString

NOT_AN_INTEGER = Error("ERR value is not an integer or out of range")
OVERFLOW = Error("ERR increment or decrement would overflow")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(now_ms=1_700_000_000_000)


@pytest.fixture
def db(data_dir: str, clock: ManualClock) -> Iterator[catlog.Store]:
    with catlog.open(data_dir, fsync="never", clock=clock) as opened:
        yield opened


@pytest.fixture
def session(db: catlog.Store) -> Session:
    return Session(db)


def run(session: Session, *words: bytes | str) -> Reply:
    return session.execute([w.encode() if isinstance(w, str) else w for w in words])


@pytest.mark.spec("PROTO-87")
def test_counters_count_from_zero(session: Session, db: catlog.Store) -> None:
    assert run(session, "INCR", "n") == 1
    assert run(session, "incrby", "n", "41") == 42
    assert run(session, "DECR", "n") == 41
    assert run(session, "DECRBY", "n", "-9") == 50
    assert run(session, "INCRBY", "n", "-100") == -50
    assert db.get(b"n") == b"-50"
    assert run(session, "DECR", "fresh") == -1


@pytest.mark.spec("PROTO-87")
@pytest.mark.parametrize(
    ("value", "words", "reply"),
    [
        (b"abc", ("INCR", "k"), NOT_AN_INTEGER),
        (b" 1", ("INCR", "k"), NOT_AN_INTEGER),
        (b"01", ("INCR", "k"), NOT_AN_INTEGER),
        (b"-0", ("INCR", "k"), NOT_AN_INTEGER),
        (b"1.5", ("INCR", "k"), NOT_AN_INTEGER),
        (b"", ("INCR", "k"), NOT_AN_INTEGER),
        (b"1", ("INCRBY", "k", "x"), NOT_AN_INTEGER),
        (b"1", ("INCRBY", "k", "9223372036854775808"), NOT_AN_INTEGER),
        (b"9223372036854775807", ("INCR", "k"), OVERFLOW),
        (b"-9223372036854775808", ("DECR", "k"), OVERFLOW),
        (b"1", ("INCRBY", "k", "9223372036854775807"), OVERFLOW),
        (b"0", ("DECRBY", "k", "-9223372036854775808"), Error("ERR decrement would overflow")),
    ],
)
def test_what_is_not_a_64_bit_integer_changes_nothing(
    session: Session, db: catlog.Store, value: bytes, words: tuple[str, ...], reply: Reply
) -> None:
    db.put(b"k", value)
    assert run(session, *words) == reply
    assert db.get(b"k") == value


@pytest.mark.spec("PROTO-87")
def test_the_extremes_are_reachable(session: Session) -> None:
    assert run(session, "SET", "k", "9223372036854775806") == OK
    assert run(session, "INCR", "k") == 9223372036854775807
    assert run(session, "DECRBY", "k", "9223372036854775807") == 0
    assert run(session, "DECRBY", "k", "9223372036854775807") == -9223372036854775807
    assert run(session, "DECR", "k") == -9223372036854775808


@pytest.mark.spec("PROTO-87")
def test_an_increment_keeps_the_expiry(
    session: Session, db: catlog.Store, clock: ManualClock
) -> None:
    assert run(session, "SET", "k", "1", "PX", "5000") == OK
    assert run(session, "INCR", "k") == 2
    assert run(session, "PTTL", "k") == 5000
    clock.advance(6)
    assert run(session, "INCR", "k") == 1, "the expired value counted as nothing"
    assert run(session, "TTL", "k") == -1


@pytest.mark.spec("PROTO-87", "PROTO-85")
def test_increments_inside_exec_see_the_writes_before_them(session: Session) -> None:
    assert run(session, "MULTI") == OK
    for words in (("SET", "k", "5"), ("INCR", "k"), ("INCRBY", "k", "x"), ("INCRBY", "k", "10")):
        assert run(session, *words) == SimpleString(b"QUEUED")
    assert run(session, "GET", "k") == SimpleString(b"QUEUED")
    assert run(session, "EXEC") == [OK, 6, NOT_AN_INTEGER, 16, b"16"]
