"""The string commands: GET and SET and their variants, MGET, MSET, the counters (INCR and
kin, INCRBYFLOAT), GETRANGE, STRLEN, APPEND, SETRANGE, MSETNX and LCS.

Clauses: PROTO-34 .. PROTO-36, PROTO-39, PROTO-40, PROTO-87 .. PROTO-90, PROTO-93, PROTO-94,
PROTO-113 (the lookups INFO counts), PROTO-115 (LCS).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from fractions import Fraction
from typing import TYPE_CHECKING, Final

from catlog import longdouble
from catlog.codec import MAX_VALUE_SIZE
from catlog.protocol.replies import OK, Error, Map, Reply

from .arguments import (
    _INT64_MAX,
    _INT64_MIN,
    NOT_AN_INTEGER,
    SYNTAX_ERROR,
    _expiry_ms,
    _text,
    parse_int,
    wrong_arity,
)

if TYPE_CHECKING:
    from . import Session
    from .context import KeyValueStore


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
        if get:
            session.server.counters.looked_up(old is not None)  # PROTO-113
        if (nx and old is not None) or (xx and old is None):
            return old if get else None
        if keepttl and not expires_at and old is not None:
            expires_at = tx.expires_at(key) or 0
        tx.put(key, args[2], expires_at_ms=expires_at or None)
    session.watches.touch(key)
    return old if get else OK


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
    keys = args[1::2]
    session.store.write_batch(
        [("put", key, value) for key, value in zip(keys, args[2::2], strict=True)]
    )
    watches = session.watches
    if watches.active:  # PROTO-84; the server benchmark's MSET showed the touches when not
        for key in keys:
            watches.touch(key)
    return OK


def _incr(session: Session, args: list[bytes]) -> Reply:
    """PROTO-87: INCR, DECR, INCRBY, DECRBY key [amount], read and written as one step."""
    amount = counter_amount(args)
    if isinstance(amount, Error):
        return amount
    new = increment(session.store, args[1], amount)
    if not isinstance(new, Error):
        session.watches.touch(args[1])
    return new


def counter_amount(args: list[bytes]) -> int | Error:
    """PROTO-87: what INCR, DECR, INCRBY or DECRBY (``args``, of the right arity) adds, or the
    error it is answered with before anything is read."""
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
    return amount


def change_by(amount: int) -> Callable[[bytes | None], bytes]:
    """ENG-80's change for adding ``amount`` (PROTO-87); it raises what :func:`refusal` turns
    into the command's error reply."""
    return _ADD_ONE if amount == 1 else functools.partial(_add, amount)


def refusal(exc: Exception) -> Error | None:
    """PROTO-87: the reply to a counter whose change raised ``exc`` because of the value (not an
    integer, or the result out of range), or ``None`` for any other exception."""
    return exc.reply if isinstance(exc, _RefusedError) else None


def increment(store: KeyValueStore, key: bytes, amount: int) -> int | Error:
    """PROTO-87: add ``amount`` to the integer ``key`` holds (0 if none) in one step of the
    store (ENG-80), keeping its expiry as Redis does; the new value, or the error. The server's
    loop calls it for a plain INCR without the rest of the command layer (SRV-11's fast path)."""
    try:
        written = store.modify(key, change_by(amount))
    except _RefusedError as refused:
        return refused.reply
    assert written is not None, "_add writes or raises"
    return int(written)


class _RefusedError(Exception):
    """PROTO-87: the value or the result is no 64-bit integer; :func:`increment` answers it."""

    def __init__(self, reply: Error) -> None:
        self.reply = reply


def _add(amount: int, old: bytes | None) -> bytes:
    """ENG-80's change for :func:`increment`: a partial, not a closure, for the loop
    benchmark's INCR (it spares making a function and a cell per call)."""
    value = 0 if old is None else parse_int(old)
    if value is None:
        raise _RefusedError(NOT_AN_INTEGER)
    new = value + amount
    if not _INT64_MIN <= new <= _INT64_MAX:
        raise _RefusedError(OVERFLOW)
    return b"%d" % new


_ADD_ONE: Final = functools.partial(_add, 1)


OVERFLOW: Final = Error("ERR increment or decrement would overflow")


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
        session.server.counters.looked_up(old is not None)  # PROTO-113
        tx.put(key, args[2])
    session.watches.touch(key)
    return old


