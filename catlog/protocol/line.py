"""The line protocol of the original design: bytes in, requests out (spec/protocol.md, PROTO-4..15).

Theory of operation
-------------------
A client sends one request per line and gets one reply line for each::

    PUT name Bob      ->  OK
    PUTEX tmp 60 x    ->  OK            (tmp expires in 60 seconds)
    GET name          ->  VALUE Bob
    DELETE name       ->  OK
    GET name          ->  NOT_FOUND

The server hands whatever it read to :meth:`LineParser.receive_data` (``b""`` for the end of
input) and calls :meth:`LineParser.next_event` until it answers :data:`NEED_DATA`. Each call
returns a request (:class:`Put`, :class:`Get`, :class:`Delete`), a :class:`LineError` (the
server answers ``ERROR <message>`` and goes on: the connection stays usable, PROTO-11), or
:data:`NEED_DATA`. :func:`parse_line` is the grammar of one line; :func:`encode_reply` turns a
reply into its line.

The reader has two states; the transitions, as data, are :data:`TRANSITIONS`::

    state     input                                   next state
    -------   -------------------------------------   ----------
    LINE      a line (up to LF) within the limit      LINE        (a request or an error)
    LINE      max_line_length bytes and still no LF   DISCARD     (one LineError)
    DISCARD   bytes without LF                        DISCARD     (dropped, not buffered)
    DISCARD   a LF                                    LINE

So an endless line costs one error and at most ``max_line_length`` bytes of memory (PROTO-12),
plus the most recent read.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from .events import NEED_DATA, NeedData

MAX_LINE_LENGTH: Final = 1024 * 1024
"""PROTO-12: the longest request line, without its line ending (1 MiB)."""


@dataclass(frozen=True, slots=True)
class Put:
    key: bytes
    value: bytes


@dataclass(frozen=True, slots=True)
class PutEx:
    """PROTO-58: ``PUTEX <key> <seconds> <value>``, a PUT whose key expires after ``seconds``."""

    key: bytes
    ttl_ms: int
    value: bytes


@dataclass(frozen=True, slots=True)
class Get:
    key: bytes


@dataclass(frozen=True, slots=True)
class Delete:
    key: bytes


@dataclass(frozen=True, slots=True)
class LineError:
    """A line that is not a request; the server answers ``ERROR <message>`` and goes on."""

    message: str


LineRequest = Put | PutEx | Get | Delete
LineEvent = Put | PutEx | Get | Delete | LineError | NeedData
WRITES: Final = (Put, PutEx)
"""The requests that only write: a connection need not wait for its earlier writes to run them."""

MAX_TTL_SECONDS: Final = 10**12
"""PROTO-58: the largest ttl PUTEX takes, about 31,700 years."""


# ------------------------------------------------------------------------------- replies


class Status(enum.Enum):
    OK = "OK"
    NOT_FOUND = "NOT_FOUND"


OK: Final = Status.OK
NOT_FOUND: Final = Status.NOT_FOUND


@dataclass(frozen=True, slots=True)
class Value:
    """The answer to a GET that found a value: ``VALUE <value>``."""

    value: bytes


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """``ERROR <message>``: for a LineError, or a request the store refused."""

    message: str


LineReply = Status | Value | ErrorReply

UNSENDABLE_VALUE: Final = "the value holds CR or LF, which a line cannot carry; read it with RESP"
"""PROTO-13: the error a GET answers instead of a value the line protocol cannot express."""


def encode_reply(reply: LineReply) -> bytes:
    """The reply line for ``reply``, ending in LF (PROTO-10)."""
    if isinstance(reply, Value):
        value = reply.value
        if b"\n" in value or b"\r" in value:
            return encode_reply(ErrorReply(UNSENDABLE_VALUE))
        return b"VALUE " + value + b"\n"
    if isinstance(reply, ErrorReply):
        text = reply.message.encode("utf-8", "surrogateescape")
        return b"ERROR " + text.replace(b"\r", b" ").replace(b"\n", b" ") + b"\n"
    return b"OK\n" if reply is OK else b"NOT_FOUND\n"


# ------------------------------------------------------------------------------- grammar

_ECHO_LIMIT: Final = 64


def _shown(word: bytes) -> str:
    text = word[:_ECHO_LIMIT].decode("utf-8", "surrogateescape")
    return text + "..." if len(word) > _ECHO_LIMIT else text


def parse_line(line: bytes) -> LineRequest | LineError | None:
    """One line without its LF (a CR before the LF is allowed); None for an empty line."""
    if line.endswith(b"\r"):
        line = line[:-1]
    if not line:
        return None  # PROTO-6: empty lines are skipped, not answered
    if b"\r" in line:
        return LineError("CR is allowed only at the end of a line")
    word, space, rest = line.partition(b" ")
    command = word.upper()  # PROTO-5: command words are case-insensitive
    if command == b"PUT":
        key, space2, value = rest.partition(b" ")
        if not space or not key or not space2:
            return LineError("usage: PUT <key> <value>")
        return Put(key, value)
    if command == b"PUTEX":
        key, space2, rest = rest.partition(b" ")
        seconds, space3, value = rest.partition(b" ")
        if not space or not key or not space2 or not space3:
            return LineError("usage: PUTEX <key> <seconds> <value>")
        if not seconds.isdigit() or not 0 < int(seconds) <= MAX_TTL_SECONDS:
            return LineError(
                f"PUTEX needs whole seconds from 1 to {MAX_TTL_SECONDS}, not '{_shown(seconds)}'"
            )
        return PutEx(key, int(seconds) * 1000, value)
    if command in {b"GET", b"DELETE"}:
        if not space or not rest or b" " in rest:
            return LineError(f"usage: {command.decode()} <key>")
        return Get(rest) if command == b"GET" else Delete(rest)
    return LineError(f"unknown command '{_shown(word)}'; expected PUT, PUTEX, GET or DELETE")


# ------------------------------------------------------------------------------- reader


class State(enum.Enum):
    LINE = "LINE"
    DISCARD = "DISCARD"


TRANSITIONS: Final[frozenset[tuple[State, State]]] = frozenset(
    {
        (State.LINE, State.LINE),
        (State.LINE, State.DISCARD),
        (State.DISCARD, State.DISCARD),
        (State.DISCARD, State.LINE),
    }
)


class LineParser:
    """Reads line-protocol requests from a byte stream; one per connection."""

    __slots__ = ("_buf", "_eof", "_max_line", "_scanned", "state")

    def __init__(self, *, max_line_length: int = MAX_LINE_LENGTH) -> None:
        self._max_line: Final = max_line_length
        self._buf = bytearray()
        self._scanned = 0  # no LF in _buf[:_scanned]: the next search starts there
        self._eof = False
        self.state = State.LINE

    @property
    def buffered(self) -> int:
        """Bytes received and held, not yet turned into events."""
        return len(self._buf)

    def receive_data(self, data: bytes) -> None:
        """Add bytes read from the connection; ``b""`` means the end of input (PROTO-14)."""
        if not data:
            self._eof = True
            return
        if self.state is State.DISCARD:
            newline = data.find(b"\n")
            if newline < 0:
                return  # still inside the overlong line: drop, do not buffer
            data = data[newline + 1 :]
            self.state = State.LINE
        self._buf += data

    def next_event(self) -> LineEvent:
        """The next request or LineError, or :data:`NEED_DATA`."""
        buf = self._buf
        while True:
            newline = buf.find(b"\n", self._scanned)
            if newline < 0:
                if len(buf) > self._max_line + 1:  # + 1: a CR may be waiting for its LF
                    # PROTO-12: one error, then drop the rest of the line as it arrives.
                    buf.clear()
                    self._scanned = 0
                    self.state = State.DISCARD
                    return LineError(f"line too long (the limit is {self._max_line} bytes)")
                if self._eof and buf:
                    line = bytes(buf)  # PROTO-14: a last line without LF still counts
                    buf.clear()
                    self._scanned = 0
                else:
                    self._scanned = len(buf)
                    return NEED_DATA
            else:
                line = bytes(buf[:newline])
                del buf[: newline + 1]
                self._scanned = 0
                if len(line) - line.endswith(b"\r") > self._max_line:
                    return LineError(f"line too long (the limit is {self._max_line} bytes)")
            event = parse_line(line)
            if event is not None:
                return event
