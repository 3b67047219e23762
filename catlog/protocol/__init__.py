"""The two wire protocols of the catlog server, sans-I/O (spec/protocol.md).

Bytes in, events out; replies to bytes. Nothing in this package touches a socket:

* :mod:`~catlog.protocol.line`: the original design's ``PUT``/``GET``/``DELETE`` lines;
* :mod:`~catlog.protocol.resp`: Redis requests (arrays of bulk strings);
* :mod:`~catlog.protocol.replies`: reply values and their RESP2/RESP3 bytes;
* :mod:`~catlog.protocol.pattern`: Redis glob patterns (SCAN MATCH, KEYS, CONFIG GET).

:func:`detect` picks the protocol from a connection's first byte (PROTO-1).
"""

from __future__ import annotations

from typing import Literal

from . import line, pattern, replies, resp
from .events import NEED_DATA, NeedData
from .line import LineParser
from .resp import RespParser, RespProtocolError

__all__ = [
    "NEED_DATA",
    "LineParser",
    "NeedData",
    "RespParser",
    "RespProtocolError",
    "detect",
    "line",
    "pattern",
    "replies",
    "resp",
]


def detect(first_bytes: bytes) -> Literal["resp", "line"]:
    """PROTO-1: ``*`` as the first byte means RESP; anything else, the line protocol.

    ``first_bytes`` is the first read of the connection and must not be empty.
    """
    if not first_bytes:
        raise ValueError("detect() needs at least one byte")
    return "resp" if first_bytes[0] == 42 else "line"
