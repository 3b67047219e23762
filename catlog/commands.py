"""The command layer: requests of either protocol run against a store (spec/protocol.md, 4-5).

The server parses bytes into requests (:mod:`catlog.protocol`), hands each to this module and
encodes what comes back. Nothing here touches a socket or the clock directly: a RESP
:class:`Session` holds one connection's state (protocol version, client name, whether QUIT was
seen) and :meth:`Session.execute` turns ``[b"SET", b"k", b"v"]`` into a reply value
(:mod:`catlog.protocol.replies`); :func:`execute_line` does the same for the line protocol.

The commands are data: :data:`COMMANDS` maps each name to a :class:`Command` with Redis's arity
convention (``n``: exactly n words, the name included; ``-n``: at least n), the flags COMMAND
reports, and the function that runs it. Errors use Redis 7's words (PROTO-29 .. PROTO-31).
"""

from __future__ import annotations

import bisect
import collections
import contextlib
import random
import resource
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Final, Protocol, runtime_checkable

from . import __version__, longdouble
from .batch import BatchOp
from .clock import Clock, SystemClock
from .codec import MAX_VALUE_SIZE
from .errors import CatlogError, StoreClosedError, StoreFailedError
from .multi import EngineTransaction, TransactionView, Watches
from .protocol import line
from .protocol.pattern import glob_match
from .protocol.replies import (
    NULL_ARRAY,
    OK,
    PONG,
    Error,
    Map,
    Reply,
    RespSet,
    SimpleString,
    Verbatim,
)
from .store import StoreStats

REDIS_VERSION: Final = "7.2.0"
"""The Redis version whose behaviour catlog follows; HELLO and INFO report it (PROTO-46)."""


class KeyValueStore(Protocol):
    """What the commands need from a store; :class:`catlog.Store` is one."""

    def get(self, key: bytes) -> bytes | None: ...

    def get_many(self, keys: list[bytes]) -> list[bytes | None]: ...

    def put(self, key: bytes, value: bytes, *, expires_at_ms: int = ...) -> object: ...

    def delete(self, key: bytes) -> bool: ...

    def write_batch(self, ops: list[BatchOp]) -> object: ...

    def expire_at(self, key: bytes, expires_at_ms: int) -> bool: ...

    def persist(self, key: bytes) -> bool: ...

    def expires_at(self, key: bytes) -> int | None: ...

    def now_ms(self) -> int: ...

    def compact_in_background(self) -> bool: ...

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[bytes]: ...

    def __contains__(self, key: object) -> bool: ...

    def transaction(self) -> AbstractContextManager[EngineTransaction]: ...


@runtime_checkable
class StatsSource(Protocol):
    """A store that can say how big it is on disk, for ``INFO persistence`` (PROTO-46)."""

    def stats(self) -> StoreStats: ...


@runtime_checkable
class FailureSource(Protocol):
    """A store that can say why it refuses writes, for ``INFO persistence`` (PROTO-70)."""

    @property
    def failure(self) -> StoreFailedError | None: ...


class SaveRecord:
    """PROTO-92: the wall-clock second of the last successful SAVE; 0: none since the start."""

    __slots__ = ("at",)

    def __init__(self) -> None:
        self.at = 0


class ServerCounters:
    """PROTO-101: what INFO's clients and stats sections count, kept by the server.

    ``instantaneous_ops_per_sec`` follows Redis's design: the server calls :meth:`sample`
    every 100 ms, which keeps the last 16 readings of the command count, and the rate is the
    count's growth across those readings (about 1.6 s) divided by the time they span.
    """

    __slots__ = ("_samples", "commands", "connected", "connections", "hits", "misses")

    SAMPLES: Final = 16

    def __init__(self) -> None:
        self.commands = 0
        """Commands read from RESP connections (PROTO-101)."""
        self.connected = 0
        self.connections = 0
        """Connections accepted since the start."""
        self.hits = 0
        self.misses = 0
        self._samples: collections.deque[tuple[float, int]] = collections.deque(maxlen=self.SAMPLES)

    def sample(self, now: float) -> None:
        self._samples.append((now, self.commands))

    def ops_per_sec(self) -> int:
        if len(self._samples) < 2:
            return 0
        (first, before), (last, after) = self._samples[0], self._samples[-1]
        return round((after - before) / (last - first)) if last > first else 0


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """What INFO, HELLO and CONFIG GET say about the server around the sessions."""

    tcp_port: int = 0
    process_id: int = 0
    os: str = ""
    fsync: str = "always"
    clock: Clock = field(default_factory=SystemClock)
    started: float = 0.0
    """The clock's monotonic reading when the server started, for uptime."""
    saves: SaveRecord = field(default_factory=SaveRecord)
    """PROTO-92: when SAVE last succeeded, for LASTSAVE."""
    counters: ServerCounters = field(default_factory=ServerCounters)
    idle_timeout: float = 0.0
    """CONFIG GET timeout (PROTO-48): seconds before an idle connection is closed; 0: never."""
    max_clients: int = 0


@runtime_checkable
class Syncable(Protocol):
    """A store that can make every write so far durable, for SAVE (PROTO-92)."""

    def sync(self) -> None: ...


# ----------------------------------------------------------------------------------- SCAN

_ORDER_MASK: Final = (1 << 63) - 1


def _scan_order(key: bytes) -> int:
    """A key's place in every SCAN walk (PROTO-42): its hash, below 2^63 so that the cursor
    after it still fits Redis's unsigned 64-bit cursor. Python's hash of bytes is fixed for the
    life of the process and cached in the object, so it costs nothing the second time."""
    return hash(key) & _ORDER_MASK


# ----------------------------------------------------------------------------------- errors

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


_INT64_MIN: Final = -(1 << 63)
_INT64_MAX: Final = (1 << 63) - 1


def parse_int(data: bytes) -> int | None:
    """A signed 64-bit decimal as strict as Redis's string2ll, or None (PROTO-31)."""
    digits = data[1:] if data[:1] == b"-" else data
    if not digits.isdigit() or len(digits) > 19 or (digits[0] == 48 and len(data) > 1):
        return None
    value = int(data)
    return value if _INT64_MIN <= value <= _INT64_MAX else None


# ----------------------------------------------------------------------------------- the session


