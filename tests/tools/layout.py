"""A small data directory with a known layout, and ways to damage it, for the tools' tests.

The damage is crafted from spec/format.md with the tests' own ``struct`` and ``crc32c`` calls, so a
mistake in catlog's codec cannot cancel out a mistake in a test.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
from crc32c import crc32c

import catlog
from catlog.cli import main

HEADER_SIZE = 16
RECORD_HEADER_SIZE = 21
NOW_MS = 1_700_000_000_000
SEGMENT_SIZE = 200
"""Four 43-byte records fit after the header (188 bytes); the fifth starts a new segment."""
KEYS = [b"k%d" % i for i in range(10)]
VALUE_SIZE = 20
RECORD_SIZE = RECORD_HEADER_SIZE + 2 + VALUE_SIZE
OFFSETS = [HEADER_SIZE + i * RECORD_SIZE for i in range(4)]
"""Where the records of each full segment start: 16, 59, 102, 145."""
FULL_SIZE = HEADER_SIZE + 4 * RECORD_SIZE  # 188


def value_of(key: bytes) -> bytes:
    return (key * VALUE_SIZE)[:VALUE_SIZE]


def segment(number: int) -> str:
    return f"segment-{number:05d}.log"


def build(directory: str, *, hints: bool = False) -> dict[bytes, bytes]:
    """Ten puts: segments 1 and 2 hold four records each, segment 3 (the newest) two."""
    with catlog.open(
        directory, segment_size=SEGMENT_SIZE, clock=catlog.ManualClock(NOW_MS), hints=hints
    ) as store:
        for key in KEYS:
            store.put(key, value_of(key))
    names = sorted(n for n in os.listdir(directory) if not n.endswith(".hint"))  # ENG-30
    assert names == ["LOCK", segment(1), segment(2), segment(3)]
    return {key: value_of(key) for key in KEYS}


def snapshot(directory: str) -> dict[str, bytes]:
    """Every file's bytes, by name."""
    return {name: Path(directory, name).read_bytes() for name in sorted(os.listdir(directory))}


def flip(path: Path, offset: int, mask: int = 0x01) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= mask
    path.write_bytes(data)


def overwrite(path: Path, offset: int, new: bytes) -> None:
    data = bytearray(path.read_bytes())
    data[offset : offset + len(new)] = new
    path.write_bytes(data)


def segment_header(version: int = 1) -> bytes:
    head = b"CATLOGSG" + struct.pack("<I", version)
    return head + struct.pack("<I", crc32c(head))


def craft_record(rtype: int, key: bytes, value: bytes = b"", timestamp: int = NOW_MS) -> bytes:
    """A record whose crc verifies, whatever its type and lengths say (FMT-4, FMT-5)."""
    body = struct.pack("<BQII", rtype, timestamp, len(key), len(value)) + key + value
    return struct.pack("<I", crc32c(body)) + body


def put(key: bytes, value: bytes, timestamp: int = NOW_MS) -> bytes:
    return craft_record(1, key, value, timestamp)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``catlog <argv>`` in this process: exit status, stdout, stderr."""
    status = main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err
