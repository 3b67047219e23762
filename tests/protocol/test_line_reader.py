"""The line protocol reader and reply lines (catlog/protocol/line.py) on their own."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from catlog.protocol import NEED_DATA, LineParser
from catlog.protocol.line import (
    NOT_FOUND,
    OK,
    TRANSITIONS,
    UNSENDABLE_VALUE,
    Delete,
    ErrorReply,
    Get,
    LineError,
    Put,
    Value,
    encode_reply,
    parse_line,
)

from .feeding import line_events, one_byte_at_a_time, splits

STREAM = b"PUT name Bob\nGET name\r\nDELETE name\n\nput  two  spaces \nget x\n"
EXPECTED = [
    Put(b"name", b"Bob"),
    Get(b"name"),
    Delete(b"name"),
    LineError("usage: PUT <key> <value>"),  # two spaces: an empty key
]

keys = st.binary(min_size=1, max_size=20).filter(lambda k: not set(k) & set(b" \r\n"))
values = st.binary(max_size=40).filter(lambda v: not set(v) & set(b"\r\n"))
requests = st.one_of(st.builds(Put, keys, values), st.builds(Get, keys), st.builds(Delete, keys))


def render(request: Put | Get | Delete, word_case: str = "upper") -> bytes:
    if isinstance(request, Put):
        word, tail = b"PUT", request.key + b" " + request.value
    elif isinstance(request, Get):
        word, tail = b"GET", request.key
    else:
        word, tail = b"DELETE", request.key
    return (word if word_case == "upper" else word.lower()) + b" " + tail


@pytest.mark.spec("PROTO-4", "PROTO-7", "PROTO-8", "PROTO-9")
def test_the_original_requests_parse() -> None:
    assert parse_line(b"PUT name Bob") == Put(b"name", b"Bob")
    assert parse_line(b"GET name") == Get(b"name")
    assert parse_line(b"DELETE name") == Delete(b"name")


@pytest.mark.spec("PROTO-7")
def test_a_value_is_everything_after_the_space_that_follows_the_key() -> None:
    assert parse_line(b"PUT k hello  world ") == Put(b"k", b"hello  world ")
    assert parse_line(b"PUT k ") == Put(b"k", b"")
    assert parse_line(b"PUT k \xff\x00\xfe") == Put(b"k", b"\xff\x00\xfe")


@pytest.mark.spec("PROTO-5")
def test_command_words_are_case_insensitive() -> None:
    assert parse_line(b"put k v") == Put(b"k", b"v")
    assert parse_line(b"Get k") == Get(b"k")
    assert parse_line(b"dElEtE k") == Delete(b"k")


@pytest.mark.spec("PROTO-4", "PROTO-11")
@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"PUT k", "usage: PUT <key> <value>"),
        (b"PUT", "usage: PUT <key> <value>"),
        (b"PUT  v", "usage: PUT <key> <value>"),
        (b"GET", "usage: GET <key>"),
        (b"GET ", "usage: GET <key>"),
        (b"GET a b", "usage: GET <key>"),
        (b"DELETE a ", "usage: DELETE <key>"),
        (b"FROB a", "unknown command 'FROB'; expected PUT, PUTEX, GET or DELETE"),
        (b"PUT k a\rb", "CR is allowed only at the end of a line"),
    ],
)
def test_malformed_lines_are_errors(line: bytes, message: str) -> None:
    assert parse_line(line) == LineError(message)


@pytest.mark.spec("PROTO-6")
def test_lines_end_in_lf_or_crlf_and_empty_lines_are_skipped() -> None:
    assert line_events([b"GET a\r\n\n\r\nGET b\n"]) == [Get(b"a"), Get(b"b")]


@pytest.mark.spec("PROTO-3", "PROTO-6")
def test_fed_whole_or_byte_by_byte_the_requests_are_the_same() -> None:
    events = line_events([STREAM])
    assert events[:4] == EXPECTED
    assert events[4] == Get(b"x")
    assert line_events(one_byte_at_a_time(STREAM)) == events


@pytest.mark.spec("PROTO-3", "PROTO-4")
@given(st.lists(requests, max_size=6), st.sampled_from(["\n", "\r\n"]), st.data())
def test_any_split_gives_the_same_requests(
    reqs: list[Put | Get | Delete], ending: str, data: st.DataObject
) -> None:
    stream = b"".join(render(r) + ending.encode() for r in reqs)
    assert line_events(data.draw(splits(stream))) == reqs


@pytest.mark.spec("PROTO-3", "PROTO-11")
@given(st.binary(max_size=200), st.data())
def test_any_bytes_give_requests_or_line_errors_however_split(
    garbage: bytes, data: st.DataObject
) -> None:
    whole = line_events([garbage], eof=True)
    for event in whole:
        assert isinstance(event, Put | Get | Delete | LineError)
    assert line_events(data.draw(splits(garbage)), eof=True) == whole


@pytest.mark.spec("PROTO-11")
def test_after_an_error_the_next_line_is_read_normally() -> None:
    assert line_events([b"NOPE\nGET a\n"]) == [
        LineError("unknown command 'NOPE'; expected PUT, PUTEX, GET or DELETE"),
        Get(b"a"),
    ]


@pytest.mark.spec("PROTO-12")
def test_an_endless_line_is_one_error_and_memory_stays_bounded() -> None:
    parser = LineParser(max_line_length=1000)
    parser.receive_data(b"PUT k ")
    errors = []
    peak = 0
    for _ in range(1000):
        parser.receive_data(b"x" * 512)
        peak = max(peak, parser.buffered)
        while (event := parser.next_event()) is not NEED_DATA:
            errors.append(event)
    assert errors == [LineError("line too long (the limit is 1000 bytes)")]
    assert peak <= 1000 + 2 + 512
    parser.receive_data(b"yyy\nGET k\n")
    assert parser.next_event() == Get(b"k")
    assert parser.buffered == 0


@pytest.mark.spec("PROTO-12", "PROTO-3")
@given(st.integers(990, 1010), st.booleans(), st.data())
def test_the_length_limit_is_the_same_whatever_the_split(
    size: int, crlf: bool, data: st.DataObject
) -> None:
    stream = b"PUT k " + b"v" * (size - 6) + (b"\r\n" if crlf else b"\n") + b"GET k\n"
    whole = line_events([stream], LineParser(max_line_length=1000))
    split = line_events(data.draw(splits(stream)), LineParser(max_line_length=1000))
    assert whole == split
    assert whole[0] == (
        Put(b"k", b"v" * (size - 6))
        if size <= 1000
        else LineError("line too long (the limit is 1000 bytes)")
    )


@pytest.mark.spec("PROTO-12")
def test_the_reader_keeps_to_its_transition_table() -> None:
    parser = LineParser(max_line_length=10)
    seen = set()
    for byte in one_byte_at_a_time(b"GET a\nGET " + b"z" * 30 + b"\nGET b\n"):
        before = parser.state
        parser.receive_data(byte)
        while parser.next_event() is not NEED_DATA:
            pass
        seen.add((before, parser.state))
    assert seen <= TRANSITIONS
    assert len(seen) == len(TRANSITIONS)


@pytest.mark.spec("PROTO-14")
def test_a_last_line_without_lf_counts_at_the_end_of_input() -> None:
    assert line_events([b"PUT a 1\nGET a"]) == [Put(b"a", b"1")]
    assert line_events([b"PUT a 1\nGET a"], eof=True) == [Put(b"a", b"1"), Get(b"a")]


@pytest.mark.spec("PROTO-10")
def test_reply_lines() -> None:
    assert encode_reply(OK) == b"OK\n"
    assert encode_reply(NOT_FOUND) == b"NOT_FOUND\n"
    assert encode_reply(Value(b"Bob")) == b"VALUE Bob\n"
    assert encode_reply(Value(b"")) == b"VALUE \n"
    assert encode_reply(Value(b"\xff a")) == b"VALUE \xff a\n"
    assert encode_reply(ErrorReply("bad\nthing")) == b"ERROR bad thing\n"


@pytest.mark.spec("PROTO-13")
@pytest.mark.parametrize("value", [b"a\nb", b"a\r", b"\r\n"])
def test_a_value_a_line_cannot_carry_is_answered_with_an_error(value: bytes) -> None:
    assert encode_reply(Value(value)) == b"ERROR " + UNSENDABLE_VALUE.encode() + b"\n"
