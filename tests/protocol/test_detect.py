"""Choosing the protocol from a connection's first word (catlog/protocol/__init__.py)."""

from __future__ import annotations

import pytest

from catlog.protocol import detect


@pytest.mark.spec("PROTO-1")
@pytest.mark.parametrize(
    ("first", "protocol"),
    [
        (b"*1\r\n", "resp"),
        (b"*", "resp"),
        (b"PUT a b\n", "line"),
        (b"put a b\n", "line"),
        (b"PUTEX a 10 b\n", "line"),
        (b"GET a\r\n", "line"),
        (b"DELETE a\n", "line"),
        (b"\r\n\r\nGET a\n", "line"),
        (b"GET\n", "line"),
        (b"PING\r\n", "resp"),
        (b"ping\n", "resp"),
        (b"FROB a\n", "resp"),
        (b" PUT a b\n", "resp"),
        (b"\x00", None),
        (b"PUTE", None),
        (b"GETX a\n", "resp"),
        (b"DELETES", "resp"),
        (b"\r\n", None),
    ],
)
def test_the_first_word_decides(first: bytes, protocol: str | None) -> None:
    assert detect(first) == protocol


@pytest.mark.spec("PROTO-1")
@pytest.mark.parametrize(
    ("first", "protocol"),
    [(b"GET", "line"), (b"PIN", "resp"), (b"\x00", "resp"), (b"\r\n", "line")],
)
def test_at_the_end_of_input_the_word_so_far_decides(first: bytes, protocol: str) -> None:
    assert detect(first, end=True) == protocol


@pytest.mark.spec("PROTO-1")
def test_the_decision_is_the_same_however_the_word_arrives() -> None:
    for first in (b"PUTEX a 1 b\n", b"PING\r\n", b"DELETE k\n", b"HELLO 3\r\n"):
        decided = [detect(first[:n]) for n in range(1, len(first) + 1)]
        settled = [kind for kind in decided if kind is not None]
        assert settled, first
        assert set(settled) == {detect(first)}, first
        assert decided.index(settled[0]) + settled.count(settled[0]) == len(decided)


def test_detect_needs_a_byte() -> None:
    with pytest.raises(ValueError, match="at least one byte"):
        detect(b"")
