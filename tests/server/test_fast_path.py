"""The server's shortcut for plain SET and GET answers exactly what the command layer answers.

:meth:`catlog.server.RespSession.drive` runs ``SET key value`` and ``GET key`` itself, without
:class:`catlog.commands.Session`, because the server benchmark showed the layer's cost. These
tests run the same commands both ways, each on a fresh store in the same directory (so that
error messages naming the path agree), and compare the bytes.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence

import pytest

import catlog
from catlog.codec import MAX_KEY_SIZE
from catlog.commands import ScanCursors, ServerInfo, Session
from catlog.protocol.replies import encode
from catlog.protocol.resp import encode_command
from catlog.server import RespSession, TicketingStore

CLOSE = (b"<close the store>",)
"""Not a command: closes the store, so the commands after it meet a store that refuses."""

BIG_KEY = b"k" * (MAX_KEY_SIZE + 1)


def through_the_shortcut(path: str, commands: Sequence[tuple[bytes, ...]]) -> list[bytes]:
    store = catlog.open(path, fsync="never")
    session = RespSession(TicketingStore(store), ServerInfo(), ScanCursors(), client_id=1)
    replies = []
    out: list[bytes] = []
    for words in commands:
        if words == CLOSE:
            store.close()
            continue
        session.reader.receive_data(encode_command(*words))
        session.drive(out, 0, None)
        replies.append(b"".join(out))
        out.clear()
    store.close()
    return replies


def through_the_command_layer(path: str, commands: Sequence[tuple[bytes, ...]]) -> list[bytes]:
    store = catlog.open(path, fsync="never")
    session = Session(TicketingStore(store), client_id=1)
    replies = []
    for words in commands:
        if words == CLOSE:
            store.close()
            continue
        replies.append(encode(session.execute(list(words)), session.protocol))
    store.close()
    return replies


def both_ways(path: str, commands: Sequence[tuple[bytes, ...]]) -> tuple[list[bytes], list[bytes]]:
    fast = through_the_shortcut(path, commands)
    shutil.rmtree(path)
    slow = through_the_command_layer(path, commands)
    return fast, slow


@pytest.mark.spec("PROTO-34", "PROTO-35", "PROTO-29")
def test_plain_set_and_get_answer_as_the_command_layer_does(data_dir: str) -> None:
    commands = [
        (b"SET", b"k", b"v"),
        (b"GET", b"k"),
        (b"get", b"missing"),
        (b"set", b"k", b""),
        (b"GET", b"k"),
        (b"Set", b"k2", b"v2"),  # another spelling: the command layer's path
        (b"get", b"k2"),
        (b"SET", b"k"),  # arity errors are the command layer's
        (b"GET", b"k", b"extra"),
        (b"HELLO", b"3"),
        (b"GET", b"missing"),  # RESP3 null
        (b"GET", b"k2"),
    ]
    fast, slow = both_ways(data_dir, commands)
    assert fast == slow
    assert fast[:3] == [b"+OK\r\n", b"$1\r\nv\r\n", b"$-1\r\n"]
    assert fast[10] == b"_\r\n"


@pytest.mark.spec("PROTO-54")
def test_a_refused_set_or_get_answers_the_engines_error_as_the_command_layer_does(
    data_dir: str,
) -> None:
    commands = [
        (b"SET", BIG_KEY, b"v"),
        (b"GET", BIG_KEY),
        (b"SET", b"k", b"v"),
        CLOSE,
        (b"SET", b"k", b"v"),
        (b"GET", b"k"),
    ]
    fast, slow = both_ways(data_dir, commands)
    assert fast == slow
    assert fast[0].startswith(b"-ERR ")
    assert fast[3].startswith(b"-ERR ")
    assert fast[4].startswith(b"-ERR ")
