"""A store of more segments than the process may hold descriptors (ENG-65 .. ENG-71).

Each sealed segment is read through a memory map, and a map keeps a descriptor of its own, so a
store that held every segment open could not open at all once it had more segments than
``ulimit -n``. These tests build such stores (the segment files written directly with the codec,
one record each, so that thousands take a second) and open them in a child process whose
``RLIMIT_NOFILE`` is lowered, counting its descriptors in ``/proc/self/fd``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Final

import pytest

import catlog
from catlog import codec
from catlog.segment import segment_name

BIG_SEGMENTS: Final = 16_000
"""Issue 17 asked for 20,000; a store holds at most 16,384 segments (MAX_SLOTS, catlog.index)."""
BIG_LIMIT: Final = 1024

needs_proc = pytest.mark.skipif(
    not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc/self/fd"
)


def key_of(number: int) -> bytes:
    return b"key-%06d" % number


def value_of(number: int) -> bytes:
    return b"value-%06d" % number


def write_segments(directory: Path, count: int) -> None:
    """``count`` sealed segments of one PUT each, and an empty active segment after them."""
    directory.mkdir(parents=True, exist_ok=True)
    header = codec.encode_segment_header()
    for number in range(1, count + 1):
        record = codec.encode_record(codec.RecordType.PUT, 1, key_of(number), value_of(number))
        (directory / segment_name(number)).write_bytes(header + record)
    (directory / segment_name(count + 1)).write_bytes(header)


CHILD: Final = textwrap.dedent(
    """
    import json, os, resource, sys
    import catlog

    path, limit, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    options = json.loads(sys.argv[4])
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    peak = 0
    with catlog.open(path, **options) as store:
        peak = len(os.listdir("/proc/self/fd"))
        for number in range(1, count + 1):
            key = b"key-%06d" % number
            assert store.get(key) == b"value-%06d" % number, key
            if number % 97 == 0:
                peak = max(peak, len(os.listdir("/proc/self/fd")))
        for number in range(1, 301):
            store.put(b"new-%06d" % number, b"x" * 40)
        for number in range(1, 301):
            assert store.get(b"new-%06d" % number) == b"x" * 40
        peak = max(peak, len(os.listdir("/proc/self/fd")))
        segments = store.stats().segments
    print(json.dumps({"peak": peak, "segments": segments}))
    """
)


def run_child(path: Path, limit: int, count: int, **options: object) -> dict[str, int]:
    """Open ``path`` under ``ulimit -n limit``, read every key, write; the child's report."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), str(limit), str(count), json.dumps(options)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(catlog.__file__).parent.parent)},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report: dict[str, int] = json.loads(done.stdout)
    return report


@needs_proc
@pytest.mark.spec("ENG-65", "ENG-66", "ENG-67", "ENG-56")
def test_a_store_of_more_segments_than_the_descriptor_limit_opens_reads_and_writes(
    tmp_path: Path,
) -> None:
    write_segments(tmp_path / "data", BIG_SEGMENTS)
    report = run_child(tmp_path / "data", BIG_LIMIT, BIG_SEGMENTS, segment_size=1024, fsync="never")
    assert report["segments"] > BIG_SEGMENTS + 1  # the writes rotated
    assert report["peak"] < BIG_LIMIT