def _getdel(session: Session, args: list[bytes]) -> Reply:
    """PROTO-89: GETDEL key: the value (or null), and the key is deleted."""
    key = args[1]
    with session.store.transaction() as tx:
        old = tx.get(key)
        session.server.counters.looked_up(old is not None)  # PROTO-113
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
        session.server.counters.looked_up(value is not None)  # PROTO-113
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
    """PROTO-88, PROTO-113"""
    value = session.store.get(args[1])
    session.server.counters.looked_up(value is not None)
    return 0 if value is None else len(value)


def _getrange(session: Session, args: list[bytes]) -> Reply:
    """PROTO-88: GETRANGE (and SUBSTR) key start end, both inclusive, negative from the end."""
    start, end = parse_int(args[2]), parse_int(args[3])
    if start is None or end is None:
        return NOT_AN_INTEGER
    value = session.store.get(args[1])
    session.server.counters.looked_up(value is not None)  # PROTO-113
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


LCS_TABLE_LIMIT: Final = 4 * 1024 * 1024
"""PROTO-115: the most bytes LCS's table may take, counted as Redis counts them (four a cell);
Redis's bound is its ``proto-max-bulk-len`` (512 MB), which pure Python would take minutes to fill
while every other connection waits."""


def _lcs(session: Session, args: list[bytes]) -> Reply:
    """PROTO-115: LCS key1 key2 [LEN] [IDX] [MINMATCHLEN len] [WITHMATCHLEN], as Redis 7's
    lcsCommand (t_string.c) computes it: the dynamic-programming table, then one walk back from
    its corner that yields the string and the matching ranges, last ranges first."""
    store = session.store
    counters = session.server.counters
    first, second = store.get(args[1]), store.get(args[2])
    counters.looked_up(first is not None)  # PROTO-113: both keys, before the options
    counters.looked_up(second is not None)
    a, b = first or b"", second or b""
    get_len = get_idx = with_match_len = False
    min_match_len = 0
    i = 3
    while i < len(args):
        option = args[i].upper()
        if option == b"IDX":
            get_idx = True
        elif option == b"LEN":
            get_len = True
        elif option == b"WITHMATCHLEN":
            with_match_len = True
        elif option == b"MINMATCHLEN" and i + 1 < len(args):
            parsed = parse_int(args[i + 1])
            if parsed is None:
                return NOT_AN_INTEGER
            min_match_len = max(parsed, 0)
            i += 1
        else:
            return SYNTAX_ERROR
        i += 1
    if get_len and get_idx:
        return Error("ERR If you want both the length and indexes, please just use IDX.")
    if (len(a) + 1) * (len(b) + 1) * 4 > LCS_TABLE_LIMIT:
        return Error("ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len")
    table = [[0] * (len(b) + 1)]
    for byte in a:
        above = table[-1]
        row = [0]
        for j, other in enumerate(b, 1):
            row.append(above[j - 1] + 1 if byte == other else max(above[j], row[j - 1]))
        table.append(row)
    length = table[len(a)][len(b)]
    if get_len:
        return length
    result = bytearray(length)
    matches: list[Reply] = []
    idx = length
    unset = len(a)
    a_start = a_end = b_start = b_end = 0
    a_start = unset
    i, j = len(a), len(b)
    while i > 0 and j > 0:
        emit = False
        if a[i - 1] == b[j - 1]:
            result[idx - 1] = a[i - 1]
            if a_start == unset:
                a_start = a_end = i - 1
                b_start = b_end = j - 1
            elif a_start == i and b_start == j:
                a_start -= 1
                b_start -= 1
            else:
                emit = True
            if a_start == 0 or b_start == 0:
                emit = True
            idx -= 1
            i -= 1
            j -= 1
        else:
            if table[i - 1][j] > table[i][j - 1]:
                i -= 1
            else:
                j -= 1
            if a_start != unset:
                emit = True
        match_len = a_end - a_start + 1
        if emit:
            if get_idx and (min_match_len == 0 or match_len >= min_match_len):
                match: list[Reply] = [[a_start, a_end], [b_start, b_end]]
                if with_match_len:
                    match.append(match_len)
                matches.append(match)
            a_start = unset
    if get_idx:
        return Map(((b"matches", matches), (b"len", length)))
    return bytes(result)
