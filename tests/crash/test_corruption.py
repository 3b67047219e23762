"""Damage no crash explains: open and get report it, precisely, and change nothing.

Only the newest segment can end torn (ENG-10), so damage anywhere else, damage with a valid record
after it, and whole records that break the format are corruption (REC-6, REC-7). The tests craft
their bad bytes from the layout in spec/format.md with their own struct and crc32c calls, so a
mistake in catlog's codec cannot cancel out a mistake in the test.
"""

from __future__ import annotations

import os
import struct
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from crc32c import crc32c

import catlog
from tests.crash.faulty_fs import FaultyFileSystem

HEADER_SIZE = 16
RECORD_HEADER_SIZE = 21
NOW_MS = 1_700_000_000_000
MAX_RECORD_SIZE = RECORD_HEADER_SIZE + catlog.MAX_KEY_SIZE + catlog.MAX_VALUE_SIZE

SEGMENT_SIZE = 200
"""Four 43-byte records fit after the header (188 bytes); the fifth starts a new segment."""
KEYS = [b"k%d" % i for i in range(10)]
VALUE_SIZE = 20
RECORD_SIZE = RECORD_HEADER_SIZE + 2 + VALUE_SIZE
OFFSETS = [HEADER_SIZE + i * RECORD_SIZE for i in range(4)]
"""Where the records of each full segment start: 16, 59, 102, 145."""


def value_of(key: bytes) -> bytes:
    return (key * VALUE_SIZE)[:VALUE_SIZE]


def segment(number: int) -> str:
    return f"segment-{number:05d}.log"


def segment_header(version: int = 1) -> bytes:
    head = b"CATLOGSG" + struct.pack("<I", version)
    return head + struct.pack("<I", crc32c(head))


def craft_record(rtype: int, key: bytes, value: bytes = b"") -> bytes:
    """A record with a crc that verifies, whatever its type and lengths say (FMT-4, FMT-5)."""
    body = struct.pack("<BQII", rtype, NOW_MS, len(key), len(value)) + key + value
    return struct.pack("<I", crc32c(body)) + body


@dataclass(frozen=True)
class Built:
    directory: str
    state: dict[bytes, bytes]


def build(directory: str, keys: list[bytes] = KEYS) -> Built:
    """Ten puts: segments 1 and 2 hold four records each, segment 3 (the newest) two."""
    with catlog.open(
        directory, segment_size=SEGMENT_SIZE, clock=catlog.ManualClock(NOW_MS)
    ) as store:
        for key in keys:
            store.put(key, value_of(key))
    names = sorted(n for n in os.listdir(directory) if not n.endswith(".hint"))  # ENG-30
    assert names == ["LOCK", segment(1), segment(2), segment(3)]
    return Built(directory, {key: value_of(key) for key in keys})


def snapshot(directory: str) -> dict[str, bytes]:
    return {name: Path(directory, name).read_bytes() for name in sorted(os.listdir(directory))}


def flip(path: Path, offset: int, mask: int = 0x01) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= mask
    path.write_bytes(data)


def zero(path: Path, start: int, length: int) -> None:
    data = bytearray(path.read_bytes())
    data[start : start + length] = bytes(length)
    path.write_bytes(data)


def assert_open_reports(
    directory: str, name: str, offset: int, reason: str | None = None
) -> catlog.CorruptionError:
    """Open must raise CorruptionError at ``name``@``offset`` and leave every file alone."""
    before = snapshot(directory)
    with pytest.raises(catlog.CorruptionError) as caught:
        catlog.open(directory)
    error = caught.value
    assert error.path.endswith("/" + name)
    assert error.offset == offset
    assert str(error).startswith(f"{error.path}@{offset}: ")
    if reason is not None:
        assert error.reason.startswith(reason)
    assert snapshot(directory) == before
    return error


# Byte offsets within the damaged record, by field (FMT-4).
FIELDS = {
    "crc": 1,
    "type": 4,
    "timestamp": 9,
    "key_len": 13,
    "value_len": 18,
    "key": RECORD_HEADER_SIZE,
    "value": RECORD_HEADER_SIZE + 2 + 11,
}


@pytest.mark.spec("REC-6", "REC-3", "FMT-5", "ENG-22")
@pytest.mark.parametrize("field", FIELDS.values(), ids=FIELDS.keys())
def test_flipped_bit_in_an_older_segment_is_reported_where_its_record_starts(
    data_dir: str, field: int
) -> None:
    build(data_dir)
    flip(Path(data_dir, segment(1)), OFFSETS[1] + field)
    assert_open_reports(data_dir, segment(1), OFFSETS[1])


