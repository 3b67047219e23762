"""The shared scan, bytes in, findings out: every record and damaged byte, judged as open would.

No files here: each test builds a segment's bytes and reads what :func:`catlog.scan.scan_segment`
makes of them (TOOL-3, TOOL-4).
"""

from __future__ import annotations

import mmap
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from catlog.codec import Record, decode_record
from catlog.scan import Entry, Region, RegionKind, is_quarantine_name, is_scratch_name
from catlog.scan import scan_segment as scan
from tests.tools.layout import craft_record, put, segment_header

RECORDS = [put(b"k%d" % i, b"value-%d" % i) for i in range(4)]
SIZE = len(RECORDS[0])
CLEAN = segment_header() + b"".join(RECORDS)
STARTS = [16 + i * SIZE for i in range(4)]


def regions(entries: list[Entry]) -> list[Region]:
    return [e for e in entries if isinstance(e, Region)]


def offsets(entries: list[Entry]) -> list[int]:
    return [e.offset for e in entries if isinstance(e, Record)]


def damaged(data: bytes, offset: int, mask: int = 0x01) -> bytes:
    out = bytearray(data)
    out[offset] ^= mask
    return bytes(out)


@pytest.mark.spec("TOOL-3")
@pytest.mark.parametrize("newest", [True, False])
def test_a_clean_segment_is_all_records(newest: bool) -> None:
    entries = list(scan(CLEAN, newest=newest))
    assert offsets(entries) == STARTS
    assert regions(entries) == []


@pytest.mark.spec("TOOL-3", "TOOL-4", "REC-3")
def test_scan_goes_on_after_a_crc_mismatch_and_reports_its_range() -> None:
    data = damaged(CLEAN, STARTS[1] + 25)
    entries = list(scan(data, newest=False))
    assert offsets(entries) == [STARTS[0], STARTS[2], STARTS[3]]
    assert regions(entries) == [Region(STARTS[1], STARTS[2], "crc mismatch", RegionKind.CORRUPT)]


@pytest.mark.spec("TOOL-3")
def test_two_damages_in_one_segment_are_two_regions() -> None:
    data = damaged(damaged(CLEAN, STARTS[0] + 2), STARTS[2] + 25)
    found = regions(list(scan(data, newest=False)))
    assert [(r.start, r.end) for r in found] == [(STARTS[0], STARTS[1]), (STARTS[2], STARTS[3])]
    assert offsets(list(scan(data, newest=False))) == [STARTS[1], STARTS[3]]


@pytest.mark.spec("TOOL-3", "REC-3", "FMT-9")
@pytest.mark.parametrize("field", [13, 17], ids=["key_len", "value_len"])
def test_a_huge_length_field_is_never_used_to_skip(field: int) -> None:
    data = bytearray(CLEAN)
    data[STARTS[1] + field : STARTS[1] + field + 4] = b"\xff\xff\xff\xff"
    found = regions(list(scan(bytes(data), newest=False)))
    assert found == [
        Region(
            STARTS[1],
            STARTS[2],
            found[0].reason,
            RegionKind.CORRUPT,
        )
    ]
    assert found[0].reason.startswith("length field out of range")


@pytest.mark.spec("TOOL-3", "REC-3")
def test_a_plausible_but_wrong_length_is_not_believed_either() -> None:
    """The damaged value_len points past the next record; the scan still resumes at it."""
    data = bytearray(CLEAN)
    struct.pack_into("<I", data, STARTS[0] + 17, SIZE * 2)
    found = regions(list(scan(bytes(data), newest=False)))
    assert [(r.start, r.end, r.reason) for r in found] == [(STARTS[0], STARTS[1], "crc mismatch")]


@pytest.mark.spec("TOOL-3")
def test_a_zeroed_range_across_two_records_is_one_region() -> None:
    data = bytearray(CLEAN)
    data[STARTS[1] + 5 : STARTS[2] + 10] = bytes(SIZE + 5)
    found = regions(list(scan(bytes(data), newest=False)))
    assert [(r.start, r.end) for r in found] == [(STARTS[1], STARTS[3])]