class Session:
    """One RESP connection's state; :meth:`execute` runs one command and returns its reply."""

    __slots__ = (
        "client_id",
        "closing",
        "dirty",
        "lib_name",
        "lib_ver",
        "name",
        "protocol",
        "queue",
        "queue_failed",
        "scan_order",
        "server",
        "store",
        "watched",
        "watches",
    )

    def __init__(
        self,
        store: KeyValueStore,
        *,
        client_id: int = 0,
        server: ServerInfo | None = None,
        watches: Watches | None = None,
        scan_order: ScanOrder | None = None,
    ) -> None:
        self.store: KeyValueStore = store
        """The store the commands run on; during an EXEC, its transaction (PROTO-85)."""
        self.client_id: Final = client_id
        self.server: Final = server if server is not None else ServerInfo()
        self.protocol = 2
        """PROTO-27: the RESP version replies are encoded in; HELLO changes it."""
        self.name: bytes | None = None
        self.lib_name: bytes | None = None
        self.lib_ver: bytes | None = None
        self.closing = False
        """Set by QUIT: send the replies so far, then close the connection (PROTO-51)."""
        self.watches: Final = watches if watches is not None else Watches()
        """PROTO-84: the server's registry of watched keys, shared by its sessions."""
        self.scan_order: Final = scan_order if scan_order is not None else ScanOrder()
        """PROTO-42: the keys in walk order, shared by the server's sessions."""
        self.queue: list[list[bytes]] | None = None
        """PROTO-80: the commands queued since MULTI; ``None`` outside a transaction."""
        self.queue_failed = False
        """PROTO-81: a command was refused while queueing, so EXEC will run nothing."""
        self.watched: dict[bytes, int | None] = {}
        """PROTO-84: each watched key and its expiry when WATCH ran (``None``: none, or no
        value), for the expiry check at EXEC."""
        self.dirty = False
        """PROTO-84: a watched key was touched since WATCH; set by :attr:`watches`."""

    def execute(self, args: list[bytes]) -> Reply:
        """Run one command (a non-empty list of words) and return its reply value."""
        if not args:
            return Error("ERR empty command")
        command = COMMANDS.get(args[0]) or COMMANDS.get(args[0].lower())
        if self.queue is not None:
            return self._queue(command, args)
        if command is None:
            return unknown_command(args)
        arity = command.arity
        if (arity > 0 and len(args) != arity) or len(args) < -arity:
            return self._refuse(command, wrong_arity(command.name))
        try:
            return command.run(self, args)
        except CatlogError as exc:
            return _store_error(exc)

    def _queue(self, command: Command | None, args: list[bytes]) -> Reply:
        """PROTO-80, PROTO-81: inside MULTI a command is checked and queued, not run; the
        transaction commands themselves (and QUIT) run at once, as in Redis's processCommand."""
        assert self.queue is not None, "only inside MULTI"
        if command is None:
            self.queue_failed = True
            return unknown_command(args)
        arity = command.arity
        if (arity > 0 and len(args) != arity) or len(args) < -arity:
            self.queue_failed = True
            return self._refuse(command, wrong_arity(command.name))
        if command.name in _RUN_INSIDE_MULTI:
            return command.run(self, args)
        if "no_multi" in command.flags:
            self.queue_failed = True
            return Error("ERR Command not allowed inside a transaction")
        if not self.queue_failed and not self.dirty:  # EXEC will run nothing: keep nothing
            self.queue.append(args)
        return QUEUED

    def _refuse(self, command: Command, error: Error) -> Error:
        """PROTO-81: a refused EXEC ends the transaction (if any) and forgets the watched keys,
        as Redis's rejectCommand does."""
        if command.name != "exec":
            return error
        self.queue = None
        self.queue_failed = False
        self.unwatch()
        return Error(f"EXECABORT Transaction discarded because of: {error.message[4:]}")

    def unwatch(self) -> None:
        """PROTO-84: forget every watched key, and that one was touched."""
        if self.watched:
            self.watches.unwatch(self, iter(self.watched))
            self.watched = {}
        self.dirty = False

    def close(self) -> None:
        """The connection ended: its watches go, and its queued commands are dropped."""
        self.unwatch()
        self.queue = None


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    """Lower case, as COMMAND and the arity error show it."""
    arity: int
    flags: tuple[str, ...]
    first_key: int
    last_key: int
    step: int
    run: Callable[[Session, list[bytes]], Reply]
    categories: tuple[str, ...] = ()


# ----------------------------------------------------------------------------------- keys


def _get(session: Session, args: list[bytes]) -> Reply:
    """PROTO-34"""
    value = session.store.get(args[1])
    counters = session.server.counters
    if value is None:
        counters.misses += 1
    else:
        counters.hits += 1
    return value


def _set(session: Session, args: list[bytes]) -> Reply:
    """PROTO-35, PROTO-36: SET key value [NX | XX] [GET] [EX s | PX ms | EXAT | PXAT | KEEPTTL]"""
    store = session.store
    if len(args) == 3:  # the hot path: no options
        store.put(args[1], args[2])
        session.watches.touch(args[1])
        return OK
    nx = xx = get = keepttl = False
    expiry: bytes | None = None
    expire_arg = b""
    i = 3
    while i < len(args):
        option = args[i].upper()
        has_next = i + 1 < len(args)
        if option == b"NX" and not xx:
            nx = True
        elif option == b"XX" and not nx:
            xx = True
        elif option == b"GET":
            get = True
        elif option == b"KEEPTTL" and expiry is None:
            keepttl = True
        elif (
            option in (b"EX", b"PX", b"EXAT", b"PXAT")
            and not keepttl
            and has_next
            and (expiry is None or expiry == option)
        ):
            expiry = option
            expire_arg = args[i + 1]
            i += 1
        else:
            return SYNTAX_ERROR
        i += 1
    expires_at = 0
    if expiry is not None:
        when = _expiry_ms(store, expire_arg, expiry, "set")
        if isinstance(when, Error):
            return when
        expires_at = when
    key = args[1]
    if not (get or nx or xx or keepttl):
        if expires_at:
            store.put(key, args[2], expires_at_ms=expires_at)
        else:
            store.put(key, args[2])
        session.watches.touch(key)
        return OK
    # PROTO-93: judged on the newest state, so two clients' SET NX cannot both store.
    with store.transaction() as tx:
        old = tx.get(key)
        if (nx and old is not None) or (xx and old is None):
            return old if get else None
        if keepttl and not expires_at and old is not None:
            expires_at = tx.expires_at(key) or 0
        tx.put(key, args[2], expires_at_ms=expires_at or None)
    session.watches.touch(key)
    return old if get else OK


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


def _del(session: Session, args: list[bytes]) -> Reply:
    """PROTO-37, PROTO-60: each key once, however often it is named.

    Redis finds a repeated key gone the second time. Asking the store again would not do: under
    ``fsync="always"`` the server's delete is judged on the writes that have taken effect (ENG-21),
    and the first delete of the key takes effect only after its fsync.
    """
    delete = session.store.delete
    touch = session.watches.touch
    deleted = 0
    for key in dict.fromkeys(args[1:]):
        if delete(key):
            touch(key)
            deleted += 1
    return deleted


def _exists(session: Session, args: list[bytes]) -> Reply:
    """PROTO-38: a key named twice counts twice."""
    store = session.store
    return sum(1 for key in args[1:] if key in store)


def _mget(session: Session, args: list[bytes]) -> Reply:
    """PROTO-39: one read of all the keys (ENG-52), so an MSET is seen whole or not at all."""
    values: list[Reply] = list(session.store.get_many(args[1:]))
    missing = values.count(None)
    counters = session.server.counters
    counters.misses += missing
    counters.hits += len(values) - missing
    return values


def _mset(session: Session, args: list[bytes]) -> Reply:
    """PROTO-40"""
    if len(args) % 2 == 0:
        return wrong_arity("mset")
    session.store.write_batch([("put", args[i], args[i + 1]) for i in range(1, len(args), 2)])
    for i in range(1, len(args), 2):
        session.watches.touch(args[i])
    return OK