@pytest.mark.spec("REC-6", "FMT-5", "ENG-22")
def test_crc_mismatch_in_a_middle_segment_reads_like_segment_at_offset(data_dir: str) -> None:
    build(data_dir)
    flip(Path(data_dir, segment(2)), HEADER_SIZE + 2, 0x80)
    error = assert_open_reports(data_dir, segment(2), HEADER_SIZE, "crc mismatch")
    assert f"{segment(2)}@16: crc mismatch" in str(error)
    assert isinstance(error, catlog.CatlogError)


@pytest.mark.spec("REC-6", "REC-3")
def test_zeroed_range_in_an_older_segment_is_corruption(data_dir: str) -> None:
    build(data_dir)
    zero(Path(data_dir, segment(1)), OFFSETS[2] + RECORD_HEADER_SIZE, 2 + VALUE_SIZE + 10)
    assert_open_reports(data_dir, segment(1), OFFSETS[2])


@pytest.mark.spec("REC-6", "REC-4")
def test_whole_record_of_zeros_at_the_end_of_an_older_segment_is_not_a_torn_tail(
    data_dir: str,
) -> None:
    """The same bytes that are a torn tail in the newest segment are corruption here."""
    build(data_dir)
    zero(Path(data_dir, segment(1)), OFFSETS[3], RECORD_SIZE)
    assert_open_reports(data_dir, segment(1), OFFSETS[3])


@pytest.mark.spec("REC-6", "REC-3", "FMT-9")
@pytest.mark.parametrize("field", [13, 17], ids=["key_len", "value_len"])
def test_huge_length_in_an_older_segment_is_corruption_not_an_allocation(
    data_dir: str, field: int
) -> None:
    build(data_dir)
    path = Path(data_dir, segment(1))
    data = bytearray(path.read_bytes())
    data[OFFSETS[1] + field : OFFSETS[1] + field + 4] = b"\xff\xff\xff\xff"
    path.write_bytes(data)
    assert_open_reports(data_dir, segment(1), OFFSETS[1], "length field out of range")
    fs = FaultyFileSystem(read_limit=SEGMENT_SIZE)
    with pytest.raises(catlog.CorruptionError):
        catlog.open(data_dir, fs=fs)


@pytest.mark.spec("REC-6", "FMT-2")
@pytest.mark.parametrize("offset", [0, 8, 12], ids=["magic", "version", "crc"])
def test_bad_header_of_an_older_segment_is_corruption_at_offset_zero(
    data_dir: str, offset: int
) -> None:
    build(data_dir)
    flip(Path(data_dir, segment(1)), offset)
    assert_open_reports(data_dir, segment(1), 0)


@pytest.mark.spec("REC-6", "REC-5")
def test_bad_header_of_the_newest_segment_with_records_after_it_is_corruption(
    data_dir: str,
) -> None:
    build(data_dir)
    flip(Path(data_dir, segment(3)), 3)
    assert_open_reports(data_dir, segment(3), 0)


@pytest.mark.spec("REC-6", "REC-4")
def test_damage_in_the_newest_segment_followed_by_a_valid_record_is_not_cut(
    data_dir: str,
) -> None:
    build(data_dir)
    flip(Path(data_dir, segment(3)), OFFSETS[0] + RECORD_HEADER_SIZE + 5)
    assert_open_reports(data_dir, segment(3), OFFSETS[0])


@pytest.mark.spec("REC-6", "REC-4")
def test_truncated_record_in_the_newest_segment_followed_by_a_valid_record_is_not_cut(
    data_dir: str,
) -> None:
    """A short record mid-file: what follows it is whole, so the writer did not die there."""
    build(data_dir)
    path = Path(data_dir, segment(3))
    data = path.read_bytes()
    path.write_bytes(data[: OFFSETS[0] + 30] + data[OFFSETS[1] :])
    assert_open_reports(data_dir, segment(3), OFFSETS[0])


RESERVED = {
    "type 0": craft_record(0, b"k9", b"v"),
    "type 3 (future expiring PUT)": craft_record(3, b"k9", b"v"),
    "type 4 (future batch frame)": craft_record(4, b"k9"),
    "type 255": craft_record(255, b"k9", b"v"),
    "DELETE with a value": craft_record(2, b"k9", b"v"),
}


@pytest.mark.spec("REC-7", "FMT-7", "FMT-8", "REC-6")
@pytest.mark.parametrize("record", RESERVED.values(), ids=RESERVED.keys())
def test_whole_record_breaking_the_format_at_the_tail_is_corruption(
    data_dir: str, record: bytes
) -> None:
    """Its crc verifies, so it was written whole: cutting it off could hide a write."""
    build(data_dir)
    path = Path(data_dir, segment(3))
    end = path.stat().st_size
    with path.open("ab") as file:
        file.write(record)
    assert_open_reports(data_dir, segment(3), end)


