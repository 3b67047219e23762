"""Reply values and their RESP2/RESP3 encodings (spec/protocol.md, PROTO-30 .. PROTO-34).

A command answers with a *reply value*; :func:`encode` turns a value into the bytes of one
protocol version. Values are plain Python where the mapping is obvious and a small frozen
dataclass where it is not:

=====================  ===============================  =================================
value                  RESP2                            RESP3
=====================  ===============================  =================================
``bytes``              bulk string ``$3\\r\\nabc\\r\\n``   the same
``int``                integer ``:42\\r\\n``              the same
``None``               null bulk ``$-1\\r\\n``            null ``_\\r\\n``
``SimpleString``       ``+OK\\r\\n``                      the same
``Error``              ``-ERR message\\r\\n``             the same
``list``               array ``*n\\r\\n...``              the same
``Map``                flat array of 2n items           map ``%n\\r\\n...``
``RespSet``            array                            set ``~n\\r\\n...``
``Verbatim``           bulk string of the text          ``=len\\r\\ntxt:text\\r\\n``
``NULL_ARRAY``         ``*-1\\r\\n``                      null ``_\\r\\n``
=====================  ===============================  =================================

Error and simple-string texts can never break the framing: CR and LF in them are sent as
spaces (PROTO-32), as Redis does.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, TypeAlias


@dataclass(frozen=True, slots=True)
class SimpleString:
    """A status reply such as ``+OK``; ``value`` is sent as is, CR and LF become spaces."""

    value: bytes


@dataclass(frozen=True, slots=True)
class Error:
    """An error reply. ``message`` starts with the error code: ``"ERR syntax error"``.

    Bytes that came from the client (an unknown command's name, say) are carried in the string
    with ``surrogateescape``, so that :func:`encode` gives back exactly the bytes received.
    """

    message: str


@dataclass(frozen=True, slots=True)
class Map:
    """A map reply: RESP3 ``%``, flattened into an array of keys and values for RESP2."""

    pairs: tuple[tuple[Reply, Reply], ...]


@dataclass(frozen=True, slots=True)
class RespSet:
    """A set reply: RESP3 ``~``, an array for RESP2."""

    items: tuple[Reply, ...]


@dataclass(frozen=True, slots=True)
class Verbatim:
    """A verbatim string (RESP3 ``=``, e.g. INFO's text); a bulk string for RESP2."""

    text: bytes
    format: bytes = b"txt"


class NullArray(enum.Enum):
    """The null array: RESP2 ``*-1``, RESP3 ``_``. Only one value exists: :data:`NULL_ARRAY`."""

    NULL_ARRAY = "NULL_ARRAY"


NULL_ARRAY: Final = NullArray.NULL_ARRAY

Reply: TypeAlias = (
    "bytes | int | SimpleString | Error | list[Reply] | Map | RespSet | Verbatim | NullArray | None"
)
"""Everything a command can answer."""

OK: Final = SimpleString(b"OK")
PONG: Final = SimpleString(b"PONG")

_OK_BYTES: Final = b"+OK\r\n"
_NULL2: Final = b"$-1\r\n"
_NULL3: Final = b"_\r\n"


def _one_line(text: bytes) -> bytes:
    """PROTO-32: a line-framed reply cannot carry CR or LF; they are sent as spaces."""
    if b"\r" in text or b"\n" in text:
        return text.replace(b"\r", b" ").replace(b"\n", b" ")
    return text


def error_bytes(message: str) -> bytes:
    """The wire form of an error reply (the same in RESP2 and RESP3)."""
    return b"-" + _one_line(message.encode("utf-8", "surrogateescape")) + b"\r\n"


def encode(reply: Reply, protocol: int = 2) -> bytes:
    """The bytes of ``reply`` in RESP ``protocol`` (2 or 3)."""
    # Most frequent first: GET answers bytes or None, SET answers OK.
    if isinstance(reply, bytes):
        return b"$%d\r\n%b\r\n" % (len(reply), reply)
    if reply is OK:
        return _OK_BYTES
    if reply is None:
        return _NULL3 if protocol == 3 else _NULL2
    if isinstance(reply, int):
        return b":%d\r\n" % reply
    if isinstance(reply, SimpleString):
        return b"+" + _one_line(reply.value) + b"\r\n"
    if isinstance(reply, Error):
        return error_bytes(reply.message)
    if isinstance(reply, list):
        return b"*%d\r\n" % len(reply) + b"".join([encode(item, protocol) for item in reply])
    if isinstance(reply, Map):
        items = [encode(part, protocol) for pair in reply.pairs for part in pair]
        head = b"%%%d\r\n" % len(reply.pairs) if protocol == 3 else b"*%d\r\n" % len(items)
        return head + b"".join(items)
    if isinstance(reply, RespSet):
        head = b"~%d\r\n" if protocol == 3 else b"*%d\r\n"
        return head % len(reply.items) + b"".join([encode(i, protocol) for i in reply.items])
    if isinstance(reply, Verbatim):
        if protocol == 3:
            return b"=%d\r\n%b:%b\r\n" % (len(reply.text) + 4, reply.format, reply.text)
        return b"$%d\r\n%b\r\n" % (len(reply.text), reply.text)
    assert reply is NULL_ARRAY, f"not a reply value: {reply!r}"
    return _NULL3 if protocol == 3 else b"*-1\r\n"


def encode_many(replies: Iterable[Reply], protocol: int = 2) -> bytes:
    """The replies to a batch of pipelined commands, as one ``bytes`` to write at once."""
    return b"".join([encode(reply, protocol) for reply in replies])
