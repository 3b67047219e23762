"""Key and server commands of PROTO-91 and PROTO-92 in the command layer, against a real store."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import catlog
from catlog import ManualClock
from catlog.commands import ServerInfo, Session
from catlog.multi import Watches
from catlog.protocol.replies import NULL_ARRAY, OK, Error, Reply, SimpleString

NOW_MS = 1_700_000_000_123
SYNTAX = Error("ERR syntax error")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(now_ms=NOW_MS, monotonic=50.0)


@pytest.fixture
def db(data_dir: str, clock: ManualClock) -> Iterator[catlog.Store]:
    with catlog.open(data_dir, fsync="never", clock=clock) as opened:
        yield opened


@pytest.fixture
def session(db: catlog.Store, clock: ManualClock) -> Session:
    return Session(db, server=ServerInfo(clock=clock, started=40.0))


def run(session: Session, *words: bytes | str) -> Reply:
    return session.execute([w.encode() if isinstance(w, str) else w for w in words])


def script(session: Session, steps: list[tuple[tuple[str, ...], Reply]]) -> None:
    for words, reply in steps:
        assert run(session, *words) == reply, words


@pytest.mark.spec("PROTO-91")
def test_type_touch_unlink_and_randomkey(session: Session) -> None:
    script(
        session,
        [
            (("RANDOMKEY",), None),
            (("MSET", "a", "1", "b", "2"), OK),
            (("TYPE", "a"), SimpleString(b"string")),
            (("TYPE", "z"), SimpleString(b"none")),
            (("TOUCH", "a", "a", "z"), 2),
            (("UNLINK", "a", "a", "z"), 1),
            (("RANDOMKEY",), b"b"),
        ],
    )


@pytest.mark.spec("PROTO-91")
def test_rename_renamenx_and_copy(session: Session, clock: ManualClock) -> None:
    script(
        session,
        [
            (("SET", "a", "1", "PX", "5000"), OK),
            (("SET", "b", "2"), OK),
            (("RENAME", "none", "x"), Error("ERR no such key")),
            (("RENAMENX", "none", "x"), Error("ERR no such key")),
            (("RENAME", "a", "a"), OK),
            (("RENAMENX", "a", "a"), 0),
            (("RENAMENX", "a", "b"), 0),
            (("RENAME", "a", "c"), OK),
            (("EXISTS", "a"), 0),
            (("PTTL", "c"), 5000),
            (("RENAME", "c", "b"), OK),
            (("PTTL", "b"), 5000),
            (("RENAMENX", "b", "d"), 1),
            (("COPY", "d", "e"), 1),
            (("PTTL", "e"), 5000),
            (("COPY", "d", "e"), 0),
            (("SET", "d", "new"), OK),
            (("COPY", "d", "e", "REPLACE", "DB", "0"), 1),
            (("GET", "e"), b"new"),
            (("PTTL", "e"), -1),
            (("COPY", "none", "e"), 0),
            (("COPY", "d", "d"), Error("ERR source and destination objects are the same")),
            (("COPY", "d", "e", "DB", "1"), Error("ERR DB index is out of range")),
            (("COPY", "d", "e", "DB", "x"), Error("ERR value is not an integer or out of range")),
            (("COPY", "d", "e", "DB"), SYNTAX),
            (("COPY", "d", "e", "FROB"), SYNTAX),
        ],
    )


@pytest.mark.spec("PROTO-91")
def test_flushdb_and_flushall_empty_the_store(session: Session, db: catlog.Store) -> None:
    db.write_batch([("put", b"k%d" % i, b"v") for i in range(50)])
    assert run(session, "FLUSHDB", "FROB") == SYNTAX
    assert run(session, "FLUSHDB", "ASYNC", "SYNC") == SYNTAX
    assert run(session, "FLUSHDB") == OK
    assert len(db) == 0
    db.put(b"x", b"1")
    assert run(session, "flushall", "sync") == OK
    assert run(session, "FLUSHALL", "async") == OK
    assert run(session, "DBSIZE") == 0


@pytest.mark.spec("PROTO-91")
def test_a_store_too_big_for_one_batch_is_still_emptied(session: Session, db: catlog.Store) -> None:
    keys = [b"%05d" % i + b"k" * 65_000 for i in range(1_100)]  # 71 MB of keys: FMT-22's 64 MiB
    for start in range(0, len(keys), 100):
        db.write_batch([("put", key, b"") for key in keys[start : start + 100]])
    assert run(session, "FLUSHDB") == OK
    assert len(db) == 0


@pytest.mark.spec("PROTO-84", "PROTO-91")
def test_flushdb_spoils_the_watches_of_keys_it_deleted(db: catlog.Store) -> None:
    watches = Watches()
    watcher, flusher = Session(db, watches=watches), Session(db, watches=watches)
    db.put(b"w", b"v")
    assert run(watcher, "WATCH", "absent") == OK
    assert run(flusher, "FLUSHDB") == OK
    assert run(watcher, "MULTI") == OK
    assert run(watcher, "EXEC") == [], "it deleted no watched key"
    db.put(b"w", b"v")
    assert run(watcher, "WATCH", "w") == OK
    assert run(flusher, "FLUSHALL") == OK
    assert run(watcher, "MULTI") == OK
    assert run(watcher, "EXEC") is NULL_ARRAY


@pytest.mark.spec("PROTO-85", "PROTO-91")
def test_keyspace_commands_inside_exec_are_one_batch(session: Session, db: catlog.Store) -> None:
    db.put(b"a", b"1")
    for words in (("MULTI",), ("SET", "b", "2"), ("RENAME", "a", "c"), ("FLUSHDB",)):
        run(session, *words)
    assert run(session, "SET", "d", "4") == SimpleString(b"QUEUED")
    assert run(session, "RANDOMKEY") == SimpleString(b"QUEUED")
    ticket = db.last_ticket
    assert run(session, "EXEC") == [OK, OK, OK, OK, b"d"]
    assert db.last_ticket == ticket + 1
    assert list(db) == [b"d"]


@pytest.mark.spec("PROTO-92")
def test_time_lastsave_and_save(session: Session, clock: ManualClock) -> None:
    assert run(session, "TIME") == [b"1700000000", b"123000"]
    assert run(session, "LASTSAVE") == 1_700_000_000 - 10, "the server started 10 s ago"
    clock.advance(5)
    assert run(session, "SAVE") == OK
    clock.advance(5)
    assert run(session, "LASTSAVE") == 1_700_000_005
    assert run(session, "MULTI") == OK
    assert run(session, "SAVE") == Error("ERR Command not allowed inside a transaction")
    assert run(session, "EXEC") == Error(
        "EXECABORT Transaction discarded because of previous errors."
    )