@pytest.mark.spec("REC-7", "FMT-7", "FMT-8", "REC-6")
@pytest.mark.parametrize("record", RESERVED.values(), ids=RESERVED.keys())
def test_whole_record_breaking_the_format_in_an_older_segment_is_corruption(
    data_dir: str, record: bytes
) -> None:
    good = craft_record(1, b"k0", b"v0")
    Path(data_dir).mkdir()
    Path(data_dir, "LOCK").write_text(f"{os.getpid()}\n")
    Path(data_dir, segment(1)).write_bytes(segment_header() + good + record + good)
    Path(data_dir, segment(2)).write_bytes(segment_header() + good)
    assert_open_reports(data_dir, segment(1), HEADER_SIZE + len(good))


@pytest.mark.spec("REC-4", "REC-7", "REC-6")
def test_damage_followed_by_a_whole_record_of_reserved_type_is_not_cut(data_dir: str) -> None:
    """REC-4: a torn tail has no record whose crc verifies after it; this one does."""
    build(data_dir)
    path = Path(data_dir, segment(3))
    end = path.stat().st_size
    with path.open("ab") as file:
        file.write(bytes(30) + craft_record(3, b"k9", b"expiring value"))
    assert_open_reports(data_dir, segment(3), end)


@pytest.mark.spec("FMT-3", "REC-5")
@pytest.mark.parametrize("number", [1, 3], ids=["older", "newest"])
@pytest.mark.parametrize("records", [True, False], ids=["with records", "header only"])
def test_segment_of_an_unknown_version_is_refused_untouched(
    data_dir: str, number: int, records: bool
) -> None:
    """A newer writer's data is not garbage, not even in the newest segment."""
    build(data_dir)
    path = Path(data_dir, segment(number))
    tail = path.read_bytes()[HEADER_SIZE:] if records else b""
    path.write_bytes(segment_header(version=3) + tail)
    before = snapshot(data_dir)
    with pytest.raises(catlog.UnsupportedFormatError) as caught:
        catlog.open(data_dir)
    assert caught.value.path.endswith("/" + segment(number))
    assert caught.value.version == 3
    assert segment(number) in str(caught.value)
    assert "3" in str(caught.value)
    assert isinstance(caught.value, catlog.CatlogError)
    assert snapshot(data_dir) == before


@pytest.mark.spec("FMT-12", "REC-6")
def test_segment_longer_than_one_gib_is_corruption_without_reading_it(data_dir: str) -> None:
    build(data_dir)
    path = Path(data_dir, segment(1))
    os.truncate(path, 2**30 + 1)  # sparse: no gigabyte is written or read
    fs = FaultyFileSystem(read_limit=1 << 20)
    started = time.monotonic()
    with pytest.raises(catlog.CorruptionError) as caught:
        catlog.open(data_dir, fs=fs)
    assert time.monotonic() - started < 5
    assert caught.value.path.endswith("/" + segment(1))
    assert fs.largest_read <= SEGMENT_SIZE
    assert path.stat().st_size == 2**30 + 1
    assert Path(data_dir, segment(3)).stat().st_size == HEADER_SIZE + 2 * RECORD_SIZE
    assert not [name for name in os.listdir(data_dir) if ".torn-" in name]


@pytest.mark.spec("FMT-36", "FMT-12")
@pytest.mark.parametrize("size", [2**29 + 1, 2**30])
@pytest.mark.parametrize("hints", [False, True])
def test_a_segment_over_512_mib_from_an_older_catlog_is_refused_with_the_remedy(
    data_dir: str, size: int, hints: bool
) -> None:
    """Not corruption: an older catlog allowed segments up to 1 GiB. Nothing is read or changed."""
    build(data_dir)
    if hints:
        catlog.open(data_dir, hints=True).close()  # the sealed segments get their hints
    path = Path(data_dir, segment(1))
    os.truncate(path, size)  # sparse
    before = {name: Path(data_dir, name).stat().st_size for name in os.listdir(data_dir)}
    fs = FaultyFileSystem(read_limit=1 << 20)
    with pytest.raises(catlog.CatlogError) as caught:
        catlog.open(data_dir, fs=fs, hints=hints)
    assert not isinstance(caught.value, catlog.CorruptionError)
    assert str(caught.value) == (
        f"{data_dir}/{segment(1)}: segment of {size} bytes, longer than this catlog reads"
        " (536870912); an older catlog, which allowed 1073741824, wrote it, and nothing was"
        " changed: compact the store with that catlog (catlog compact --segment-size 536870912"
        f" {data_dir}), then open it with this one"
    )
    assert fs.largest_read <= SEGMENT_SIZE
    assert {name: Path(data_dir, name).stat().st_size for name in os.listdir(data_dir)} == before


