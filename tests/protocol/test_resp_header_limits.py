"""RESP header lines at their limits: an over-long count arriving whole, and minus zero."""

from __future__ import annotations

import pytest

from catlog.protocol import RespProtocolError
from catlog.protocol.resp import MAX_LINE_LENGTH

from .feeding import one_byte_at_a_time, resp_events


def error_message(chunks: list[bytes]) -> str:
    """The message of the error the reader ends with, fed ``chunks``."""
    events = resp_events(chunks)
    assert events, "the stream gives an error"
    assert isinstance(events[-1], RespProtocolError), f"expected an error, got {events[-1]!r}"
    return events[-1].message


@pytest.mark.spec("PROTO-19")
def test_an_over_long_multibulk_count_arriving_whole_gets_the_too_big_error() -> None:
    """With its CRLF in the same read the count is too long, not merely invalid."""
    stream = b"*" + b"1" * (MAX_LINE_LENGTH + 5) + b"\r\n"
    expected = "Protocol error: too big mbulk count string"
    assert error_message([stream]) == expected
    assert error_message([stream[i : i + 1000] for i in range(0, len(stream), 1000)]) == expected


@pytest.mark.spec("PROTO-18")
@pytest.mark.parametrize(
    ("stream", "message"),
    [
        (b"*-0\r\n", "Protocol error: invalid multibulk length"),
        (b"*1\r\n$-0\r\n", "Protocol error: invalid bulk length"),
    ],
)
def test_minus_zero_is_not_a_length(stream: bytes, message: str) -> None:
    assert error_message([stream]) == message
    assert error_message(one_byte_at_a_time(stream)) == message
