"""Choosing the protocol from a connection's first byte (catlog/protocol/__init__.py)."""

from __future__ import annotations

import pytest

from catlog.protocol import detect


@pytest.mark.spec("PROTO-1")
@pytest.mark.parametrize(
    ("first", "protocol"),
    [(b"*1\r\n", "resp"), (b"*", "resp"), (b"PUT a b\n", "line"), (b"\x00", "line")],
)
def test_the_first_byte_decides(first: bytes, protocol: str) -> None:
    assert detect(first) == protocol


@pytest.mark.spec("PROTO-2")
def test_an_inline_redis_command_is_a_line_protocol_connection() -> None:
    assert detect(b"PING\r\n") == "line"


def test_detect_needs_a_byte() -> None:
    with pytest.raises(ValueError, match="at least one byte"):
        detect(b"")