_EXPIRE_UNITS: Final = {
    "expire": b"EX",
    "pexpire": b"PX",
    "expireat": b"EXAT",
    "pexpireat": b"PXAT",
}


def _expire(session: Session, args: list[bytes]) -> Reply:
    """PROTO-55: EXPIRE | PEXPIRE | EXPIREAT | PEXPIREAT key amount [NX | XX | GT | LT]"""
    command = _text(args[0]).lower()
    flags = set()
    for option in args[3:]:
        upper = option.upper()
        if upper not in (b"NX", b"XX", b"GT", b"LT"):
            return Error(f"ERR Unsupported option {_text(_c_string(option, 1 << 20))}")
        flags.add(upper)
    if b"NX" in flags and flags & {b"XX", b"GT", b"LT"}:
        return Error("ERR NX and XX, GT or LT options at the same time are not compatible")
    if {b"GT", b"LT"} <= flags:
        return Error("ERR GT and LT options at the same time are not compatible")
    store = session.store
    when = _expiry_ms(store, args[2], _EXPIRE_UNITS[command], command)
    if isinstance(when, Error):
        return when
    key = args[1]
    with store.transaction() as tx:  # PROTO-93: the flags are judged on the newest expiry
        value = tx.get(key)
        if value is None:
            return 0
        current = tx.expires_at(key)
        if (
            (b"NX" in flags and current is not None)
            or (b"XX" in flags and current is None)
            or (b"GT" in flags and (current is None or when <= current))
            or (b"LT" in flags and current is not None and when >= current)
        ):
            return 0
        if when <= store.now_ms():
            tx.delete(key)  # ENG-35: a time already past deletes the key
        else:
            tx.put(key, value, expires_at_ms=when)
    session.watches.touch(key)
    return 1


def _ttl(session: Session, args: list[bytes]) -> Reply:
    """PROTO-56: TTL and PTTL: -2 for no key, -1 for no expiry, else the time left."""
    store = session.store
    try:
        expires_at = store.expires_at(args[1])
    except KeyError:
        return -2
    if expires_at is None:
        return -1
    left = max(expires_at - store.now_ms(), 0)
    return left if args[0].lower() == b"pttl" else (left + 500) // 1000


def _expiretime(session: Session, args: list[bytes]) -> Reply:
    """PROTO-56: EXPIRETIME and PEXPIRETIME: -2, -1, or the absolute expiry."""
    try:
        expires_at = session.store.expires_at(args[1])
    except KeyError:
        return -2
    if expires_at is None:
        return -1
    return expires_at if args[0].lower() == b"pexpiretime" else (expires_at + 500) // 1000


def _bgrewriteaof(session: Session, args: list[bytes]) -> Reply:
    """PROTO-59: Redis rewrites its append-only file; catlog's log is compacted (ENG-42)."""
    if session.store.compact_in_background():
        return SimpleString(b"Background append only file rewriting started")
    return Error("ERR Background append only file rewriting already in progress")


def _persist(session: Session, args: list[bytes]) -> Reply:
    """PROTO-57"""
    if not session.store.persist(args[1]):
        return 0
    session.watches.touch(args[1])
    return 1


def _dbsize(session: Session, args: list[bytes]) -> Reply:
    """PROTO-41"""
    return len(session.store)


def _scan(session: Session, args: list[bytes]) -> Reply:
    """PROTO-42, PROTO-43, PROTO-100: SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]"""
    cursor = args[1]
    if not cursor.isdigit() or len(cursor) > 20 or int(cursor) > (1 << 64) - 1:
        return INVALID_CURSOR
    count = 10
    pattern: bytes | None = None
    strings_only = True
    i = 2
    while i < len(args):
        option = args[i].upper()
        if i + 1 >= len(args):
            return SYNTAX_ERROR
        if option == b"COUNT":
            parsed = parse_int(args[i + 1])
            if parsed is None:
                return NOT_AN_INTEGER
            if parsed < 1:
                return SYNTAX_ERROR
            count = parsed
        elif option == b"MATCH":
            pattern = args[i + 1]
        elif option == b"TYPE":
            strings_only = args[i + 1].lower() == b"string"
        else:
            return SYNTAX_ERROR
        i += 2
    if pattern == b"*":
        pattern = None
    next_cursor, keys = session.scan_order.page(session.store, int(cursor), count)
    if not strings_only:
        return [b"%d" % next_cursor, []]
    page: list[Reply] = [key for key in keys if pattern is None or glob_match(pattern, key)]
    return [b"%d" % next_cursor, page]


class ScanOrder:
    """PROTO-42, PROTO-43: every key, sorted by its place in a walk, shared by every walk.

    Built when a walk starts (cursor 0), so it holds every key present then, and so every key
    present for a whole walk, whichever later build a call reads: the places do not change. A
    call finds its cursor by bisection and reads on from there, so it costs ``COUNT`` keys plus a
    logarithm, and a whole walk one sort of the keys; the one list is all the memory walks take,
    however many run. Keys deleted since the build are skipped as they are met.
    """

    __slots__ = ("_entries",)

    def __init__(self) -> None:
        self._entries: list[tuple[int, bytes]] | None = None

    def page(self, store: KeyValueStore, position: int, count: int) -> tuple[int, list[bytes]]:
        """The keys of one call from ``position`` on, and the next cursor (0: the walk ends)."""
        entries = self._entries
        if position == 0 or entries is None:
            entries = self._entries = sorted((_scan_order(key), key) for key in store)
        index = bisect.bisect_left(entries, (position, b""))
        keys: list[bytes] = []
        looked = 0
        while index < len(entries):
            place, key = entries[index]
            if looked >= count and place != entries[index - 1][0]:
                return place, keys  # keys sharing one place are never split between calls
            looked += 1
            index += 1
            if key in store:
                keys.append(key)
        return 0, keys


def _keys(session: Session, args: list[bytes]) -> Reply:
    """PROTO-45"""
    pattern = args[1]
    return [key for key in session.store if pattern == b"*" or glob_match(pattern, key)]


# ----------------------------------------------------------------------------------- strings


def _incr(session: Session, args: list[bytes]) -> Reply:
    """PROTO-87: INCR, DECR, INCRBY, DECRBY key [amount], read and written as one step."""
    name = args[0].lower()
    if name in (b"incr", b"decr"):
        amount = 1
    else:
        parsed = parse_int(args[2])
        if parsed is None:
            return NOT_AN_INTEGER
        amount = parsed
    if name.startswith(b"decr"):
        if amount == _INT64_MIN:
            return Error("ERR decrement would overflow")
        amount = -amount
    key = args[1]
    with session.store.transaction() as tx:
        old = tx.get(key)
        value = 0 if old is None else parse_int(old)
        if value is None:
            return NOT_AN_INTEGER
        new = value + amount
        if not _INT64_MIN <= new <= _INT64_MAX:
            return Error("ERR increment or decrement would overflow")
        expires_at = None if old is None else tx.expires_at(key)
        tx.put(key, b"%d" % new, expires_at_ms=expires_at)  # INCR keeps the expiry, as Redis
    session.watches.touch(key)
    return new


