"""The string commands of PROTO-88 .. PROTO-90 in the command layer, against a real store.

Expected replies are Redis 7.0's (src/t_string.c), error texts included.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import catlog
from catlog import ManualClock
from catlog.commands import Session
from catlog.commands.strings import LCS_TABLE_LIMIT
from catlog.multi import Watches
from catlog.protocol.replies import NULL_ARRAY, OK, Error, Reply, encode

NOW_MS = 1_700_000_000_000
NOT_AN_INTEGER = Error("ERR value is not an integer or out of range")
SYNTAX = Error("ERR syntax error")
TOO_LONG = Error("ERR string exceeds maximum allowed size (proto-max-bulk-len)")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(now_ms=NOW_MS)


@pytest.fixture
def db(data_dir: str, clock: ManualClock) -> Iterator[catlog.Store]:
    with catlog.open(data_dir, fsync="never", clock=clock) as opened:
        yield opened


@pytest.fixture
def session(db: catlog.Store) -> Session:
    return Session(db)


def run(session: Session, *words: bytes | str) -> Reply:
    return session.execute([w.encode() if isinstance(w, str) else w for w in words])


def script(session: Session, steps: list[tuple[tuple[str, ...], Reply]]) -> None:
    for words, reply in steps:
        assert run(session, *words) == reply, words


@pytest.mark.spec("PROTO-88")
def test_append_strlen_and_ranges(session: Session) -> None:
    script(
        session,
        [
            (("STRLEN", "a"), 0),
            (("APPEND", "a", "Hello"), 5),
            (("APPEND", "a", " World"), 11),
            (("STRLEN", "a"), 11),
            (("GETRANGE", "a", "0", "4"), b"Hello"),
            (("GETRANGE", "a", "-5", "-1"), b"World"),
            (("GETRANGE", "a", "-100", "2"), b"Hel"),
            (("GETRANGE", "a", "5", "100"), b" World"),
            (("GETRANGE", "a", "4", "2"), b""),
            (("GETRANGE", "a", "-1", "-5"), b""),
            (("GETRANGE", "missing", "0", "-1"), b""),
            (("SUBSTR", "a", "0", "0"), b"H"),
            (("GETRANGE", "a", "x", "1"), NOT_AN_INTEGER),
            (("SETRANGE", "a", "6", "Redis"), 11),
            (("GET", "a"), b"Hello Redis"),
            (("SETRANGE", "b", "3", "x"), 4),
            (("GET", "b"), b"\0\0\0x"),
            (("SETRANGE", "b", "0", ""), 4),
            (("SETRANGE", "c", "5", ""), 0),
            (("EXISTS", "c"), 0),
            (("SETRANGE", "b", "-1", "x"), Error("ERR offset is out of range")),
            (("SETRANGE", "b", "x", "x"), NOT_AN_INTEGER),
            (("SETRANGE", "b", "67108864", "x"), TOO_LONG),
        ],
    )


@pytest.mark.spec("PROTO-88")
def test_append_and_setrange_keep_the_expiry(session: Session, clock: ManualClock) -> None:
    script(
        session,
        [
            (("SET", "k", "ab", "PX", "5000"), OK),
            (("APPEND", "k", "c"), 3),
            (("SETRANGE", "k", "0", "X"), 3),
            (("PTTL", "k"), 5000),
            (("GET", "k"), b"Xbc"),
        ],
    )


@pytest.mark.spec("PROTO-89")
def test_setnx_setex_getset_getdel_and_msetnx(session: Session, clock: ManualClock) -> None:
    script(
        session,
        [
            (("SETNX", "a", "1"), 1),
            (("SETNX", "a", "2"), 0),
            (("GET", "a"), b"1"),
            (("SETEX", "b", "100", "v"), OK),
            (("TTL", "b"), 100),
            (("PSETEX", "c", "1500", "v"), OK),
            (("PTTL", "c"), 1500),
            (("SETEX", "b", "0", "v"), Error("ERR invalid expire time in 'setex' command")),
            (("PSETEX", "b", "-5", "v"), Error("ERR invalid expire time in 'psetex' command")),
            (("SETEX", "b", "x", "v"), NOT_AN_INTEGER),
            (("GETSET", "b", "new"), b"v"),
            (("TTL", "b"), -1),
            (("GETSET", "fresh", "1"), None),
            (("GETDEL", "b"), b"new"),
            (("GETDEL", "b"), None),
            (("MSETNX", "m1", "1", "m2", "2"), 1),
            (("MSETNX", "m2", "x", "m3", "3"), 0),
            (("MGET", "m1", "m2", "m3"), [b"1", b"2", None]),
            (
                ("MSETNX", "m4", "1", "m5"),
                Error("ERR wrong number of arguments for 'msetnx' command"),
            ),
        ],
    )


@pytest.mark.spec("PROTO-90")
def test_getex_sets_or_removes_the_expiry(session: Session, clock: ManualClock) -> None:
    script(
        session,
        [
            (("GETEX", "none", "EX", "x"), None),
            (("SET", "g", "v"), OK),
            (("GETEX", "g"), b"v"),
            (("GETEX", "g", "EX", "100"), b"v"),
            (("TTL", "g"), 100),
            (("GETEX", "g", "PX", "2000"), b"v"),
            (("PTTL", "g"), 2000),
            (("GETEX", "g", "PXAT", str(NOW_MS + 3000)), b"v"),
            (("PTTL", "g"), 3000),
            (("GETEX", "g", "EXAT", str(NOW_MS // 1000 + 40)), b"v"),
            (("TTL", "g"), 40),
            (("GETEX", "g", "PERSIST"), b"v"),
            (("TTL", "g"), -1),
            (("GETEX", "g", "persist", "PERSIST"), b"v"),
            (("GETEX", "g", "EX", "x"), NOT_AN_INTEGER),
            (("GETEX", "g", "EX", "0"), Error("ERR invalid expire time in 'getex' command")),
            (("GETEX", "g", "PERSIST", "EX", "1"), SYNTAX),
            (("GETEX", "g", "EX", "1", "PX", "1"), SYNTAX),
            (("GETEX", "g", "EX"), SYNTAX),
            (("GETEX", "g", "KEEPTTL"), SYNTAX),
            (("GETEX", "g", "EXAT", "1"), b"v"),
            (("EXISTS", "g"), 0),
        ],
    )


@pytest.mark.spec("PROTO-84", "PROTO-88", "PROTO-89", "PROTO-90")
@pytest.mark.parametrize(
    ("write", "spoils"),
    [
        (("APPEND", "w", "x"), True),
        (("SETRANGE", "w", "0", "x"), True),
        (("SETRANGE", "w", "0", ""), False),
        (("SETNX", "w", "x"), False),
        (("GETSET", "w", "x"), True),
        (("GETDEL", "w"), True),
        (("GETDEL", "other"), False),
        (("GETEX", "w"), False),
        (("GETEX", "w", "EX", "10"), True),
        (("GETEX", "w", "PERSIST"), False),
        (("MSETNX", "w", "x"), False),
        (("SETEX", "w", "10", "x"), True),
        (("INCR", "n"), False),
        (("STRLEN", "w"), False),
    ],
)
def test_string_writes_touch_what_they_change(
    db: catlog.Store, write: tuple[str, ...], spoils: bool
) -> None:
    watches = Watches()
    watcher, writer = Session(db, watches=watches), Session(db, watches=watches)
    db.put(b"w", b"old")
    assert run(watcher, "WATCH", "w") == OK
    run(writer, *write)
    assert run(watcher, "MULTI") == OK
    assert (run(watcher, "EXEC") is NULL_ARRAY) == spoils


@pytest.mark.spec("PROTO-115")
def test_lcs_in_resp3_and_its_table_limit(data_dir: str) -> None:
    """The differential test compares LCS with Redis in RESP2; here the IDX map in RESP3, and the
    refusal of a table over LCS_TABLE_LIMIT (Redis's bound is far higher: spec section 6)."""
    with catlog.open(data_dir, fsync="never") as db:
        session = Session(db)
        session.execute([b"MSET", b"a", b"ohmytext", b"b", b"mynewtext"])
        assert session.execute([b"LCS", b"a", b"b"]) == b"mytext"
        assert session.execute([b"LCS", b"a", b"b", b"LEN"]) == 6
        idx = session.execute([b"LCS", b"a", b"b", b"IDX", b"MINMATCHLEN", b"4", b"WITHMATCHLEN"])
        assert encode(idx, 3) == (
            b"%2\r\n$7\r\nmatches\r\n*1\r\n*3\r\n*2\r\n:4\r\n:7\r\n*2\r\n:5\r\n:8\r\n:4\r\n"
            b"$3\r\nlen\r\n:6\r\n"
        )
        side = 1023  # (1024 * 1024) cells of four bytes: exactly the limit
        session.execute([b"MSET", b"a", b"x" * side, b"b", b"x" * (side + 1)])
        refused = session.execute([b"LCS", b"a", b"b", b"LEN"])
        assert refused == Error(
            "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len"
        )
        session.execute([b"SET", b"b", b"x" * side])
        assert (side + 1) ** 2 * 4 <= LCS_TABLE_LIMIT
        assert session.execute([b"LCS", b"a", b"b", b"LEN"]) == side