def pwrite(path: Path, offset: int, data: bytes) -> None:
    """Change bytes under an open store, the way a failing disk would.

    Bytes are overwritten, never cut off: the store maps its segments, and a read of a mapped
    page past a file's end is SIGBUS, so truncating under an open store is outside the contract.
    """
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, data, offset)
    finally:
        os.close(fd)


@pytest.mark.spec("ENG-12", "ENG-22")
@pytest.mark.parametrize("number", [1, 3], ids=["sealed segment", "active segment"])
def test_get_of_a_damaged_record_raises_with_file_and_offset(data_dir: str, number: int) -> None:
    built = build(data_dir)
    with catlog.open(data_dir, segment_size=SEGMENT_SIZE) as store:
        path = Path(data_dir, segment(number))
        key = KEYS[(number - 1) * 4 + 1]
        pwrite(path, OFFSETS[1] + RECORD_HEADER_SIZE + 2 + 3, b"X")
        with pytest.raises(catlog.CorruptionError) as caught:
            store.get(key)
        assert caught.value.path.endswith("/" + segment(number))
        assert caught.value.offset == OFFSETS[1]
        assert str(caught.value).startswith(f"{caught.value.path}@{OFFSETS[1]}: crc mismatch")
        with pytest.raises(catlog.CorruptionError):
            store[key]
        for other in KEYS:
            if other != key:
                assert store.get(other) == built.state[other]


@pytest.mark.spec("ENG-12")
def test_get_never_returns_the_value_of_another_key(data_dir: str) -> None:
    """A whole, valid record of the wrong key where the index points is still corruption."""
    build(data_dir)
    with catlog.open(data_dir, segment_size=SEGMENT_SIZE) as store:
        impostor = craft_record(1, b"zz", b"Z" * VALUE_SIZE)
        assert len(impostor) == RECORD_SIZE
        pwrite(Path(data_dir, segment(1)), OFFSETS[2], impostor)
        with pytest.raises(catlog.CorruptionError) as caught:
            store.get(KEYS[2])
        assert caught.value.offset == OFFSETS[2]
        assert caught.value.path.endswith("/" + segment(1))


@pytest.mark.spec("ENG-12")
def test_get_never_returns_a_value_from_a_delete_record(data_dir: str) -> None:
    build(data_dir)
    with catlog.open(data_dir, segment_size=SEGMENT_SIZE) as store:
        tombstone = craft_record(2, KEYS[2])
        pwrite(Path(data_dir, segment(1)), OFFSETS[2], tombstone)
        with pytest.raises(catlog.CorruptionError) as caught:
            store.get(KEYS[2])
        assert caught.value.offset == OFFSETS[2]


LARGE = 70_000
"""At least 65,535 bytes: the index does not hold the length, get reads it from disk (ENG-11)."""


def build_large(directory: str) -> None:
    """A large value alone in segment 1, sealed, so damage to it cannot be a torn tail."""
    with catlog.open(directory, segment_size=1024) as store:
        store.put(b"big", b"B" * LARGE)
        store.put(b"small", b"s")


@pytest.mark.spec("ENG-12", "REC-3")
def test_get_of_a_large_value_with_a_damaged_length_does_not_allocate_it(data_dir: str) -> None:
    build_large(data_dir)
    fs = FaultyFileSystem(read_limit=MAX_RECORD_SIZE)
    with catlog.open(data_dir, segment_size=1024, fs=fs) as store:
        pwrite(Path(data_dir, segment(1)), HEADER_SIZE + 17, b"\xff\xff\xff\xff")
        with pytest.raises(catlog.CorruptionError) as caught:
            store.get(b"big")
        assert caught.value.offset == HEADER_SIZE


@pytest.mark.spec("ENG-12")
def test_get_of_a_large_value_with_a_flipped_bit_raises(data_dir: str) -> None:
    build_large(data_dir)
    with catlog.open(data_dir, segment_size=1024) as store:
        assert store.get(b"big") == b"B" * LARGE
        pwrite(Path(data_dir, segment(1)), HEADER_SIZE + 40_000, b"C")
        with pytest.raises(catlog.CorruptionError) as caught:
            store.get(b"big")
        assert caught.value.offset == HEADER_SIZE
        assert store.get(b"small") == b"s"
