"""The RESP request reader (catlog/protocol/resp.py) on its own: no sockets."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from catlog.protocol import NEED_DATA, RespParser, RespProtocolError
from catlog.protocol.resp import (
    MAX_BULK_LENGTH,
    MAX_LINE_LENGTH,
    MAX_MULTIBULK_LENGTH,
    TRANSITIONS,
    State,
    encode_command,
)

from .feeding import one_byte_at_a_time, resp_events, resp_events_in_batches, splits

COMMANDS = [[b"SET", b"key", b"value"], [b"GET", b"key"], [b"PING"], [b"SET", b"", b"a\r\nb"]]
STREAM = b"".join(encode_command(*c) for c in COMMANDS)

words = st.lists(st.binary(max_size=40), min_size=1, max_size=6)


def error_of(events: Sequence[object]) -> str:
    last = events[-1]
    assert isinstance(last, RespProtocolError), f"expected an error, got {events!r}"
    return last.message


@pytest.mark.spec("PROTO-16", "PROTO-3")
def test_commands_fed_whole_come_out_in_order() -> None:
    assert resp_events([STREAM]) == COMMANDS


@pytest.mark.spec("PROTO-3")
def test_commands_fed_one_byte_at_a_time_are_the_same() -> None:
    assert resp_events(one_byte_at_a_time(STREAM)) == COMMANDS


@pytest.mark.spec("PROTO-3")
@given(st.lists(words, max_size=5), st.data())
def test_any_split_of_the_stream_gives_the_same_commands(
    commands: list[list[bytes]], data: st.DataObject
) -> None:
    stream = b"".join(encode_command(*c) for c in commands)
    assert resp_events(data.draw(splits(stream))) == commands


@pytest.mark.spec("PROTO-16")
@given(words)
def test_an_encoded_command_parses_back_to_itself(command: list[bytes]) -> None:
    assert resp_events([encode_command(*command)]) == [command]


@pytest.mark.spec("PROTO-3", "PROTO-18")
@given(st.binary(max_size=300), st.data())
def test_any_bytes_parse_or_give_the_protocols_own_error_the_same_way_split_or_not(
    garbage: bytes, data: st.DataObject
) -> None:
    whole = resp_events([garbage])
    for event in whole:
        assert isinstance(event, list | RespProtocolError)
    assert resp_events(data.draw(splits(garbage))) == whole
    assert resp_events(one_byte_at_a_time(garbage)) == whole


@pytest.mark.spec("PROTO-3", "PROTO-18")
@given(st.binary(min_size=1, max_size=50))
def test_trailing_garbage_after_commands_leaves_the_commands_intact(garbage: bytes) -> None:
    events = resp_events([STREAM + garbage])
    assert events[: len(COMMANDS)] == COMMANDS
    assert resp_events(one_byte_at_a_time(STREAM + garbage)) == events


@pytest.mark.spec("PROTO-3")
@given(st.lists(words, min_size=1, max_size=4), st.binary(max_size=30))
def test_the_reader_keeps_to_its_transition_table(
    commands: list[list[bytes]], garbage: bytes
) -> None:
    parser = RespParser()
    for byte in one_byte_at_a_time(b"".join(encode_command(*c) for c in commands) + garbage):
        before = parser.state
        parser.receive_data(byte)
        while parser.next_command() is not NEED_DATA and parser.state is not State.BROKEN:
            pass
        if parser.state is not before:
            assert (before, parser.state) in TRANSITIONS


@pytest.mark.spec("PROTO-17")
def test_empty_and_null_arrays_ask_for_nothing() -> None:
    assert resp_events([b"*0\r\n*-1\r\n" + encode_command(b"PING")]) == [[b"PING"]]


@pytest.mark.spec("PROTO-17")
def test_every_negative_count_asks_for_nothing() -> None:
    stream = b"*-10\r\n*-9223372036854775808\r\n" + encode_command(b"PING")
    assert resp_events([stream]) == [[b"PING"]]
    assert resp_events([stream[i : i + 1] for i in range(len(stream))]) == [[b"PING"]]


@pytest.mark.spec("PROTO-18")
@pytest.mark.parametrize(
    ("stream", "message"),
    [
        # The cases of Redis's tests/unit/protocol.tcl, with the replies Redis gives.
        (b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\nfooz\r\n", "Protocol error: expected '$', got 'f'"),
        (b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$-10\r\n", "Protocol error: invalid bulk length"),
        (b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$2000000000\r\n", "Protocol error: invalid bulk length"),
        (b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$blabla\r\n", "Protocol error: invalid bulk length"),
        (b"*1\r\nfoo\r\n", "Protocol error: expected '$', got 'f'"),
        (b"*20000000\r\n", "Protocol error: invalid multibulk length"),
        (b"*3000000000\r\n", "Protocol error: invalid multibulk length"),
        (b"*abc\r\n", "Protocol error: invalid multibulk length"),
        (b"*+3\r\n", "Protocol error: invalid multibulk length"),
        (b"*03\r\n", "Protocol error: invalid multibulk length"),
        (b"*1\r\n$03\r\nabc\r\n", "Protocol error: invalid bulk length"),
        (b"*1\r\n$ 3\r\nabc\r\n", "Protocol error: invalid bulk length"),
        (b"*1\r\n$\r\n", "Protocol error: invalid bulk length"),
        (b"*1\r\n$3\r\nabcXY", "Protocol error: expected '\\r\\n' after a bulk string"),
        (encode_command(b"PING") + b'PING "\r\n', "Protocol error: unbalanced quotes in request"),
    ],
)
def test_malformed_requests_get_redis_wording(stream: bytes, message: str) -> None:
    assert error_of(resp_events([stream])) == message
    assert error_of(resp_events(one_byte_at_a_time(stream))) == message


@pytest.mark.spec("PROTO-18")
def test_the_error_reply_is_what_redis_sends_and_the_reader_stays_broken() -> None:
    parser = RespParser()
    parser.receive_data(b"*1\r\n$-1\r\n")
    error = parser.next_command()
    assert isinstance(error, RespProtocolError)
    assert error.reply == b"-ERR Protocol error: invalid bulk length\r\n"
    parser.receive_data(encode_command(b"PING"))
    assert parser.next_command() == error
    assert parser.buffered == 0


@pytest.mark.spec("PROTO-18")
def test_commands_before_an_error_are_still_returned() -> None:
    events = resp_events([encode_command(b"PING") + encode_command(b"ECHO", b"x") + b"*1\r\n!"])
    assert events[:2] == [[b"PING"], [b"ECHO", b"x"]]
    assert error_of(events) == "Protocol error: expected '$', got '!'"


@pytest.mark.spec("PROTO-18")
def test_a_non_ascii_byte_is_quoted_back_as_received() -> None:
    events = resp_events([b"*1\r\n\xff\r\n"])
    assert isinstance(events[0], RespProtocolError)
    assert events[0].reply == b"-ERR Protocol error: expected '$', got '\xff'\r\n"


@pytest.mark.spec("PROTO-19", "PROTO-23")
@pytest.mark.parametrize(
    ("prefix", "message"),
    [
        (b"*", "Protocol error: too big mbulk count string"),
        (b"*1\r\n$", "Protocol error: too big bulk count string"),
    ],
)
def test_an_endless_header_line_is_an_error_with_bounded_memory(
    prefix: bytes, message: str
) -> None:
    parser = RespParser()
    parser.receive_data(prefix)
    chunk = b"7" * 4096
    peak = 0
    for _ in range(1024):  # 4 MiB, never a CRLF
        parser.receive_data(chunk)
        peak = max(peak, parser.buffered)
        event = parser.next_command()
        if event is not NEED_DATA:
            break
    assert isinstance(event, RespProtocolError)
    assert event.message == message
    assert peak <= MAX_LINE_LENGTH + 2 + len(chunk) + len(prefix)
    parser.receive_data(chunk)
    assert parser.buffered == 0


@pytest.mark.spec("PROTO-19")
def test_a_long_header_gets_the_same_error_whole_or_in_pieces() -> None:
    stream = b"*1\r\n$" + b"1" * (MAX_LINE_LENGTH + 5) + b"\r\n"
    expected = "Protocol error: too big bulk count string"
    assert error_of(resp_events([stream])) == expected
    pieces = [stream[i : i + 1000] for i in range(0, len(stream), 1000)]
    assert error_of(resp_events(pieces)) == expected


@pytest.mark.spec("PROTO-20", "PROTO-23")
def test_a_huge_multibulk_count_is_refused_before_anything_is_allocated() -> None:
    events = resp_events([b"*%d\r\n" % (MAX_MULTIBULK_LENGTH + 1)])
    assert error_of(events) == "Protocol error: invalid multibulk length"
    parser = RespParser()
    parser.receive_data(b"*%d\r\n" % MAX_MULTIBULK_LENGTH)
    assert parser.next_command() is NEED_DATA
    assert parser.buffered == 0


@pytest.mark.spec("PROTO-21", "PROTO-23")
@pytest.mark.parametrize("length", [2**63, 2**63 - 1, 2**64, 10**30, MAX_BULK_LENGTH + 1])
def test_a_huge_bulk_length_is_an_error_never_an_allocation(length: int) -> None:
    parser = RespParser()
    parser.receive_data(b"*2\r\n$3\r\nGET\r\n$%d\r\n" % length)
    event = parser.next_command()
    assert isinstance(event, RespProtocolError)
    assert event.message == "Protocol error: invalid bulk length"
    assert parser.buffered == 0


@pytest.mark.spec("PROTO-21")
def test_the_largest_value_is_accepted() -> None:
    value = b"v" * MAX_BULK_LENGTH
    assert resp_events([encode_command(b"SET", b"k", value)]) == [[b"SET", b"k", value]]


@pytest.mark.spec("PROTO-22", "PROTO-23")
def test_a_request_over_the_size_limit_is_refused_at_the_header_that_breaks_it() -> None:
    parser = RespParser(max_bulk_length=1000, max_request_size=2500)
    parser.receive_data(b"*4\r\n$4\r\nMSET\r\n$1000\r\n" + b"a" * 1000 + b"\r\n$1000\r\n")
    assert parser.next_command() is NEED_DATA  # 1000 + 1000 + headers: still under 2500
    parser.receive_data(b"b" * 1000 + b"\r\n$1000\r\n")
    event = parser.next_command()
    assert isinstance(event, RespProtocolError)
    assert event.message == "Protocol error: too big request"


@pytest.mark.spec("PROTO-23")
def test_a_value_arriving_in_small_pieces_is_held_once() -> None:
    value = b"x" * 200_000
    stream = encode_command(b"SET", b"k", value)
    parser = RespParser()
    peak = 0
    events = []
    for i in range(0, len(stream), 100):
        parser.receive_data(stream[i : i + 100])
        peak = max(peak, parser.buffered)
        while (event := parser.next_command()) is not NEED_DATA:
            events.append(event)
    assert events == [[b"SET", b"k", value]]
    assert peak <= len(stream) + 100
    assert parser.buffered == 0


@pytest.mark.spec("PROTO-23")
def test_a_broken_reader_holds_nothing_whatever_follows() -> None:
    parser = RespParser()
    parser.receive_data(b"*x\r\n")
    assert isinstance(parser.next_command(), RespProtocolError)
    for _ in range(100):
        parser.receive_data(b"z" * 100_000)
    assert parser.buffered == 0


@pytest.mark.spec("PROTO-24")
@pytest.mark.parametrize("after", [b"XY", b"\r\r", b"\n\n", b"\rX"])
def test_an_argument_must_end_in_crlf(after: bytes) -> None:
    events = resp_events([b"*1\r\n$4\r\nPING" + after + b"*1\r\n$4\r\nPING\r\n"])
    assert error_of(events) == "Protocol error: expected '\\r\\n' after a bulk string"


# The fast walk (RespParser._walk, see the module docstring of catlog/protocol/resp.py) must
# give exactly the events of the state machine alone, for any bytes, however they are split.

tricky_word = st.lists(
    st.sampled_from([b"\r\n", b"\r", b"\n", b"a", b"$3", b"*1", b"\x00", b"$"]), max_size=8
).map(b"".join)
tricky_command = st.lists(tricky_word | st.binary(max_size=20), min_size=1, max_size=4).map(
    lambda args: encode_command(*args)
)
stream_piece = (
    tricky_command
    | st.sampled_from([b"*0\r\n", b"*-1\r\n", b"*1\r\n$10000\r\n" + b"v" * 10_000 + b"\r\n"])
    | st.binary(max_size=8)
)


def state_machine_only() -> RespParser:
    return RespParser(walk=False)  # the general path alone, as a reference for the walk


@pytest.mark.spec("PROTO-3", "PROTO-16", "PROTO-18")
@given(st.lists(stream_piece, max_size=8), st.data())
def test_the_fast_walk_gives_the_same_events_as_the_state_machine(
    pieces: list[bytes], data: st.DataObject
) -> None:
    stream = b"".join(pieces)
    expected = resp_events([stream], state_machine_only())
    assert resp_events([stream]) == expected
    chunks = data.draw(splits(stream))
    assert resp_events(chunks) == expected
    assert resp_events(chunks, state_machine_only()) == expected


@pytest.mark.spec("PROTO-16", "PROTO-18")
@given(st.lists(stream_piece, max_size=8), st.data())
def test_commands_taken_a_read_at_a_time_are_those_taken_one_at_a_time(
    pieces: list[bytes], data: st.DataObject
) -> None:
    stream = b"".join(pieces)
    chunks = data.draw(splits(stream))
    assert resp_events_in_batches(chunks) == resp_events(chunks)


@pytest.mark.spec("PROTO-16")
def test_a_long_pipeline_in_one_read_is_read_across_walk_windows() -> None:
    commands = [[b"GET", b"key:%012d" % n] for n in range(3000)]  # about 110 KB
    commands[1234] = [b"SET", b"k", b"a\r\nb"]  # stops the walk; the state machine reads on
    commands[2000] = [b"SET", b"k", b"x" * 20_000]  # longer than a walk window
    stream = b"".join(encode_command(*c) for c in commands)
    assert resp_events([stream]) == commands
    assert resp_events([stream], state_machine_only()) == commands


@pytest.mark.spec("PROTO-18")
def test_commands_walked_before_an_error_are_returned_before_it() -> None:
    stream = encode_command(b"PING") * 20 + b"*1\r\n$4\r\nPINGXY"
    events = resp_events([stream])
    assert events[:-1] == [[b"PING"]] * 20
    assert error_of(events) == "Protocol error: expected '\\r\\n' after a bulk string"
