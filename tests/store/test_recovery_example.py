"""recovery.md section 4 done as written: its 54 bytes are opened, and what open does is what the
spec prints: the quarantine file's name and bytes, the truncation, the warning and the report."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import pytest

import catlog
from catlog import codec

RECOVERY = Path(__file__).resolve().parents[2] / "spec" / "recovery.md"


def example() -> str:
    text = RECOVERY.read_text()
    return text[text.index("## 4. A worked example") : text.index("## 5.")]


def printed_bytes(block: str) -> bytes:
    data = bytearray()
    for line in block.splitlines()[1:]:
        match = re.match(r"(\d+) +((?:[0-9a-f]{2}(?: {1,2}|$))+)", line)
        assert match is not None, line
        assert int(match.group(1)) == len(data), line
        data += bytes.fromhex(match.group(2))
    return bytes(data)


@pytest.mark.spec("REC-4", "REC-2", "REC-12", "REC-13", "ENG-26")
def test_ten_torn_bytes_after_the_worked_record_are_cut_as_the_spec_shows(
    data_dir: str, caplog: pytest.LogCaptureFixture
) -> None:
    section = example()
    prose = " ".join(section.split())
    (block,) = re.findall(r"```\n(.*?)```", section, re.DOTALL)
    data = printed_bytes(block)
    record = codec.encode_record(codec.RecordType.PUT, 1_700_000_000_000, b"name", b"Bob")
    tombstone = codec.encode_record(codec.RecordType.DELETE, 1_700_000_000_001, b"name")
    assert data == codec.encode_segment_header() + record + tombstone[:10]
    assert f"The file is {len(data)} bytes" in prose

    os.makedirs(data_dir)
    Path(data_dir, "segment-00001.log").write_bytes(data)
    with caplog.at_level(logging.WARNING, logger="catlog"), catlog.open(data_dir) as store:
        assert store[b"name"] == b"Bob"
        (repair,) = store.stats().tail_repairs
    warning = re.search(r"the warning `([^`]+)`", prose)
    assert warning is not None
    assert [r.getMessage() for r in caplog.records if r.name == "catlog"] == [warning.group(1)]
    assert f"reports `{repair!r}`" in prose
    quarantine = re.search(r"a new file `([^`]+)`", prose)
    kept = re.search(r"the quarantine file holds exactly `([0-9a-f ]+)`", prose)
    assert quarantine is not None
    assert kept is not None
    assert repair.quarantine == quarantine.group(1)
    assert Path(data_dir, quarantine.group(1)).read_bytes() == bytes.fromhex(kept.group(1))
    truncated = re.search(r"truncates `segment-00001.log` to (\d+) bytes", prose)
    assert truncated is not None
    assert Path(data_dir, "segment-00001.log").read_bytes() == data[: int(truncated.group(1))]

    before = {name: Path(data_dir, name).read_bytes() for name in os.listdir(data_dir)}
    with catlog.open(data_dir) as store:
        assert store.stats().tail_repairs == ()
    after = {name: Path(data_dir, name).read_bytes() for name in os.listdir(data_dir)}
    assert {n: b for n, b in after.items() if n != "LOCK"} == {
        n: b for n, b in before.items() if n != "LOCK"
    }
