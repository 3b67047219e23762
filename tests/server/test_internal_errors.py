"""A command that fails with an error no clause foresees is answered, logged once, and the
connection goes on (PROTO-114).

The failure is made on purpose: a command of the table replaced by one that raises
(``COMMANDS`` is the dispatch table the session reads), or a store method replaced on the store
instance, for the server loop's own SET and GET. The loop (:class:`catlog.server.RespSession`)
runs without sockets, as tests/server/test_fast_path.py does.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from typing import Final, NoReturn

import pytest

import catlog
from catlog.commands import COMMANDS, Session, execute_line
from catlog.commands import ServerInfo as Info
from catlog.groupcommit import TicketingStore
from catlog.protocol import line
from catlog.protocol.replies import Error
from catlog.protocol.resp import encode_command
from catlog.sessions import RespSession

BROKEN: Final = "the command's own defect"


def _raise(*args: object, **kwargs: object) -> NoReturn:
    raise RuntimeError(BROKEN)


@pytest.fixture
def store(data_dir: str) -> Iterator[catlog.Store]:
    with catlog.open(data_dir, fsync="never") as db:
        yield db


@pytest.fixture
def broken_ping(monkeypatch: pytest.MonkeyPatch) -> None:
    broken = dataclasses.replace(COMMANDS[b"ping"], run=_raise)
    for name in (b"ping", b"PING"):
        monkeypatch.setitem(COMMANDS, name, broken)


def internal_errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno == logging.ERROR and r.exc_info is not None]


def drive(session: RespSession, *commands: tuple[bytes, ...]) -> bytes:
    session.reader.receive_data(b"".join(encode_command(*words) for words in commands))
    out: list[bytes] = []
    session.drive(out, 0, None)
    return b"".join(out)


@pytest.mark.spec("PROTO-114")
@pytest.mark.usefixtures("broken_ping")
def test_a_command_that_raises_is_answered_an_error_and_logged_once(
    store: catlog.Store, caplog: pytest.LogCaptureFixture
) -> None:
    session = Session(store)
    reply = session.execute([b"PING"])
    assert reply == Error("ERR internal error in 'ping' command: RuntimeError")
    (record,) = internal_errors(caplog)
    assert record.name == "catlog.server"
    assert "[INTERNAL ERROR] 'ping' command" in record.getMessage()
    assert session.execute([b"ECHO", b"still here"]) == b"still here"


@pytest.mark.spec("PROTO-114")
@pytest.mark.usefixtures("broken_ping")
def test_the_server_loop_answers_the_error_and_reads_the_next_command(
    store: catlog.Store, caplog: pytest.LogCaptureFixture
) -> None:
    session = RespSession(TicketingStore(store), Info(), client_id=1)
    replies = drive(session, (b"SET", b"k", b"v"), (b"PING",), (b"GET", b"k"), (b"ECHO", b"e"))
    assert replies == (
        b"+OK\r\n-ERR internal error in 'ping' command: RuntimeError\r\n$1\r\nv\r\n$1\r\ne\r\n"
    )
    assert len(internal_errors(caplog)) == 1


@pytest.mark.spec("PROTO-114")
@pytest.mark.usefixtures("broken_ping")
def test_inside_exec_the_failed_command_gets_the_error_and_the_others_run(
    store: catlog.Store, caplog: pytest.LogCaptureFixture
) -> None:
    session = RespSession(TicketingStore(store), Info(), client_id=1)
    replies = drive(session, (b"MULTI",), (b"SET", b"k", b"v"), (b"PING",), (b"EXEC",))
    assert replies.endswith(b"*2\r\n+OK\r\n-ERR internal error in 'ping' command: RuntimeError\r\n")
    assert store.get(b"k") == b"v"
    assert len(internal_errors(caplog)) == 1


@pytest.mark.spec("PROTO-114")
def test_the_loops_own_get_and_set_answer_the_error_too(
    store: catlog.Store, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = RespSession(TicketingStore(store), Info(), client_id=1)
    for method in ("get", "put_nowait", "put_many_nowait"):
        monkeypatch.setattr(store, method, _raise)
    replies = drive(
        session,
        (b"GET", b"k"),
        (b"SET", b"k", b"v"),
        (b"ECHO", b"between"),
        (b"SET", b"a", b"1"),
        (b"SET", b"b", b"2"),
        (b"ECHO", b"after"),
    )
    get_error = b"-ERR internal error in 'get' command: RuntimeError\r\n"
    set_error = b"-ERR internal error in 'set' command: RuntimeError\r\n"
    assert replies == (
        get_error + set_error + b"$7\r\nbetween\r\n" + set_error * 2 + b"$5\r\nafter\r\n"
    )
    assert len(internal_errors(caplog)) == 3  # one per failure; the group of two fails once


@pytest.mark.spec("PROTO-114")
def test_the_line_protocol_answers_error_and_goes_on(
    store: catlog.Store, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store, "get", _raise)
    reply = execute_line(store, line.Get(b"k"))
    assert reply == line.ErrorReply("internal error in 'get' command: RuntimeError")
    assert line.encode_reply(reply) == b"ERROR internal error in 'get' command: RuntimeError\n"
    assert execute_line(store, line.Put(b"k", b"v")) == line.OK
    assert len(internal_errors(caplog)) == 1


@pytest.mark.spec("PROTO-114", "SRV-28")
def test_the_loops_own_counters_answer_the_error_too(
    store: catlog.Store, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = RespSession(TicketingStore(store), Info(), client_id=1)
    monkeypatch.setattr(store, "modify_many_nowait", _raise)
    replies = drive(
        session,
        (b"INCR", b"k"),
        (b"decrby", b"k", b"2"),
        (b"ECHO", b"between"),
        (b"INCRBY", b"a", b"1"),
    )
    assert replies == (
        b"-ERR internal error in 'incr' command: RuntimeError\r\n"
        b"-ERR internal error in 'decrby' command: RuntimeError\r\n"
        b"$7\r\nbetween\r\n"
        b"-ERR internal error in 'incrby' command: RuntimeError\r\n"
    )
    assert len(internal_errors(caplog)) == 2  # one per failure; the run of two fails once


@pytest.mark.spec("PROTO-114", "PROTO-54", "SRV-28", "ENG-90")
def test_each_counter_of_a_run_is_answered_its_own_outcome(
    store: catlog.Store, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = RespSession(TicketingStore(store), Info(), client_id=1)
    outcomes = [b"5", RuntimeError(BROKEN), catlog.CorruptionError("/db/x", 16, "crc mismatch")]
    monkeypatch.setattr(store, "modify_many_nowait", lambda changes: (outcomes, 1))
    replies = drive(session, (b"INCR", b"k"), (b"DECR", b"k"), (b"INCRBY", b"k", b"3"))
    assert replies == (
        b":5\r\n"
        b"-ERR internal error in 'decr' command: RuntimeError\r\n"
        b"-ERR /db/x@16: crc mismatch\r\n"
    )
    assert len(internal_errors(caplog)) == 1
