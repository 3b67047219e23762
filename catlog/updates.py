"""The writes that read first: DELETE, EXPIRE, PERSIST, read-modify-write, batches, transactions.

Each is judged on the key's *newest* state, as every write appended before it leaves it, those
still waiting for their fsync under ``always`` included (ENG-51): :func:`newest` looks in the
writer's pending writes before the index. So the read and the write happen under one hold of the
write lock, and no other write comes between them (ENG-54, ENG-80). Each function takes the
lock itself (``begin`` keeps it for a transaction's block) and returns the ticket to wait on:
the write's, or, if it wrote nothing, that of the newest write its answer was judged on.

Every function works on a :class:`catlog.writer.Writer`; :class:`catlog.store.Store`'s methods
of the same names are these.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Final

from crc32c import crc32c

from .arguments import check_expiry, check_key, check_value
from .batch import BatchOp, Write, encode_ops, encode_writes
from .codec import (
    BODY_HEADER,
    CRC_FIELD,
    EXPIRY_SIZE,
    MAX_EXPIRING_VALUE_SIZE,
    MAX_KEY_SIZE,
    MAX_VALUE_SIZE,
    RecordType,
    encode_batch,
    encode_record,
)
from .index import LARGE_VALUE, LEN_BITS, SLOT_SHIFT
from .reading import read_value
from .writer import Writer

_PUT: Final = int(RecordType.PUT)
_PUT_EXPIRING: Final = int(RecordType.PUT_EXPIRING)


def newest(w: Writer, key: bytes) -> tuple[int, int] | None:
    """ENG-51: where ``key``'s value is, and its expiry or 0, as every write appended so far
    leaves it; ``None`` if that leaves no value. Lock held."""
    for _, pending, location, expires_at in reversed(w.pending):
        if pending == key:
            if location is None or (expires_at and w.now_ms() > expires_at):
                return None
            return location, expires_at
    location = w.index.get(key)
    if location is None or (w.expires and w.expired(key)):
        return None
    return location, w.expires.get(key, 0)


def newest_value(w: Writer, key: bytes) -> tuple[bytes, int] | None:
    """ENG-51, ENG-54: the value and expiry (or 0) of ``key`` as every write appended so far
    leaves it, or ``None``. Lock held."""
    found = newest(w, key)
    if found is None:
        return None
    return read_value(key, found[0], w.segments.slots, w.active), found[1]


def delete(w: Writer, key: bytes) -> tuple[bool, int]:
    """ENG-5, ENG-28: append a DELETE if ``key`` has a value (an expired key has none, ENG-34);
    returns whether it did, and the ticket to wait on."""
    key = check_key(key)
    with w.lock:
        if newest(w, key) is None:
            w.refuse_if_failed()
            return False, w.last_ticket
        w.append(encode_record(RecordType.DELETE, w.now_ms(), key))
        w.effect(key, None, 0)
        return True, w.last_ticket


def expire_at(w: Writer, key: bytes, expires_at_ms: int) -> tuple[bool, int]:
    """ENG-35: rewrite ``key``'s value with a new expiry; a time already past deletes it."""
    key = check_key(key)
    expires_at_ms = check_expiry(expires_at_ms)
    with w.lock:
        w.refuse_if_failed()
        found = newest_value(w, key)
        if found is None:
            return False, w.last_ticket
        value = found[0]
        if expires_at_ms <= w.now_ms():
            w.append(encode_record(RecordType.DELETE, w.now_ms(), key))
            w.effect(key, None, 0)
            return True, w.last_ticket
        if len(value) > MAX_EXPIRING_VALUE_SIZE:
            check_value(value, MAX_EXPIRING_VALUE_SIZE)
        record = encode_record(_PUT_EXPIRING, w.now_ms(), key, value, expires_at_ms)
        location = w.append(record, len(value) + EXPIRY_SIZE)
        w.effect(key, location, expires_at_ms)
        return True, w.last_ticket


