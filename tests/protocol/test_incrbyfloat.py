"""INCRBYFLOAT in Redis's long double arithmetic (PROTO-94).

The expected texts were read from redis-server 7.0.15 on x86-64 (80-bit long double); the
differential test (tests/server/test_redis_differential.py) checks more against a live Redis.
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction

import pytest

import catlog
from catlog import longdouble
from catlog.commands import Session
from catlog.protocol.replies import OK, Error, Reply

NOT_A_FLOAT = Error("ERR value is not a valid float")
NAN_OR_INF = Error("ERR increment would produce NaN or Infinity")


@pytest.fixture
def session(data_dir: str) -> Iterator[Session]:
    with catlog.open(data_dir, fsync="never") as db:
        yield Session(db)


def run(session: Session, *words: bytes | str) -> Reply:
    return session.execute([w.encode() if isinstance(w, str) else w for w in words])


@pytest.mark.spec("PROTO-94")
@pytest.mark.parametrize(
    ("start", "increment", "reply"),
    [
        (b"10.50", "0.1", b"10.6"),
        (b"5.6", "5.0e3", b"5005.60000000000000009"),
        (None, "0x10", b"16"),
        (None, "0x.8p1", b"1"),
        (b"0.1", "0.2", b"0.3"),
        (b"1e300", "-1e300", b"0"),
        (None, "3.0000000000000000001", b"3"),
        (None, "1e-20", b"0"),
        (None, "-0.000000000000000001", b"0"),
        (None, "123456789012345678901234567890", b"123456789012345678899921813504"),
        (None, "1e-5000", NOT_A_FLOAT),
        (None, "abc", NOT_A_FLOAT),
        (None, " 1", NOT_A_FLOAT),
        (None, "1e", NOT_A_FLOAT),
        (None, "nan", NOT_A_FLOAT),
        (None, "", NOT_A_FLOAT),
        (b"abc", "1", NOT_A_FLOAT),
        (None, "inf", NAN_OR_INF),
        (b"1e4932", "1e4932", NAN_OR_INF),
    ],
)
def test_sums_and_texts_are_redis_s(
    session: Session, start: bytes | None, increment: str, reply: Reply
) -> None:
    if start is not None:
        assert run(session, "SET", "f", start) == OK
    assert run(session, "INCRBYFLOAT", "f", increment) == reply
    if isinstance(reply, bytes):
        assert run(session, "GET", "f") == reply


@pytest.mark.spec("PROTO-94")
def test_the_largest_values_print_in_full(session: Session) -> None:
    text = run(session, "INCRBYFLOAT", "f", "1e4932")
    assert isinstance(text, bytes)
    assert text.startswith(b"1000000000000000000006018949387963891323837774254533")
    assert len(text) == 4933


@pytest.mark.spec("PROTO-94")
def test_an_increment_keeps_the_expiry(session: Session) -> None:
    assert run(session, "SET", "f", "1", "EX", "100") == OK
    assert run(session, "INCRBYFLOAT", "f", "0.5") == b"1.5"
    assert run(session, "TTL", "f") == 100


@pytest.mark.spec("PROTO-94")
def test_rounding_is_to_nearest_with_ties_to_even() -> None:
    one = longdouble.round_to_format(Fraction(1) + Fraction(1, 2**64))
    assert one == 1, "half an ulp above 1 rounds to the even neighbour, 1"
    odd = Fraction(1) + Fraction(3, 2**64)
    assert longdouble.round_to_format(odd) == 1 + Fraction(2, 2**63)


@pytest.mark.spec("PROTO-94")
def test_values_longer_than_pythons_int_conversion_limit_are_read_as_redis_reads_them(
    session: Session,
) -> None:
    """Python converts at most 4,300 decimal digits in one ``int()``; a value (or an exponent)
    of more digits is still a float to Redis (answers read from redis-server 7.0.15)."""
    huge = run(session, "INCRBYFLOAT", "k", "1e4932")
    assert isinstance(huge, bytes)
    assert len(huge) == 4933
    assert run(session, "INCRBYFLOAT", "k", "0.1") == huge  # 0.1 is below its precision
    assert run(session, "SET", "j", b"1e" + b"0" * 4400 + b"1") == OK
    assert run(session, "INCRBYFLOAT", "j", "1") == b"11"
    assert run(session, "SET", "j", b"0e" + b"9" * 4500) == OK
    assert run(session, "INCRBYFLOAT", "j", "1") == b"1"
    assert run(session, "SET", "j", b"1e-" + b"9" * 4500) == OK
    assert run(session, "INCRBYFLOAT", "j", "1") == NOT_A_FLOAT
