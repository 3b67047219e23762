"""The two wire protocols of the catlog server, sans-I/O (spec/protocol.md).

Bytes in, events out; replies to bytes. Nothing in this package touches a socket:

* :mod:`~catlog.protocol.line`: the original design's ``PUT``/``GET``/``DELETE`` lines;
* :mod:`~catlog.protocol.resp`: Redis requests (arrays of bulk strings);
* :mod:`~catlog.protocol.replies`: reply values and their RESP2/RESP3 bytes;
* :mod:`~catlog.protocol.pattern`: Redis glob patterns (SCAN MATCH, KEYS, CONFIG GET).

:func:`detect` picks the protocol from a connection's first word (PROTO-1).
"""

from __future__ import annotations

from typing import Final, Literal

from . import inline, line, pattern, replies, resp
from .events import NEED_DATA, NeedData
from .line import LineParser
from .resp import RespParser, RespProtocolError

__all__ = [
    "LINE_COMMANDS",
    "NEED_DATA",
    "LineParser",
    "NeedData",
    "RespParser",
    "RespProtocolError",
    "detect",
    "inline",
    "line",
    "pattern",
    "replies",
    "resp",
]


LINE_COMMANDS: Final = frozenset((b"PUT", b"PUTEX", b"GET", b"DELETE"))
"""PROTO-1: the line protocol's command words (PROTO-4), which its connections start with."""
_LONGEST: Final = max(len(word) for word in LINE_COMMANDS)


def detect(first_bytes: bytes, *, end: bool = False) -> Literal["resp", "line"] | None:
    """PROTO-1: which protocol a connection speaks, from the bytes it sent first.

    ``*`` first means RESP. Otherwise the first word decides: the bytes before the first space,
    CR or LF, after any CR and LF that begin the connection. A line-protocol command word (in
    any case, PROTO-5) means the line protocol; any other word, RESP, read as Redis inline
    commands (PROTO-86). ``None``: the word is not complete yet; with ``end`` (the client sent
    all it will) the word so far decides.
    """
    if not first_bytes:
        raise ValueError("detect() needs at least one byte")
    if first_bytes[0] == 42:
        return "resp"
    rest = first_bytes.lstrip(b"\r\n")
    for stop, byte in enumerate(rest[: _LONGEST + 1]):
        if byte in b" \r\n":
            return "line" if rest[:stop].upper() in LINE_COMMANDS else "resp"
    if len(rest) > _LONGEST:
        return "resp"
    if not end:
        return None
    return "line" if rest.upper() in LINE_COMMANDS or not rest else "resp"
