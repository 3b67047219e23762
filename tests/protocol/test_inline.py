"""Redis inline commands in the RESP reader (catlog/protocol/inline.py, PROTO-2, PROTO-86).

The expected splits are what Redis 7.0's sdssplitargs gives (src/sds.c); the reader is fed
whole, one byte at a time, and mixed with RESP arrays.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from catlog.protocol import RespParser, RespProtocolError
from catlog.protocol.inline import split_words
from catlog.protocol.resp import encode_command
from tests.protocol.feeding import one_byte_at_a_time, resp_events, resp_events_in_batches


@pytest.mark.spec("PROTO-86")
@pytest.mark.parametrize(
    ("line", "words"),
    [
        (b"PING", [b"PING"]),
        (b"  SET  k \t v ", [b"SET", b"k", b"v"]),
        (b"", []),
        (b" \t \x0b\x0c", []),
        (b'SET k "a b"', [b"SET", b"k", b"a b"]),
        (b'ECHO "\\x41\\n\\r\\t\\b\\a\\"\\\\\\q"', [b"ECHO", b'A\n\r\t\b\x07"\\q']),
        (b'ECHO "\\x4g"', [b"ECHO", b"x4g"]),
        (b"ECHO 'it\\'s' 'a\\nb'", [b"ECHO", b"it's", b"a\\nb"]),
        (b'ECHO a"b c"d', None),
        (b'ECHO a"b c" d', [b"ECHO", b"ab c", b"d"]),
        (b'ECHO "unclosed', None),
        (b"ECHO 'unclosed", None),
        (b"ECHO 'x'y", None),
        (b'ECHO ""', [b"ECHO", b""]),
        (b"ECHO a\x00 b", [b"ECHO", b"a"]),
        (b"ECHO \xff\xfe", [b"ECHO", b"\xff\xfe"]),
        (b"ECHO a\x0bb", [b"ECHO", b"a\x0bb"]),
    ],
)
def test_words_split_as_redis_splits_them(line: bytes, words: list[bytes] | None) -> None:
    assert split_words(line) == words


@pytest.mark.spec("PROTO-2", "PROTO-86")
def test_inline_and_resp_commands_mix_on_one_connection() -> None:
    stream = (
        b"PING\r\n"
        + encode_command(b"SET", b"k", b"v")
        + b"\r\n"
        + b"GET k\n"
        + b"  \r\n"
        + encode_command(b"ECHO", b"a\r\nb")
        + b'ECHO "x y"\r\n'
    )
    expected = [[b"PING"], [b"SET", b"k", b"v"], [b"GET", b"k"], [b"ECHO", b"a\r\nb"]]
    expected.append([b"ECHO", b"x y"])
    assert resp_events([stream]) == expected
    assert resp_events(one_byte_at_a_time(stream)) == expected
    assert resp_events_in_batches(one_byte_at_a_time(stream)) == expected


@pytest.mark.spec("PROTO-18", "PROTO-86")
@pytest.mark.parametrize(
    ("stream", "message"),
    [
        (b'PING "x\r\n', "Protocol error: unbalanced quotes in request"),
        (b"PING" + b"x" * 65_537, "Protocol error: too big inline request"),
    ],
)
def test_bad_inline_commands_get_redis_wording(stream: bytes, message: str) -> None:
    for events in (resp_events([b"PING\n" + stream]), resp_events_in_batches([stream])):
        error = events[-1]
        assert isinstance(error, RespProtocolError)
        assert error.message == message


@pytest.mark.spec("PROTO-86", "PROTO-23")
def test_an_endless_inline_line_is_refused_with_bounded_memory() -> None:
    parser = RespParser()
    for _ in range(100):
        parser.receive_data(b"x" * 1000)
        event = parser.next_command()
        if isinstance(event, RespProtocolError):
            break
    assert isinstance(event, RespProtocolError)
    assert parser.buffered == 0


@pytest.mark.spec("PROTO-86")
def test_a_line_exactly_at_the_limit_is_still_a_command() -> None:
    stream = b"ECHO " + b"y" * (65_536 - 5) + b"\n"
    assert resp_events([stream]) == [[b"ECHO", b"y" * (65_536 - 5)]]


@pytest.mark.spec("PROTO-86")
@given(st.lists(st.lists(st.binary(min_size=1).filter(lambda w: b"\0" not in w), min_size=1)))
def test_quoted_words_come_back_as_they_were(commands: list[list[bytes]]) -> None:
    """Any words, each written in double quotes with every byte as a \\x escape."""
    lines = [
        b" ".join(b'"' + b"".join(b"\\x%02x" % byte for byte in word) + b'"' for word in words)
        for words in commands
    ]
    assert resp_events([b"".join(line + b"\r\n" for line in lines)]) == commands
