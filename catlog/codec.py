"""The record codec: bytes in, records out, and never a file in sight.

This module is the executable form of ``spec/format.md``. It knows how a segment header and a
record are laid out (FMT-1 .. FMT-14, FMT-21 .. FMT-24) and nothing about where the bytes came
from, so the same functions serve the engine's write path, its start-up replay, the inspection
tools and the tests.

Two record types wrap others. An *expiring* PUT carries its expiry time as the first eight bytes
of its value field (FMT-21). A *batch* is one record whose value field holds *member* records,
so that one crc covers every write of the batch and a crash keeps all of them or none (FMT-22).
A member is laid out like a record, so the index can point at it and a read of one key reads one
member; its crc is masked (FMT-23) so that a search for valid records after damage
(:func:`find_next_record`) never mistakes a member of a torn batch for a record of its own.

Decoding never raises on bad bytes: :func:`decode_record` returns a :class:`Record`, or a
:class:`Damage` saying why the bytes at that offset are not a record. Whether damage is a torn
tail to cut off or corruption to report is the recovery module's decision (REC-4 .. REC-7).
"""

from __future__ import annotations

import enum
import re
import struct
from dataclasses import dataclass, field
from typing import Final

from crc32c import crc32c

SEGMENT_MAGIC: Final = b"CATLOGSG"
"""FMT-2: the first eight bytes of every segment file."""

FORMAT_VERSION: Final = 1
"""FMT-2: the version of a segment of records (section 2 of format.md), the kind appended to."""

PACKED_VERSION: Final = 2
"""FMT-26: the version of a packed segment, which only compaction writes."""

SEGMENT_VERSIONS: Final = frozenset({FORMAT_VERSION, PACKED_VERSION})

SEGMENT_HEADER: Final = struct.Struct("<8sII")
SEGMENT_HEADER_SIZE: Final = SEGMENT_HEADER.size  # 16

RECORD_HEADER: Final = struct.Struct("<IBQII")
"""FMT-4: crc32c, type, timestamp_ms, key_len, value_len; little-endian, no padding."""
RECORD_HEADER_SIZE: Final = RECORD_HEADER.size  # 21

CRC_FIELD: Final = struct.Struct("<I")
BODY_HEADER: Final = struct.Struct("<BQII")
"""The record header without its crc field: the first bytes the crc covers (FMT-5)."""

MAX_KEY_SIZE: Final = 64 * 1024
"""FMT-9: the largest key, in bytes."""

MAX_VALUE_SIZE: Final = 64 * 1024 * 1024
"""FMT-9: the largest value, in bytes."""

MAX_RECORD_SIZE: Final = RECORD_HEADER_SIZE + MAX_KEY_SIZE + MAX_VALUE_SIZE

EXPIRY_FIELD: Final = struct.Struct("<Q")
"""FMT-21: an expiring PUT's value field starts with its expiry, u64 ms since the epoch."""
EXPIRY_SIZE: Final = EXPIRY_FIELD.size  # 8

MAX_EXPIRING_VALUE_SIZE: Final = MAX_VALUE_SIZE - EXPIRY_SIZE
"""FMT-21: the value of an expiring PUT shares the value field with its expiry."""

PACKED_SHORT: Final = struct.Struct("<IBBH")
"""FMT-27: a packed record's short header: crc32c, type, key_len u8, value_len u16."""
PACKED_SHORT_SIZE: Final = PACKED_SHORT.size  # 8
PACKED_LONG: Final = struct.Struct("<IBII")
"""FMT-27: a packed record's long header: crc32c, type, key_len u32, value_len u32."""
PACKED_LONG_SIZE: Final = PACKED_LONG.size  # 13
PACKED_SHORT_MAX_KEY: Final = 255
PACKED_SHORT_MAX_VALUE: Final = 65_534
"""FMT-27: the short form holds exactly the records within both bounds."""
PACKED_SHORT_TYPE: Final = 0x40
PACKED_LONG_TYPE: Final = 0x50
"""FMT-28: a packed type code is the record type's code plus one of these."""
PACKED_LONG_BIT: Final = 0x10
"""FMT-27: the bit of the type code that says a packed record has the long header."""

MEMBER_FLAG: Final = 0x80
"""FMT-23: a member's type code is its record type's code with this bit set."""