MAX_STRING: Final = MAX_VALUE_SIZE
"""PROTO-88: the longest string APPEND and SETRANGE may make: catlog's largest value, where
Redis has its ``proto-max-bulk-len`` (512 MB)."""
TOO_LONG: Final = Error("ERR string exceeds maximum allowed size (proto-max-bulk-len)")


def _setnx(session: Session, args: list[bytes]) -> Reply:
    """PROTO-89: SETNX key value: 1 if it stored, 0 if the key had a value."""
    key = args[1]
    with session.store.transaction() as tx:
        if tx.get(key) is not None:
            return 0
        tx.put(key, args[2])
    session.watches.touch(key)
    return 1


def _setex(session: Session, args: list[bytes]) -> Reply:
    """PROTO-89: SETEX key seconds value, PSETEX key milliseconds value."""
    command = _text(args[0]).lower()
    store = session.store
    when = _expiry_ms(store, args[2], b"EX" if command == "setex" else b"PX", command)
    if isinstance(when, Error):
        return when
    store.put(args[1], args[3], expires_at_ms=when)
    session.watches.touch(args[1])
    return OK


def _getset(session: Session, args: list[bytes]) -> Reply:
    """PROTO-89: GETSET key value: the old value (or null); the new one has no expiry."""
    key = args[1]
    with session.store.transaction() as tx:
        old = tx.get(key)
        tx.put(key, args[2])
    session.watches.touch(key)
    return old


def _getdel(session: Session, args: list[bytes]) -> Reply:
    """PROTO-89: GETDEL key: the value (or null), and the key is deleted."""
    key = args[1]
    with session.store.transaction() as tx:
        old = tx.get(key)
        if old is not None:
            tx.delete(key)
    if old is not None:
        session.watches.touch(key)
    return old


def _getex(session: Session, args: list[bytes]) -> Reply:
    """PROTO-90: GETEX key [EX s | PX ms | EXAT unix-s | PXAT unix-ms | PERSIST]."""
    unit: bytes | None = None
    amount = b""
    persist = False
    i = 2
    while i < len(args):
        option = args[i].upper()
        if option == b"PERSIST" and unit is None:
            persist = True
        elif option in (b"EX", b"PX", b"EXAT", b"PXAT") and i + 1 < len(args) and not persist:
            if unit is not None and unit != option:
                return SYNTAX_ERROR
            unit, amount = option, args[i + 1]
            i += 1
        else:
            return SYNTAX_ERROR
        i += 1
    key = args[1]
    store = session.store
    with store.transaction() as tx:
        value = tx.get(key)
        if value is None:
            return None
        if unit is not None:
            when = _expiry_ms(store, amount, unit, "getex")
            if isinstance(when, Error):
                return when
            if when <= store.now_ms():
                tx.delete(key)
            else:
                tx.put(key, value, expires_at_ms=when)
        elif not persist or tx.expires_at(key) is None:
            return value
        else:
            tx.put(key, value)
    session.watches.touch(key)
    return value


def _strlen(session: Session, args: list[bytes]) -> Reply:
    """PROTO-88"""
    value = session.store.get(args[1])
    return 0 if value is None else len(value)


def _getrange(session: Session, args: list[bytes]) -> Reply:
    """PROTO-88: GETRANGE (and SUBSTR) key start end, both inclusive, negative from the end."""
    start, end = parse_int(args[2]), parse_int(args[3])
    if start is None or end is None:
        return NOT_AN_INTEGER
    value = session.store.get(args[1])
    if value is None or (start < 0 and end < 0 and start > end):
        return b""
    size = len(value)
    start = max(start + size if start < 0 else start, 0)
    end = max(end + size if end < 0 else end, 0)
    end = min(end, size - 1)
    return b"" if start > end or size == 0 else value[start : end + 1]


def _append(session: Session, args: list[bytes]) -> Reply:
    """PROTO-88: APPEND key value: the new length; the key keeps its expiry."""
    key, tail = args[1], args[2]
    with session.store.transaction() as tx:
        old = tx.get(key)
        if old is None:
            tx.put(key, tail)
            new = len(tail)
        else:
            if len(old) + len(tail) > MAX_STRING:
                return TOO_LONG
            tx.put(key, old + tail, expires_at_ms=tx.expires_at(key))
            new = len(old) + len(tail)
    session.watches.touch(key)
    return new


def _setrange(session: Session, args: list[bytes]) -> Reply:
    """PROTO-88: SETRANGE key offset value: the new length; zero bytes fill any gap."""
    offset = parse_int(args[2])
    if offset is None:
        return NOT_AN_INTEGER
    if offset < 0:
        return Error("ERR offset is out of range")
    key, part = args[1], args[3]
    with session.store.transaction() as tx:
        old = tx.get(key)
        if not part:
            return 0 if old is None else len(old)
        if offset + len(part) > MAX_STRING:
            return TOO_LONG
        base = old or b""
        if len(base) < offset:
            base += bytes(offset - len(base))
        new = base[:offset] + part + base[offset + len(part) :]
        tx.put(key, new, expires_at_ms=None if old is None else tx.expires_at(key))
    session.watches.touch(key)
    return len(new)


def _msetnx(session: Session, args: list[bytes]) -> Reply:
    """PROTO-89: MSETNX key value [key value ...]: all stored, 1, or none if any key had a
    value, 0; as one batch."""
    if len(args) % 2 == 0:
        return wrong_arity("msetnx")
    keys = args[1::2]
    with session.store.transaction() as tx:
        if any(tx.get(key) is not None for key in keys):
            return 0
        for i in range(1, len(args), 2):
            tx.put(args[i], args[i + 1])
    for key in keys:
        session.watches.touch(key)
    return 1


# ----------------------------------------------------------------------------------- keyspace


def _type(session: Session, args: list[bytes]) -> Reply:
    """PROTO-91: catlog holds strings only."""
    return SimpleString(b"string" if args[1] in session.store else b"none")


def _touch(session: Session, args: list[bytes]) -> Reply:
    """PROTO-91: how many of the keys have a value; a key named twice counts twice."""
    store = session.store
    return sum(1 for key in args[1:] if key in store)


def _randomkey(session: Session, args: list[bytes]) -> Reply:
    """PROTO-91"""
    keys = list(session.store)
    return random.choice(keys) if keys else None


def _rename(session: Session, args: list[bytes]) -> Reply:
    """PROTO-91: RENAME and RENAMENX source destination, as one engine transaction."""
    nx = args[0].lower() == b"renamenx"
    source, destination = args[1], args[2]
    with session.store.transaction() as tx:
        value = tx.get(source)
        if value is None:
            return Error("ERR no such key")
        if source == destination:
            return 0 if nx else OK
        if nx and tx.get(destination) is not None:
            return 0
        expires_at = tx.expires_at(source)
        tx.delete(source)
        tx.put(destination, value, expires_at_ms=expires_at)
    session.watches.touch(source)
    session.watches.touch(destination)
    return 1 if nx else OK