@pytest.mark.spec("TOOL-4", "REC-4", "REC-6")
@pytest.mark.parametrize(
    "tail", [b"\x00" * 30, b"\x01\x02\x03", RECORDS[0][:-1], b"\xff" * SIZE], ids=repr
)
def test_damage_at_the_end_is_a_torn_tail_only_in_the_newest_segment(tail: bytes) -> None:
    data = CLEAN + tail
    end = len(data)
    [newest] = regions(list(scan(data, newest=True)))
    [older] = regions(list(scan(data, newest=False)))
    assert (newest.start, newest.end, newest.kind) == (len(CLEAN), end, RegionKind.TORN_TAIL)
    assert (older.start, older.end, older.kind) == (len(CLEAN), end, RegionKind.CORRUPT)


@pytest.mark.spec("TOOL-4", "REC-6")
def test_damage_in_the_newest_segment_followed_by_a_valid_record_is_corrupt() -> None:
    data = damaged(CLEAN, STARTS[2] + 22)
    [region] = regions(list(scan(data, newest=True)))
    assert region.kind is RegionKind.CORRUPT


@pytest.mark.spec("TOOL-3", "TOOL-4", "REC-5", "REC-6")
@pytest.mark.parametrize("offset", [0, 8, 12], ids=["magic", "version", "crc"])
def test_a_bad_header_is_a_region_from_zero_to_the_first_valid_record(offset: int) -> None:
    data = damaged(CLEAN, offset)
    for newest in (True, False):
        entries = list(scan(data, newest=newest))
        [region] = regions(entries)
        assert (region.start, region.end, region.kind) == (0, 16, RegionKind.CORRUPT)
        assert offsets(entries) == STARTS


@pytest.mark.spec("TOOL-4", "REC-5")
@pytest.mark.parametrize("data", [b"CATLOG", damaged(segment_header(), 3) + b"\0" * 40])
def test_a_bad_header_of_the_newest_segment_with_nothing_valid_after_it_is_a_torn_tail(
    data: bytes,
) -> None:
    [region] = regions(list(scan(data, newest=True)))
    assert (region.start, region.end, region.kind) == (0, len(data), RegionKind.TORN_TAIL)
    [older] = regions(list(scan(data, newest=False)))
    assert older.kind is RegionKind.CORRUPT


@pytest.mark.spec("TOOL-4", "REC-5")
def test_an_empty_segment_is_valid_only_when_newest() -> None:
    assert list(scan(b"", newest=True)) == []
    [region] = list(scan(b"", newest=False))
    assert isinstance(region, Region)
    assert (region.start, region.end, region.kind) == (0, 0, RegionKind.CORRUPT)


@pytest.mark.spec("TOOL-4", "FMT-3")
def test_an_unknown_version_makes_the_whole_segment_unreadable() -> None:
    data = segment_header(version=3) + b"".join(RECORDS)
    assert list(scan(data, newest=True)) == [
        Region(0, len(data), "unsupported segment format version 3", RegionKind.UNSUPPORTED)
    ]


@pytest.mark.spec("TOOL-4", "FMT-12")
def test_a_segment_longer_than_the_format_allows_is_unreadable() -> None:
    [region] = list(scan(CLEAN, newest=True, max_size=len(CLEAN) - 1))
    assert isinstance(region, Region)
    assert region.kind is RegionKind.UNSUPPORTED
    assert (region.start, region.end) == (0, len(CLEAN))


