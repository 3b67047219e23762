"""MULTI, EXEC, DISCARD, WATCH and UNWATCH in the command layer, against a real store.

Two sessions sharing one :class:`catlog.multi.Watches` stand for two connections of one server.
The replies are Redis 7.0's (src/multi.c and processCommand in src/server.c).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import catlog
from catlog import ManualClock
from catlog.commands import EXEC_ABORT, QUEUED, Session, execute_line
from catlog.multi import Watches
from catlog.protocol import line
from catlog.protocol.replies import NULL_ARRAY, OK, Error, Reply, encode


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(now_ms=1_700_000_000_000)


@pytest.fixture
def db(data_dir: str, clock: ManualClock) -> Iterator[catlog.Store]:
    with catlog.open(data_dir, fsync="never", clock=clock) as opened:
        yield opened


@pytest.fixture
def watches() -> Watches:
    return Watches()


@pytest.fixture
def a(db: catlog.Store, watches: Watches) -> Session:
    return Session(db, client_id=1, watches=watches)


@pytest.fixture
def b(db: catlog.Store, watches: Watches) -> Session:
    return Session(db, client_id=2, watches=watches)


def run(session: Session, *words: bytes | str) -> Reply:
    return session.execute([w.encode() if isinstance(w, str) else w for w in words])


@pytest.mark.spec("PROTO-80", "PROTO-85")
def test_commands_queue_and_exec_runs_them_in_order(a: Session, db: catlog.Store) -> None:
    assert run(a, "MULTI") == OK
    assert run(a, "SET", "k", "1") == QUEUED
    assert run(a, "get", "k") == QUEUED
    assert run(a, "DEL", "k", "k") == QUEUED
    assert run(a, "MSET", "x", "1", "y", "2") == QUEUED
    assert db.get(b"x") is None, "nothing runs before EXEC"
    assert run(a, "EXEC") == [OK, b"1", 1, OK]
    assert db.get_many([b"k", b"x", b"y"]) == [None, b"1", b"2"]
    assert run(a, "EXEC") == Error("ERR EXEC without MULTI")


@pytest.mark.spec("PROTO-80")
def test_an_empty_transaction_answers_an_empty_array(a: Session) -> None:
    assert run(a, "multi") == OK
    assert run(a, "exec") == []


@pytest.mark.spec("PROTO-80")
def test_nested_multi_is_an_error_that_does_not_spoil_the_transaction(a: Session) -> None:
    assert run(a, "MULTI") == OK
    assert run(a, "MULTI") == Error("ERR MULTI calls can not be nested")
    assert run(a, "SET", "k", "v") == QUEUED
    assert run(a, "EXEC") == [OK]


@pytest.mark.spec("PROTO-81")
@pytest.mark.parametrize(
    ("words", "error"),
    [
        (("NOSUCH", "x"), "ERR unknown command 'NOSUCH', with args beginning with: 'x' "),
        (("GET",), "ERR wrong number of arguments for 'get' command"),
        (("MULTI", "x"), "ERR wrong number of arguments for 'multi' command"),
        (("WATCH",), "ERR wrong number of arguments for 'watch' command"),
    ],
)
def test_a_queueing_error_aborts_exec_with_nothing_run(
    a: Session, db: catlog.Store, words: tuple[str, ...], error: str
) -> None:
    assert run(a, "MULTI") == OK
    assert run(a, "SET", "before", "1") == QUEUED
    assert run(a, *words) == Error(error)
    assert run(a, "SET", "after", "1") == QUEUED
    assert run(a, "EXEC") == EXEC_ABORT
    assert encode(EXEC_ABORT) == b"-EXECABORT Transaction discarded because of previous errors.\r\n"
    assert db.get_many([b"before", b"after"]) == [None, None]
    assert run(a, "EXEC") == Error("ERR EXEC without MULTI"), "the transaction is over"


@pytest.mark.spec("PROTO-81")
def test_a_runtime_error_fails_only_its_own_command(a: Session, db: catlog.Store) -> None:
    assert run(a, "MULTI") == OK
    assert run(a, "SET", "a", "1") == QUEUED
    assert run(a, "SET", "b", "2", "NX", "XX") == QUEUED
    assert run(a, "MSET", "c", "1", "d") == QUEUED
    assert run(a, "EXPIRE", "a", "x") == QUEUED
    assert run(a, "SET", "e", "5") == QUEUED
    assert run(a, "EXEC") == [
        OK,
        Error("ERR syntax error"),
        Error("ERR wrong number of arguments for 'mset' command"),
        Error("ERR value is not an integer or out of range"),
        OK,
    ]
    assert db.get_many([b"a", b"b", b"c", b"e"]) == [b"1", None, None, b"5"]


@pytest.mark.spec("PROTO-82")
def test_discard_drops_the_queue_and_the_watches(a: Session, b: Session, db: catlog.Store) -> None:
    assert run(a, "DISCARD") == Error("ERR DISCARD without MULTI")
    assert run(a, "WATCH", "w") == OK
    assert run(a, "MULTI") == OK
    assert run(a, "SET", "k", "v") == QUEUED
    assert run(a, "DISCARD") == OK
    assert db.get(b"k") is None
    assert run(b, "SET", "w", "changed") == OK
    assert run(a, "MULTI") == OK
    assert run(a, "SET", "k", "v") == QUEUED
    assert run(a, "EXEC") == [OK], "DISCARD forgot the watch on w"


@pytest.mark.spec("PROTO-83")
def test_watch_inside_multi_is_refused_and_the_transaction_goes_on(a: Session) -> None:
    assert run(a, "MULTI") == OK
    assert run(a, "WATCH", "k") == Error("ERR WATCH inside MULTI is not allowed")
    assert run(a, "SET", "k", "v") == QUEUED
    assert run(a, "EXEC") == [OK]


@pytest.mark.spec("PROTO-84")
@pytest.mark.parametrize(
    "write",
    [
        ("SET", "w", "x"),
        ("SET", "w", "x", "XX"),
        ("SET", "w", "x", "EX", "100"),
        ("set", "w", "x"),
        ("DEL", "w"),
        ("MSET", "z", "1", "w", "2"),
        ("EXPIRE", "w", "100"),
        ("PEXPIREAT", "w", "1"),
        ("PERSIST", "w"),
    ],
)
def test_a_change_by_another_connection_makes_exec_answer_the_null_array(
    a: Session, b: Session, db: catlog.Store, write: tuple[str, ...]
) -> None:
    db.put(b"w", b"old", ttl=1000)
    assert run(a, "WATCH", "w") == OK
    assert run(b, *write) not in (0, None)
    assert run(a, "MULTI") == OK
    assert run(a, "SET", "mine", "1") == QUEUED
    assert run(a, "EXEC") is NULL_ARRAY
    assert encode(NULL_ARRAY, 2) == b"*-1\r\n"
    assert encode(NULL_ARRAY, 3) == b"_\r\n"
    assert db.get(b"mine") is None


@pytest.mark.spec("PROTO-84")
@pytest.mark.parametrize(
    "write",
    [
        ("SET", "w", "x", "NX"),
        ("DEL", "w", "other"),
        ("EXPIRE", "other", "100"),
        ("PERSIST", "w"),
        ("GET", "w"),
        ("SET", "other", "1"),
    ],
)
def test_a_command_that_changes_nothing_does_not_spoil_a_watch(
    a: Session, b: Session, db: catlog.Store, write: tuple[str, ...]
) -> None:
    db.put(b"w", b"old")
    db.delete(b"w") if write[0] == "DEL" else None
    assert run(a, "WATCH", "w") == OK
    run(b, *write)
    assert run(a, "MULTI") == OK
    assert run(a, "SET", "mine", "1") == QUEUED
    assert run(a, "EXEC") == [OK]


@pytest.mark.spec("PROTO-84")
def test_a_connection_spoils_its_own_watch_before_multi_but_not_inside_exec(
    a: Session, b: Session
) -> None:
    assert run(a, "WATCH", "w") == OK
    assert run(a, "SET", "w", "1") == OK
    assert run(a, "MULTI") == OK
    assert run(a, "EXEC") is NULL_ARRAY
    assert run(a, "WATCH", "w") == OK
    assert run(b, "WATCH", "w") == OK
    assert run(a, "MULTI") == OK
    assert run(a, "SET", "w", "2") == QUEUED
    assert run(a, "EXEC") == [OK]
    assert run(b, "MULTI") == OK
    assert run(b, "EXEC") is NULL_ARRAY, "a's EXEC changed the key b watched"


@pytest.mark.spec("PROTO-84")
def test_a_line_protocol_write_spoils_a_watch(
    a: Session, db: catlog.Store, watches: Watches
) -> None:
    for request in (line.Put(b"w", b"v"), line.PutEx(b"w", 10_000, b"v"), line.Delete(b"w")):
        assert run(a, "WATCH", "w") == OK
        assert execute_line(db, request, watches) == line.OK
        assert run(a, "MULTI") == OK
        assert run(a, "EXEC") is NULL_ARRAY
    assert run(a, "WATCH", "w") == OK
    assert execute_line(db, line.Delete(b"w"), watches) == line.OK, "nothing to delete"
    assert run(a, "MULTI") == OK
    assert run(a, "EXEC") == []


@pytest.mark.spec("PROTO-84")
def test_a_watched_key_that_expires_before_exec_spoils_it(
    a: Session, db: catlog.Store, clock: ManualClock
) -> None:
    db.put(b"w", b"v", ttl=10)
    db.put(b"gone", b"v", ttl=1)
    clock.advance(2)
    assert run(a, "WATCH", "w", "gone", "never") == OK
    assert run(a, "MULTI") == OK
    assert run(a, "EXEC") == [], "nothing expired since WATCH"
    assert run(a, "WATCH", "w", "gone") == OK
    clock.advance(9)
    assert run(a, "MULTI") == OK
    assert run(a, "EXEC") is NULL_ARRAY


@pytest.mark.spec("PROTO-84")
def test_unwatch_and_exec_forget_the_watches(a: Session, b: Session) -> None:
    assert run(a, "WATCH", "w") == OK
    assert run(b, "SET", "w", "1") == OK
    assert run(a, "UNWATCH") == OK
    assert run(a, "MULTI") == OK
    assert run(a, "EXEC") == [], "UNWATCH also forgot that w was touched"
    assert run(a, "WATCH", "w") == OK
    assert run(a, "MULTI") == OK
    assert run(a, "EXEC") == []
    assert run(b, "SET", "w", "2") == OK
    assert run(a, "MULTI") == OK
    assert run(a, "EXEC") == [], "EXEC forgot the watch"


@pytest.mark.spec("PROTO-84")
def test_a_closed_session_leaves_no_watch_behind(a: Session, watches: Watches) -> None:
    assert run(a, "WATCH", "w", "v") == OK
    assert watches.active
    a.close()
    assert not watches.active


@pytest.mark.spec("PROTO-85")
def test_commands_inside_exec_see_the_writes_before_them(a: Session, db: catlog.Store) -> None:
    db.put(b"old", b"1")
    assert run(a, "MULTI") == OK
    for words in (
        ("SET", "k", "v", "EX", "100"),
        ("TTL", "k"),
        ("EXISTS", "k", "old", "missing"),
        ("DBSIZE",),
        ("KEYS", "*"),
        ("DEL", "old"),
        ("MGET", "k", "old"),
        ("SCAN", "0"),
        ("PERSIST", "k"),
        ("TTL", "k"),
        ("SET", "k", "w", "GET"),
        ("PEXPIREAT", "k", "1"),
        ("EXISTS", "k"),
    ):
        assert run(a, *words) == QUEUED
    assert run(a, "EXEC") == [
        OK,
        100,
        2,
        2,
        [b"old", b"k"],
        1,
        [b"v", None],
        [b"0", [b"k"]],
        1,
        -1,
        b"v",
        1,
        0,
    ]
    assert db.get(b"k") is None
    assert db.get(b"old") is None


@pytest.mark.spec("PROTO-85")
def test_the_writes_of_one_exec_are_one_batch(data_dir: str) -> None:
    with catlog.open(data_dir, fsync="never") as db:
        session = Session(db)
        assert run(session, "MULTI") == OK
        for i in range(20):
            assert run(session, "SET", f"k{i}", "v") == QUEUED
        ticket_before = db.last_ticket
        assert run(session, "EXEC") == [OK] * 20
        assert db.last_ticket - ticket_before == 1, "twenty writes, one record"


@pytest.mark.spec("PROTO-85")
def test_a_store_error_inside_exec_fails_that_command_only(a: Session, db: catlog.Store) -> None:
    assert run(a, "MULTI") == OK
    assert run(a, "SET", b"k" * 70_000, "v") == QUEUED
    assert run(a, "SET", "ok", "v") == QUEUED
    first, second = run(a, "EXEC")  # type: ignore[misc]
    assert isinstance(first, Error)
    assert first.message.startswith("ERR key of 70000 bytes")
    assert second == OK
    assert db.get(b"ok") == b"v"


@pytest.mark.spec("PROTO-81")
def test_exec_with_arguments_ends_the_transaction_and_the_watches(a: Session, b: Session) -> None:
    abort = Error(
        "EXECABORT Transaction discarded because of: wrong number of arguments for 'exec' command"
    )
    assert run(a, "EXEC", "x") == abort
    assert run(a, "WATCH", "w") == OK
    assert run(a, "MULTI") == OK
    assert run(a, "SET", "k", "v") == QUEUED
    assert run(a, "EXEC", "x") == abort
    assert run(a, "EXEC") == Error("ERR EXEC without MULTI")
    assert run(b, "SET", "w", "changed") == OK
    assert run(a, "MULTI") == OK
    assert run(a, "EXEC") == [], "the refused EXEC forgot the watch"
