"""The in-memory key index: each live key mapped to where its newest record lies (ENG-11, ENG-13).

The index is a plain ``dict[bytes, int]``. The int is a *location*, three fields packed into one
integer below 2**60, because CPython stores such an int in 32 bytes while a ``(segment, offset,
size)`` tuple costs over 100: with a million keys that is the difference between the index fitting
the memory target of the benchmark (bench/README.md) or not.

    bit 59 ............ 45 44 ........... 16 15 ........ 0
        segment slot (15)   offset (29)       value_len (16)

* The *slot* is a small number the store gives each open segment (not its file number, which only
  grows), so at most ``MAX_SLOTS`` segments are open at once.
* The *offset* is where the record starts in its segment, hence ``MAX_SEGMENT_SIZE``.
* ``value_len`` tells the reader how many bytes to read in one go: the record is
  ``RECORD_HEADER_SIZE + len(key) + value_len`` long. Values of ``LARGE_VALUE`` bytes or more store
  ``LARGE_VALUE`` and the reader first reads the record header to learn the real length; for such
  values the extra small read is lost in the cost of reading the value.

Locations are made by :func:`pack_location`, many at once by :func:`pack_locations`, and taken
apart by :func:`unpack_location`; outside this module the bits are written out in one place only,
the replay loop of :func:`catlog.walk.replay_plain`, which the reopen benchmark needs.
:mod:`catlog.walk` replays segments into the index, with :func:`apply_record` for every record
its loops do not take inline.

Expiry times (FMT-21) live beside the index, in a second dict from key to ``(expires_at_ms,
location)``. Replay only ever adds to it; an entry counts only while the index still holds the
same location for its key, which :func:`live_expiries` checks once after the last segment. So a
later plain PUT or DELETE of the key costs the hot loop nothing for the expiry it ends.
"""

from __future__ import annotations

import sys
from array import array
from typing import Final

from .codec import Record, RecordType

SLOT_BITS: Final = 15
OFFSET_BITS: Final = 29
LEN_BITS: Final = 16

MAX_SLOTS: Final = 1 << SLOT_BITS
MAX_SEGMENT_SIZE: Final = 1 << OFFSET_BITS
LARGE_VALUE: Final = (1 << LEN_BITS) - 1

SLOT_SHIFT: Final = OFFSET_BITS + LEN_BITS
OFFSET_MASK: Final = MAX_SEGMENT_SIZE - 1

FORMER_MAX_SEGMENT_SIZE: Final = 1 << 30
"""FMT-36: the longest segment an older catlog wrote, when an offset had 30 bits and a slot 14."""


def older_segment(size: int, directory: str) -> str:
    """FMT-36: why a segment of ``size`` bytes, over :data:`MAX_SEGMENT_SIZE` but not over
    :data:`FORMER_MAX_SEGMENT_SIZE`, is refused, and how to bring the store in ``directory``
    back within the limit: nothing about its bytes is wrong, so the remedy is not a repair.
    """
    assert MAX_SEGMENT_SIZE < size <= FORMER_MAX_SEGMENT_SIZE, "FMT-12's corruption otherwise"
    return (
        f"segment of {size} bytes, longer than this catlog reads ({MAX_SEGMENT_SIZE}); an older"
        f" catlog, which allowed {FORMER_MAX_SEGMENT_SIZE}, wrote it, and nothing was changed:"
        f" compact the store with that catlog (catlog compact --segment-size {MAX_SEGMENT_SIZE}"
        f" {directory}), then open it with this one"
    )


def pack_location(slot: int, offset: int, value_len: int) -> int:
    """The index entry for a record at ``offset`` of the segment in ``slot``."""
    assert 0 <= slot < MAX_SLOTS, "slot out of range: the store hands out at most MAX_SLOTS"
    assert 0 <= offset < MAX_SEGMENT_SIZE, "offset out of range: segment_size is capped"
    return (
        (slot << SLOT_SHIFT)
        | (offset << LEN_BITS)
        | (value_len if value_len < LARGE_VALUE else LARGE_VALUE)
    )


def unpack_location(location: int) -> tuple[int, int, int]:
    """``(slot, offset, value_len)``; ``value_len == LARGE_VALUE`` means read the header first."""
    return location >> SLOT_SHIFT, (location >> LEN_BITS) & OFFSET_MASK, location & LARGE_VALUE


_SLOT_LOW_BITS: Final = tuple(bytes((b | low << 5) & 0xFF for b in range(256)) for low in range(8))
"""For each value of a slot's three low bits, the byte table that puts them above an offset's top
five (see :func:`pack_locations`)."""
_BELOW_32: Final = bytes(range(32))
_BYTE_LAYOUT: Final = (
    sys.byteorder == "little" and array("I").itemsize == 4 and array("Q").itemsize == 8
)
"""Whether :func:`pack_locations` may lay out bytes: little-endian, with 4- and 8-byte columns."""


def pack_locations(
    slot: int, offsets: array[int], value_lens: array[int], longest: int | None = None
) -> list[int] | None:
    """:func:`pack_location` of each ``(offset, value_len)`` of the two columns, in ``slot``: the
    index entries of a hint's PUT entries (:func:`catlog.hint.apply_hint`). ``longest`` is the
    largest of ``value_lens`` if the caller knows it already.

    ``None`` if an offset is 2**29 or more, which no location can hold (FMT-12): its top bits
    would land in the slot's.

    A location is ``slot << 45 | offset << 16 | value_len`` (the length capped at 65,535). In
    the common case, on a little-endian machine with every value shorter than that and every
    offset below 2**29, each location's eight bytes are the value length's two low bytes, the
    offset's four (its top byte with the slot's three low bits above its five), then the slot's
    other twelve bits: the columns' bytes are laid into place with strided slices, in C, and
    read back as u64s, instead of calling :func:`pack_location` for each, which the other cases
    still do (the reopen benchmark). This byte layout and :func:`pack_location` are the two
    spellings of a location's bits in this module; tests/unit/test_hint.py checks they agree.
    """
    if longest is None:
        longest = max(value_lens, default=0)
    count = len(offsets)
    if not _BYTE_LAYOUT or not count:
        if max(offsets, default=0) >= MAX_SEGMENT_SIZE:
            return None
        top_bytes = b""
    else:
        top_bytes = memoryview(offsets).cast("B")[3::4].tobytes()
        if top_bytes.translate(None, _BELOW_32):
            return None
    if not _BYTE_LAYOUT or not count or longest >= LARGE_VALUE:
        return [
            pack_location(slot, offset, value_len)
            for offset, value_len in zip(offsets, value_lens, strict=True)
        ]
    lengths = memoryview(value_lens).cast("B")
    places = memoryview(offsets).cast("B")
    packed = bytearray(8 * count)
    packed[0::8] = lengths[0::4]
    packed[1::8] = lengths[1::4]
    packed[2::8] = places[0::4]
    packed[3::8] = places[1::4]
    packed[4::8] = places[2::4]
    packed[5::8] = top_bytes.translate(_SLOT_LOW_BITS[slot & 7])
    packed[6::8] = bytes(((slot >> 3) & 0xFF,)) * count
    packed[7::8] = bytes((slot >> 11,)) * count
    return array("Q", packed).tolist()


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
