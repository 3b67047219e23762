"""The seven rules a reader written from spec/format.md alone once had to guess (FMT-29 .. FMT-35).

Each is checked twice: by the codec's or the hint module's verdict on crafted bytes, and by what
opening a store (or the tools' scan, which judges as opening does) makes of a segment of that kind.
Records are crafted with the tests' own ``struct`` and ``crc32c`` from the spec's tables, so that a
mistake in the codec cannot cancel out a mistake here.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
from crc32c import crc32c

import catlog
from catlog import codec, hint
from catlog.codec import WRITTEN_WHOLE, Damage, DamageKind, HeaderStatus, Record
from catlog.fs import OsFileSystem
from catlog.scan import Region, RegionKind, list_segments, scan_segment
from catlog.segment import parse_segment_name

NOW_MS = 1_700_000_000_000
MASK = 0x9E3779B9


def header(version: int = 1, magic: bytes = b"CATLOGSG") -> bytes:
    head = magic + struct.pack("<I", version)
    return head + struct.pack("<I", crc32c(head))


def record(rtype: int, key: bytes, value: bytes = b"", timestamp: int = NOW_MS) -> bytes:
    body = struct.pack("<BQII", rtype, timestamp, len(key), len(value)) + key + value
    return struct.pack("<I", crc32c(body)) + body


def member(rtype: int, key: bytes, value: bytes = b"", timestamp: int = NOW_MS) -> bytes:
    body = struct.pack("<BQII", 0x80 | rtype, timestamp, len(key), len(value)) + key + value
    return struct.pack("<I", crc32c(body) ^ MASK) + body


def packed(ptype: int, key: bytes, value: bytes, *, long: bool = False) -> bytes:
    lengths = struct.pack("<II" if long else "<BH", len(key), len(value))
    body = bytes([ptype]) + lengths + key + value
    return struct.pack("<I", crc32c(body)) + body


def write(directory: str, files: dict[str, bytes]) -> None:
    os.makedirs(directory, exist_ok=True)
    for name, data in files.items():
        Path(directory, name).write_bytes(data)


@pytest.mark.spec("FMT-29", "FMT-1")
@pytest.mark.parametrize("name", ["segment-000002.log", "segment-00000.log", "segment-0100000.log"])
def test_a_name_that_is_not_the_canonical_form_of_its_number_is_no_segment(
    data_dir: str, name: str
) -> None:
    assert parse_segment_name(name) is None
    stray = header() + record(1, b"stray", b"x")
    write(data_dir, {"segment-00001.log": header() + record(1, b"k", b"v"), name: stray})
    assert list_segments(OsFileSystem(), data_dir) == ["segment-00001.log"]
    with catlog.open(data_dir) as store:
        assert dict(store.items()) == {b"k": b"v"}
    assert Path(data_dir, name).read_bytes() == stray, "ignored, not repaired"


@pytest.mark.spec("FMT-30", "FMT-3", "REC-5", "REC-6")
@pytest.mark.parametrize(
    ("first", "status"),
    [
        (header(1, b"CATLOGXX"), HeaderStatus.BAD_MAGIC),  # crc good, magic bad
        (header(9, b"CATLOGXX"), HeaderStatus.BAD_MAGIC),  # ... and a version no one knows
        (header(9)[:12] + b"\0\0\0\0", HeaderStatus.CRC_MISMATCH),  # crc bad, version unknown
        (header(1)[:12] + b"\0\0\0\0", HeaderStatus.CRC_MISMATCH),
    ],
    ids=["magic", "magic-and-version", "crc-and-version", "crc"],
)
def test_the_header_checks_run_crc_then_magic_then_version(
    data_dir: str, first: bytes, status: HeaderStatus
) -> None:
    assert codec.decode_segment_header(first)[0] is status
    write(data_dir, {"segment-00001.log": first})
    with catlog.open(data_dir) as store:
        (repair,) = store.stats().tail_repairs
    assert (repair.offset, repair.reason) == (0, status.value), "damage, never FMT-3's refusal"
    older = f"{data_dir}-older"
    write(older, {"segment-00001.log": first, "segment-00002.log": header()})
    with pytest.raises(catlog.CorruptionError, match=r"segment-00001\.log@0"):
        catlog.open(older)


@pytest.mark.spec("FMT-31", "FMT-22", "FMT-23", "REC-7")
def test_a_member_whose_timestamp_is_not_its_batchs_breaks_the_format(data_dir: str) -> None:
    good = record(4, b"", member(1, b"a", b"1") + member(1, b"b", b"2"))
    bad = record(4, b"", member(1, b"a", b"1") + member(1, b"b", b"2", NOW_MS + 1))
    assert isinstance(codec.decode_record(good, 0), Record)
    damage = codec.decode_record(bad, 0)
    assert isinstance(damage, Damage)
    assert damage.kind is DamageKind.BAD_BATCH
    assert damage.kind in WRITTEN_WHOLE
    data = header() + bad
    (region,) = scan_segment(data, newest=True)
    assert isinstance(region, Region)
    assert region.kind is RegionKind.FORMAT_VIOLATION
    write(data_dir, {"segment-00001.log": data})
    with pytest.raises(catlog.CorruptionError, match=r"segment-00001\.log@16: malformed batch"):
        catlog.open(data_dir)


@pytest.mark.spec("FMT-32", "FMT-27", "REC-7")
def test_a_short_packed_record_with_value_len_65535_breaks_the_format(data_dir: str) -> None:
    fits = packed(0x41, b"k", b"v" * 65_534)
    too_long = packed(0x41, b"k", b"v" * 65_535)
    assert isinstance(codec.decode_record(fits, 0, packed=True), Record)
    damage = codec.decode_record(too_long, 0, packed=True)
    assert isinstance(damage, Damage)
    assert damage.kind is DamageKind.BAD_PACKED
    data = header(2) + too_long
    (region,) = scan_segment(data, newest=False)
    assert isinstance(region, Region)
    assert region.kind is RegionKind.FORMAT_VIOLATION
    write(data_dir, {"segment-00001.log": data, "segment-00002.log": header()})
    with pytest.raises(catlog.CorruptionError, match=r"segment-00001\.log@16: packed record"):
        catlog.open(data_dir)


@pytest.mark.spec("FMT-33", "FMT-27", "REC-3", "REC-19")
@pytest.mark.parametrize(
    "victim",
    [packed(0x41, b"a", b"first"), packed(0x51, b"b" * 300, b"second", long=True)],
    ids=["short-read-as-long", "long-read-as-short"],
)
def test_a_damaged_form_bit_is_damage_whichever_form_is_read(data_dir: str, victim: bytes) -> None:
    after = packed(0x41, b"z", b"last")
    hurt = bytearray(victim)
    hurt[4] ^= 0x10  # the form bit, read before the crc is checked
    data = header(2) + bytes(hurt) + after
    damage = codec.decode_record(data, 16, packed=True)
    assert isinstance(damage, Damage)
    assert damage.kind not in WRITTEN_WHOLE, damage
    cut = codec.decode_record(data[: 16 + 4], 16, packed=True)
    assert isinstance(cut, Damage)
    assert cut.kind is DamageKind.INCOMPLETE_HEADER
    regions = [e for e in scan_segment(data, newest=True) if not isinstance(e, Record)]
    assert [(r.start, r.kind) for r in regions] == [(16, RegionKind.CORRUPT)]
    write(data_dir, {"segment-00001.log": data})
    with pytest.raises(catlog.CorruptionError, match=r"segment-00001\.log@16"):
        catlog.open(data_dir)


@pytest.mark.spec("FMT-34", "FMT-16", "FMT-17")
def test_the_offset_value_len_and_expiry_columns_line_up_with_the_keys() -> None:
    data = (
        header()
        + record(1, b"a", b"old")
        + record(1, b"bb", b"2")
        + record(3, b"ccc", struct.pack("<Q", NOW_MS + 7) + b"33")
        + record(1, b"a", b"1111")
        + record(3, b"d", struct.pack("<Q", NOW_MS + 9) + b"")
        + record(2, b"gone")
    )
    built = hint.build_hint(1, data)
    assert isinstance(built, bytes)
    plain, expiring, deletes = struct.unpack_from("<III", built, 12)
    puts, entries = plain + expiring, plain + expiring + deletes
    pos = 44
    key_lens = struct.unpack_from(f"<{entries}I", built, pos)
    pos += 4 * entries
    offsets = struct.unpack_from(f"<{puts}I", built, pos)
    pos += 4 * puts
    value_lens = struct.unpack_from(f"<{puts}I", built, pos)
    pos += 4 * puts
    expiries = struct.unpack_from(f"<{expiring}Q", built, pos)
    pos += 8 * expiring
    keys = []
    for length in key_lens:
        keys.append(built[pos : pos + length])
        pos += length
    assert (plain, expiring, deletes) == (2, 2, 1)
    for i in range(puts):
        found = codec.decode_record(data, offsets[i])
        assert isinstance(found, Record)
        assert (found.key, found.value_len) == (keys[i], value_lens[i])
    for j in range(expiring):
        found = codec.decode_record(data, offsets[plain + j])
        assert isinstance(found, Record)
        assert (found.key, found.expires_at_ms) == (keys[plain + j], expiries[j])
    assert keys[puts:] == [b"gone"]
    assert sorted(keys[:plain]) == [b"a", b"bb"]


@pytest.mark.spec("FMT-35", "FMT-24", "FMT-23")
def test_the_type_byte_at_a_hint_offset_tells_a_member_from_a_record(data_dir: str) -> None:
    segment = (
        header()
        + record(1, b"plain", b"p")
        + record(4, b"", member(1, b"m1", b"one") + member(3, b"m2", struct.pack("<Q", 2**62)))
    )
    built = hint.build_hint(1, segment)
    assert isinstance(built, bytes)
    decoded = hint.decode_hint(built)
    assert isinstance(decoded, hint.Hint)
    for key, offset in zip(decoded.put_keys, decoded.put_offsets, strict=True):
        is_member = segment[offset + 4] in (0x81, 0x82, 0x83)
        assert is_member == key.startswith(b"m")
        as_record = codec.decode_record(segment, offset)
        if is_member:  # the masked crc fails as a record's, and verifies with the mask
            assert isinstance(as_record, Damage)
            assert as_record.kind is DamageKind.CRC_MISMATCH
            end = offset + 21 + sum(struct.unpack_from("<II", segment, offset + 13))
            crc = struct.unpack_from("<I", segment, offset)[0]
            assert crc32c(segment[offset + 4 : end]) ^ MASK == crc
        else:
            assert isinstance(as_record, Record)
            assert as_record.key == key
    write(data_dir, {"segment-00001.log": segment, "segment-00001.hint": built})
    write(data_dir, {"segment-00002.log": header()})
    with catlog.open(data_dir) as store:
        assert (store[b"plain"], store[b"m1"], store[b"m2"]) == (b"p", b"one", b"")
