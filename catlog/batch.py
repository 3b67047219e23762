"""Atomic batches (ENG-37, FMT-22, FMT-23): operations gathered, then written as one record.

:func:`encode_ops` turns a list of operations into the batch's members and the effect each has
on the index once the batch is durable; it checks every operation before anything is written, so
a bad one raises with nothing appended. The store appends the members as one batch record.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from .arguments import check_key, check_value, ttl_ms
from .codec import (
    EXPIRY_SIZE,
    MAX_EXPIRING_VALUE_SIZE,
    MAX_VALUE_SIZE,
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


Write = tuple[bytes, bytes | None, int]
"""One write of a batch, checked: its key, its value (``None`` for a delete) and its absolute
expiry in ms (0 for none)."""


def encode_ops(ops: Iterable[BatchOp], timestamp: int) -> tuple[list[bytes], list[Effect]]:
    """ENG-37: the members of a batch of ``ops`` written at ``timestamp``, and their effects.

    Raises, before anything is written, for an operation of the wrong shape, an invalid key or
    value (ENG-2, ENG-3), or members that together would not fit one record (FMT-22).
    """
    writes: list[Write] = []
    for op in ops:
        kind, key, *rest = op
        key = check_key(key)
        if kind == "delete" and not rest:
            writes.append((key, None, 0))
        elif kind == "put" and len(rest) in (1, 2):
            ttl = rest[1] if len(rest) == 2 else None
            if ttl is None:
                writes.append((key, check_value(rest[0]), 0))
            else:
                value = check_value(rest[0], MAX_EXPIRING_VALUE_SIZE)
                writes.append((key, value, timestamp + ttl_ms(ttl)))
        else:
            raise ValueError(
                "a batch operation is ('put', key, value[, ttl]) or ('delete', key),"
                f" not {op!r:.80}"
            )
    return encode_writes(writes, timestamp)


def encode_writes(writes: Iterable[Write], timestamp: int) -> tuple[list[bytes], list[Effect]]:
    """ENG-37, ENG-54: the members of a batch of checked ``writes``, and their effects.

    Raises :class:`BatchTooLargeError` if the members would not fit one record (FMT-22).
    """
    members: list[bytes] = []
    effects: list[Effect] = []
    size = 0
    for key, value, expires_at in writes:
        if value is None:
            member = encode_member(_DELETE, timestamp, key)
            effects.append((key, None, 0))
        elif expires_at:
            member = encode_member(_PUT_EXPIRING, timestamp, key, value, expires_at)
            effects.append((key, len(value) + EXPIRY_SIZE, expires_at))
        else:
            member = encode_member(_PUT, timestamp, key, value)
            effects.append((key, len(value), 0))
        members.append(member)
        size += len(member)
        if size > MAX_VALUE_SIZE:
            raise BatchTooLargeError(
                f"batch of more than {MAX_VALUE_SIZE} bytes of records (FMT-22)"
            )
    return members, effects


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
