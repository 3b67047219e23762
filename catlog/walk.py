"""The walks over a segment's records: the reference walk, and the hot loops written out beside it.

Every reader of a segment's bytes does the same thing: decode one record after another from a
start offset, and stop at the first that is not a record (REC-3). :func:`walk` does it the plain
way, over :func:`catlog.codec.decode_record`, and is the reference. Three readers cannot afford
it, and inline the commonest record instead of decoding it into an object:

* **replay** (:func:`replay_plain`, :func:`replay_packed`) rebuilds the key index at open
  (ENG-13), for the open and reopen benchmarks (bench/README.md, "reopen scanning only");
* **hint building** (:func:`last_plain`, :func:`last_packed`) finds each key's last record in a
  sealed segment (FMT-17), for every rotation and every compaction output;
* **copying** (:func:`copy_plain`, :func:`copy_packed`) copies the live records of a compaction's
  input (ENG-39), for the compaction benchmark.

Each comes in two twins, one per segment version: plain (FMT-4) and packed (FMT-26, FMT-27).
The six are written the same way on purpose: the same names, the same loop, the same test of the
fast record, the same slow path through ``decode_record``, the same end, so that a diff between
any two shows only what they do differently. The rule for all of them: **each accepts exactly
what ``decode_record`` accepts**, record for record, and stops at the offset where :func:`walk`
stops, with the same :class:`~catlog.codec.Damage`. ``tests/unit/test_walk.py`` checks every walk
against :func:`walk` on generated segments, damaged ones included.

The fast test. A plain PUT, or a DELETE without a value, whose lengths are within FMT-9's limits,
whose record fits in the data and whose crc verifies, is a record (FMT-8); a packed short-form
PUT whose value is short enough for the short form (FMT-27: its key is, by its width) and whose
record fits and verifies is one too. Everything else goes to ``decode_record``, which decodes it
or says why it is damage. A header cut short at the end makes ``unpack_from`` raise, which ends
the loop without a length test per record; the damage is then whatever ``decode_record`` says
is at the offset where the loop stopped (:func:`_damage_at`).

Why inline at all: decoding every record into a :class:`~catlog.codec.Record` costs the
compaction and reopen benchmarks (bench/README.md) a large share of their time. The location
of a record in the index is made by :func:`catlog.index.pack_location`, except in the PUT
branches of :func:`replay_plain`, :func:`replay_packed` and :func:`copy_packed`, which spell it
out under an ``inline pack_location`` comment (tests/unit/test_location_spelling.py finds every
such copy). ``tests/unit/test_walk.py`` counts this module's calls of ``decode_record`` to check
that the fast tests take what they should.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

from crc32c import crc32c

from .codec import (
    EXPIRY_FIELD,
    MAX_KEY_SIZE,
    MAX_VALUE_SIZE,
    PACKED_SHORT,
    PACKED_SHORT_MAX_VALUE,
    PACKED_SHORT_SIZE,
    PACKED_SHORT_TYPE,
    RECORD_HEADER,
    RECORD_HEADER_SIZE,
    Damage,
    Record,
    RecordType,
    decode_record,
    encode_packed,
)
from .index import LARGE_VALUE, LEN_BITS, SLOT_SHIFT, Expiring, apply_record, pack_location

_PUT: Final = int(RecordType.PUT)
_DELETE: Final = int(RecordType.DELETE)
_PACKED_PUT: Final = PACKED_SHORT_TYPE | _PUT

PAUSE_EVERY: Final = 32
"""The copy walks call their ``pause`` once every this many records (see ENG-39's pauses in
:mod:`catlog.compaction`)."""


@dataclass(frozen=True, slots=True)
class Walked:
    """What :func:`walk` found: the records, where it stopped, and why (``None``: the end)."""

    records: list[Record]
    end: int
    damage: Damage | None


def walk(data: bytes, start: int, *, packed: bool) -> Walked:
    """The reference walk: decode records from ``start`` until the data ends or one is damage.

    Nothing after the first damage is decoded: without a trusted length there is no trusted place
    to resume (REC-3). ``packed`` says the data is a packed segment's (FMT-26).
    """
    records: list[Record] = []
    pos = start
    while pos < len(data):
        record = decode_record(data, pos, packed=packed)
        if not isinstance(record, Record):
            return Walked(records, pos, record)
        records.append(record)
        pos += record.size
    return Walked(records, pos, None)


def _damage_at(data: bytes, pos: int, *, packed: bool) -> Damage | None:
    """Why a hot walk stopped at ``pos``: ``None`` at the end of the data, else the damage."""
    if pos == len(data):
        return None
    damage = decode_record(data, pos, packed=packed)
    assert not isinstance(damage, Record), "a hot walk rejected a record decode_record accepts"
    return damage


# ------------------------------------------------------------------------------------ replay


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """How far a segment replayed cleanly, and what stopped it if it did not reach the end."""

    end: int
    damage: Damage | None


def replay_plain(
    data: bytes, start: int, slot: int, index: dict[bytes, int], expiring: Expiring
) -> ReplayResult:
    """Apply every record of ``data`` from ``start`` to ``index``, oldest first (ENG-13).

    A PUT points its key at the record; a DELETE removes the key; an expiring PUT also notes its
    expiry in ``expiring``; a batch applies its members in order (FMT-22). Replay stops at the
    first damage and reports it; records before it have been applied, nothing after it has (no
    member of a damaged batch either).
    """
    unpack = RECORD_HEADER.unpack_from
    # inline pack_location: its slot part, for the spelling in the loop below
    slot_bits = slot << SLOT_SHIFT
    end_of_data = len(data)
    pos = start
    try:
        while pos < end_of_data:
            crc, rtype, _ts, klen, vlen = unpack(data, pos)
            key_start = pos + RECORD_HEADER_SIZE
            end = key_start + klen + vlen
            if (
                (rtype == _PUT or (rtype == _DELETE and not vlen))
                and klen <= MAX_KEY_SIZE
                and vlen <= MAX_VALUE_SIZE
                and end <= end_of_data
                and crc32c(data[pos + 4 : end]) == crc
            ):
                key = data[key_start : key_start + klen]
                if rtype == _PUT:
                    # inline pack_location (slot_bits above): the "reopen scanning only"
                    # benchmark pays a tenth of its time for a call per record.
                    index[key] = (
                        slot_bits
                        | (pos << LEN_BITS)
                        | (vlen if vlen < LARGE_VALUE else LARGE_VALUE)
                    )
                else:
                    index.pop(key, None)
                pos = end
                continue
            record = decode_record(data, pos)
            if not isinstance(record, Record):
                break
            apply_record(record, slot, index, expiring)
            pos += record.size
    except struct.error:
        pass
    return ReplayResult(pos, _damage_at(data, pos, packed=False))


def replay_packed(
    data: bytes, start: int, slot: int, index: dict[bytes, int], expiring: Expiring
) -> ReplayResult:
    """:func:`replay_plain` for a packed segment (FMT-26), whose records are FMT-27's."""
    unpack = PACKED_SHORT.unpack_from
    # inline pack_location: its slot part, for the spelling in the loop below
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
                and vlen <= PACKED_SHORT_MAX_VALUE
                and end <= end_of_data
                and crc32c(data[pos + 4 : end]) == crc
            ):
                key = data[key_start : key_start + klen]
                # inline pack_location (slot_bits above; a short value is below LARGE_VALUE):
                # reopening a compacted store, as "reopen scanning only" measures a plain one.
                index[key] = slot_bits | (pos << LEN_BITS) | vlen
                pos = end
                continue
            record = decode_record(data, pos, packed=True)
            if not isinstance(record, Record):
                break
            apply_record(record, slot, index, expiring)
            pos += record.size
    except struct.error:
        pass
    return ReplayResult(pos, _damage_at(data, pos, packed=True))