MEMBER_CRC_MASK: Final = 0x9E3779B9
"""FMT-23: a member's crc field is the CRC-32C of its bytes XOR this constant."""


class RecordType(enum.IntEnum):
    """FMT-6: the on-disk type codes. Codes 0 and 5..255 are reserved (FMT-7)."""

    PUT = 1
    DELETE = 2
    PUT_EXPIRING = 3
    BATCH = 4


KNOWN_TYPES: Final = frozenset(int(t) for t in RecordType)
MEMBER_TYPES: Final = frozenset(
    MEMBER_FLAG | t for t in (RecordType.PUT, RecordType.DELETE, RecordType.PUT_EXPIRING)
)
"""FMT-23: the type codes a member may carry; a batch never holds a batch."""
PACKED_TYPES: Final = frozenset(
    form | t
    for form in (PACKED_SHORT_TYPE, PACKED_LONG_TYPE)
    for t in (RecordType.PUT, RecordType.DELETE, RecordType.PUT_EXPIRING)
)
"""FMT-28: the type codes a packed segment may hold."""


@dataclass(frozen=True, slots=True)
class Record:
    """One decoded record (or batch member, FMT-23) and where it lies.

    ``value`` is the value the writer stored: for an expiring PUT, without the expiry in front of
    it, which is in ``expires_at_ms`` instead (0 for every other type). A batch has an empty key
    and value and its members in ``members``; a member's ``offset`` is where it lies in the same
    data, and its ``type`` is the plain record type, its ``in_batch`` true. A packed record
    (FMT-27) has ``packed`` true, its plain record type, and ``timestamp_ms`` 0: it has none.
    """

    type: RecordType
    timestamp_ms: int
    key: bytes
    value: bytes
    offset: int
    size: int
    expires_at_ms: int = 0
    members: tuple[Record, ...] = ()
    in_batch: bool = False
    packed: bool = False

    @property
    def value_len(self) -> int:
        """The record's ``value_len`` field: what the key index stores for it (ENG-11)."""
        return len(self.value) + (EXPIRY_SIZE if self.type is RecordType.PUT_EXPIRING else 0)


class DamageKind(enum.Enum):
    """Why the bytes at an offset are not a record. Each maps to one rule of REC-4."""

    INCOMPLETE_HEADER = "incomplete header"
    INCOMPLETE_RECORD = "record runs past end of data"
    CRC_MISMATCH = "crc mismatch"
    UNKNOWN_TYPE = "unknown record type"
    BAD_LENGTH = "length field out of range"
    BAD_DELETE = "delete record with a value"
    BAD_EXPIRING = "expiring put without its expiry"
    BAD_BATCH = "malformed batch"
    BAD_PACKED = "packed record in the wrong form"


WRITTEN_WHOLE: Final = frozenset(
    {
        DamageKind.UNKNOWN_TYPE,
        DamageKind.BAD_DELETE,
        DamageKind.BAD_EXPIRING,
        DamageKind.BAD_BATCH,
        DamageKind.BAD_PACKED,
    }
)
"""REC-7: damage whose crc verified: the bytes were written whole, so no crash explains them."""


@dataclass(frozen=True, slots=True)
class Damage:
    """The bytes at ``offset`` do not hold a valid record, for ``kind``.

    For damage written whole (``kind`` in :data:`WRITTEN_WHOLE`), ``end`` is where the record
    ends, which its verified crc vouches for; otherwise it is 0: nothing says where damage ends.
    """

    offset: int
    kind: DamageKind
    detail: str = ""
    end: int = field(default=0, compare=False)

    @property
    def reason(self) -> str:
        return f"{self.kind.value}{': ' + self.detail if self.detail else ''}"


class HeaderStatus(enum.Enum):
    """What :func:`decode_segment_header` found at the start of a segment."""

    OK = "ok"
    INCOMPLETE = "incomplete segment header"
    BAD_MAGIC = "bad segment magic"
    CRC_MISMATCH = "segment header crc mismatch"
    UNSUPPORTED_VERSION = "unsupported segment format version"


def encode_segment_header(version: int = FORMAT_VERSION) -> bytes:
    """FMT-2/FMT-3: magic, version, and a crc32c over the twelve bytes before it."""
    head = SEGMENT_MAGIC + version.to_bytes(4, "little")
    return head + CRC_FIELD.pack(crc32c(head))


