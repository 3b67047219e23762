"""How commands read their arguments and word their refusals, in Redis 7's words.

Clauses: PROTO-29 (unknown command), PROTO-30 (wrong arity), PROTO-31 (integers as strict as
Redis's), PROTO-36 and PROTO-55 (expiry amounts), PROTO-54 (a store error as ``-ERR``).
"""

from __future__ import annotations

import logging
from typing import Final

from catlog.errors import CatlogError
from catlog.protocol.replies import Error, Reply, SimpleString

from .context import KeyValueStore

SYNTAX_ERROR: Final = Error("ERR syntax error")
NOT_AN_INTEGER: Final = Error("ERR value is not an integer or out of range")
INVALID_CURSOR: Final = Error("ERR invalid cursor")


def _text(data: bytes) -> str:
    """Client bytes inside an error message; encode() gives back the same bytes."""
    return data.decode("utf-8", "surrogateescape")


def _c_string(data: bytes, limit: int) -> bytes:
    """What C's ``%.<limit>s`` prints of ``data``: up to the first NUL, at most limit bytes."""
    return data.split(b"\0", 1)[0][:limit]


def unknown_command(args: list[bytes]) -> Error:
    """PROTO-29: Redis 7's ``unknown command`` error, byte for byte (server.c)."""
    shown = b""
    for arg in args[1:]:
        if len(shown) >= 128:
            break
        shown += b"'" + _c_string(arg, 128 - len(shown)) + b"' "
    name = _c_string(args[0], 128)
    return Error(_text(b"ERR unknown command '%b', with args beginning with: %b" % (name, shown)))


def wrong_arity(name: str) -> Error:
    """PROTO-30: ``name`` is Redis's full name: ``get``, or ``config|get`` for a subcommand."""
    return Error(f"ERR wrong number of arguments for '{name}' command")


def unknown_subcommand(args: list[bytes]) -> Error:
    container = _text(args[0]).upper()
    return Error(
        f"ERR unknown subcommand '{_text(_c_string(args[1], 128))}'. Try {container} HELP."
    )


def _store_error(exc: CatlogError) -> Error:
    """PROTO-54: a store error becomes ``-ERR <message>``; the connection goes on."""
    return Error(f"ERR {exc}")


log = logging.getLogger("catlog.server")


def internal_error(name: str, exc: Exception, *, logged: bool = False) -> str:
    """PROTO-114: a command failed with an error no clause foresees, a defect in catlog. The
    traceback goes to the log once, at ERROR (unless ``logged`` says it went already, for the
    other commands of a run that failed together); the message the client gets names the command
    and the kind of error, so that a report of it can be matched with that log entry. Redis has
    no such reply (a defect there stops the server), so the words are catlog's."""
    if not logged:
        log.error("[INTERNAL ERROR] '%s' command: %r", name, exc, exc_info=exc)
    return f"internal error in '{name}' command: {type(exc).__name__}"


_INT64_MIN: Final = -(1 << 63)
_INT64_MAX: Final = (1 << 63) - 1


def parse_int(data: bytes) -> int | None:
    """A signed 64-bit decimal as strict as Redis's string2ll, or None (PROTO-31)."""
    if data.isdigit() and len(data) < 19 and (data[0] != 48 or len(data) == 1):
        return int(data)  # the common case, first: the loop benchmark's INCR parses its value
    digits = data[1:] if data[:1] == b"-" else data
    if not digits.isdigit() or len(digits) > 19 or (digits[0] == 48 and len(data) > 1):
        return None
    value = int(data)
    return value if _INT64_MIN <= value <= _INT64_MAX else None


def _expiry_ms(store: KeyValueStore, amount: bytes, unit: bytes, command: str) -> int | Error:
    """PROTO-36, PROTO-55: an expiry option's amount as absolute ms, with Redis 7's checks.

    ``unit`` is ``EX``/``PX`` (relative seconds or ms) or ``EXAT``/``PXAT`` (absolute). SET
    refuses amounts of zero or less; EXPIRE takes them (its key is then deleted). A result
    that would not fit a signed 64-bit integer is an invalid expire time, as in Redis.
    """
    value = parse_int(amount)
    if value is None:
        return NOT_AN_INTEGER
    invalid = Error(f"ERR invalid expire time in '{command}' command")
    seconds = unit in (b"EX", b"EXAT")
    positive = command in _POSITIVE_EXPIRY
    if (positive and value <= 0) or (seconds and not -_MS_LIMIT <= value <= _MS_LIMIT):
        return invalid
    when = value * 1000 if seconds else value
    if unit in (b"EX", b"PX"):
        when += store.now_ms()
        if when > _INT64_MAX:
            return invalid
    if positive and when <= 0:
        return invalid
    return when


_MS_LIMIT: Final = (1 << 63) // 1000
_POSITIVE_EXPIRY: Final = frozenset(("set", "getex", "setex", "psetex"))
"""The commands whose expiry amount must be above zero (Redis's getExpireMillisecondsOrReply)."""


def _help(lines: tuple[str, ...]) -> Reply:
    return [SimpleString(text.encode()) for text in lines]
