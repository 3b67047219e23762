"""The tools on packed segments (TOOL-23): dump shows them, check and repair judge their damage.

The packed records are crafted here with the tests' own ``struct`` and ``crc32c`` from
spec/format.md section 5, as tests/tools/layout.py crafts records, so that a mistake in the
codec cannot cancel out a mistake in a test.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest
from crc32c import crc32c

import catlog
from tests.tools.layout import flip, run, segment, segment_header, snapshot


def packed_put(key: bytes, value: bytes) -> bytes:
    """FMT-27: the short form, type 0x41."""
    body = struct.pack("<BBH", 0x41, len(key), len(value)) + key + value
    return struct.pack("<I", crc32c(body)) + body


RECORDS = [packed_put(b"a", b"first"), packed_put(b"b", b"second"), packed_put(b"c", b"third")]
OFFSETS = [16, 16 + 14, 16 + 14 + 15]
SIZE = 16 + sum(map(len, RECORDS))


def layout(directory: str) -> Path:
    """A packed segment 1 (as a compaction leaves it) and an empty newest segment 2."""
    os.makedirs(directory)
    path = Path(directory, segment(1))
    path.write_bytes(segment_header(2) + b"".join(RECORDS))
    Path(directory, segment(2)).write_bytes(segment_header(1))
    return path


@pytest.mark.spec("TOOL-23", "TOOL-10", "TOOL-11", "FMT-28")
def test_dump_shows_packed_records_without_a_timestamp(
    data_dir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    layout(data_dir)
    status, out, _ = run(["dump", data_dir], capsys)
    assert status == 0
    lines = out.splitlines()
    assert f"== {segment(1)}: {SIZE} bytes" in lines
    assert "@0 header magic=b'CATLOGSG' version=2 crc=0x" in "\n".join(lines)
    crc = int.from_bytes(RECORDS[0][:4], "little")
    assert (
        f"@16 PUT packed size=14 time=- ms=- key_len=1 value_len=5 crc=0x{crc:08x} ok key=b'a'"
        in lines
    )
    status, out, _ = run(["dump", "--json", data_dir], capsys)
    objects = [json.loads(line) for line in out.splitlines()]
    records = [o for o in objects if o["entry"] == "record"]
    assert [(o["offset"], o["packed"], o["timestamp_ms"], o["time"]) for o in records] == [
        (offset, True, None, None) for offset in OFFSETS
    ]


@pytest.mark.spec("TOOL-23", "TOOL-4", "REC-19", "TOOL-3")
def test_check_reports_damage_at_the_end_of_a_newest_packed_segment_as_corrupt(
    data_dir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = layout(data_dir)
    os.remove(Path(data_dir, segment(2)))
    flip(path, SIZE - 1)
    status, out, _ = run(["check", data_dir], capsys)
    assert status == 1
    assert f"{segment(1)}@{OFFSETS[2]}: crc mismatch (14 bytes, {OFFSETS[2]}..{SIZE}; corrupt)" in (
        out
    )


@pytest.mark.spec("TOOL-23", "TOOL-3", "TOOL-4")
def test_check_resumes_at_the_next_packed_record_after_damage(
    data_dir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = layout(data_dir)
    flip(path, OFFSETS[1] + 9)
    status, out, _ = run(["check", data_dir], capsys)
    assert status == 1
    assert f"{segment(1)}@{OFFSETS[1]}: crc mismatch (15 bytes, {OFFSETS[1]}..{OFFSETS[2]}; " in out


@pytest.mark.spec("TOOL-23", "TOOL-4", "FMT-27", "REC-7")
def test_a_packed_record_in_the_wrong_form_is_a_format_violation_of_its_own_size(
    data_dir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = layout(data_dir)
    body = struct.pack("<BII", 0x51, 1, 1) + b"kv"
    long_form = struct.pack("<I", crc32c(body)) + body
    path.write_bytes(path.read_bytes() + long_form)
    before = snapshot(data_dir)
    status, out, _ = run(["repair", data_dir], capsys)
    assert status == 1
    assert f"{segment(1)}@{SIZE}: packed record in the wrong form: long form for key_len=1 " in out
    assert f"({len(long_form)} bytes, {SIZE}..{SIZE + len(long_form)}; crc ok" in out
    after = snapshot(data_dir)
    after.pop("LOCK")  # the lock repair took (TOOL-2)
    assert after == before, "repair refuses (TOOL-17) and changes nothing"


@pytest.mark.spec("TOOL-23", "TOOL-14", "TOOL-16")
def test_repair_keeps_a_packed_segment_packed(
    data_dir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = layout(data_dir)
    flip(path, OFFSETS[1] + 9)
    status, _, _ = run(["repair", data_dir], capsys)
    assert status == 0
    assert path.read_bytes() == segment_header(2) + RECORDS[0] + RECORDS[2]
    with catlog.open(data_dir) as store:
        assert dict(store.items()) == {b"a": b"first", b"c": b"third"}
    status, out, _ = run(["check", data_dir], capsys)
    assert status == 0, out


@pytest.mark.spec("TOOL-14", "TOOL-23", "TOOL-16", "REC-22")
def test_repair_of_a_packed_segment_whose_header_is_damaged_writes_a_version_2_header(
    data_dir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The records after the damaged header are packed, so the new header must say so."""
    path = layout(data_dir)
    flip(path, 9)  # the version field: the header's crc no longer verifies
    status, out, _ = run(["repair", data_dir], capsys)
    assert status == 0, out
    assert path.read_bytes() == segment_header(2) + b"".join(RECORDS)
    status, out, _ = run(["check", data_dir], capsys)
    assert status == 0, out
    with catlog.open(data_dir) as store:
        assert store[b"b"] == b"second"