def decode_segment_header(data: bytes | memoryview) -> tuple[HeaderStatus, int]:
    """Classify the first :data:`SEGMENT_HEADER_SIZE` bytes; returns the status and the version."""
    if len(data) < SEGMENT_HEADER_SIZE:
        return HeaderStatus.INCOMPLETE, 0
    magic, version, crc = SEGMENT_HEADER.unpack_from(data, 0)
    if crc32c(bytes(data[:12])) != crc:
        return HeaderStatus.CRC_MISMATCH, version
    if magic != SEGMENT_MAGIC:
        return HeaderStatus.BAD_MAGIC, version
    if version not in SEGMENT_VERSIONS:
        return HeaderStatus.UNSUPPORTED_VERSION, version
    return HeaderStatus.OK, version


def encode_record(
    rtype: int, timestamp_ms: int, key: bytes, value: bytes = b"", expires_at_ms: int = 0
) -> bytes:
    """FMT-4/FMT-5: the complete bytes of one record, crc first.

    ``rtype`` is a :class:`RecordType` or its plain int (the write path passes the int, for the
    fill benchmark: it spares an attribute lookup per put). One crc over the joined body rather
    than a crc chained over header, key and value: that would spare a copy but cost two calls.
    For :attr:`RecordType.PUT_EXPIRING`, ``expires_at_ms`` goes in front of the value (FMT-21).
    """
    if rtype == RecordType.PUT_EXPIRING:
        value = EXPIRY_FIELD.pack(expires_at_ms) + value
    body = BODY_HEADER.pack(rtype, timestamp_ms, len(key), len(value)) + key + value
    return CRC_FIELD.pack(crc32c(body)) + body


def encode_member(
    rtype: int, timestamp_ms: int, key: bytes, value: bytes = b"", expires_at_ms: int = 0
) -> bytes:
    """FMT-23: a batch member: a record of ``rtype`` with the member flag and a masked crc."""
    if rtype == RecordType.PUT_EXPIRING:
        value = EXPIRY_FIELD.pack(expires_at_ms) + value
    body = BODY_HEADER.pack(MEMBER_FLAG | rtype, timestamp_ms, len(key), len(value)) + key + value
    return CRC_FIELD.pack(crc32c(body) ^ MEMBER_CRC_MASK) + body


def encode_batch(timestamp_ms: int, members: list[bytes]) -> bytes:
    """FMT-22: the batch record framing ``members`` (from :func:`encode_member`), in order.

    Member ``i`` starts ``RECORD_HEADER_SIZE + sum(len(m) for m in members[:i])`` bytes into the
    returned record, which is where the store points the index at it.
    """
    return encode_record(RecordType.BATCH, timestamp_ms, b"", b"".join(members))


def decode_record(
    data: bytes | memoryview, offset: int, *, packed: bool = False
) -> Record | Damage:
    """Decode the record starting at ``offset`` in ``data``; ``data`` ends where the file ends.

    The length fields are range-checked before they are used to find the record's end, and the crc
    is checked before any other field is believed (REC-3), so a damaged header never makes the
    decoder read from a wrong place or allocate a huge buffer. ``packed`` says the data is a
    packed segment's (FMT-26), whose records have their own layout (FMT-27).
    """
    if packed:
        return _decode_packed(data, offset)
    end_of_data = len(data)
    if end_of_data - offset < RECORD_HEADER_SIZE:
        return Damage(offset, DamageKind.INCOMPLETE_HEADER, f"{end_of_data - offset} bytes left")
    crc, rtype, timestamp, klen, vlen = RECORD_HEADER.unpack_from(data, offset)
    if klen > MAX_KEY_SIZE or vlen > MAX_VALUE_SIZE:
        return Damage(offset, DamageKind.BAD_LENGTH, f"key_len={klen} value_len={vlen}")
    end = offset + RECORD_HEADER_SIZE + klen + vlen
    if end > end_of_data:
        return Damage(offset, DamageKind.INCOMPLETE_RECORD, f"needs {end - end_of_data} more bytes")
    if crc32c(data[offset + 4 : end]) != crc:
        return Damage(offset, DamageKind.CRC_MISMATCH)
    if rtype not in KNOWN_TYPES:
        return Damage(offset, DamageKind.UNKNOWN_TYPE, f"type={rtype}", end)
    if rtype == RecordType.BATCH:
        if klen:
            return Damage(offset, DamageKind.BAD_BATCH, f"key_len={klen}", end)
        members = _decode_members(data, offset + RECORD_HEADER_SIZE, end, timestamp)
        if isinstance(members, str):
            return Damage(offset, DamageKind.BAD_BATCH, members, end)
        return Record(RecordType.BATCH, timestamp, b"", b"", offset, end - offset, members=members)
    return _body(data, offset, rtype, timestamp, klen=klen, end=end, in_batch=False)


