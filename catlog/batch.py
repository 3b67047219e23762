"""Atomic batches (ENG-37, FMT-22, FMT-23): operations gathered, then written as one record.

:func:`encode_ops` turns a list of operations into the batch's members and the effect each has
on the index once the batch is durable; it checks every operation before anything is written, so
a bad one raises with nothing appended. The store appends the members as one batch record.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from crc32c import crc32c

from .arguments import check_key, check_value, ttl_ms
from .codec import (
    BODY_HEADER,
    CRC_FIELD,
    EXPIRY_SIZE,
    MAX_EXPIRING_VALUE_SIZE,
    MAX_KEY_SIZE,
    MAX_VALUE_SIZE,
    MEMBER_CRC_MASK,
    MEMBER_FLAG,
    RecordType,
    encode_member,
)
from .errors import BatchTooLargeError

BatchOp = tuple[str, bytes] | tuple[str, bytes, bytes] | tuple[str, bytes, bytes, float | None]
"""ENG-37: ``("put", key, value)``, ``("put", key, value, ttl_seconds)`` or ``("delete", key)``."""

Effect = tuple[bytes, int | None, int]
"""A member's effect: its key, its value length (``None`` for a delete) and its expiry or 0."""

_PUT = int(RecordType.PUT)
_DELETE = int(RecordType.DELETE)
_PUT_EXPIRING = int(RecordType.PUT_EXPIRING)
_MEMBER_PUT = MEMBER_FLAG | _PUT


Write = tuple[bytes, bytes | None, int]
"""One write of a batch, checked: its key, its value (``None`` for a delete) and its absolute
expiry in ms (0 for none)."""


def encode_ops(ops: Iterable[BatchOp], timestamp: int) -> tuple[list[bytes], list[Effect]]:
    """ENG-37: the members of a batch of ``ops`` written at ``timestamp``, and their effects.

    Raises, before anything is written, for an operation of the wrong shape, an invalid key or
    value (ENG-2, ENG-3), or members that together would not fit one record (FMT-22).

    A plain put, all of an MSET, is checked and encoded inline: the server benchmark's MSET
    spent a third of its time in the per-member calls this spares.
    """
    members: list[bytes] = []
    effects: list[Effect] = []
    pack = BODY_HEADER.pack
    crc_field = CRC_FIELD.pack
    size = 0
    for op in ops:
        if len(op) == 3 and op[0] == "put":
            key = op[1]
            if type(key) is not bytes or len(key) > MAX_KEY_SIZE:
                key = check_key(key)
            value = op[2]
            if type(value) is not bytes or len(value) > MAX_VALUE_SIZE:
                value = check_value(value)
            body = pack(_MEMBER_PUT, timestamp, len(key), len(value)) + key + value
            member = crc_field(crc32c(body) ^ MEMBER_CRC_MASK) + body
            effects.append((key, len(value), 0))
        else:
            member, effect = _encode_write(_checked(op, timestamp), timestamp)
            effects.append(effect)
        members.append(member)
        size += len(member)
        if size > MAX_VALUE_SIZE:
            raise BatchTooLargeError(
                f"batch of more than {MAX_VALUE_SIZE} bytes of records (FMT-22)"
            )
    return members, effects


def _checked(op: BatchOp, timestamp: int) -> Write:
    """ENG-37: one operation as a checked write, or the error its shape or sizes meet."""
    kind, key, *rest = op
    key = check_key(key)
    if kind == "delete" and not rest:
        return key, None, 0
    if kind == "put" and len(rest) in (1, 2):
        ttl = rest[1] if len(rest) == 2 else None
        if ttl is None:
            return key, check_value(rest[0]), 0
        return key, check_value(rest[0], MAX_EXPIRING_VALUE_SIZE), timestamp + ttl_ms(ttl)
    raise ValueError(
        f"a batch operation is ('put', key, value[, ttl]) or ('delete', key), not {op!r:.80}"
    )


def encode_writes(writes: Iterable[Write], timestamp: int) -> tuple[list[bytes], list[Effect]]:
    """ENG-37, ENG-54: the members of a batch of checked ``writes``, and their effects.

    Raises :class:`BatchTooLargeError` if the members would not fit one record (FMT-22).
    """
    members: list[bytes] = []
    effects: list[Effect] = []
    size = 0
    for write in writes:
        member, effect = _encode_write(write, timestamp)
        members.append(member)
        effects.append(effect)
        size += len(member)
        if size > MAX_VALUE_SIZE:
            raise BatchTooLargeError(
                f"batch of more than {MAX_VALUE_SIZE} bytes of records (FMT-22)"
            )
    return members, effects


def _encode_write(write: Write, timestamp: int) -> tuple[bytes, Effect]:
    key, value, expires_at = write
    if value is None:
        return encode_member(_DELETE, timestamp, key), (key, None, 0)
    if expires_at:
        member = encode_member(_PUT_EXPIRING, timestamp, key, value, expires_at)
        return member, (key, len(value) + EXPIRY_SIZE, expires_at)
    return encode_member(_PUT, timestamp, key, value), (key, len(value), 0)


class BatchWriter(Protocol):
    """What a :class:`Batch` writes to (:class:`catlog.store.Store`)."""

    def write_batch(self, ops: Iterable[BatchOp]) -> None: ...


class Batch:
    """ENG-37: operations gathered for :meth:`Store.write_batch`, written when the block ends.

    An exception inside the ``with`` block discards the batch: nothing of it is written.
    """

    __slots__ = ("_ops", "_store")

    def __init__(self, store: BatchWriter) -> None:
        self._store = store
        self._ops: list[BatchOp] = []

    def put(self, key: bytes, value: bytes, *, ttl: float | None = None) -> None:
        self._ops.append(("put", key, value, ttl))

    def delete(self, key: bytes) -> None:
        self._ops.append(("delete", key))

    def __len__(self) -> int:
        return len(self._ops)

    def __enter__(self) -> Batch:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        ops, self._ops = self._ops, []
        if exc_type is None:
            self._store.write_batch(ops)
