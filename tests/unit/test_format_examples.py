"""spec/format.md's worked examples and version table, read from the spec and recomputed here.

The hex is taken from the document itself, so that the text a reader checks by hand is the text
these tests check: each crc is recomputed from the bytes printed beside it, and each version
number is compared with the codec's and the hint module's constants.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest
from crc32c import crc32c

from catlog import codec, hint
from catlog.codec import RecordType

FORMAT = Path(__file__).resolve().parents[2] / "spec" / "format.md"
NOW_MS = 1_700_000_000_000


def section(title: str) -> str:
    text = FORMAT.read_text()
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else len(text)]


def code_blocks(text: str) -> list[str]:
    return re.findall(r"```\n(.*?)```", text, re.DOTALL)


def dumped_bytes(block: str) -> bytes:
    """The bytes of a dump whose lines read ``offset  hex hex ...  field``; offsets must run on."""
    data = bytearray()
    for line in block.splitlines()[1:]:  # after the column headings
        match = re.match(r"(\d+) +((?:[0-9a-f]{2}(?: {1,2}|$))+)", line)
        assert match is not None, line
        assert int(match.group(1)) == len(data), f"the offset of {line!r}"
        data += bytes.fromhex(match.group(2))
    return bytes(data)


def field_value(block: str, name: str) -> int:
    match = re.search(rf"(?<!\w){name} 0x([0-9A-F]+)", block)
    assert match is not None, name
    return int(match.group(1), 16)


@pytest.mark.spec("FMT-4", "FMT-5")
def test_the_worked_record_is_the_codecs_and_its_crc_recomputes() -> None:
    record_block, tombstone, header = code_blocks(section("3. A worked example"))
    record = dumped_bytes(record_block)
    assert record == codec.encode_record(RecordType.PUT, NOW_MS, b"name", b"Bob")
    assert field_value(record_block, "crc") == crc32c(record[4:])
    assert struct.unpack_from("<I", record)[0] == crc32c(record[4:])
    assert bytes.fromhex(tombstone) == codec.encode_record(RecordType.DELETE, NOW_MS + 1, b"name")
    assert bytes.fromhex(header.splitlines()[0]) == codec.encode_segment_header(1)


@pytest.mark.spec("FMT-16", "FMT-17", "FMT-19")
def test_the_hint_example_is_complete_enough_to_recompute_both_crcs() -> None:
    segment_block, hint_block = code_blocks(section("6. Hint files"))[1:3]
    segment = dumped_bytes(segment_block)
    assert len(segment) == 68
    assert segment == (
        codec.encode_segment_header(1)
        + codec.encode_record(RecordType.PUT, NOW_MS, b"name", b"Bob")
        + codec.encode_record(RecordType.DELETE, NOW_MS + 1, b"old")
    )
    data = dumped_bytes(hint_block)
    assert field_value(hint_block, "segment_crc") == crc32c(segment[16:])
    assert field_value(hint_block, "crc") == crc32c(data[:-4])
    assert data[-4:] == struct.pack("<I", crc32c(data[:-4]))
    assert data == hint.build_hint(3, segment)


def version_rows() -> list[tuple[str, str, str, str]]:
    """(file, magic, version, what it is) for each row of section 7's table."""
    rows = []
    for line in section("7. Version numbers").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] in ("segment", "hint"):
            rows.append((cells[0], cells[1].strip("`"), cells[2], cells[3]))
    return rows


@pytest.mark.spec("FMT-2", "FMT-3", "FMT-16", "FMT-18", "FMT-26")
def test_the_table_of_version_numbers_is_the_codes() -> None:
    rows = version_rows()
    segment_versions = {int(v) for f, _, v, _ in rows if f == "segment" and v.isdigit()}
    hint_versions = {int(v) for f, _, v, _ in rows if f == "hint" and v.isdigit()}
    assert segment_versions == set(codec.SEGMENT_VERSIONS)
    assert {hint.HINT_VERSION, hint.PACKED_HINT_VERSION} < hint_versions
    for kind, magic, version, what in rows:
        assert magic.encode() == (codec.SEGMENT_MAGIC if kind == "segment" else hint.HINT_MAGIC)
        if kind == "segment" and version.isdigit():
            stated = re.search(r"header `([0-9a-f ]+)`", what)
            assert stated is not None
            assert bytes.fromhex(stated.group(1)) == codec.encode_segment_header(int(version))
        elif kind == "segment":
            status = codec.decode_segment_header(codec.encode_segment_header(7))[0]
            assert status is codec.HeaderStatus.UNSUPPORTED_VERSION
    assert "version-1 segment" in {v: w for f, _, v, w in rows if f == "hint"}["2"]
    assert "version-2 segment" in {v: w for f, _, v, w in rows if f == "hint"}["3"]
    segment = codec.encode_segment_header(1) + codec.encode_record(RecordType.PUT, NOW_MS, b"k")
    made = hint.build_hint(1, segment)
    assert isinstance(made, bytes)
    for unusable in [*sorted(hint_versions - {hint.HINT_VERSION, hint.PACKED_HINT_VERSION}), 9]:
        body = made[:8] + struct.pack("<I", unusable) + made[12:-4]
        resealed = body + struct.pack("<I", crc32c(body))
        assert hint.decode_hint(resealed) is hint.HintProblem.UNKNOWN_VERSION