@pytest.mark.spec("TOOL-3", "TOOL-4", "REC-7", "FMT-7", "FMT-8")
@pytest.mark.parametrize(
    "odd",
    [craft_record(7, b"future", b"x" * 9), craft_record(0, b""), craft_record(2, b"k", b"v")],
    ids=["type-7", "type-0", "delete-with-value"],
)
def test_a_record_written_whole_that_breaks_the_format_is_exactly_its_own_region(
    odd: bytes,
) -> None:
    data = segment_header() + RECORDS[0] + odd + RECORDS[1]
    for newest in (True, False):
        entries = list(scan(data, newest=newest))
        [region] = regions(entries)
        start = 16 + SIZE
        assert (region.start, region.end) == (start, start + len(odd))
        assert region.kind is RegionKind.FORMAT_VIOLATION
        assert offsets(entries) == [16, start + len(odd)]


@pytest.mark.spec("TOOL-6", "ENG-22")
def test_a_region_describes_itself_like_a_corruption_error() -> None:
    region = Region(4096, 4139, "crc mismatch", RegionKind.CORRUPT)
    assert region.describe("segment-00003.log") == (
        "segment-00003.log@4096: crc mismatch (43 bytes, 4096..4139; corrupt)"
    )
    torn = Region(62, 63, "incomplete header: 1 bytes left", RegionKind.TORN_TAIL)
    assert torn.describe("segment-00001.log").endswith("(1 byte, 62..63; torn tail, open cuts it)")


def test_quarantine_and_scratch_names_are_recognised() -> None:
    assert is_quarantine_name("segment-00003.log.torn-102")
    assert is_quarantine_name("segment-00003.log.damaged-0.2")
    assert not is_quarantine_name("segment-00003.log")
    assert not is_quarantine_name("segment-3.log.torn-1")
    assert is_scratch_name("segment-00003.log.repairing")
    assert is_scratch_name("segment-00003.log.damaged-59.repairing")
    assert not is_scratch_name("notes.repairing")


def tiles(entries: list[Entry], size: int) -> bool:
    """The entries follow one another without gap or overlap and end where the data ends.

    They start at 16 after a good header, or at 0 with a region that stands for a bad one.
    """
    if not entries:
        return size in (0, 16)  # an empty newest segment, or a header and nothing else
    spans = [
        (e.offset, e.offset + e.size) if isinstance(e, Record) else (e.start, e.end)
        for e in entries
    ]
    position = 0 if spans[0][0] == 0 else 16
    for start, end in spans:
        if start != position or end < start:
            return False
        position = end
    return position == size


@pytest.mark.spec("TOOL-3")
@given(
    data=st.one_of(
        st.binary(max_size=300),
        st.builds(
            lambda cut, junk, at: (CLEAN[:at] + junk + CLEAN[at:])[: max(cut, 0)],
            st.integers(0, len(CLEAN) + 40),
            st.binary(max_size=40),
            st.integers(0, len(CLEAN)),
        ),
    ),
    newest=st.booleans(),
)
def test_any_bytes_scan_to_entries_that_tile_the_segment(data: bytes, newest: bool) -> None:
    entries = list(scan(data, newest=newest))
    assert tiles(entries, len(data))
    for entry in entries:
        if isinstance(entry, Record):
            assert decode_record(data, entry.offset) == entry


@pytest.mark.spec("TOOL-4", "FMT-36")
@pytest.mark.parametrize("size", [(1 << 29) + 1, 1 << 30])
def test_a_segment_an_older_catlog_made_longer_than_512_mib_is_unreadable_with_advice(
    size: int,
) -> None:
    """An anonymous map stands for the file: its pages are never touched, so nothing is read."""
    with mmap.mmap(-1, size) as data:
        [region] = list(scan(memoryview(data), newest=False))
    assert region == Region(
        0,
        size,
        f"segment of {size} bytes, longer than this catlog reads (536870912); an older catlog,"
        " which allowed 1073741824, wrote it, and nothing was changed: compact the store with"
        " that catlog (catlog compact --segment-size 536870912 DIR), then open it with this one",
        RegionKind.UNSUPPORTED,
    )