def _decode_packed(data: bytes | memoryview, offset: int) -> Record | Damage:
    """FMT-27, FMT-28: :func:`decode_record` for a packed segment's record."""
    end_of_data = len(data)
    left = end_of_data - offset
    long_form = left > 4 and bool(data[offset + 4] & PACKED_LONG_BIT)
    head = PACKED_LONG if long_form else PACKED_SHORT
    if left < head.size:
        return Damage(offset, DamageKind.INCOMPLETE_HEADER, f"{left} bytes left")
    crc, rtype, klen, vlen = head.unpack_from(data, offset)
    if klen > MAX_KEY_SIZE or vlen > MAX_VALUE_SIZE:
        return Damage(offset, DamageKind.BAD_LENGTH, f"key_len={klen} value_len={vlen}")
    end = offset + head.size + klen + vlen
    if end > end_of_data:
        return Damage(offset, DamageKind.INCOMPLETE_RECORD, f"needs {end - end_of_data} more bytes")
    if crc32c(data[offset + 4 : end]) != crc:
        return Damage(offset, DamageKind.CRC_MISMATCH)
    if rtype not in PACKED_TYPES:
        return Damage(offset, DamageKind.UNKNOWN_TYPE, f"type={rtype}", end)
    if long_form == fits_short_form(klen, vlen):
        form = "long" if long_form else "short"
        detail = f"{form} form for key_len={klen} value_len={vlen}"
        return Damage(offset, DamageKind.BAD_PACKED, detail, end)
    return _body(data, offset, rtype & 0x0F, 0, klen=klen, end=end, in_batch=False, head=head.size)


def fits_short_form(key_len: int, value_len: int) -> bool:
    """FMT-27: whether a packed record of these lengths takes the short header."""
    return key_len <= PACKED_SHORT_MAX_KEY and value_len <= PACKED_SHORT_MAX_VALUE


def encode_packed(rtype: int, key: bytes, value_field: bytes) -> bytes:
    """FMT-27, FMT-28: the packed record of ``rtype`` (a plain :class:`RecordType` code).

    ``value_field`` is the value field as a record stores it: for an expiring PUT, the u64 expiry
    and then the value (FMT-21), which is how compaction finds it in the record it copies.
    """
    if fits_short_form(len(key), len(value_field)):
        body = _SHORT_BODY.pack(PACKED_SHORT_TYPE | rtype, len(key), len(value_field))
    else:
        body = _LONG_BODY.pack(PACKED_LONG_TYPE | rtype, len(key), len(value_field))
    body += key + value_field
    return CRC_FIELD.pack(crc32c(body)) + body


_SHORT_BODY: Final = struct.Struct("<BBH")
_LONG_BODY: Final = struct.Struct("<BII")


def _body(
    data: bytes | memoryview,
    offset: int,
    rtype: int,
    timestamp: int,
    *,
    klen: int,
    end: int,
    in_batch: bool,
    head: int = RECORD_HEADER_SIZE,
) -> Record | Damage:
    """The rest of a PUT, DELETE or expiring PUT whose crc verified: FMT-8 and FMT-21's checks."""
    key_start = offset + head
    value_start = key_start + klen
    expires_at = 0
    if rtype == RecordType.DELETE and end > value_start:
        return Damage(offset, DamageKind.BAD_DELETE, f"value_len={end - value_start}", end)
    if rtype == RecordType.PUT_EXPIRING:
        if end - value_start < EXPIRY_SIZE:
            return Damage(offset, DamageKind.BAD_EXPIRING, f"value_len={end - value_start}", end)
        expires_at = EXPIRY_FIELD.unpack_from(data, value_start)[0]
        value_start += EXPIRY_SIZE
    return Record(
        RecordType(rtype),
        timestamp,
        bytes(data[key_start : key_start + klen]),
        bytes(data[value_start:end]),
        offset,
        end - offset,
        expires_at,
        in_batch=in_batch,
        packed=head != RECORD_HEADER_SIZE,
    )