def persist(w: Writer, key: bytes) -> tuple[bool, int]:
    """ENG-36: rewrite ``key``'s value as a plain PUT if it has an expiry."""
    key = check_key(key)
    with w.lock:
        found = newest(w, key)
        if found is None or not found[1]:
            w.refuse_if_failed()
            return False, w.last_ticket
        w.refuse_if_failed()
        value = read_value(key, found[0], w.segments.slots, w.active)
        record = encode_record(_PUT, w.now_ms(), key, value)
        location = w.append(record, len(value))
        w.effect(key, location, 0)
        return True, w.last_ticket


def modify(
    w: Writer, key: bytes, change: Callable[[bytes | None], bytes | None]
) -> tuple[bytes | None, int]:
    """ENG-80, ENG-81: replace ``key``'s value with ``change(value)`` as one step; returns the
    value written (or ``None`` if ``change`` returned ``None`` and nothing was written) and the
    ticket to wait on.

    A transaction (ENG-54) does the same for one key at three times the cost: its object, its
    batch frame and its per-call checks. The server's INCR under "always" is this call (under
    the other policies, :func:`modify_many`). ``change``
    runs with the write lock held, so it must be quick and must not call the store; an exception
    from it propagates with nothing written.
    """
    if type(key) is not bytes or len(key) > MAX_KEY_SIZE:
        key = check_key(key)
    with w.lock:
        w.refuse_if_failed()
        expires_at = 0
        if w.pending or w.expires:
            found = newest(w, key)
            location = None
            if found is not None:
                location, expires_at = found
        else:  # newest's common case, inline
            location = w.index.get(key)
        old = None
        if location is not None:
            old = w.read_at(key, location, w.segments.slots)
        new = change(old)
        if new is None:
            return None, w.last_ticket
        now = w.now_ms()
        if expires_at:  # ENG-80: the value keeps its expiry, as Redis's INCR keeps a TTL
            new = check_value(new, MAX_EXPIRING_VALUE_SIZE)
            record = encode_record(_PUT_EXPIRING, now, key, new, expires_at)
            value_len = len(new) + EXPIRY_SIZE
        else:
            new = check_value(new)
            record = encode_record(_PUT, now, key, new)
            value_len = len(new)
        w.effect(key, w.append(record, value_len, now), expires_at)
        return new, w.last_ticket


