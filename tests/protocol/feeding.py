"""Helpers that feed a reader a byte stream in given pieces and collect what it yields."""

from __future__ import annotations

import itertools
from collections.abc import Iterable

from hypothesis import strategies as st

from catlog.protocol import NEED_DATA, LineParser, RespParser, RespProtocolError
from catlog.protocol.line import LineEvent
from catlog.protocol.resp import RespEvent


def resp_events(chunks: Iterable[bytes], parser: RespParser | None = None) -> list[RespEvent]:
    """Every command the reader yields, ending with its error if it breaks."""
    parser = parser if parser is not None else RespParser()
    out: list[RespEvent] = []
    for chunk in chunks:
        parser.receive_data(chunk)
        while True:
            event = parser.next_command()
            if event is NEED_DATA:
                break
            out.append(event)
            if isinstance(event, RespProtocolError):
                return out
    return out


def resp_events_in_batches(chunks: Iterable[bytes]) -> list[RespEvent]:
    """As :func:`resp_events`, through :meth:`RespParser.next_commands` (the server's way)."""
    parser = RespParser()
    out: list[RespEvent] = []
    for chunk in chunks:
        parser.receive_data(chunk)
        while True:
            batch = parser.next_commands()
            if batch is NEED_DATA:
                break
            if isinstance(batch, RespProtocolError):
                out.append(batch)
                return out
            assert batch, "a batch is never empty"
            out.extend(batch)
    return out


def line_events(
    chunks: Iterable[bytes], parser: LineParser | None = None, *, eof: bool = False
) -> list[LineEvent]:
    parser = parser if parser is not None else LineParser()
    out: list[LineEvent] = []
    for chunk in [*chunks, b""] if eof else chunks:
        parser.receive_data(chunk)
        while (event := parser.next_event()) is not NEED_DATA:
            out.append(event)
    return out


def one_byte_at_a_time(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


@st.composite
def splits(draw: st.DrawFn, data: bytes) -> list[bytes]:
    """``data`` cut at arbitrary points, never into empty pieces (``b""`` means end of input)."""
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(data) - 1)), max_size=12)))
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds) if a < b]