# ------------------------------------------------------------------------------ hint building


LastRecords = dict[bytes, tuple[int, int, int, int]]
"""Each key's last record in a segment: ``(type, offset, value_len, expires_at_ms)`` (FMT-17)."""


def last_plain(data: bytes, start: int) -> LastRecords | Damage:
    """Each key's last record in ``data`` from ``start`` (a batch's members count, FMT-22), or
    the damage that stops the walk: :func:`catlog.hint.build_hint` writes no hint then (FMT-20).
    """
    unpack = RECORD_HEADER.unpack_from
    last: LastRecords = {}
    end_of_data = len(data)
    pos = start
    try:
        while pos < end_of_data:
            crc, rtype, _ts, klen, vlen = unpack(data, pos)
            key_start = pos + RECORD_HEADER_SIZE
            end = key_start + klen + vlen
            if (
                (rtype == _PUT or (rtype == _DELETE and not vlen))
                and klen <= MAX_KEY_SIZE
                and vlen <= MAX_VALUE_SIZE
                and end <= end_of_data
                and crc32c(data[pos + 4 : end]) == crc
            ):
                key = data[key_start : key_start + klen]
                last[key] = (rtype, pos, vlen, 0)
                pos = end
                continue
            record = decode_record(data, pos)
            if not isinstance(record, Record):
                break
            for member in record.members or (record,):
                last[member.key] = (
                    member.type,
                    member.offset,
                    member.value_len,
                    member.expires_at_ms,
                )
            pos += record.size
    except struct.error:
        pass
    damage = _damage_at(data, pos, packed=False)
    return last if damage is None else damage


