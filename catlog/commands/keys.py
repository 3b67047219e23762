"""The keyspace commands: DEL, EXISTS, EXPIRE and TTL and their kin, PERSIST, DBSIZE, SCAN,
KEYS, TYPE, TOUCH, RANDOMKEY, RENAME, COPY and FLUSHDB.

Clauses: PROTO-37, PROTO-38, PROTO-41 .. PROTO-43, PROTO-45, PROTO-55 .. PROTO-57, PROTO-60,
PROTO-91, PROTO-93, PROTO-100, PROTO-113 (the lookups INFO counts).
"""

from __future__ import annotations

import bisect
import random
from typing import TYPE_CHECKING, Final

from catlog.protocol.pattern import glob_match
from catlog.protocol.replies import OK, Error, Reply, SimpleString

from .arguments import (
    INVALID_CURSOR,
    NOT_AN_INTEGER,
    SYNTAX_ERROR,
    _c_string,
    _expiry_ms,
    _text,
    parse_int,
)
from .context import KeyValueStore

if TYPE_CHECKING:
    from . import Session


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
    """PROTO-38: a key named twice counts twice; each is a lookup (PROTO-113)."""
    store = session.store
    found = sum(1 for key in args[1:] if key in store)
    _count_lookups(session, found, len(args) - 1)
    return found


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
    counters = session.server.counters
    try:
        expires_at = store.expires_at(args[1])
    except KeyError:
        counters.looked_up(False)  # PROTO-113
        return -2
    counters.looked_up(True)
    if expires_at is None:
        return -1
    left = max(expires_at - store.now_ms(), 0)
    return left if args[0].lower() == b"pttl" else (left + 500) // 1000


def _expiretime(session: Session, args: list[bytes]) -> Reply:
    """PROTO-56: EXPIRETIME and PEXPIRETIME: -2, -1, or the absolute expiry."""
    counters = session.server.counters
    try:
        expires_at = session.store.expires_at(args[1])
    except KeyError:
        counters.looked_up(False)  # PROTO-113
        return -2
    counters.looked_up(True)
    if expires_at is None:
        return -1
    return expires_at if args[0].lower() == b"pexpiretime" else (expires_at + 500) // 1000


def _persist(session: Session, args: list[bytes]) -> Reply:
    """PROTO-57"""
    if not session.store.persist(args[1]):
        return 0
    session.watches.touch(args[1])
    return 1


def _dbsize(session: Session, args: list[bytes]) -> Reply:
    """PROTO-41"""
    return len(session.store)


# ----------------------------------------------------------------------------------- SCAN

_ORDER_MASK: Final = (1 << 63) - 1


def _scan_order(key: bytes) -> int:
    """A key's place in every SCAN walk (PROTO-42): its hash, below 2^63 so that the cursor
    after it still fits Redis's unsigned 64-bit cursor. Python's hash of bytes is fixed for the
    life of the process and cached in the object, so it costs nothing the second time."""
    return hash(key) & _ORDER_MASK


def _scan(session: Session, args: list[bytes]) -> Reply:
    """PROTO-42, PROTO-43, PROTO-100: SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]"""
    cursor = args[1]
    if not cursor.isdigit() or len(cursor) > 20 or int(cursor) > (1 << 64) - 1:
        return INVALID_CURSOR
    count = 10
    pattern: bytes | None = None
    strings_only = True
    kind: bytes | None = None
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
            kind = args[i + 1]
            strings_only = kind.lower() == b"string"
        else:
            return SYNTAX_ERROR
        i += 2
    if pattern == b"*":
        pattern = None
    next_cursor, keys = session.scan_order.page(session.store, int(cursor), count)
    page: list[Reply] = [key for key in keys if pattern is None or glob_match(pattern, key)]
    if kind is not None:
        session.server.counters.hits += len(page)  # PROTO-113: TYPE looks each key up
    if not strings_only:
        return [b"%d" % next_cursor, []]
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


def _type(session: Session, args: list[bytes]) -> Reply:
    """PROTO-91: catlog holds strings only. PROTO-113: a lookup."""
    found = args[1] in session.store
    session.server.counters.looked_up(found)
    return SimpleString(b"string" if found else b"none")


def _touch(session: Session, args: list[bytes]) -> Reply:
    """PROTO-91: how many of the keys have a value; a key named twice counts twice; each is a
    lookup (PROTO-113)."""
    store = session.store
    found = sum(1 for key in args[1:] if key in store)
    _count_lookups(session, found, len(args) - 1)
    return found


def _count_lookups(session: Session, found: int, named: int) -> None:
    """PROTO-113: ``named`` keys looked up, of which ``found`` had a value."""
    counters = session.server.counters
    counters.hits += found
    counters.misses += named - found


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
        session.server.counters.looked_up(value is not None)  # PROTO-113: the source only
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
