"""The in-memory key index: each live key mapped to where its newest record lies (ENG-11, ENG-13).

The index is a plain ``dict[bytes, int]``. The int is a *location*, three fields packed into one
integer below 2**60, because CPython stores such an int in 32 bytes while a ``(segment, offset,
size)`` tuple costs over 100: with a million keys that is the difference between the index fitting
the memory target of the benchmark (bench/README.md) or not.

    bit 59 ............ 46 45 ........... 16 15 ........ 0
        segment slot (14)   offset (30)       value_len (16)

* The *slot* is a small number the store gives each open segment (not its file number, which only
  grows), so at most ``MAX_SLOTS`` segments are open at once.
* The *offset* is where the record starts in its segment, hence ``MAX_SEGMENT_SIZE``.
* ``value_len`` tells the reader how many bytes to read in one go: the record is
  ``RECORD_HEADER_SIZE + len(key) + value_len`` long. Values of ``LARGE_VALUE`` bytes or more store
  ``LARGE_VALUE`` and the reader first reads the record header to learn the real length; for such
  values the extra small read is lost in the cost of reading the value.

:func:`replay_segment` rebuilds the index from a segment's bytes at start-up. It is the hottest
loop of an open, so it inlines the validity checks of :func:`catlog.codec.decode_record` for the
two commonest types, PUT and DELETE, and hands every other record (an expiring PUT, a batch) to
``decode_record``, which also says why a record it rejects is damage. Its conditions must accept
exactly what ``decode_record`` accepts; ``tests/unit/test_index.py`` checks that they agree.
:func:`replay_packed` is its twin for the packed segments compaction writes (FMT-26), checked
the same way in ``tests/unit/test_packed.py``.

Expiry times (FMT-21) live beside the index, in a second dict from key to ``(expires_at_ms,
location)``. Replay only ever adds to it; an entry counts only while the index still holds the
same location for its key, which :func:`live_expiries` checks once after the last segment. So a
later plain PUT or DELETE of the key costs the hot loop nothing for the expiry it ends.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from crc32c import crc32c

from .codec import (
    MAX_KEY_SIZE,
    MAX_VALUE_SIZE,
    PACKED_SHORT,
    PACKED_SHORT_SIZE,
    PACKED_SHORT_TYPE,
    RECORD_HEADER,
    RECORD_HEADER_SIZE,
    Damage,
    Record,
    RecordType,
    decode_record,
)

SLOT_BITS: Final = 14
OFFSET_BITS: Final = 30
LEN_BITS: Final = 16

MAX_SLOTS: Final = 1 << SLOT_BITS
MAX_SEGMENT_SIZE: Final = 1 << OFFSET_BITS
LARGE_VALUE: Final = (1 << LEN_BITS) - 1

SLOT_SHIFT: Final = OFFSET_BITS + LEN_BITS
OFFSET_MASK: Final = MAX_SEGMENT_SIZE - 1


def pack_location(slot: int, offset: int, value_len: int) -> int:
    """The index entry for a record at ``offset`` of the segment in ``slot``."""
    assert 0 <= slot < MAX_SLOTS, "slot out of range: the store hands out at most MAX_SLOTS"
    assert 0 <= offset < MAX_SEGMENT_SIZE, "offset out of range: segment_size is capped"
    return (slot << SLOT_SHIFT) | (offset << LEN_BITS) | min(value_len, LARGE_VALUE)


def unpack_location(location: int) -> tuple[int, int, int]:
    """``(slot, offset, value_len)``; ``value_len == LARGE_VALUE`` means read the header first."""
    return location >> SLOT_SHIFT, (location >> LEN_BITS) & OFFSET_MASK, location & LARGE_VALUE


Expiring = dict[bytes, tuple[int, int]]
"""Replay's record of expiry times: key to ``(expires_at_ms, location)`` (see the module doc)."""


def live_expiries(index: dict[bytes, int], expiring: Expiring) -> dict[bytes, int]:
    """The expiry of each key whose newest record is an expiring PUT, once replay is over."""
    return {key: at for key, (at, location) in expiring.items() if index.get(key) == location}


