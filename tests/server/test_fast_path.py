"""The server's command loop (:meth:`catlog.sessions.RespSession.drive`) without sockets.

The loop runs ``SET key value``, ``GET key`` and ``INCR key`` itself, without
:class:`catlog.commands.Session`, because the server benchmark showed the layer's cost, and takes
a read's commands from the reader in one call. The first tests run the same commands both ways,
each on a fresh store in the same directory (so that error messages naming the path agree), and
compare the bytes; the others check that commands left over when the loop stops (to wait for an
fsync, or to send a batch of replies) run later, in order.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence

import pytest

import catlog
from catlog.codec import MAX_KEY_SIZE
from catlog.commands import ServerInfo, Session
from catlog.groupcommit import TicketingStore
from catlog.protocol.replies import encode
from catlog.protocol.resp import encode_command
from catlog.sessions import RespSession
from tests.crash.faulty_fs import FaultyFileSystem
from tests.failing_store import failing

CLOSE = (b"<close the store>",)
"""Not a command: closes the store, so the commands after it meet a store that refuses."""

BIG_KEY = b"k" * (MAX_KEY_SIZE + 1)


def through_the_shortcut(path: str, commands: Sequence[tuple[bytes, ...]]) -> list[bytes]:
    store = catlog.open(path, fsync="never")
    session = RespSession(TicketingStore(store), ServerInfo(), client_id=1)
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


@pytest.mark.spec("PROTO-87", "PROTO-54", "PROTO-84", "ENG-80")
def test_plain_incr_answers_as_the_command_layer_does(data_dir: str) -> None:
    commands = [
        (b"INCR", b"n"),
        (b"incr", b"n"),
        (b"Incr", b"n"),  # another spelling: the command layer's path
        (b"SET", b"s", b"abc"),
        (b"INCR", b"s"),
        (b"SET", b"max", b"9223372036854775807"),
        (b"INCR", b"max"),
        (b"INCR", BIG_KEY),
        (b"INCR",),
        (b"INCR", b"n", b"extra"),
        (b"WATCH", b"n"),
        (b"INCR", b"n"),  # touches the watched key: the EXEC runs nothing
        (b"MULTI",),
        (b"INCR", b"n"),
        (b"EXEC",),
        (b"GET", b"n"),
        CLOSE,
        (b"INCR", b"n"),
    ]
    fast, slow = both_ways(data_dir, commands)
    assert fast == slow
    assert fast[:3] == [b":1\r\n", b":2\r\n", b":3\r\n"]
    assert fast[4] == b"-ERR value is not an integer or out of range\r\n"
    assert fast[6] == b"-ERR increment or decrement would overflow\r\n"
    assert fast[7].startswith(b"-ERR ")
    assert fast[14] == b"*-1\r\n"
    assert fast[15] == b"$1\r\n4\r\n"
    assert fast[16].startswith(b"-ERR ")


def pipelined_both_ways(path: str, reads: Sequence[Sequence[tuple[bytes, ...]]]) -> None:
    """Each read's commands arrive at once through the shortcut (so plain SETs in a row go as
    one group, SRV-11) and one by one through the command layer: the replies must agree."""
    store = catlog.open(path, fsync="never")
    session = RespSession(TicketingStore(store), ServerInfo(), client_id=1)
    fast = []
    out: list[bytes] = []
    for commands in reads:
        if commands == [CLOSE]:
            store.close()
            continue
        session.reader.receive_data(b"".join(encode_command(*words) for words in commands))
        session.drive(out, 0, None)
        fast.append(b"".join(out))
        out.clear()
    store.close()
    shutil.rmtree(path)
    flat = [words for commands in reads for words in commands]
    slow = iter(through_the_command_layer(path, flat))
    expected = [b"".join(next(slow) for _ in commands) for commands in reads if commands != [CLOSE]]
    assert fast == expected


@pytest.mark.spec("SRV-11", "ENG-44", "PROTO-34", "PROTO-54")
def test_plain_sets_in_a_row_are_answered_as_each_alone(data_dir: str) -> None:
    pipelined_both_ways(
        data_dir,
        [
            [(b"SET", b"a", b"1"), (b"SET", b"b", b"2"), (b"SET", b"a", b"3"), (b"GET", b"a")],
            [(b"SET", b"c", b"1"), (b"SET", BIG_KEY, b"v"), (b"SET", b"d", b"4")],
            [(b"GET", b"c"), (b"GET", b"d"), (b"GET", BIG_KEY)],
            [(b"SET", b"e", b"5"), (b"Set", b"f", b"6"), (b"SET", b"g", b"7"), (b"SET", b"h", b"")],
            [(b"SET", b"i", b"9"), (b"DBSIZE",), (b"SET", b"j", b"0"), (b"SET", b"k")],
            [CLOSE],
            [(b"SET", b"a", b"1"), (b"SET", b"b", b"2"), (b"GET", b"a")],
        ],
    )


@pytest.mark.spec("SRV-11", "ENG-44", "PROTO-54", "REC-10")
def test_a_group_whose_append_fails_answers_every_set_with_the_error_and_the_session_goes_on(
    data_dir: str,
) -> None:
    fs = FaultyFileSystem()
    with failing(catlog.open(data_dir, fs=fs, fsync="never")) as store:
        session = RespSession(TicketingStore(store), ServerInfo(), client_id=1)
        big = b"v" * 40_000  # two of these fill the 64 KiB write buffer: it is handed to the OS
        fs.fail("append")
        pipeline = [(b"SET", b"a", big), (b"SET", b"b", big), (b"GET", b"a"), (b"SET", b"c", b"3")]
        session.reader.receive_data(b"".join(encode_command(*c) for c in pipeline))
        out, _ = drive_to_the_end(session, store)
    error = out[0][: len(out[0]) // 2]
    assert out[0] == error * 2, "each SET of the group is told, none is acknowledged"
    assert error.startswith(b"-ERR ")
    assert b"segment-00001.log: write failed ([Errno 5] " in error
    assert out[1:] == [b"$-1\r\n", error], "nothing of the group took effect; then REC-10"


@pytest.mark.spec("SRV-11", "SRV-5")
def test_under_always_a_group_of_sets_is_answered_after_its_fsync(data_dir: str) -> None:
    with catlog.open(data_dir, fsync="always") as store:
        session = RespSession(TicketingStore(store), ServerInfo(), client_id=1)
        pipeline = [(b"SET", b"a", b"1"), (b"SET", b"b", b"2"), (b"SET", b"a", b"3")]
        session.reader.receive_data(b"".join(encode_command(*c) for c in pipeline))
        out: list[bytes] = []
        ticket, held, close, more = session.drive(out, 0, None)
        assert (ticket, held, close, more) == (3, None, False, False)
        assert out == [b"+OK\r\n" * 3]  # held by the connection until ticket 3 is durable
        assert store.get(b"a") is None
        store.wait_durable(ticket)
        assert store.get(b"a") == b"3"


def drive_to_the_end(session: RespSession, store: catlog.Store) -> tuple[list[bytes], int]:
    """Run what the session has read as the server does, waiting for durability when told to;
    returns the replies and how many times the loop stopped before the input ran out."""
    out: list[bytes] = []
    ticket, held, stops = 0, None, 0
    while True:
        ticket, held, close, more = session.drive(out, ticket, held)
        assert not close
        if ticket:
            store.wait_durable(ticket)
            ticket = 0
        elif not more:
            return out, stops
        stops += 1


@pytest.mark.spec("SRV-5")
def test_a_read_in_a_pipeline_waits_for_the_writes_before_it_and_sees_them(data_dir: str) -> None:
    with catlog.open(data_dir, fsync="always") as store:
        session = RespSession(TicketingStore(store), ServerInfo(), client_id=1)
        pipeline = [(b"SET", b"a", b"1"), (b"GET", b"a"), (b"SET", b"b", b"2"), (b"GET", b"b")]
        session.reader.receive_data(b"".join(encode_command(*c) for c in pipeline))
        out, stops = drive_to_the_end(session, store)
    assert out == [b"+OK\r\n", b"$1\r\n1\r\n", b"+OK\r\n", b"$1\r\n2\r\n"]
    assert stops == 2  # each GET waited for the SET before it


@pytest.mark.spec("SRV-7")
def test_replies_past_the_batch_limit_wait_and_the_commands_after_them_keep_their_order(
    data_dir: str,
) -> None:
    value = b"v" * 100_000
    with catlog.open(data_dir, fsync="never") as store:
        store.put(b"big", value)
        session = RespSession(TicketingStore(store), ServerInfo(), client_id=1)
        pipeline = [(b"GET", b"big")] * 8 + [(b"SET", b"n", b"1"), (b"GET", b"n")]
        session.reader.receive_data(b"".join(encode_command(*c) for c in pipeline))
        out, stops = drive_to_the_end(session, store)
    assert out == [b"$100000\r\n" + value + b"\r\n"] * 8 + [b"+OK\r\n", b"$1\r\n1\r\n"]
    assert stops >= 2  # 800 KB of replies left in pieces of at most REPLY_BATCH and one reply


@pytest.mark.spec("ENG-51", "ENG-80", "SRV-5", "PROTO-87")
@pytest.mark.parametrize(("value", "reply"), [(b"1", b":2\r\n"), (b"abc", b"-ERR value is")])
def test_an_incr_shown_another_clients_write_in_flight_answers_after_its_fsync(
    data_dir: str, value: bytes, reply: bytes
) -> None:
    """Client B's INCR reads client A's SET still waiting for its fsync, so B's answer, a new
    value or an error, is held until that fsync (the ticket ``drive`` leaves) as A's is."""
    store = catlog.open(data_dir, fsync="always")
    tickets = TicketingStore(store)
    a = RespSession(tickets, ServerInfo(), client_id=1)
    b = RespSession(tickets, ServerInfo(), client_id=2)
    out: list[bytes] = []
    a.reader.receive_data(encode_command(b"SET", b"k", value))
    set_ticket = a.drive(out, 0, None)[0]
    assert set_ticket
    assert b"k" not in store, "A's SET waits for its fsync"
    out.clear()
    b.reader.receive_data(encode_command(b"INCR", b"k"))
    incr_ticket = b.drive(out, 0, None)[0]
    assert out[0].startswith(reply)
    assert incr_ticket >= set_ticket, "B's reply waits for the write it was shown"
    store.wait_durable(incr_ticket)
    assert store[b"k"] == (b"2" if value == b"1" else b"abc")
    store.close()