def last_packed(data: bytes, start: int) -> LastRecords | Damage:
    """:func:`last_plain` for a packed segment (FMT-27).

    Decoding every record took 0.8 s of a 3.9 s compaction of a million records (100,000 of them
    live): each output's hint is built from it.
    """
    unpack = PACKED_SHORT.unpack_from
    last: LastRecords = {}
    end_of_data = len(data)
    pos = start
    try:
        while pos < end_of_data:
            crc, rtype, klen, vlen = unpack(data, pos)
            key_start = pos + PACKED_SHORT_SIZE
            end = key_start + klen + vlen
            if (
                rtype == _PACKED_PUT
                and vlen <= PACKED_SHORT_MAX_VALUE
                and end <= end_of_data
                and crc32c(data[pos + 4 : end]) == crc
            ):
                key = data[key_start : key_start + klen]
                last[key] = (_PUT, pos, vlen, 0)
                pos = end
                continue
            record = decode_record(data, pos, packed=True)
            if not isinstance(record, Record):
                break
            for member in record.members or (record,):
                last[member.key] = (
                    member.type,
                    member.offset,
                    member.value_len,
                    member.expires_at_ms,
                )
            pos += record.size
    except struct.error:
        pass
    damage = _damage_at(data, pos, packed=True)
    return last if damage is None else damage


# ----------------------------------------------------------------------------------- copying


class Copies(Protocol):
    """Where a copy walk puts what it copies: :class:`catlog.compaction.Outputs`."""

    skipped: list[tuple[bytes, int]]
    """``(key, location)`` of each live record not copied because its key has expired."""

    def add(self, key: bytes, old: int, value_len: int, record: bytes) -> None:
        """Copy ``record``, the packed record of ``key`` that ``old`` locates."""