def apply_record(record: Record, slot: int, index: dict[bytes, int], expiring: Expiring) -> None:
    """ENG-13, FMT-22: apply one decoded record, or every member of a batch in order."""
    for member in record.members or (record,):
        if member.type is RecordType.DELETE:
            index.pop(member.key, None)
            continue
        location = pack_location(slot, member.offset, member.value_len)
        index[member.key] = location
        if member.type is RecordType.PUT_EXPIRING:
            expiring[member.key] = (member.expires_at_ms, location)


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """How far a segment replayed cleanly, and what stopped it if it did not reach the end."""

    end: int
    damage: Damage | None


def replay_segment(
    data: bytes, start: int, slot: int, index: dict[bytes, int], expiring: Expiring
) -> ReplayResult:
    """Apply every record of ``data`` from ``start`` to ``index``, oldest first (ENG-13).

    A PUT points its key at the record; a DELETE removes the key; an expiring PUT also notes its
    expiry in ``expiring``; a batch applies its members in order (FMT-22). Replay stops at the
    first damage and reports it; records before it have been applied, nothing after it has (no
    member of a damaged batch either).

    Written for the reopen benchmark: one ``if`` for all the checks before the crc, the crc over
    a ``bytes`` slice (cheaper than a ``memoryview`` slice for records this small), and no
    per-record counter. A header cut short
    at the end makes ``unpack_from`` raise, which ends the loop without a length test per record.
    """
    unpack = RECORD_HEADER.unpack_from
    slot_bits = slot << SLOT_SHIFT
    end_of_data = len(data)
    pos = start
    try:
        while pos < end_of_data:
            crc, rtype, _ts, klen, vlen = unpack(data, pos)
            key_start = pos + RECORD_HEADER_SIZE
            end = key_start + klen + vlen
            if (
                klen > MAX_KEY_SIZE
                or vlen > MAX_VALUE_SIZE
                or end > end_of_data
                or crc32c(data[pos + 4 : end]) != crc
            ):
                break
            if rtype == 1:
                index[data[key_start : key_start + klen]] = (
                    slot_bits | (pos << LEN_BITS) | (vlen if vlen < LARGE_VALUE else LARGE_VALUE)
                )
            elif rtype == 2 and not vlen:
                index.pop(data[key_start : key_start + klen], None)
            else:
                record = decode_record(data, pos)
                if not isinstance(record, Record):
                    break
                apply_record(record, slot, index, expiring)
            pos = end
    except struct.error:
        pass
    return _result(data, pos, packed=False)


_PACKED_PUT: Final = PACKED_SHORT_TYPE | RecordType.PUT


def replay_packed(
    data: bytes, start: int, slot: int, index: dict[bytes, int], expiring: Expiring
) -> ReplayResult:
    """:func:`replay_segment` for a packed segment (FMT-26), whose records are FMT-27's.

    The loop takes a short-form PUT, the common packed record, without decoding it into an
    object: its lengths fit their limits by their widths (FMT-27), and ``vlen`` below 65,535
    keeps a short value below ``LARGE_VALUE``. Every other record goes to ``decode_record``.
    """
    unpack = PACKED_SHORT.unpack_from
    slot_bits = slot << SLOT_SHIFT
    end_of_data = len(data)
    pos = start
    try:
        while pos < end_of_data:
            crc, rtype, klen, vlen = unpack(data, pos)
            key_start = pos + PACKED_SHORT_SIZE
            end = key_start + klen + vlen
            if (
                rtype == _PACKED_PUT
                and vlen < LARGE_VALUE
                and end <= end_of_data
                and crc32c(data[pos + 4 : end]) == crc
            ):
                index[data[key_start : key_start + klen]] = slot_bits | (pos << LEN_BITS) | vlen
                pos = end
                continue
            record = decode_record(data, pos, packed=True)
            if not isinstance(record, Record):
                break
            apply_record(record, slot, index, expiring)
            pos += record.size
    except struct.error:
        pass
    return _result(data, pos, packed=True)


def _result(data: bytes, pos: int, *, packed: bool) -> ReplayResult:
    if pos == len(data):
        return ReplayResult(pos, None)
    damage = decode_record(data, pos, packed=packed)
    assert not isinstance(damage, Record), "replay rejected a record decode_record accepts"
    return ReplayResult(pos, damage)