def modify_many(
    w: Writer, changes: Iterable[tuple[bytes, Callable[[bytes | None], bytes | None]]]
) -> tuple[list[bytes | Exception | None], int]:
    """ENG-90, ENG-91: :func:`modify` for each ``(key, change)`` in order, under one hold of the
    write lock; returns each one's outcome (the value written, ``None``, or the exception it met)
    and the newest ticket, which covers every write a change was shown.

    One lock, one clock reading and one buffer append for the run, as
    :meth:`catlog.writer.Writer.put_many` does for SETs: for the server benchmark's pipelined
    INCRs (SRV-28). A change that raises an ``Exception`` spoils only its own outcome.
    """
    with w.lock:
        w.refuse_if_failed()
        now = w.now_ms()
        index = w.index
        slots = w.segments.slots
        active = w.active
        pack = BODY_HEADER.pack
        crc_field = CRC_FIELD.pack
        outcomes: list[bytes | Exception | None] = []
        seen: dict[bytes, tuple[bytes | None, int]] = {}
        """ENG-90: each key's value and expiry as this call's earlier changes left them."""
        writes: list[tuple[bytes, bytes, int, int]] = []
        """(key, record, value length for its location, expiry or 0), in order."""
        lookup = w.pending or w.expires
        for given_key, change in changes:
            key = given_key
            try:
                if type(key) is not bytes or len(key) > MAX_KEY_SIZE:
                    key = check_key(key)
                if key in seen:
                    old, expires_at = seen[key]
                else:
                    expires_at = 0
                    if lookup:
                        found = newest(w, key)
                        location = None
                        if found is not None:
                            location, expires_at = found
                    else:  # newest's common case, inline (the server benchmark's INCR)
                        location = index.get(key)
                    old = None
                    if location is not None:
                        old = w.read_at(key, location, slots)
                new = change(old)
                if new is None:
                    outcomes.append(None)
                    continue
                if expires_at:  # ENG-80: the value keeps its expiry
                    new = check_value(new, MAX_EXPIRING_VALUE_SIZE)
                    record = encode_record(_PUT_EXPIRING, now, key, new, expires_at)
                    value_len = len(new) + EXPIRY_SIZE
                else:
                    if type(new) is not bytes or len(new) > MAX_VALUE_SIZE:
                        new = check_value(new)
                    value_len = len(new)
                    body = pack(_PUT, now, len(key), value_len) + key + new
                    record = crc_field(crc32c(body)) + body
            except Exception as exc:
                outcomes.append(exc)  # ENG-90: this change's own, nothing written for it
                continue
            seen[key] = new, expires_at
            writes.append((key, record, value_len, expires_at))
            outcomes.append(new)
        if not writes:
            return outcomes, w.last_ticket
        data = b"".join([write[1] for write in writes])
        if active.end + len(data) > w.segment_size:
            # One at a time: append rotates where a record would not fit (ENG-9).
            for key, record, value_len, expires_at in writes:
                w.effect(key, w.append(record, value_len, now, purge=False), expires_at)
            w.purge_after_write(now)
            return outcomes, w.last_ticket
        try:
            offset = active.append(data)
        except OSError as exc:
            raise w.fail("write", exc) from exc
        ticket = w.last_ticket
        w.last_ticket = ticket + len(writes)
        w.unsynced = True
        keyspace = w.keyspace
        slot = active.slot
        pending = w.pending if w.sync_each_write else None
        expires = w.expires
        for key, record, value_len, expires_at in writes:
            # inline pack_location: the server benchmark's pipelined INCRs come here.
            location = (
                (slot << SLOT_SHIFT)
                | (offset << LEN_BITS)
                | (value_len if value_len < LARGE_VALUE else LARGE_VALUE)
            )
            offset += len(record)
            if pending is not None:
                ticket += 1
                pending.append((ticket, key, location, expires_at))
            elif expires_at:
                keyspace.apply(key, location, expires_at, slot)
            else:
                old_location = index.get(key)
                index[key] = location
                if old_location is not None:
                    keyspace.kill(len(key), old_location)
                if expires and key in expires:
                    keyspace.clear_expiry(key)
        w.purge_after_write(now)  # ENG-61
        return outcomes, w.last_ticket


def write_batch(w: Writer, ops: Iterable[BatchOp]) -> int:
    """ENG-37: append one batch record (FMT-22) of ``ops`` and return its ticket."""
    timestamp = w.now_ms()
    members, effects = encode_ops(ops, timestamp)
    if not members:
        with w.lock:
            w.refuse_if_failed()
            return w.last_ticket
    record = encode_batch(timestamp, members)
    with w.lock:
        return w.append_batch(record, members, effects)


def begin(w: Writer) -> None:
    """ENG-54: a transaction takes the write lock for its whole block."""
    w.lock.acquire()
    if w.refusal is not None:
        w.lock.release()
        raise w.refused()


def commit(w: Writer, writes: list[Write]) -> int:
    """ENG-54: append a transaction's writes as one batch, then let go of the lock."""
    try:
        if not writes:
            return 0
        timestamp = w.now_ms()
        members, effects = encode_writes(writes, timestamp)
        return w.append_batch(encode_batch(timestamp, members), members, effects)
    finally:
        w.lock.release()


def abort(w: Writer) -> None:
    """ENG-54: a transaction's block raised: nothing is written."""
    w.lock.release()
