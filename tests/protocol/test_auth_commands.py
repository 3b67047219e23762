"""AUTH, HELLO ... AUTH and the NOAUTH gate in the command layer, against a real store.

The replies are Redis 7.2's: ``authCommand`` (src/acl.c), ``helloCommand`` (src/networking.c) and
the ``authRequired`` check of ``processCommand`` (src/server.c), which comes after the command's
name and arity are checked. tests/server/test_auth.py sends the same requests to a real Redis.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import catlog
from catlog.auth import EXEC_NOAUTH, HELLO_NOAUTH, NOAUTH, WRONGPASS, Password
from catlog.commands import QUEUED, Session
from catlog.protocol.replies import OK, Error, Map, Reply

SECRET = "s3cret"


@pytest.fixture
def db(data_dir: str) -> Iterator[catlog.Store]:
    with catlog.open(data_dir, fsync="never") as opened:
        yield opened


@pytest.fixture
def session(db: catlog.Store) -> Session:
    return Session(db, client_id=3, password=Password(SECRET.encode()))


def run(session: Session, *words: str) -> Reply:
    return session.execute([w.encode() for w in words])


@pytest.mark.spec("PROTO-103", "PROTO-104")
def test_every_command_but_auth_hello_and_quit_waits_for_auth(session: Session) -> None:
    for words in (
        ("GET", "k"),
        ("get", "k"),
        ("SET", "k", "v"),
        ("PING",),
        ("MULTI",),
        ("DISCARD",),
        ("WATCH", "k"),
        ("CONFIG", "GET", "*"),
        ("INFO",),
        ("CLIENT", "ID"),
        ("COMMAND",),
    ):
        assert run(session, *words) == NOAUTH, words
    assert run(session, "EXEC") == EXEC_NOAUTH
    assert run(session, "QUIT") == OK
    assert run(session, "AUTH", SECRET) == OK
    assert run(session, "SET", "k", "v") == OK
    assert run(session, "GET", "k") == b"v"


@pytest.mark.spec("PROTO-104")
def test_unknown_commands_and_wrong_arity_are_answered_before_noauth(session: Session) -> None:
    unknown = run(session, "FROB", "a")
    assert isinstance(unknown, Error)
    assert unknown.message.startswith("ERR unknown command 'FROB'")
    assert run(session, "GET") == Error("ERR wrong number of arguments for 'get' command")
    exec_arity = run(session, "EXEC", "x")
    assert isinstance(exec_arity, Error)
    assert exec_arity.message.startswith("EXECABORT")
    assert run(session, "AUTH") == Error("ERR wrong number of arguments for 'auth' command")


@pytest.mark.spec("PROTO-105", "PROTO-106", "PROTO-109")
def test_auth_forms(session: Session) -> None:
    assert run(session, "AUTH", "wrong") == WRONGPASS
    assert run(session, "AUTH", "bob", SECRET) == WRONGPASS
    assert run(session, "AUTH", "Default", SECRET) == WRONGPASS
    assert run(session, "AUTH", "a", "b", "c") == Error("ERR syntax error")
    assert run(session, "GET", "k") == NOAUTH
    assert run(session, "AUTH", "default", SECRET) == OK
    assert run(session, "AUTH", "wrong") == WRONGPASS
    assert run(session, "GET", "k") is None  # still authenticated


@pytest.mark.spec("PROTO-107")
def test_hello_without_auth_is_refused_and_changes_nothing(session: Session) -> None:
    assert run(session, "HELLO") == HELLO_NOAUTH
    assert run(session, "HELLO", "3", "SETNAME", "n") == HELLO_NOAUTH
    assert run(session, "HELLO", "3", "AUTH", "default", "wrong") == WRONGPASS
    assert (session.protocol, session.name) == (2, None)
    assert run(session, "HELLO", "4", "AUTH", "default", SECRET) == Error(
        "NOPROTO unsupported protocol version"
    )
    assert run(session, "HELLO", "2", "AUTH", "default") == Error(
        "ERR Syntax error in HELLO option 'AUTH'"
    )
    assert run(session, "GET", "k") == NOAUTH


@pytest.mark.spec("PROTO-107")
def test_hello_checks_every_option_before_the_password(session: Session) -> None:
    """Redis 7.2: a bad client name is answered, and nothing happens, even with the right
    password before it (Redis 7.0 would have authenticated)."""
    reply = run(session, "HELLO", "3", "AUTH", "default", SECRET, "SETNAME", "a b")
    assert isinstance(reply, Error)
    assert reply.message.startswith("ERR Client names")
    assert run(session, "GET", "k") == NOAUTH


@pytest.mark.spec("PROTO-107")
def test_hello_auth_authenticates_then_names_and_switches(session: Session) -> None:
    reply = run(session, "HELLO", "3", "AUTH", "default", SECRET, "SETNAME", "n")
    assert isinstance(reply, Map)
    assert dict(reply.pairs)[b"proto"] == 3
    assert (session.protocol, session.name) == (3, b"n")
    assert run(session, "GET", "k") is None


@pytest.mark.spec("PROTO-108")
def test_auth_inside_multi_is_queued_and_answers_in_execs_array(session: Session) -> None:
    assert run(session, "AUTH", SECRET) == OK
    assert run(session, "MULTI") == OK
    assert run(session, "AUTH", "wrong") == QUEUED
    assert run(session, "HELLO", "2", "AUTH", "default", "wrong") == QUEUED
    assert run(session, "AUTH", SECRET) == QUEUED
    assert run(session, "GET", "k") == QUEUED
    assert run(session, "EXEC") == [WRONGPASS, WRONGPASS, OK, None]


@pytest.mark.spec("PROTO-111", "SRV-25")
def test_config_get_shows_requirepass_redacted(session: Session, db: catlog.Store) -> None:
    assert run(session, "AUTH", SECRET) == OK
    for pattern in ("requirepass", "*"):
        reply = run(session, "CONFIG", "GET", pattern)
        assert isinstance(reply, Map)
        assert dict(reply.pairs)[b"requirepass"] == b"(redacted)"
    info = run(session, "INFO", "everything")
    assert SECRET.encode() not in repr(info).encode()
    assert run(Session(db), "CONFIG", "GET", "requirepass") == Map(((b"requirepass", b""),))
