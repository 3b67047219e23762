"""The record codec: bytes in, records out, and never a file in sight.

This module is the executable form of ``spec/format.md``. It knows how a segment header and a
record are laid out (FMT-1 .. FMT-14) and nothing about where the bytes came from, so the same
functions serve the engine's write path, its start-up replay, the inspection tools and the tests.

Decoding never raises on bad bytes: :func:`decode_record` returns a :class:`Record`, or a
:class:`Damage` saying why the bytes at that offset are not a record. Whether damage is a torn
tail to cut off or corruption to report is the recovery module's decision (REC-4 .. REC-7).
"""

from __future__ import annotations

import enum
import re
import struct
from dataclasses import dataclass
from typing import Final

from crc32c import crc32c

SEGMENT_MAGIC: Final = b"CATLOGSG"
"""FMT-2: the first eight bytes of every segment file."""

FORMAT_VERSION: Final = 1
"""FMT-2: the only segment format version this reader understands."""

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


class RecordType(enum.IntEnum):
    """FMT-6: the on-disk type codes. Codes 3..255 are reserved (FMT-7)."""

    PUT = 1
    DELETE = 2


KNOWN_TYPES: Final = frozenset(int(t) for t in RecordType)


@dataclass(frozen=True, slots=True)
class Record:
    """One decoded record and where it lies."""

    type: RecordType
    timestamp_ms: int
    key: bytes
    value: bytes
    offset: int
    size: int


class DamageKind(enum.Enum):
    """Why the bytes at an offset are not a record. Each maps to one rule of REC-4."""

    INCOMPLETE_HEADER = "incomplete header"
    INCOMPLETE_RECORD = "record runs past end of data"
    CRC_MISMATCH = "crc mismatch"
    UNKNOWN_TYPE = "unknown record type"
    BAD_LENGTH = "length field out of range"
    BAD_DELETE = "delete record with a value"


WRITTEN_WHOLE: Final = frozenset({DamageKind.UNKNOWN_TYPE, DamageKind.BAD_DELETE})
"""REC-7: damage whose crc verified: the bytes were written whole, so no crash explains them."""


@dataclass(frozen=True, slots=True)
class Damage:
    """The bytes at ``offset`` do not hold a valid record, for ``kind``."""

    offset: int
    kind: DamageKind
    detail: str = ""

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
    if version != FORMAT_VERSION:
        return HeaderStatus.UNSUPPORTED_VERSION, version
    return HeaderStatus.OK, version


def encode_record(rtype: int, timestamp_ms: int, key: bytes, value: bytes = b"") -> bytes:
    """FMT-4/FMT-5: the complete bytes of one record, crc first.

    ``rtype`` is a :class:`RecordType` or its plain int (the write path passes the int: the fill
    benchmark showed the enum attribute lookup per put). One crc over the joined body measured
    faster than a crc chained over header, key and value, which spares a copy but costs two calls.
    """
    body = BODY_HEADER.pack(rtype, timestamp_ms, len(key), len(value)) + key + value
    return CRC_FIELD.pack(crc32c(body)) + body


def decode_record(data: bytes | memoryview, offset: int) -> Record | Damage:
    """Decode the record starting at ``offset`` in ``data``; ``data`` ends where the file ends.

    The length fields are range-checked before they are used to find the record's end, and the crc
    is checked before any other field is believed (REC-3), so a damaged header never makes the
    decoder read from a wrong place or allocate a huge buffer.
    """
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
        return Damage(offset, DamageKind.UNKNOWN_TYPE, f"type={rtype}")
    if rtype == RecordType.DELETE and vlen:
        return Damage(offset, DamageKind.BAD_DELETE, f"value_len={vlen}")
    key_start = offset + RECORD_HEADER_SIZE
    return Record(
        RecordType(rtype),
        timestamp,
        bytes(data[key_start : key_start + klen]),
        bytes(data[key_start + klen : end]),
        offset,
        end - offset,
    )


def iter_records(data: bytes | memoryview, start: int) -> tuple[list[Record], Damage | None]:
    """Decode records from ``start`` until the data ends or damage is found.

    Returns the records and the first damage (``None`` when the data ends exactly on a record
    boundary). Nothing after the first damage is decoded: without a trusted length there is no
    trusted place to resume (REC-3).
    """
    records: list[Record] = []
    offset = start
    while offset < len(data):
        result = decode_record(data, offset)
        if isinstance(result, Damage):
            return records, result
        records.append(result)
        offset += result.size
    return records, None


def find_next_record(data: bytes | memoryview, start: int) -> int | None:
    """The first offset at or after ``start`` where a record's crc verifies, whatever its type.

    Used only to describe damage (REC-4, REC-6: whether anything written whole follows it), never
    to resume replay: a record found this way is reported, not applied. A record of a reserved
    type counts too (REC-7): its bytes were written whole, so the damage before it is no torn tail.
    Runs of zero bytes, the commonest torn tail, are skipped in one search rather than tried at
    every offset, since a zero-filled header never verifies.
    """
    last = len(data) - RECORD_HEADER_SIZE
    offset = start
    while offset <= last:
        if data[offset : offset + RECORD_HEADER_SIZE] == _ZERO_HEADER:
            nonzero = _NONZERO.search(data, offset)
            if nonzero is None:
                return None
            offset = max(offset + 1, nonzero.start() - RECORD_HEADER_SIZE + 1)
            continue
        result = decode_record(data, offset)
        if isinstance(result, Record) or result.kind in WRITTEN_WHOLE:
            return offset
        offset += 1
    return None


_ZERO_HEADER: Final = bytes(RECORD_HEADER_SIZE)
_NONZERO: Final = re.compile(rb"[^\x00]")