@pytest.mark.spec("SRV-28", "ENG-90", "PROTO-87", "PROTO-54", "PROTO-84")
def test_plain_counters_in_a_row_are_answered_as_each_alone(data_dir: str) -> None:
    low = b"-9223372036854775808"
    pipelined_both_ways(
        data_dir,
        [
            [(b"INCR", b"n"), (b"INCR", b"n"), (b"DECR", b"n"), (b"INCRBY", b"n", b"10")],
            [(b"DECRBY", b"n", b"3"), (b"incrby", b"n", b"-5"), (b"decrby", b"n", b"2")],
            [(b"SET", b"s", b"abc"), (b"INCR", b"s"), (b"INCR", b"n"), (b"INCRBY", b"n", b"x")],
            [(b"INCR", b"n"), (b"DECRBY", b"n", low), (b"INCRBY", b"n", low), (b"INCR", b"n")],
            [(b"SET", b"max", b"9223372036854775807"), (b"INCR", b"max"), (b"DECR", b"max")],
            [(b"INCRBY", b"max", b"0"), (b"INCR", BIG_KEY), (b"INCR", b"n"), (b"GET", b"n")],
            [(b"INCR", b"a"), (b"SET", b"a", b"10"), (b"INCR", b"a"), (b"GET", b"a")],
            [(b"INCR", b"a"), (b"Incr", b"a"), (b"INCR", b"a"), (b"INCR", b"a", b"extra")],
            [(b"WATCH", b"a"), (b"INCR", b"a"), (b"MULTI",), (b"INCR", b"a"), (b"EXEC",)],
            [(b"INCR", b"n"), (b"MULTI",), (b"INCR", b"n"), (b"DECR", b"n"), (b"EXEC",)],
            [(b"SET", b"e", b"007"), (b"INCR", b"e"), (b"SET", b"f", b" 1"), (b"DECR", b"f")],
            [CLOSE],
            [(b"INCR", b"n"), (b"DECR", b"n"), (b"SET", b"a", b"1")],
        ],
    )


@pytest.mark.spec("SRV-28", "ENG-91", "PROTO-54", "REC-10")
def test_a_run_of_counters_whose_append_fails_answers_each_with_the_error(data_dir: str) -> None:
    fs = FaultyFileSystem()
    with failing(catlog.open(data_dir, fs=fs, fsync="never")) as store:
        store.put(b"filler", b"v" * 65_400)  # the write buffer is nearly full, not handed over
        session = RespSession(TicketingStore(store), ServerInfo(), client_id=1)
        fs.fail("append")
        pipeline = [(b"INCR", b"a")] * 8 + [(b"GET", b"a"), (b"INCR", b"b")]
        session.reader.receive_data(b"".join(encode_command(*c) for c in pipeline))
        out, _ = drive_to_the_end(session, store)
    error = out[0][: len(out[0]) // 8]
    assert out[0] == error * 8, "each INCR of the run is told, none is acknowledged"
    assert error.startswith(b"-ERR ")
    assert b"segment-00001.log: write failed ([Errno 5] " in error
    assert out[1:] == [b"$-1\r\n", error], "nothing of the run took effect; then REC-10"
