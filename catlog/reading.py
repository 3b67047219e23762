"""Reading one value: a positional read at the location the index gives, checked (ENG-11, ENG-12).

A location (catlog.index) names a segment by its slot, an offset, and the value's length (or
``LARGE_VALUE``, when the length is read from the record's header). The record there is read in
one ``pread``, its crc checked and its key compared with the key asked for, so that neither a
damaged byte nor an index pointing at the wrong record can return a wrong value: either is a
:class:`~catlog.errors.CorruptionError` naming the file, the offset and what is wrong.

The common case, a plain PUT in a segment of version 1, is judged inline; an expiring PUT, a batch
member and a packed record (FMT-21, FMT-23, FMT-27) each have a function of their own.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Final

from crc32c import crc32c

from . import codec
from .codec import (
    CRC_FIELD,
    EXPIRY_SIZE,
    MAX_VALUE_SIZE,
    MEMBER_CRC_MASK,
    MEMBER_FLAG,
    PACKED_LONG,
    PACKED_LONG_BIT,
    PACKED_SHORT,
    PACKED_SHORT_TYPE,
    RECORD_HEADER,
    RECORD_HEADER_SIZE,
    RecordType,
)
from .errors import CorruptionError, ReadError
from .index import LARGE_VALUE, LEN_BITS, OFFSET_MASK, SLOT_SHIFT, unpack_location
from .segment import ActiveSegment, Segment

_PUT: Final = int(RecordType.PUT)
_PUT_EXPIRING: Final = int(RecordType.PUT_EXPIRING)
_MEMBER_PUT: Final = MEMBER_FLAG | _PUT
_MEMBER_PUT_EXPIRING: Final = MEMBER_FLAG | _PUT_EXPIRING
_VALUE_AT: Final = {
    _PUT: 0,
    _PUT_EXPIRING: EXPIRY_SIZE,
    _MEMBER_PUT: 0,
    _MEMBER_PUT_EXPIRING: EXPIRY_SIZE,
}
"""ENG-12: the record types a key's value may be read from, and where the value starts after the
key in each (FMT-21: an expiring PUT's value field starts with its expiry)."""
_PACKED_PUT: Final = PACKED_SHORT_TYPE | _PUT
_COPY_TO_CHECK: Final = 4096
"""ENG-12: records up to this size are sliced for their crc check rather than viewed."""
_PACKED_VALUE_AT: Final = {
    _PACKED_PUT: 0,
    PACKED_SHORT_TYPE | _PUT_EXPIRING: EXPIRY_SIZE,
    PACKED_LONG_BIT | PACKED_SHORT_TYPE | _PUT: 0,
    PACKED_LONG_BIT | PACKED_SHORT_TYPE | _PUT_EXPIRING: EXPIRY_SIZE,
}
"""ENG-12, FMT-28: :data:`_VALUE_AT` for the records of a packed segment."""


def _read_buffer(buffer: bytearray, flushed: int, size: int, offset: int) -> bytes:
    """Read a record that is still in the active segment's write buffer (see catlog.segment)."""
    start = offset - flushed
    return bytes(buffer[start : start + size])


def read_value(key: bytes, location: int, slots: list[Segment], active: Segment) -> bytes:
    """ENG-12: the value of the record at ``location``, which the index gives for ``key``.

    ``slots`` are the segments the location was taken with (the store's, or a snapshot's),
    ``active`` the segment being written now, whose newest records may still be in its
    write buffer. Damage raises :class:`CorruptionError`; a failed read, ``OSError``.
    """
    # inline unpack_location: the get benchmark's every read pays for a call otherwise.
    slot = location >> SLOT_SHIFT
    offset = (location >> LEN_BITS) & OFFSET_MASK
    value_len = location & LARGE_VALUE
    segment = slots[slot]
    pread: Callable[[int, int], bytes] = segment.pread
    # ENG-48: the very segment that is active, not one with its slot: a snapshot's location
    # may lie in a segment compaction removed, whose slot a newer segment holds now.
    if segment is active:
        assert isinstance(active, ActiveSegment), "only the active segment has a buffer"
        _, flushed, buffer = active.pending
        if offset >= flushed:
            pread = functools.partial(_read_buffer, buffer, flushed)
    if value_len == LARGE_VALUE:
        value_len = _large_value_len(segment, pread, offset)
    key_end = RECORD_HEADER_SIZE + len(key)
    size = key_end + value_len
    data = pread(size, offset)
    if (
        len(data) == size
        and data[4] == _PUT
        # A slice of a small record is cheaper to make than a memoryview (the get benchmark);
        # a large one would be copied, which a memoryview spares.
        and crc32c(data[4:] if size <= _COPY_TO_CHECK else memoryview(data)[4:])
        == CRC_FIELD.unpack_from(data)[0]
        and data[RECORD_HEADER_SIZE:key_end] == key
    ):
        return data[key_end:]
    if segment.packed:
        return _read_packed(segment, offset, data, key, value_len)
    return _read_other(segment, offset, data, key)


def stored_size(segment: Segment, key_len: int, location: int) -> int:
    """ENG-41: the bytes the record (or batch member) at ``location`` of ``segment`` takes on
    disk, for a key of ``key_len`` bytes: its header as its segment's format lays it out
    (FMT-4, FMT-23, FMT-27), the key and the value field. A value of ``LARGE_VALUE`` bytes or
    more has its length read from the record's header, checked as a read checks it (from the
    active segment's write buffer if it is still there): opening asks this of each live record
    to count what is dead at open exactly, and the writer of each large one a write supersedes
    (:meth:`catlog.writer.Writer.large_record_size`)."""
    _, offset, value_len = unpack_location(location)
    if value_len == LARGE_VALUE:
        pread: Callable[[int, int], bytes] = segment.pread
        if isinstance(segment, ActiveSegment):
            _, flushed, buffer = segment.pending
            if offset >= flushed:
                pread = functools.partial(_read_buffer, buffer, flushed)
        value_len = _large_value_len(segment, pread, offset)
    if not segment.packed:
        return RECORD_HEADER_SIZE + key_len + value_len
    short = codec.fits_short_form(key_len, value_len)
    return (PACKED_SHORT.size if short else PACKED_LONG.size) + key_len + value_len


def read_failed(location: int, slots: list[Segment], exc: OSError) -> ReadError:
    """ENG-22: the typed error for a read the operating system failed, naming the record."""
    slot, offset, _ = unpack_location(location)
    path = slots[slot].file.path
    return ReadError(path, offset, f"read failed: {exc.strerror or exc}")


def _read_packed(segment: Segment, offset: int, data: bytes, key: bytes, value_len: int) -> bytes:
    """ENG-12 in a packed segment (FMT-27): ``data`` holds the record and maybe more.

    :func:`read_value` read as many bytes as a record of section 2 would take, 21 bytes of header;
    a packed record's header is 8 or 13 bytes, so the record is all there unless damaged.
    """
    skip = _PACKED_VALUE_AT.get(data[4]) if len(data) > 4 else None
    if skip is not None:
        head = PACKED_LONG if data[4] & PACKED_LONG_BIT else PACKED_SHORT
        key_end = head.size + len(key)
        end = key_end + value_len
        if len(data) >= end:
            crc, _type, klen, vlen = head.unpack_from(data)
            if (
                klen == len(key)
                and vlen == value_len
                and crc32c(memoryview(data)[4:end]) == crc
                and data[head.size : key_end] == key
                and value_len >= skip
            ):
                return data[key_end + skip : end]
    raise _corruption(segment, offset, data, key)


def _read_other(segment: Segment, offset: int, data: bytes, key: bytes) -> bytes:
    """ENG-12 for the record types other than PUT: an expiring PUT, a member of a batch."""
    key_end = RECORD_HEADER_SIZE + len(key)
    skip = _VALUE_AT.get(data[4]) if len(data) >= RECORD_HEADER_SIZE else None
    if skip is not None:
        crc = crc32c(memoryview(data)[4:])
        if data[4] & MEMBER_FLAG:
            crc ^= MEMBER_CRC_MASK
        if (
            crc == CRC_FIELD.unpack_from(data)[0]
            and data[RECORD_HEADER_SIZE:key_end] == key
            and len(data) >= key_end + skip
        ):
            return data[key_end + skip :]
    raise _corruption(segment, offset, data, key)


def _large_value_len(segment: Segment, pread: Callable[[int, int], bytes], offset: int) -> int:
    """The value length of a large record, read from its header and checked (REC-3)."""
    head = PACKED_LONG if segment.packed else RECORD_HEADER
    header = pread(head.size, offset)
    if len(header) < head.size:
        reason = f"record header cut short at {len(header)} bytes"
    else:
        value_len: int = head.unpack(header)[-1]
        if LARGE_VALUE <= value_len <= MAX_VALUE_SIZE:
            return value_len
        reason = f"length field out of range: value_len={value_len}"
    raise CorruptionError(segment.file.path, offset, reason)


def _corruption(segment: Segment, offset: int, data: bytes, key: bytes) -> CorruptionError:
    """ENG-22: what is wrong with the bytes at ``offset``, in words, for the error."""
    if not segment.packed and len(data) >= RECORD_HEADER_SIZE and data[4] in codec.MEMBER_TYPES:
        member_ok = crc32c(memoryview(data)[4:]) ^ MEMBER_CRC_MASK == CRC_FIELD.unpack_from(data)[0]
        reason = (
            "index points at a batch member of another key or type"
            if member_ok
            else "batch member crc mismatch"
        )
    else:
        # A packed record is shorter than what read_value read for it: decoding stops at its end.
        decoded = codec.decode_record(data, 0, packed=segment.packed)
        if isinstance(decoded, codec.Damage):
            reason = decoded.reason
        else:
            reason = f"index points at a record of another key or type ({decoded.type.name})"
    return CorruptionError(segment.file.path, offset, f"{reason} (reading key {key!r:.60})")