def _copy(session: Session, args: list[bytes]) -> Reply:
    """PROTO-91: COPY source destination [DB 0] [REPLACE]"""
    replace = False
    i = 3
    while i < len(args):
        option = args[i].lower()
        if option == b"replace":
            replace = True
        elif option == b"db" and i + 1 < len(args):
            index = parse_int(args[i + 1])
            if index is None or not -(1 << 31) <= index < 1 << 31:
                return NOT_AN_INTEGER
            if index != 0:
                return Error("ERR DB index is out of range")
            i += 1
        else:
            return SYNTAX_ERROR
        i += 1
    source, destination = args[1], args[2]
    if source == destination:
        return Error("ERR source and destination objects are the same")
    with session.store.transaction() as tx:
        value = tx.get(source)
        if value is None or (not replace and tx.get(destination) is not None):
            return 0
        tx.put(destination, value, expires_at_ms=tx.expires_at(source))
    session.watches.touch(destination)
    return 1


FLUSH_CHUNK_BYTES: Final = 8 * 1024 * 1024
"""PROTO-91: the most key bytes one FLUSHDB batch deletes, well inside a batch record (FMT-22)."""


def _flush(session: Session, args: list[bytes]) -> Reply:
    """PROTO-91: FLUSHDB and FLUSHALL [ASYNC | SYNC]: delete every key, in batches."""
    if len(args) > 2 or (len(args) == 2 and args[1].lower() not in (b"sync", b"async")):
        return SYNTAX_ERROR
    store = session.store
    chunk: list[bytes] = []
    size = 0
    for key in list(store):
        chunk.append(key)
        size += len(key) + 32
        if size >= FLUSH_CHUNK_BYTES:
            _delete_all(session, chunk)
            chunk, size = [], 0
    _delete_all(session, chunk)
    return OK


def _delete_all(session: Session, keys: list[bytes]) -> None:
    with session.store.transaction() as tx:
        deleted = [key for key in keys if tx.delete(key)]
    for key in deleted:
        session.watches.touch(key)


# ----------------------------------------------------------------------------------- server time


