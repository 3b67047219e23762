"""Each segment's share of the dead bytes (ENG-73), kept as the store runs and counted afresh at
open, as a bounded compaction's choice of inputs shows it; and the segments compaction writes
and removes, as the store holds them open (ENG-40, ENG-66).

The records are sized so that the choice turns on a single byte: a key of 2 bytes and a value of
30 make a record of 53 bytes, four to a 256-byte segment (16 bytes of header, 212 of records).
"""

from __future__ import annotations

import os

import pytest

import catlog
from tests.crash.faulty_fs import FaultyFileSystem

SEGMENT = 256
VALUE = b"v" * 30
"""With a 2-byte key, a record of 53 bytes: four fill a segment."""


def reopened(store: catlog.Store, data_dir: str, again: bool) -> catlog.Store:
    """``store`` itself, or closed and opened again with a threshold, so that open counts each
    segment's dead bytes from the index (ENG-41, ENG-73)."""
    if not again:
        return store
    store.close()
    return catlog.open(data_dir, fsync="never", segment_size=SEGMENT, compact_threshold=0.99)


@pytest.mark.parametrize("again", [False, True], ids=["running", "reopened"])
@pytest.mark.spec("ENG-73", "ENG-41")
def test_a_segment_with_no_dead_byte_is_left_however_little_the_store_has_dead(
    data_dir: str, again: bool
) -> None:
    """The first segment has one dead record, the second none, and a 20 kB value makes the
    store's dead fraction 53 / 20,563, below a single byte of the second's 212 (1 / 212): a
    compaction bounded to both takes only the first, since the second's fraction, 0, is below
    the store's."""
    store = catlog.open(data_dir, fsync="never", segment_size=SEGMENT)
    for i in range(4):
        store.put(b"a%d" % i, VALUE)
    for i in range(4):
        store.put(b"b%d" % i, VALUE)
    store.put(b"a0", b"x" * 30)  # the third segment; a0's first record is dead
    store.put(b"z", b"z" * 20_000)  # a segment of its own, the active one
    store = reopened(store, data_dir, again)
    with store:
        store.flush()  # stats() counts the bytes handed to the OS
        stats = store.stats()
        assert (stats.segments, stats.dead_bytes, stats.disk_bytes) == (4, 53, 20_563)
        report = store.compact(max_bytes=2 * SEGMENT)
        assert report.segments_removed == 1, "the second segment is all live: left for later"
        assert store[b"b0"] == VALUE
        assert store[b"a0"] == b"x" * 30


@pytest.mark.parametrize("again", [False, True], ids=["running", "reopened"])
@pytest.mark.spec("ENG-73", "ENG-41")
def test_a_segment_as_dead_as_the_store_is_taken(data_dir: str, again: bool) -> None:
    """The second segment's dead fraction equals the store's, 53 / 212 = 265 / 1,060: not
    below it, so a compaction bounded to the first two takes both. One byte fewer counted dead
    in it would leave it."""
    store = catlog.open(data_dir, fsync="never", segment_size=SEGMENT)
    for i in range(4):
        store.put(b"a%d" % i, VALUE)
    for i in range(4):
        store.put(b"b%d" % i, VALUE)
    for i in range(4):
        store.put(b"a%d" % i, b"x" * 30)  # the third segment: the first is all dead
    store.put(b"b0", b"x" * 30)  # the fourth: 53 of the second's 212 bytes dead
    store.put(b"z", b"z" * 269)  # a segment of its own: 1,060 bytes on disk in all
    store = reopened(store, data_dir, again)
    with store:
        store.flush()  # stats() counts the bytes handed to the OS
        stats = store.stats()
        assert (stats.segments, stats.dead_bytes, stats.disk_bytes) == (5, 265, 1_060)
        report = store.compact(max_bytes=2 * SEGMENT)
        assert report.segments_removed == 2, "the second segment is as dead as the store"
        assert store[b"b1"] == VALUE
        assert store[b"b0"] == b"x" * 30


@pytest.mark.spec("ENG-40", "ENG-68")
def test_closing_one_snapshot_leaves_removed_segments_open_for_another(data_dir: str) -> None:
    with catlog.open(data_dir, fsync="never", segment_size=SEGMENT) as store:
        for i in range(8):
            store.put(b"k%d" % i, VALUE)
        first, second = store.snapshot(), store.snapshot()
        for i in range(8):
            store.put(b"k%d" % i, b"x" * 30)
        assert store.compact().segments_removed >= 2
        first.close()
        assert [second[b"k%d" % i] for i in range(8)] == [VALUE] * 8
        second.close()
        assert [store[b"k%d" % i] for i in range(8)] == [b"x" * 30] * 8


@pytest.mark.spec("ENG-66", "ENG-65", "ENG-18")
def test_a_compaction_output_is_read_through_the_file_it_was_written_with(
    data_dir: str,
) -> None:
    """The output's file stays open from its writing, in the budget: reading it opens nothing,
    and closing the store closes it (no descriptor is left behind)."""
    fs = FaultyFileSystem()
    fds = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    with catlog.open(data_dir, fs=fs, fsync="never", segment_size=SEGMENT) as store:
        for i in range(12):
            store.put(b"k%d" % (i % 6), b"%030d" % i)
        assert store.compact().segments_written >= 1
        fs.trace.clear()
        assert [store[b"k%d" % i] for i in range(6)] == [b"%030d" % i for i in range(6, 12)]
        assert [op for op, _ in fs.trace if op == "open"] == []
    if fds is not None:
        assert len(os.listdir("/proc/self/fd")) == fds
