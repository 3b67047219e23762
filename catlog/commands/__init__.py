"""The command layer: requests of either protocol run against a store (spec/protocol.md, 4-5).

The server parses bytes into requests (:mod:`catlog.protocol`), hands each to this package and
encodes what comes back. Nothing here touches a socket or the clock directly: a RESP
:class:`Session` holds one connection's state (protocol version, client name, whether QUIT was
seen) and :meth:`Session.execute` turns ``[b"SET", b"k", b"v"]`` into a reply value
(:mod:`catlog.protocol.replies`); :func:`execute_line` does the same for the line protocol.

The commands are data: :data:`COMMANDS` maps each name to a :class:`Command` with Redis's arity
convention (``n``: exactly n words, the name included; ``-n``: at least n), the flags COMMAND
reports, and the function that runs it. Errors use Redis 7's words (PROTO-29 .. PROTO-31).

This module holds the session, the table and the dispatch (PROTO-7 .. PROTO-15 for the line
protocol, PROTO-27, PROTO-29, PROTO-47 for COMMAND, PROTO-80 and PROTO-81 for queueing inside
MULTI); the commands live by family, as Redis's documentation groups them:

- :mod:`.strings`: GET, SET, MGET, MSET, INCR, APPEND, GETRANGE, LCS ...
- :mod:`.keys`: DEL, EXISTS, EXPIRE, TTL, SCAN, KEYS, RENAME, COPY, FLUSHDB ...
- :mod:`.server`: INFO, CONFIG, TIME, LASTSAVE, SAVE, BGREWRITEAOF
- :mod:`.connection`: PING, ECHO, SELECT, QUIT, HELLO, AUTH, CLIENT
- :mod:`.transactions`: MULTI, EXEC, DISCARD, WATCH, UNWATCH
- :mod:`.arguments`: argument parsing and Redis's error wording; :mod:`.context`: what the
  commands run against (the store's interface, the server's settings and counters).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from catlog.auth import Gate, Password
from catlog.errors import CatlogError
from catlog.multi import Watches
from catlog.protocol import line
from catlog.protocol.replies import NULL_ARRAY, Error, Map, Reply, RespSet, SimpleString

from .arguments import (
    INVALID_CURSOR,
    NOT_AN_INTEGER,
    SYNTAX_ERROR,
    _store_error,
    internal_error,
    parse_int,
    unknown_command,
    unknown_subcommand,
    wrong_arity,
)
from .connection import _auth, _client, _echo, _hello, _ping, _quit, _select
from .context import (
    REDIS_VERSION,
    FailureSource,
    KeyValueStore,
    SaveRecord,
    ServerCounters,
    ServerInfo,
    StatsSource,
    Syncable,
)
from .keys import (
    FLUSH_CHUNK_BYTES,
    ScanOrder,
    _copy,
    _dbsize,
    _del,
    _exists,
    _expire,
    _expiretime,
    _flush,
    _keys,
    _persist,
    _randomkey,
    _rename,
    _scan,
    _touch,
    _ttl,
    _type,
)
from .server import (
    INFO_SECTIONS,
    _bgrewriteaof,
    _config,
    _info,
    _lastsave,
    _save,
    _time,
    used_memory,
)
from .strings import (
    MAX_STRING,
    NOT_A_FLOAT,
    TOO_LONG,
    _append,
    _get,
    _getdel,
    _getex,
    _getrange,
    _getset,
    _incr,
    _incrbyfloat,
    _lcs,
    _mget,
    _mset,
    _msetnx,
    _set,
    _setex,
    _setnx,
    _setrange,
    _strlen,
)
from .transactions import (
    _RUN_INSIDE_MULTI,
    EXEC_ABORT,
    QUEUED,
    _discard,
    _exec,
    _multi,
    _unwatch,
    _watch,
)

__all__ = [
    "COMMANDS",
    "EXEC_ABORT",
    "FLUSH_CHUNK_BYTES",
    "INFO_SECTIONS",
    "INVALID_CURSOR",
    "MAX_STRING",
    "NOT_AN_INTEGER",
    "NOT_A_FLOAT",
    "QUEUED",
    "REDIS_VERSION",
    "SYNTAX_ERROR",
    "TOO_LONG",
    "Command",
    "FailureSource",
    "KeyValueStore",
    "SaveRecord",
    "ScanOrder",
    "ServerCounters",
    "ServerInfo",
    "Session",
    "StatsSource",
    "Syncable",
    "execute_line",
    "internal_error",
    "parse_int",
    "unknown_command",
    "unknown_subcommand",
    "used_memory",
    "wrong_arity",
]


class Session:
    """One RESP connection's state; :meth:`execute` runs one command and returns its reply."""

    __slots__ = (
        "client_id",
        "closing",
        "dirty",
        "gate",
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
        password: Password | None = None,
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
        self.gate: Final = Gate(password)
        """PROTO-103, PROTO-104: whether the connection has authenticated, and the password."""

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
        refusal = self.gate.refusal(command.name)  # PROTO-104: after the name and arity checks
        if refusal is not None:
            return refusal
        try:
            return command.run(self, args)
        except CatlogError as exc:
            return _store_error(exc)
        except Exception as exc:
            return Error("ERR " + internal_error(command.name, exc))  # PROTO-114

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
            try:
                return command.run(self, args)
            except CatlogError as exc:
                return _store_error(exc)
            except Exception as exc:
                return Error("ERR " + internal_error(command.name, exc))  # PROTO-114
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
    Command("lcs", -3, ("readonly",), 1, 2, 1, _lcs, ("read", "string", "slow")),
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
    except Exception as exc:
        return line.ErrorReply(internal_error(type(event).__name__.lower(), exc))  # PROTO-114
    return line.ErrorReply(event.message)
