"""The segments workload: a store of 20,000 segments under ``ulimit -n 1024`` (issue 17).

A store that runs for months collects segments: issue 17 asked that one of 20,000 open, read,
write and compact in a process whose descriptor limit is 1,024, the default on most systems.
That needs two things: slots for more than 16,384 segments in an index location (FMT-12,
ENG-74), and sealed segments held open only within a budget (ENG-65 .. ENG-70).

The store is written as files (:func:`write_store`), one PUT per sealed segment and an empty
active segment after them, in the format of spec/format.md: through the API each of 20,000
rotations would fsync three times (ENG-10, under every fsync policy), minutes of building for
nothing measured. Then :func:`under_limit`, in a child of its own, lowers its soft
``RLIMIT_NOFILE`` before it opens anything and goes through a store's life: open, a get of
every key in shuffled order, puts that overwrite some of the oldest keys (each rotates, as the
segment size is one record), a bounded compaction of the oldest segments, a check of what the
compaction moved, and close. A thread counts ``/proc/self/fd`` all along for the peak.
"""

from __future__ import annotations

import os
import random
import resource
import threading
import time
from pathlib import Path
from typing import Final

import catlog
from catlog import codec
from catlog.segment import segment_name

from .children import Reply

SEGMENTS: Final = 20_000
"""Sealed segments, one record each: the number issue 17 asked for."""
LIMIT: Final = 1024
"""The soft ``RLIMIT_NOFILE`` the store runs under: the usual default of ``ulimit -n``."""
VALUE_SIZE: Final = 4000
SEGMENT_SIZE: Final = 4096
"""One record of a 12-byte key and a 4,000-byte value fits (4,049 bytes with the header)."""
OVERWRITES: Final = 300
"""Puts of new values for every other key of the oldest segments: each rotates."""
COMPACT_SEGMENTS: Final = 512
"""ENG-73's bound for the compaction, in segments' worth of bytes: it takes about that many."""


def key_of(number: int) -> bytes:
    return b"key-%08d" % number


def value_of(number: int, round_: int = 0) -> bytes:
    head = b"%08d:%d:" % (number, round_)
    return head + b"." * (VALUE_SIZE - len(head))


def write_store(path: str, count: int) -> Reply:
    """``count`` sealed segments of one PUT each, then an empty active one."""
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    header = codec.encode_segment_header()
    for number in range(1, count + 1):
        record = codec.encode_record(codec.RecordType.PUT, 1, key_of(number), value_of(number))
        (directory / segment_name(number)).write_bytes(header + record)
    (directory / segment_name(count + 1)).write_bytes(header)
    return {"segments": count + 1}


def descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


class PeakCounter:
    """The most descriptors the process held, counted every few milliseconds in a thread."""

    def __init__(self) -> None:
        self.peak = descriptors()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, descriptors())

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return max(self.peak, descriptors())


def under_limit(path: str, count: int, limit: int) -> Reply:
    """Open, read, write, compact and close the store at ``path`` with ``ulimit -n limit``."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    counter = PeakCounter()
    order = list(range(1, count + 1))
    random.Random(17).shuffle(order)
    overwritten = list(range(1, 2 * OVERWRITES + 1, 2))
    times: dict[str, float] = {}

    started = time.perf_counter()
    store = catlog.open(path, fsync="never", segment_size=SEGMENT_SIZE)
    times["open"] = time.perf_counter() - started
    try:
        started = time.perf_counter()
        for number in order:
            assert store.get(key_of(number)) == value_of(number), number
        times["get"] = time.perf_counter() - started

        started = time.perf_counter()
        for number in overwritten:
            store.put(key_of(number), value_of(number, 1))
        times["put"] = time.perf_counter() - started
        segments_before = store.stats().segments

        started = time.perf_counter()
        report = store.compact(max_bytes=COMPACT_SEGMENTS * SEGMENT_SIZE)
        times["compact"] = time.perf_counter() - started

        rounds = dict.fromkeys(overwritten, 1)
        for number in [*range(1, COMPACT_SEGMENTS * 2), *order[:2000]]:
            assert store.get(key_of(number)) == value_of(number, rounds.get(number, 0)), number
        segments_after = store.stats().segments
        budget = store.max_open_files
    finally:
        started = time.perf_counter()
        store.close()
        times["close"] = time.perf_counter() - started
    return {
        "limit": limit,
        "budget": budget,
        "peak": counter.stop(),
        "gets": count,
        "puts": len(overwritten),
        "segments_before": segments_before,
        "segments_after": segments_after,
        "removed": report.segments_removed,
        "written": report.segments_written,
        "copied": report.records_copied,
        **{f"{step}_seconds": seconds for step, seconds in times.items()},
    }