def _time(session: Session, args: list[bytes]) -> Reply:
    """PROTO-92: the store's clock as unix seconds and microseconds (ms precision)."""
    now = session.store.now_ms()
    return [b"%d" % (now // 1000), b"%d" % (now % 1000 * 1000)]


def _lastsave(session: Session, args: list[bytes]) -> Reply:
    """PROTO-92"""
    server = session.server
    if server.saves.at:
        return server.saves.at
    uptime = int(server.clock.monotonic() - server.started)
    return server.clock.now_ms() // 1000 - uptime


def _save(session: Session, args: list[bytes]) -> Reply:
    """PROTO-92: every write so far made durable (ENG-17)."""
    store = session.store
    if isinstance(store, Syncable):
        store.sync()
    session.server.saves.at = session.server.clock.now_ms() // 1000
    return OK


NOT_A_FLOAT: Final = Error("ERR value is not a valid float")


def _incrbyfloat(session: Session, args: list[bytes]) -> Reply:
    """PROTO-94: INCRBYFLOAT key increment, in Redis's long double arithmetic."""
    key = args[1]
    with session.store.transaction() as tx:
        old = tx.get(key)
        value = Fraction(0) if old is None else longdouble.parse(old)
        if value is None:
            return NOT_A_FLOAT
        amount = longdouble.parse(args[2])
        if amount is None:
            return NOT_A_FLOAT
        total = longdouble.add(value, amount)
        if total is None or isinstance(total, str):
            return Error("ERR increment would produce NaN or Infinity")
        text = longdouble.format_human(total)
        tx.put(key, text, expires_at_ms=None if old is None else tx.expires_at(key))
    session.watches.touch(key)
    return text


# ----------------------------------------------------------------------------------- connection


def _ping(session: Session, args: list[bytes]) -> Reply:
    """PROTO-32"""
    if len(args) > 2:
        return wrong_arity("ping")
    return args[1] if len(args) == 2 else PONG


def _echo(session: Session, args: list[bytes]) -> Reply:
    """PROTO-33"""
    return args[1]


def _select(session: Session, args: list[bytes]) -> Reply:
    """PROTO-49: there is one database, number 0."""
    index = parse_int(args[1])
    if index is None:
        return NOT_AN_INTEGER
    if not -(1 << 31) <= index < 1 << 31:
        return Error("ERR value is out of range, value must between -2147483648 and 2147483647")
    return OK if index == 0 else Error("ERR DB index is out of range")


def _quit(session: Session, args: list[bytes]) -> Reply:
    """PROTO-51"""
    session.closing = True
    return OK


def _valid_name(name: bytes) -> bool:
    """Redis's rule for client and library names: printable ASCII, no spaces."""
    return all(33 <= byte <= 126 for byte in name)


def _hello(session: Session, args: list[bytes]) -> Reply:
    """PROTO-52: HELLO [protover [AUTH username password] [SETNAME clientname]]"""
    version = 0
    i = 1
    if len(args) >= 2:
        parsed = parse_int(args[1])
        if parsed is None:
            return Error("ERR Protocol version is not an integer or out of range")
        if parsed not in (2, 3):
            return Error("NOPROTO unsupported protocol version")
        version = parsed
        i = 2
    name: bytes | None = None
    while i < len(args):
        option = args[i].upper()
        more = len(args) - 1 - i
        if option == b"AUTH" and more >= 2:
            if args[i + 1] != b"default":
                return Error("WRONGPASS invalid username-password pair or user is disabled.")
            i += 3
        elif option == b"SETNAME" and more >= 1:
            name = args[i + 1]
            if not _valid_name(name):
                return Error(
                    "ERR Client names cannot contain spaces, newlines or special characters."
                )
            i += 2
        else:
            return Error(f"ERR Syntax error in HELLO option '{_text(_c_string(args[i], 1024))}'")
    if name is not None:
        session.name = name or None
    if version:
        session.protocol = version
    return Map(
        (
            (b"server", b"catlog"),
            (b"version", REDIS_VERSION.encode()),
            (b"proto", session.protocol),
            (b"id", session.client_id),
            (b"mode", b"standalone"),
            (b"role", b"master"),
            (b"modules", []),
        )
    )


def _auth(session: Session, args: list[bytes]) -> Reply:
    """PROTO-53: catlog has no passwords; the user ``default`` accepts any (Redis's nopass)."""
    if len(args) > 3:
        return SYNTAX_ERROR
    if len(args) == 2:
        return Error(
            "ERR AUTH <password> called without any password configured for the default user."
            " Are you sure your configuration is correct?"
        )
    if args[1] != b"default":
        return Error("WRONGPASS invalid username-password pair or user is disabled.")
    return OK


_CLIENT_HELP: Final = (
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GETNAME",
    "    Return the name of the current connection.",
    "ID",
    "    Return the ID of the current connection.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "SETINFO <LIB-NAME|LIB-VER> <value>",
    "    Set client meta attributes (accepted and kept, not used).",
    "HELP",
    "    Print this help.",
)


def _help(lines: tuple[str, ...]) -> Reply:
    return [SimpleString(text.encode()) for text in lines]


def _client(session: Session, args: list[bytes]) -> Reply:
    """PROTO-50: CLIENT SETNAME | GETNAME | SETINFO | ID | HELP"""
    sub = args[1].lower()
    if sub == b"setname":
        if len(args) != 3:
            return wrong_arity("client|setname")
        if not _valid_name(args[2]):
            return Error("ERR Client names cannot contain spaces, newlines or special characters.")
        session.name = args[2] or None
        return OK
    if sub == b"getname":
        return session.name if len(args) == 2 else wrong_arity("client|getname")
    if sub == b"id":
        return session.client_id if len(args) == 2 else wrong_arity("client|id")
    if sub == b"setinfo":
        if len(args) != 4:
            return wrong_arity("client|setinfo")
        attribute = args[2].lower()
        if attribute not in (b"lib-name", b"lib-ver"):
            return Error(f"ERR Unrecognized option '{_text(args[2])}'")
        if not _valid_name(args[3]):
            return Error(
                f"ERR {_text(attribute)} cannot contain spaces, newlines or special characters."
            )
        if attribute == b"lib-name":
            session.lib_name = args[3]
        else:
            session.lib_ver = args[3]
        return OK
    if sub == b"help" and len(args) == 2:
        return _help(_CLIENT_HELP)
    return unknown_subcommand(args)


# ----------------------------------------------------------------------------------- transactions

QUEUED: Final = SimpleString(b"QUEUED")
EXEC_ABORT: Final = Error("EXECABORT Transaction discarded because of previous errors.")

_RUN_INSIDE_MULTI: Final = frozenset(("multi", "exec", "discard", "watch", "quit"))
"""PROTO-80: what runs at once inside MULTI rather than being queued (Redis's processCommand)."""

_LISTS_KEYS: Final = frozenset((b"keys", b"scan", b"dbsize", b"randomkey", b"flushdb", b"flushall"))
"""PROTO-85: commands that list the keyspace, for which EXEC takes the key listing first."""


def _multi(session: Session, args: list[bytes]) -> Reply:
    """PROTO-80"""
    if session.queue is not None:
        return Error("ERR MULTI calls can not be nested")
    session.queue = []
    return OK


def _discard(session: Session, args: list[bytes]) -> Reply:
    """PROTO-82"""
    if session.queue is None:
        return Error("ERR DISCARD without MULTI")
    session.queue = None
    session.queue_failed = False
    session.unwatch()
    return OK


def _exec(session: Session, args: list[bytes]) -> Reply:
    """PROTO-81, PROTO-83, PROTO-85: run the queue as one engine transaction."""
    queue = session.queue
    if queue is None:
        return Error("ERR EXEC without MULTI")
    failed = session.queue_failed
    session.queue = None
    session.queue_failed = False
    store = session.store
    if failed:
        session.unwatch()
        return EXEC_ABORT
    now = store.now_ms()
    expired = any(at is not None and now > at for at in session.watched.values())
    if session.dirty or expired:
        session.unwatch()
        return NULL_ARRAY
    session.unwatch()
    # The listing takes the lock the transaction will hold, so it comes first (multi.py).
    keys = list(store) if any(command[0].lower() in _LISTS_KEYS for command in queue) else []
    try:
        with store.transaction() as tx:
            view = TransactionView(tx, keys, store.now_ms)
            session.store = view
            try:
                results = [session.execute(command) for command in queue]
            finally:
                session.store = store
    except CatlogError as exc:
        return _store_error(exc)  # PROTO-85: the batch was not written: none of it happened
    if view.compact_requested:
        with contextlib.suppress(CatlogError):
            store.compact_in_background()
    return results


def _watch(session: Session, args: list[bytes]) -> Reply:
    """PROTO-83, PROTO-84"""
    if session.queue is not None:
        return Error("ERR WATCH inside MULTI is not allowed")
    if session.dirty:
        return OK  # EXEC will fail whatever else is watched
    # Read as a transaction does: after every write appended before it, which the server
    # makes this reply, and so the client's next read, wait for (SRV-20).
    with session.store.transaction() as tx:
        for key in args[1:]:
            if key not in session.watched:
                try:
                    session.watched[key] = tx.expires_at(key)
                except KeyError:
                    session.watched[key] = None
                session.watches.watch(session, key)
    return OK


def _unwatch(session: Session, args: list[bytes]) -> Reply:
    """PROTO-84"""
    session.unwatch()
    return OK


# ----------------------------------------------------------------------------------- server


def _info_server(session: Session) -> list[str]:
    server = session.server
    uptime = max(0, int(server.clock.monotonic() - server.started))
    return [
        f"redis_version:{REDIS_VERSION}",
        f"catlog_version:{__version__}",
        "redis_mode:standalone",
        f"os:{server.os}",
        "arch_bits:64",
        "multiplexing_api:asyncio",
        f"process_id:{server.process_id}",
        f"tcp_port:{server.tcp_port}",
        f"uptime_in_seconds:{uptime}",
        f"uptime_in_days:{uptime // 86400}",
    ]


def _info_clients(session: Session) -> list[str]:
    server = session.server
    return [
        f"connected_clients:{server.counters.connected}",
        f"maxclients:{server.max_clients}",
        "blocked_clients:0",
    ]


def used_memory() -> int:
    """PROTO-101: the process's resident set size in bytes, from ``/proc/self/statm``; where
    that file is absent, the peak resident size ``getrusage`` reports."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * resource.getpagesize()
    except (OSError, IndexError, ValueError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def _info_memory(session: Session) -> list[str]:
    rss = used_memory()
    return [
        f"used_memory:{rss}",
        f"used_memory_rss:{rss}",
        "maxmemory:0",
        "maxmemory_policy:noeviction",
    ]


def _info_stats(session: Session) -> list[str]:
    counters = session.server.counters
    return [
        f"total_connections_received:{counters.connections}",
        f"total_commands_processed:{counters.commands}",
        f"instantaneous_ops_per_sec:{counters.ops_per_sec()}",
        f"keyspace_hits:{counters.hits}",
        f"keyspace_misses:{counters.misses}",
    ]


def _info_replication(session: Session) -> list[str]:
    return ["role:master", "connected_slaves:0"]


def _info_persistence(session: Session) -> list[str]:
    lines = ["loading:0", "aof_enabled:1", f"catlog_fsync:{session.server.fsync}"]
    store = session.store
    stats = None
    if isinstance(store, StatsSource):
        # SRV-18: between closing a failed store and opening it again there are no counts,
        # but the write status below is what an operator asks INFO for then.
        with contextlib.suppress(StoreClosedError):
            stats = store.stats()
    if stats is not None:
        lines += [
            f"aof_rewrite_in_progress:{int(stats.compacting)}",
            # ENG-57, PROTO-102: a compaction that failed alone, in Redis's words for a rewrite
            f"aof_last_bgrewrite_status:{'ok' if stats.compaction_error is None else 'err'}",
            "catlog_last_compaction_error:" + " ".join((stats.compaction_error or "").split()),
            f"catlog_segments:{stats.segments}",
            f"catlog_disk_bytes:{stats.disk_bytes}",
            f"catlog_unflushed_bytes:{stats.unflushed_bytes}",
            f"catlog_dead_bytes:{stats.dead_bytes}",
            f"catlog_write_amplification:{stats.write_amplification:.2f}",  # ENG-77
        ]
    if isinstance(store, FailureSource):
        lines += _write_status(store.failure)
    return lines


def _write_status(failure: StoreFailedError | None) -> list[str]:
    """PROTO-70: Redis's ``aof_last_write_status``, and catlog's word on the error and the way
    back (SRV-18, SRV-19)."""
    if failure is None:
        return [
            "aof_last_write_status:ok",
            "catlog_last_write_error:",
            "catlog_write_recovery:none",
        ]
    text = " ".join(str(failure).split())  # one INFO line, whatever the OS's message holds
    recovery = "restart" if failure.fsync_failed else "automatic"
    return [
        "aof_last_write_status:err",
        f"catlog_last_write_error:{text}",
        f"catlog_write_recovery:{recovery}",
    ]


def _info_keyspace(session: Session) -> list[str]:
    """PROTO-46: ``expires`` counts the keys with an expiry; catlog keeps no ``avg_ttl``."""
    store = session.store
    keys = len(store)
    expires = store.stats().expiring_keys if isinstance(store, StatsSource) else 0
    return [f"db0:keys={keys},expires={expires},avg_ttl=0"] if keys else []


INFO_SECTIONS: Final[dict[str, Callable[[Session], list[str]]]] = {
    "server": _info_server,
    "clients": _info_clients,
    "memory": _info_memory,
    "persistence": _info_persistence,
    "stats": _info_stats,
    "replication": _info_replication,
    "keyspace": _info_keyspace,
}


def _info(session: Session, args: list[bytes]) -> Reply:
    """PROTO-46: INFO [section ...]; the text is ``# Section`` headers and ``key:value`` lines."""
    asked = {_text(arg).lower() for arg in args[1:]}
    if not asked or asked & {"all", "default", "everything"}:
        asked = set(INFO_SECTIONS)
    parts = []
    for name, lines in INFO_SECTIONS.items():
        if name in asked:
            body = "".join(f"{text}\r\n" for text in lines(session))
            parts.append(f"# {name.capitalize()}\r\n{body}")
    return Verbatim("\r\n".join(parts).encode("utf-8", "surrogateescape"))


_FSYNC_AS_APPENDFSYNC: Final = {"always": "always", "interval": "everysec", "never": "no"}


def _config_values(session: Session) -> dict[str, str]:
    server = session.server
    return {
        "maxmemory": "0",
        "maxmemory-policy": "noeviction",
        "timeout": str(int(server.idle_timeout)),
        "maxclients": str(server.max_clients),
        "appendonly": "yes",
        "appendfsync": _FSYNC_AS_APPENDFSYNC.get(server.fsync, server.fsync),
        "save": "",
        "databases": "1",
        "port": str(server.tcp_port),
    }


_CONFIG_HELP: Final = (
    "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GET <pattern>",
    "    Return parameters matching the glob-like <pattern> and their values.",
    "HELP",
    "    Print this help.",
)


def _config(session: Session, args: list[bytes]) -> Reply:
    """PROTO-48: CONFIG GET parameter [parameter ...]; CONFIG HELP"""
    sub = args[1].lower()
    if sub == b"get":
        if len(args) < 3:
            return wrong_arity("config|get")
        values = _config_values(session)
        found: dict[str, str] = {}
        for pattern in args[2:]:
            lowered = pattern.lower()
            for name, value in values.items():
                if name not in found and glob_match(lowered, name.encode()):
                    found[name] = value
        return Map(tuple((name.encode(), value.encode()) for name, value in found.items()))
    if sub == b"help" and len(args) == 2:
        return _help(_CONFIG_HELP)
    return unknown_subcommand(args)


def _command_info(command: Command) -> Reply:
    return [
        command.name.encode(),
        command.arity,
        RespSet(tuple(SimpleString(flag.encode()) for flag in command.flags)),
        command.first_key,
        command.last_key,
        command.step,
        RespSet(tuple(SimpleString(f"@{c}".encode()) for c in command.categories)),
        [],
        [],
        [],
    ]


def _unique_commands() -> list[Command]:
    return list({id(c): c for c in COMMANDS.values()}.values())


def _command(session: Session, args: list[bytes]) -> Reply:
    """PROTO-47: COMMAND, COMMAND COUNT | LIST | INFO name... | DOCS [name...]"""
    if len(args) == 1:
        return [_command_info(c) for c in _unique_commands()]
    sub = args[1].lower()
    if sub == b"count":
        return len(_unique_commands()) if len(args) == 2 else wrong_arity("command|count")
    if sub == b"list" and len(args) == 2:
        return [c.name.encode() for c in _unique_commands()]
    if sub == b"info":
        found = [COMMANDS.get(name.lower()) for name in args[2:]]
        return [NULL_ARRAY if c is None else _command_info(c) for c in found]
    if sub == b"docs":
        return Map(())  # no documentation is served; redis-cli then uses its own hints
    return unknown_subcommand(args)


# ----------------------------------------------------------------------------------- the table


def _table(*commands: Command) -> dict[bytes, Command]:
    """Each command under its lower- and upper-case name, so the usual spellings cost one
    lookup; any other spelling is lowered first (PROTO-29)."""
    table: dict[bytes, Command] = {}
    for command in commands:
        table[command.name.encode()] = command
        table[command.name.upper().encode()] = command
    return table


_W, _R, _F = ("write", "denyoom"), ("readonly", "fast"), ("fast",)
_WF: Final = ("write", "denyoom", "fast")
_TX: Final = ("noscript", "loading", "stale", "fast", "allow_busy")
_TX_SLOW: Final = ("noscript", "loading", "stale", "skip_slowlog")

COMMANDS: Final = _table(
    Command("get", 2, _R, 1, 1, 1, _get, ("read", "string", "fast")),
    Command("set", -3, _W, 1, 1, 1, _set, ("write", "string", "slow")),
    Command("del", -2, ("write",), 1, -1, 1, _del, ("keyspace", "write", "slow")),
    Command("exists", -2, _R, 1, -1, 1, _exists, ("keyspace", "read", "fast")),
    Command("mget", -2, _R, 1, -1, 1, _mget, ("read", "string", "fast")),
    Command("mset", -3, _W, 1, -1, 2, _mset, ("write", "string", "slow")),
    Command("dbsize", 1, _R, 0, 0, 0, _dbsize, ("keyspace", "read", "fast")),
    Command("expire", -3, ("write", "fast"), 1, 1, 1, _expire, ("keyspace", "write", "fast")),
    Command("pexpire", -3, ("write", "fast"), 1, 1, 1, _expire, ("keyspace", "write", "fast")),
    Command("expireat", -3, ("write", "fast"), 1, 1, 1, _expire, ("keyspace", "write", "fast")),
    Command("pexpireat", -3, ("write", "fast"), 1, 1, 1, _expire, ("keyspace", "write", "fast")),
    Command("ttl", 2, _R, 1, 1, 1, _ttl, ("keyspace", "read", "fast")),
    Command("pttl", 2, _R, 1, 1, 1, _ttl, ("keyspace", "read", "fast")),
    Command("expiretime", 2, _R, 1, 1, 1, _expiretime, ("keyspace", "read", "fast")),
    Command("pexpiretime", 2, _R, 1, 1, 1, _expiretime, ("keyspace", "read", "fast")),
    Command("persist", 2, ("write", "fast"), 1, 1, 1, _persist, ("keyspace", "write", "fast")),
    Command(
        "bgrewriteaof",
        1,
        ("admin", "noscript"),
        0,
        0,
        0,
        _bgrewriteaof,
        ("admin", "slow", "dangerous"),
    ),
    Command("scan", -2, ("readonly",), 0, 0, 0, _scan, ("keyspace", "read", "slow")),
    Command("keys", 2, ("readonly",), 0, 0, 0, _keys, ("keyspace", "read", "slow")),
    Command("ping", -1, _F, 0, 0, 0, _ping, ("fast", "connection")),
    Command("echo", 2, _F, 0, 0, 0, _echo, ("fast", "connection")),
    Command("select", 2, ("loading", "stale", "fast"), 0, 0, 0, _select, ("fast", "connection")),
    Command("quit", -1, ("fast",), 0, 0, 0, _quit, ("fast", "connection")),
    Command("hello", -1, ("noscript", "fast"), 0, 0, 0, _hello, ("fast", "connection")),
    Command("auth", -2, ("noscript", "fast"), 0, 0, 0, _auth, ("fast", "connection")),
    Command("client", -2, (), 0, 0, 0, _client, ("slow", "connection")),
    Command("info", -1, ("loading", "stale"), 0, 0, 0, _info, ("slow", "dangerous")),
    Command("config", -2, (), 0, 0, 0, _config, ("slow",)),
    Command("command", -1, ("loading", "stale"), 0, 0, 0, _command, ("slow", "connection")),
    Command("incr", 2, _WF, 1, 1, 1, _incr, ("write", "string", "fast")),
    Command("decr", 2, _WF, 1, 1, 1, _incr, ("write", "string", "fast")),
    Command("incrby", 3, _WF, 1, 1, 1, _incr, ("write", "string", "fast")),
    Command("decrby", 3, _WF, 1, 1, 1, _incr, ("write", "string", "fast")),
    Command("incrbyfloat", 3, _WF, 1, 1, 1, _incrbyfloat, ("write", "string", "fast")),
    Command("setnx", 3, _WF, 1, 1, 1, _setnx, ("write", "string", "fast")),
    Command("setex", 4, _W, 1, 1, 1, _setex, ("write", "string", "slow")),
    Command("psetex", 4, _W, 1, 1, 1, _setex, ("write", "string", "slow")),
    Command("getset", 3, _WF, 1, 1, 1, _getset, ("write", "string", "fast")),
    Command("getdel", 2, ("write", "fast"), 1, 1, 1, _getdel, ("write", "string", "fast")),
    Command("getex", -2, ("write", "fast"), 1, 1, 1, _getex, ("write", "string", "fast")),
    Command("strlen", 2, _R, 1, 1, 1, _strlen, ("read", "string", "fast")),
    Command("getrange", 4, ("readonly",), 1, 1, 1, _getrange, ("read", "string", "slow")),
    Command("substr", 4, ("readonly",), 1, 1, 1, _getrange, ("read", "string", "slow")),
    Command("append", 3, _WF, 1, 1, 1, _append, ("write", "string", "fast")),
    Command("setrange", 4, _W, 1, 1, 1, _setrange, ("write", "string", "slow")),
    Command("msetnx", -3, _W, 1, -1, 2, _msetnx, ("write", "string", "slow")),
    Command("unlink", -2, ("write", "fast"), 1, -1, 1, _del, ("keyspace", "write", "fast")),
    Command("type", 2, _R, 1, 1, 1, _type, ("keyspace", "read", "fast")),
    Command("touch", -2, _R, 1, -1, 1, _touch, ("keyspace", "read", "fast")),
    Command("randomkey", 1, ("readonly",), 0, 0, 0, _randomkey, ("keyspace", "read", "slow")),
    Command("rename", 3, ("write",), 1, 2, 1, _rename, ("keyspace", "write", "slow")),
    Command("renamenx", 3, ("write", "fast"), 1, 2, 1, _rename, ("keyspace", "write", "fast")),
    Command("copy", -3, _W, 1, 2, 1, _copy, ("keyspace", "write", "slow")),
    Command("flushdb", -1, ("write",), 0, 0, 0, _flush, ("keyspace", "write", "slow", "dangerous")),
    Command(
        "flushall", -1, ("write",), 0, 0, 0, _flush, ("keyspace", "write", "slow", "dangerous")
    ),
    Command("time", 1, ("loading", "stale", "fast"), 0, 0, 0, _time, ("fast",)),
    Command("lastsave", 1, ("loading", "stale", "fast"), 0, 0, 0, _lastsave, ("fast", "admin")),
    Command(
        "save", 1, ("admin", "noscript", "no_multi"), 0, 0, 0, _save, ("admin", "slow", "dangerous")
    ),
    Command("multi", 1, _TX, 0, 0, 0, _multi, ("fast", "transaction")),
    Command("exec", 1, _TX_SLOW, 0, 0, 0, _exec, ("slow", "transaction")),
    Command("discard", 1, _TX, 0, 0, 0, _discard, ("fast", "transaction")),
    Command("watch", -2, _TX, 1, -1, 1, _watch, ("fast", "transaction")),
    Command("unwatch", 1, _TX, 0, 0, 0, _unwatch, ("fast", "transaction")),
)
"""Every RESP command catlog runs, by name (PROTO-29)."""


# ----------------------------------------------------------------------------------- line protocol


def execute_line(
    store: KeyValueStore,
    event: line.LineRequest | line.LineError,
    watches: Watches | None = None,
) -> line.LineReply:
    """PROTO-7 .. PROTO-11, PROTO-15: run one line-protocol event and return its reply.

    A write touches its key in ``watches`` (PROTO-84): a RESP client's WATCH sees it."""
    try:
        if isinstance(event, line.Get):
            value = store.get(event.key)
            return line.NOT_FOUND if value is None else line.Value(value)
        if isinstance(event, line.Put):
            store.put(event.key, event.value)
            if watches is not None:
                watches.touch(event.key)
            return line.OK
        if isinstance(event, line.PutEx):
            store.put(event.key, event.value, expires_at_ms=store.now_ms() + event.ttl_ms)
            if watches is not None:
                watches.touch(event.key)
            return line.OK
        if isinstance(event, line.Delete):
            if store.delete(event.key) and watches is not None:
                watches.touch(event.key)
            return line.OK
    except CatlogError as exc:
        return line.ErrorReply(str(exc))
    return line.ErrorReply(event.message)