def copy_plain(
    data: bytes,
    start: int,
    slot: int,
    *,
    index: dict[bytes, int],
    expires: dict[bytes, int],
    expired: Callable[[bytes], bool],
    copies: Copies,
    pause: Callable[[], None],
) -> Damage | None:
    """ENG-39 step 2 for one input in ``slot``: each record ``index`` still points at is live;
    each live record (or batch member) goes to ``copies``, packed, unless ``expired`` says its
    key has expired (only asked while ``expires`` holds any expiry at all).

    Returns the damage that stopped the walk, or ``None``: a segment damaged since it was opened
    stops the copy instead of making it lose its way. ``pause`` is called every
    :data:`PAUSE_EVERY` records.
    """
    unpack = RECORD_HEADER.unpack_from
    end_of_data = len(data)
    pos = start
    count = 0
    try:
        while pos < end_of_data:
            count += 1
            if not count % PAUSE_EVERY:
                pause()
            crc, rtype, _ts, klen, vlen = unpack(data, pos)
            key_start = pos + RECORD_HEADER_SIZE
            end = key_start + klen + vlen
            if (
                (rtype == _PUT or (rtype == _DELETE and not vlen))
                and klen <= MAX_KEY_SIZE
                and vlen <= MAX_VALUE_SIZE
                and end <= end_of_data
                and crc32c(data[pos + 4 : end]) == crc
            ):
                if rtype == _PUT:
                    key = data[key_start : key_start + klen]
                    location = pack_location(slot, pos, vlen)
                    if index.get(key) == location:
                        if expires and expired(key):
                            copies.skipped.append((key, location))
                        else:
                            value = data[key_start + klen : end]
                            copies.add(key, location, vlen, encode_packed(_PUT, key, value))
                pos = end
                continue
            record = decode_record(data, pos)
            if not isinstance(record, Record):
                break
            for member in record.members or (record,):
                if member.type is RecordType.DELETE:
                    continue
                location = pack_location(slot, member.offset, member.value_len)
                if index.get(member.key) == location:
                    if expires and expired(member.key):
                        copies.skipped.append((member.key, location))
                    else:
                        value = member.value
                        if member.type is RecordType.PUT_EXPIRING:
                            value = EXPIRY_FIELD.pack(member.expires_at_ms) + value
                        copy = encode_packed(member.type, member.key, value)
                        copies.add(member.key, location, member.value_len, copy)
            pos += record.size
    except struct.error:
        pass
    return _damage_at(data, pos, packed=False)


def copy_packed(
    data: bytes,
    start: int,
    slot: int,
    *,
    index: dict[bytes, int],
    expires: dict[bytes, int],
    expired: Callable[[bytes], bool],
    copies: Copies,
    pause: Callable[[], None],
) -> Damage | None:
    """:func:`copy_plain` for a packed input (an earlier compaction's output).

    Its live records are copied byte for byte: they are packed already. Once a store has
    compacted, most of what each later compaction reads is packed. Returns the damage that
    stopped it, or ``None``.
    """
    unpack = PACKED_SHORT.unpack_from
    # inline pack_location: its slot part, for the spelling in the loop below
    slot_bits = slot << SLOT_SHIFT
    end_of_data = len(data)
    pos = start
    count = 0
    try:
        while pos < end_of_data:
            count += 1
            if not count % PAUSE_EVERY:
                pause()
            crc, rtype, klen, vlen = unpack(data, pos)
            key_start = pos + PACKED_SHORT_SIZE
            end = key_start + klen + vlen
            if (
                rtype == _PACKED_PUT
                and vlen <= PACKED_SHORT_MAX_VALUE
                and end <= end_of_data
                and crc32c(data[pos + 4 : end]) == crc
            ):
                key = data[key_start : key_start + klen]
                # inline pack_location (slot_bits above; a short value is below LARGE_VALUE):
                # most of what the compaction benchmark's later rounds read is packed.
                location = slot_bits | (pos << LEN_BITS) | vlen
                if index.get(key) == location:
                    if expires and expired(key):
                        copies.skipped.append((key, location))
                    else:
                        copies.add(key, location, vlen, data[pos:end])
                pos = end
                continue
            record = decode_record(data, pos, packed=True)
            if not isinstance(record, Record):
                break
            for member in record.members or (record,):
                if member.type is RecordType.DELETE:
                    continue
                location = pack_location(slot, member.offset, member.value_len)
                if index.get(member.key) == location:
                    if expires and expired(member.key):
                        copies.skipped.append((member.key, location))
                    else:
                        copy = data[member.offset : member.offset + member.size]
                        copies.add(member.key, location, member.value_len, copy)
            pos += record.size
    except struct.error:
        pass
    return _damage_at(data, pos, packed=True)