def _decode_members(
    data: bytes | memoryview, start: int, end: int, timestamp: int
) -> tuple[Record, ...] | str:
    """FMT-22, FMT-23: the members of a batch whose crc verified, or why they break the format."""
    members: list[Record] = []
    pos = start
    while pos < end:
        if end - pos < RECORD_HEADER_SIZE:
            return f"member at {pos} cut short"
        crc, mtype, mtime, klen, vlen = RECORD_HEADER.unpack_from(data, pos)
        member_end = pos + RECORD_HEADER_SIZE + klen + vlen
        if klen > MAX_KEY_SIZE or member_end > end:
            return f"member at {pos} runs past the batch"
        if crc32c(data[pos + 4 : member_end]) ^ MEMBER_CRC_MASK != crc:
            return f"member at {pos}: crc mismatch"
        if mtype not in MEMBER_TYPES or mtime != timestamp:
            return f"member at {pos}: type={mtype} timestamp_ms={mtime}"
        member = _body(
            data, pos, mtype & ~MEMBER_FLAG, mtime, klen=klen, end=member_end, in_batch=True
        )
        if isinstance(member, Damage):
            return f"member at {pos}: {member.reason}"
        members.append(member)
        pos = member_end
    if not members:
        return "no members"
    return tuple(members)


def iter_records(
    data: bytes | memoryview, start: int, *, packed: bool = False
) -> tuple[list[Record], Damage | None]:
    """Decode records from ``start`` until the data ends or damage is found.

    Returns the records and the first damage (``None`` when the data ends exactly on a record
    boundary). Nothing after the first damage is decoded: without a trusted length there is no
    trusted place to resume (REC-3).
    """
    records: list[Record] = []
    offset = start
    while offset < len(data):
        result = decode_record(data, offset, packed=packed)
        if isinstance(result, Damage):
            return records, result
        records.append(result)
        offset += result.size
    return records, None


def find_next_record(data: bytes | memoryview, start: int, *, packed: bool = False) -> int | None:
    """The first offset at or after ``start`` where a record's crc verifies, whatever its type.

    Used only to describe damage (REC-4, REC-6: whether anything written whole follows it), never
    to resume replay: a record found this way is reported, not applied. A record of a reserved
    type counts too (REC-7): its bytes were written whole, so the damage before it is no torn tail.
    Runs of zero bytes, the commonest torn tail, are skipped in one search rather than tried at
    every offset, since a zero-filled header never verifies.
    """
    head = PACKED_SHORT_SIZE if packed else RECORD_HEADER_SIZE
    zeros = _ZERO_HEADER[:head]
    last = len(data) - head
    offset = start
    while offset <= last:
        if data[offset : offset + head] == zeros:
            nonzero = _NONZERO.search(data, offset)
            if nonzero is None:
                return None
            offset = max(offset + 1, nonzero.start() - head + 1)
            continue
        result = decode_record(data, offset, packed=packed)
        if isinstance(result, Record) or result.kind in WRITTEN_WHOLE:
            return offset
        offset += 1
    return None


def find_follower_of_header(data: bytes | memoryview) -> tuple[int | None, bool]:
    """REC-5, REC-22: the first valid record after a damaged segment header, of either format.

    A damaged header no longer says whether the segment is packed, so both layouts are searched
    for; returns the offset of the first record found (``None`` if there is none) and whether it
    is a packed record (FMT-27), in which case the segment is read as a packed one.
    """
    plain = find_next_record(data, SEGMENT_HEADER_SIZE)
    packed = find_next_record(data, SEGMENT_HEADER_SIZE, packed=True)
    if packed is not None and (plain is None or packed < plain):
        return packed, True
    return plain, False


_ZERO_HEADER: Final = bytes(RECORD_HEADER_SIZE)
_NONZERO: Final = re.compile(rb"[^\x00]")
