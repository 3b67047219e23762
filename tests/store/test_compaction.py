"""Compaction through the Store API: what it keeps, what it drops, and what goes on meanwhile.

Cites spec/engine.md section 8 (ENG-39 .. ENG-41), FMT-25 and REC-18. What a crash during a
compaction does is checked in tests/crash (the crash-point workloads compact too).
"""

from __future__ import annotations

import errno
import gc
import logging
import os
import threading
import time
import weakref
from collections.abc import Iterator

import pytest
from crc32c import crc32c

import catlog
import catlog.compaction
import catlog.fs
import catlog.testing
from catlog import codec
from catlog.clock import ManualClock
from catlog.codec import RecordType
from catlog.reading import read_value
from catlog.segment import Segment, parse_segment_name
from catlog.simfs import SimFileSystem
from tests.crash.faulty_fs import FaultyFileSystem
from tests.failing_store import CLOSED_FAILED, failing
from tests.store.segments import records

START_MS = 1_700_000_000_000


def segments(directory: str) -> list[int]:
    return sorted(n for n in map(parse_segment_name, os.listdir(directory)) if n is not None)


def disk_bytes(directory: str) -> int:
    return sum(
        os.path.getsize(f"{directory}/{name}")
        for name in os.listdir(directory)
        if parse_segment_name(name) is not None
    )


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(now_ms=START_MS)


@pytest.fixture(params=["always", "never"])
def store(
    data_dir: str, clock: ManualClock, request: pytest.FixtureRequest
) -> Iterator[catlog.Store]:
    with catlog.open(data_dir, fsync=request.param, segment_size=4096, clock=clock) as opened:
        yield opened


@pytest.mark.spec("ENG-39", "ENG-40")
def test_compaction_keeps_every_value_and_reclaims_the_overwritten_ones(
    store: catlog.Store, data_dir: str
) -> None:
    for round_ in range(10):
        for i in range(100):
            store.put(b"key%03d" % i, b"value %d of %d" % (round_, i))
    expected = dict(store.items())
    before = segments(data_dir)
    report = store.compact()
    assert dict(store.items()) == expected
    after = segments(data_dir)
    assert not set(before) & set(after), "every input is gone"
    assert report.segments_removed == len(before)
    assert report.segments_written == len(after) - 1, "the outputs, and the new active segment"
    assert report.records_copied == 100
    assert report.input_bytes > 9 * report.output_bytes
    assert report.reclaimed_bytes == report.input_bytes - report.output_bytes
    live = sum(21 + len(k) + len(v) for k, v in expected.items())
    assert disk_bytes(data_dir) <= 1.10 * live + 16 * len(after)
    store.close()
    with catlog.open(data_dir) as reopened:
        assert dict(reopened.items()) == expected


@pytest.mark.spec("ENG-39")
def test_outputs_are_numbered_between_the_inputs_and_the_new_active_segment(
    store: catlog.Store, data_dir: str
) -> None:
    for i in range(300):
        store.put(b"k%d" % (i % 50), bytes(40))
    store.flush()
    inputs = segments(data_dir)
    total = disk_bytes(data_dir)
    store.compact()
    gap = 2 * -(-total // 4096) + 1
    *outputs, active = segments(data_dir)
    assert active == inputs[-1] + gap + 1
    assert outputs == list(range(inputs[-1] + 1, inputs[-1] + 1 + len(outputs)))
    assert store.stats().active_segment == f"segment-{active:05d}.log"


@pytest.mark.spec("ENG-39", "ENG-34")
def test_tombstones_expired_values_and_batch_frames_are_not_copied(
    store: catlog.Store, data_dir: str, clock: ManualClock
) -> None:
    store.put(b"deleted", b"x")
    store.delete(b"deleted")
    store.put(b"short", b"x", ttl=1)
    store.put(b"long", b"y", ttl=100)
    store.write_batch([("put", b"b1", b"1"), ("put", b"b2", b"2", 50.0), ("delete", b"none")])
    clock.advance(2)
    store.compact()
    *outputs, _ = segments(data_dir)
    copied = [r for number in outputs for r in records(data_dir, number)]
    assert sorted((r.type, r.key, r.value, r.expires_at_ms) for r in copied) == [
        (RecordType.PUT, b"b1", b"1", 0),
        (RecordType.PUT_EXPIRING, b"b2", b"2", START_MS + 50_000),
        (RecordType.PUT_EXPIRING, b"long", b"y", START_MS + 100_000),
    ]
    assert not any(r.in_batch for r in copied), "members are copied as records of their own"
    assert dict(store.items()) == {b"long": b"y", b"b1": b"1", b"b2": b"2"}
    assert store.expires_at(b"b2") == START_MS + 50_000


@pytest.mark.spec("ENG-39", "ENG-21")
def test_reads_and_writes_go_on_while_a_compaction_runs(data_dir: str) -> None:
    with catlog.open(data_dir, fsync="never", segment_size=8192) as store:
        for i in range(3000):
            store.put(b"k%d" % (i % 300), b"v%d" % i)
        model = dict(store.items())
        stop = threading.Event()
        problems: list[str] = []

        def write() -> None:
            i = 0
            while not stop.is_set() or i < 2000:
                key = b"k%d" % (i % 300)
                value = b"w%d" % i
                store.put(key, value)
                model[key] = value
                if store.get(key) != value:
                    problems.append(f"{key!r} read back wrong")
                i += 1

        def read() -> None:
            while not stop.is_set():
                for i in range(0, 300, 7):
                    if store.get(b"k%d" % i) is None:
                        problems.append(f"k{i} vanished")

        threads = [threading.Thread(target=write), threading.Thread(target=read)]
        for thread in threads:
            thread.start()
        try:
            for _ in range(3):
                store.compact()
        finally:
            stop.set()
            for thread in threads:
                thread.join()
        assert not problems, problems[:5]
        assert dict(store.items()) == model
    with catlog.open(data_dir) as reopened:
        assert dict(reopened.items()) == model


class WatchedFile(catlog.fs.OsFile):
    """An :class:`OsFile` that can be weakly referenced, so a test sees when the store lets go of
    it: closing is dropping (catlog/filecache.py), the descriptor goes with the last reference."""


class HandleWatcher(catlog.OsFileSystem):
    """The real file system, recording every file the store opens and every name it removes."""

    def __init__(self) -> None:
        self.opened: list[tuple[str, weakref.ref[WatchedFile]]] = []
        self.removed: set[str] = set()

    def open(self, path: str, *, writable: bool = False, create: bool = False) -> catlog.File:
        flags = os.O_RDWR | os.O_APPEND if writable else os.O_RDONLY
        if create:
            flags |= os.O_CREAT
        file = WatchedFile(path, os.open(path, flags | os.O_CLOEXEC, 0o644), writable=writable)
        self.opened.append((path, weakref.ref(file)))
        return file

    def remove(self, path: str) -> None:
        self.removed.add(path)
        super().remove(path)

    def removed_but_open(self) -> set[str]:
        """The files removed by name that the store still holds: a compaction's inputs kept for
        a snapshot (ENG-40)."""
        gc.collect()
        return {path for path, file in self.opened if path in self.removed and file() is not None}


@pytest.mark.spec("ENG-40", "ENG-38")
@pytest.mark.parametrize("fsync", ["always", "never"])
def test_a_snapshot_reads_the_removed_inputs_until_it_is_closed(
    data_dir: str, clock: ManualClock, fsync: catlog.FsyncPolicy
) -> None:
    fs = HandleWatcher()
    with catlog.open(data_dir, fsync=fsync, segment_size=4096, clock=clock, fs=fs) as store:
        for i in range(200):
            store.put(b"k%d" % (i % 20), b"v%d" % i)
        snapshot = store.snapshot()
        expected = dict(snapshot.items())
        store.put(b"k0", b"changed")
        store.compact()
        assert dict(snapshot.items()) == expected
        assert store[b"k0"] == b"changed"
        assert fs.removed_but_open(), "the inputs are kept open for the snapshot"
        snapshot.close()
        assert not fs.removed_but_open()


@pytest.mark.spec("ENG-39", "ENG-30", "ENG-32")
@pytest.mark.parametrize("hints", [True, False])
def test_outputs_get_hints_and_open_through_them(data_dir: str, hints: bool) -> None:
    with catlog.open(data_dir, hints=hints, segment_size=2048) as store:
        for i in range(400):
            store.put(b"k%d" % (i % 60), b"value %d" % i, ttl=1000 if i % 3 else None)
        expected = dict(store.items())
        store.compact()
        *outputs, _ = segments(data_dir)
    names = set(os.listdir(data_dir))
    assert {f"segment-{n:05d}.hint" for n in outputs} <= names
    assert not any(name.endswith((".tmp", ".compacting")) for name in names)
    with catlog.open(data_dir) as reopened:
        assert dict(reopened.items()) == expected


@pytest.mark.spec("REC-18", "FMT-25")
def test_open_removes_the_outputs_of_an_interrupted_compaction(
    data_dir: str, caplog: pytest.LogCaptureFixture
) -> None:
    with catlog.open(data_dir) as store:
        store.put(b"k", b"v")
    leftover = f"{data_dir}/segment-00002.log.compacting"
    other = f"{data_dir}/notes.compacting"
    for path in (leftover, other):
        with open(path, "wb") as file:
            file.write(codec.encode_segment_header() + codec.encode_record(1, 0, b"k", b"old"))
    with caplog.at_level(logging.WARNING, logger="catlog"), catlog.open(data_dir) as store:
        assert store[b"k"] == b"v"
    assert not os.path.exists(leftover)
    assert os.path.exists(other), "only names of compaction outputs are removed"
    assert [r.getMessage() for r in caplog.records] == [
        f"{data_dir}: removing segment-00002.log.compacting, left by an interrupted compaction"
    ]


@pytest.mark.spec("ENG-41")
def test_compaction_starts_by_itself_when_dead_bytes_cross_the_threshold(data_dir: str) -> None:
    with catlog.open(data_dir, fsync="never", segment_size=1024, compact_threshold=0.5) as store:
        for i in range(2000):
            store.put(b"k%d" % (i % 10), bytes(50))
            stats = store.stats()
            # Running, or ran: a compaction of inputs that hold no live record copies nothing,
            # and one may end before stats() (a writer waits for it, ENG-98), but the oldest
            # segment is gone either way.
            if stats.compacting or stats.compaction_bytes or 1 not in segments(data_dir):
                assert store.wait_for_compaction(timeout=30)
                break
        else:
            pytest.fail("no compaction started")
        assert store.stats().dead_bytes < 4 * 1024
        assert len(store) == 10
        assert len(segments(data_dir)) < 10


@pytest.mark.spec("ENG-41")
def test_dead_bytes_are_estimated_from_overwrites_deletes_and_expiry(
    data_dir: str, clock: ManualClock
) -> None:
    with catlog.open(data_dir, fsync="never", clock=clock) as store:
        assert store.stats().dead_bytes == 0
        store.put(b"k", b"12345")
        store.put(b"k", b"1")
        assert store.stats().dead_bytes == 21 + 1 + 5
        store.delete(b"k")
        assert store.stats().dead_bytes == 27 + (21 + 1 + 1) + (21 + 1)
        store.put(b"t", b"u", ttl=1)
        store.put(b"t", b"v", ttl=1)
        assert store.stats().dead_bytes == 72 + 21 + 1 + 9, "an expiring put overwritten"
        clock.advance(2)
        assert len(store) == 0
        assert store.stats().dead_bytes == 72 + 21 + 1 + 9, "expired, not forgotten yet"
        assert store.purge_expired() == 1
        assert store.stats().dead_bytes == 72 + 2 * (21 + 1 + 9)
        store.write_batch([("put", b"b", b"1"), ("put", b"c", b"1")])
        assert store.stats().dead_bytes == 134 + 21, "the batch's frame"
        store.write_batch([("put", b"b", b"2"), ("put", b"c", b"22")])
        assert store.stats().dead_bytes == 155 + 21 + 2 * (21 + 1 + 1)
    with catlog.open(data_dir, compact_threshold=0.9, clock=clock) as store:
        live = (21 + 1 + 1) + (21 + 1 + 2)
        size = os.path.getsize(f"{data_dir}/segment-00001.log")
        assert store.stats().dead_bytes == size - 16 - live


@pytest.mark.spec("ENG-41")
def test_the_estimate_at_open_leaves_out_every_segment_s_header(data_dir: str) -> None:
    """Six segments of one live record each: no byte of them is dead."""
    with catlog.open(data_dir, segment_size=100) as store:
        for i in range(6):
            store.put(b"k%d" % i, b"v" * 40)
    with catlog.open(data_dir, compact_threshold=0.9) as store:
        stats = store.stats()
        assert (stats.segments, stats.keys, stats.dead_bytes) == (6, 6, 0)


LARGE = bytes(100 * 1024)
"""A value past what a location can hold (65,535 bytes): ENG-41 reads its length from its
header."""


@pytest.mark.spec("ENG-41", "ENG-73")
@pytest.mark.parametrize("oldest", ["plain", "packed", "one live"])
def test_a_compaction_takes_away_large_dead_values_as_the_writes_counted_them(
    data_dir: str, oldest: str
) -> None:
    """The oldest segment holds dead 100 KiB values (each added to the estimate at its size on
    disk, read from its header), a newer one a dead small record; a compaction of the oldest
    alone takes away what the writes added for it, no more, and leaves the small one counted.
    "packed": the oldest is a compaction's output, its large value in the long form (FMT-27,
    a 13-byte header); "one live": it also holds a live large value, which is copied."""
    small = 21 + 1 + 10
    with catlog.open(data_dir, fsync="never", segment_size=256 * 1024) as store:
        store.put(b"big", LARGE)
        if oldest == "packed":
            store.compact()
        else:
            store.put(b"big" if oldest == "plain" else b"live", LARGE)
        store.put(b"big", LARGE)  # two records in the oldest segment rotate it; one in an output
        store.put(b"s", b"x" * 10)
        store.put(b"s", b"y" * 10)
        first = segments(data_dir)[0]
        header = 13 if oldest == "packed" else 21
        dead = (2 if oldest == "plain" else 1) * (header + 3 + len(LARGE))
        assert store.stats().dead_bytes == dead + small
        bound = os.path.getsize(f"{data_dir}/segment-{first:05d}.log")
        report = store.compact(max_bytes=bound)
        assert (report.segments_removed, report.records_copied) == (1, int(oldest == "one live"))
        assert first not in segments(data_dir)
        assert store.stats().dead_bytes == small, "ENG-41: the input's records as counted"
        assert store[b"big"] == LARGE


@pytest.mark.spec("ENG-25", "ENG-40", "ENG-19")
def test_bad_thresholds_and_closed_stores_are_refused(data_dir: str) -> None:
    for bad in (0, 1, -0.5, 2):
        with pytest.raises(
            ValueError, match=r"^compact_threshold must be between 0 and 1 \(exclusive\), or None$"
        ):
            catlog.open(data_dir, compact_threshold=bad)
    store = catlog.open(data_dir)
    store.close()
    with pytest.raises(catlog.StoreClosedError):
        store.compact()


@pytest.mark.spec("ENG-39")
def test_no_input_is_removed_while_a_live_key_still_points_into_it(
    data_dir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check before step 3: a copy that missed a live record stops the compaction."""
    with catlog.open(data_dir, segment_size=1024) as store:
        for i in range(100):
            store.put(b"k%d" % (i % 30), b"v%d" % i)
        expected = dict(store.items())
        before = segments(data_dir)
        monkeypatch.setattr(catlog.compaction, "copy_live", lambda *_: 0)
        with pytest.raises(catlog.CorruptionError, match="did not copy the live record"):
            store.compact()
        assert set(before) <= set(segments(data_dir)), "no input was removed"
        assert dict(store.items()) == expected
    with catlog.open(data_dir) as reopened:
        assert dict(reopened.items()) == expected


@pytest.mark.spec("ENG-40", "REC-10", "REC-18")
@pytest.mark.parametrize(
    ("operation", "nth", "what"),
    [
        ("append", 1, "creating a segment"),
        ("sync", 2, "creating a segment"),
        ("remove", 1, "removing segment-00001.log after compaction"),
        ("remove", 2, "removing segment-00002.log after compaction"),
        ("sync_dir", 3, "removing segment-00001.log after compaction"),
    ],
)
def test_a_failing_call_on_the_store_during_compaction_fails_it_and_loses_nothing(
    operation: str, nth: int, what: str
) -> None:
    fs = SimFileSystem()
    with failing(catlog.open("/db", fs=fs, segment_size=256)) as store:
        for i in range(60):
            store.put(b"k%d" % (i % 12), b"value %d" % i)
        expected = dict(store.items())
        fs.fail(operation, nth=nth)  # type: ignore[arg-type]
        with pytest.raises(catlog.StoreFailedError) as caught:
            store.compact()
        assert isinstance(caught.value.__cause__, OSError)
        message = str(caught.value)
        assert f": {what} failed ({caught.value.__cause__}); writes are refused" in message
        with pytest.raises(catlog.StoreFailedError):
            store.put(b"later", b"refused")
        assert dict(store.items()) == expected, "readers still see every value"
        fs.heal()
    with catlog.open("/db", fs=fs, segment_size=256) as store:
        assert dict(store.items()) == expected
        store.compact()
        assert dict(store.items()) == expected
    assert not any(name.endswith(".compacting") for name in fs.listdir("/db"))


@pytest.mark.spec("ENG-57", "ENG-40", "ENG-41", "REC-18")
@pytest.mark.parametrize(
    ("operation", "nth", "what"),
    [
        ("append", 3, "writing a compaction output failed"),
        ("append", 4, "finishing a compaction output failed"),  # its hint
        ("sync", 3, "fsyncing a compaction output failed"),
        ("sync_dir", 2, "fsyncing the directory of a compaction output failed"),
        ("rename", 1, "finishing a compaction output failed"),
        ("rename", 2, "finishing a compaction output failed"),
        ("open", 2, "creating a compaction output failed"),
        ("open", 5, "finishing a compaction output failed"),  # once renamed into place
    ],
)
def test_a_failing_call_on_an_output_fails_the_compaction_not_the_store(
    operation: str, nth: int, what: str
) -> None:
    """Issue 17: a disk filling during compact() made the store refuse every write until it was
    reopened; only the compaction failed. Now the output is removed and writes go on."""
    fs = SimFileSystem()
    clock = catlog.ManualClock()
    with catlog.open("/db", fs=fs, segment_size=256, clock=clock) as store:
        assert store.stats().compaction_error is None, "none has run"
        for i in range(60):
            store.put(b"k%d" % (i % 12), b"value %d" % i)
        expected = dict(store.items())
        fs.fail(operation, nth=nth, error=errno.ENOSPC)  # type: ignore[arg-type]
        with pytest.raises(catlog.CompactionError) as caught:
            store.compact()
        assert what in str(caught.value)
        assert os.strerror(errno.ENOSPC) in str(caught.value), "ENG-57: names the failure"
        assert caught.value.path.startswith("/db/segment-")
        assert store.failure is None, "the store did not fail"
        assert store.stats().compaction_error == str(caught.value)
        assert not any(name.endswith(".compacting") for name in fs.listdir("/db"))
        store.put(b"later", b"accepted")
        expected[b"later"] = b"accepted"
        assert dict(store.items()) == expected
        store._check_invariants()
        fs.heal()
        store.compact()
        assert store.stats().compaction_error is None
        assert dict(store.items()) == expected
    with catlog.open("/db", fs=fs, segment_size=256) as store:
        assert dict(store.items()) == expected
    assert not any(name.endswith(".compacting") for name in fs.listdir("/db"))


@pytest.mark.spec("ENG-57", "REC-18")
def test_an_output_that_cannot_be_removed_still_fails_only_the_compaction() -> None:
    """Removing a failed output is best effort: when removing it fails too, the compaction
    still raises its own error (the fsync's, not the cleanup's) and the store goes on. The
    leftover is replaced by the next compaction that writes an output of that number (a
    bounded one, in the numbers the failed one left free), or removed by the next open."""
    fs = SimFileSystem()
    with catlog.open("/db", fs=fs, segment_size=256, clock=catlog.ManualClock()) as store:
        for i in range(6):
            store.put(b"cold%d" % i, b"c" * 20)  # live records in the oldest segments
        for i in range(54):
            store.put(b"k%d" % (i % 6), b"value %d" % i)
        expected = dict(store.items())
        fs.fail("sync", nth=3, error=errno.ENOSPC)
        fs.fail("remove", persistent=True)
        with pytest.raises(catlog.CompactionError) as caught:
            store.compact()
        fs.heal()
        assert "fsyncing a compaction output failed" in str(caught.value)
        assert store.failure is None, "the store did not fail"
        leftover = os.path.basename(caught.value.path) + ".compacting"
        assert leftover in fs.listdir("/db"), "the output could not be removed"
        store.put(b"later", b"accepted")
        expected[b"later"] = b"accepted"
        assert dict(store.items()) == expected
        report = store.compact(max_bytes=600)
        assert report.records_copied == 6, "the cold keys"
        assert leftover not in fs.listdir("/db"), "its number was written again"
        assert leftover.removesuffix(".compacting") in fs.listdir("/db")
        assert dict(store.items()) == expected
    with catlog.open("/db", fs=fs, segment_size=256) as store:
        assert dict(store.items()) == expected
    assert not any(name.endswith(".compacting") for name in fs.listdir("/db"))


class OutputCloseFails(catlog.fs.OsFile):
    """Closing reports EIO, as close(2) may on a network file system; the file is closed all
    the same, as Linux releases the descriptor whatever close returns."""

    def close(self) -> None:
        super().close()
        raise OSError(errno.EIO, os.strerror(errno.EIO))


class OutputsCloseFailing(catlog.OsFileSystem):
    """The real file system, on which every close of a compaction output fails."""

    def open(self, path: str, *, writable: bool = False, create: bool = False) -> catlog.File:
        if not path.endswith(".compacting"):
            return super().open(path, writable=writable, create=create)
        flags = (os.O_RDWR | os.O_APPEND if writable else os.O_RDONLY) | os.O_CLOEXEC
        fd = os.open(path, flags | os.O_CREAT if create else flags, 0o644)
        return OutputCloseFails(path, fd, writable=writable)


@pytest.mark.spec("ENG-57")
def test_an_output_whose_close_fails_fails_only_the_compaction(
    data_dir: str, clock: ManualClock
) -> None:
    """Finishing the output closes it, which fails; removing it closes it again, which fails
    again, and that second failure must not replace the compaction's own error."""
    fs = OutputsCloseFailing()
    with catlog.open(data_dir, fs=fs, segment_size=256, clock=clock) as store:
        for i in range(60):
            store.put(b"k%d" % (i % 12), b"value %d" % i)
        expected = dict(store.items())
        with pytest.raises(catlog.CompactionError) as caught:
            store.compact()
        assert "finishing a compaction output failed" in str(caught.value)
        assert os.strerror(errno.EIO) in str(caught.value)
        assert store.failure is None, "the store did not fail"
        assert not any(name.endswith(".compacting") for name in os.listdir(data_dir))
        store.put(b"later", b"accepted")
        expected[b"later"] = b"accepted"
        assert dict(store.items()) == expected
    with catlog.open(data_dir) as reopened:
        assert dict(reopened.items()) == expected


@pytest.mark.spec("ENG-57", "ENG-41")
def test_the_records_installed_outputs_took_over_are_dead_when_a_later_output_fails(
    data_dir: str,
) -> None:
    """Two outputs are installed (the index moves to them), then the third one's fsync fails:
    no input is removed, so the inputs' copies of the records those outputs hold are dead now,
    and ENG-41's estimate grows by exactly their counted sizes, no more."""
    fs = FaultyFileSystem()
    with catlog.open(data_dir, fs=fs, segment_size=256, fsync="never") as store:
        store.put(b"k00", b"old")  # dead before the compaction: the estimate grows from it
        for i in range(24):
            store.put(b"k%02d" % i, b"v" * 30)  # live: 21 + 3 + 30 bytes each, counted
        before = set(os.listdir(data_dir))
        dead = store.stats().dead_bytes
        assert dead == 21 + 3 + 3
        fs.fail("sync", nth=3, path=r"\.compacting$")
        with pytest.raises(catlog.CompactionError, match="fsyncing a compaction output failed"):
            store.compact()
        active = store.stats().active_segment
        new = set(os.listdir(data_dir)) - before - {active}
        installed = sorted(name for name in new if name.endswith(".log"))
        assert len(installed) == 2
        moved = [
            record
            for name in installed
            for record in records(data_dir, parse_segment_name(name) or 0)
        ]
        assert len(moved) < 24, "the failed output held the rest"
        counted = sum(21 + len(record.key) + len(record.value) for record in moved)
        assert store.stats().dead_bytes == dead + counted
        assert {record.key for record in moved} <= set(store)


def background_compactions(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What each background compaction that ended logged (ENG-42): it compacted, or it failed."""
    return [
        message
        for message in map(logging.LogRecord.getMessage, caplog.records)
        if " compacted " in message or message.endswith(" background compaction failed")
    ]


@pytest.mark.spec("ENG-57", "ENG-41", "ENG-42", "ENG-83")
def test_after_a_failed_compaction_the_next_background_one_waits_out_a_backoff(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fs = SimFileSystem()
    clock = catlog.ManualClock()
    with (
        caplog.at_level(logging.INFO, logger="catlog"),
        catlog.open(
            "/db", fs=fs, segment_size=256, clock=clock, compact_threshold=0.1, fsync="never"
        ) as store,
    ):
        store.put(b"cold", b"a live record in the oldest segment: an output to rename")
        fs.fail("rename", persistent=True, error=errno.ENOSPC)
        for i in range(400):
            store.put(b"k%d" % (i % 5), b"value %d" % i)  # dead bytes pile up: compactions due
            assert store.wait_for_compaction(timeout=30)
        assert store.stats().compaction_error is not None
        started = background_compactions(caplog)
        assert started, "one started, and failed"
        for i in range(100):
            store.put(b"k%d" % (i % 5), b"again %d" % i)
            assert store.wait_for_compaction(timeout=30)
        assert background_compactions(caplog) == started, "none started within the backoff"
        fs.heal()
        clock.advance(1.5)
        for i in range(100):
            store.put(b"k%d" % (i % 5), b"after %d" % i)
            assert store.wait_for_compaction(timeout=30)
            if background_compactions(caplog) != started:
                break
        restarted = background_compactions(caplog)[len(started) :]
        assert len(restarted) == 1, "one started once the backoff passed"
        assert restarted[0].startswith("/db: compacted ")
        assert store.stats().compaction_error is None
        assert store.failure is None


@pytest.mark.spec("ENG-40", "ENG-38")
@pytest.mark.parametrize("fsync", ["always", "never"])
def test_the_inputs_stay_open_until_the_last_snapshot_is_closed(
    data_dir: str, clock: ManualClock, fsync: catlog.FsyncPolicy
) -> None:
    fs = HandleWatcher()
    with catlog.open(data_dir, fsync=fsync, segment_size=4096, clock=clock, fs=fs) as store:
        for i in range(200):
            store.put(b"k%d" % (i % 20), b"v%d" % i)
        first = store.snapshot()
        second = store.snapshot()
        expected = dict(second.items())
        store.compact()
        first.close()
        assert fs.removed_but_open(), "the second snapshot still reads them"
        assert dict(second.items()) == expected
        second.close()
        assert not fs.removed_but_open()


def compactor_threads(data_dir: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"catlog-compact {data_dir}"]


@pytest.mark.spec("ENG-42", "ENG-26", "ENG-83")
def test_compact_in_background_starts_one_compaction_at_a_time(data_dir: str) -> None:
    """A compactor thread that has started but not yet taken the compaction lock counts too."""
    with catlog.open(data_dir, fsync="never") as store:
        store.put(b"k", b"v")
        store.put(b"k", b"w")
        with catlog.testing.parked_background_compactions(store):
            assert store.stats().compacting is False
            assert store.compact_in_background() is True
            [compactor] = compactor_threads(data_dir)
            assert compactor.daemon
            assert store.stats().compacting is True
            assert store.wait_for_compaction(timeout=0.01) is False
            assert store.compact_in_background() is False
            assert compactor_threads(data_dir) == [compactor], "nothing else was started"
        assert store.wait_for_compaction() is True
        assert not compactor.is_alive()
        assert store.stats().compacting is False
        assert store.stats().dead_bytes == 0, "the parked compaction ran once let go"
        assert store.compact_in_background() is True
        assert store.wait_for_compaction() is True
        assert compactor_threads(data_dir) == []
    with pytest.raises(catlog.StoreClosedError, match=f"^{data_dir} is closed$"):
        store.compact_in_background()


@pytest.mark.spec("ENG-83")
def test_wait_for_compaction_waits_for_a_compact_call_in_another_thread(data_dir: str) -> None:
    with catlog.open(data_dir, fsync="never") as store:
        assert store.wait_for_compaction(timeout=0) is True, "none runs: at once"
        store.put(b"k", b"v")
        store.put(b"k", b"w")
        copying, release = threading.Event(), threading.Event()
        reports: list[catlog.compaction.CompactionReport] = []

        def held(_done: int, _total: int) -> None:
            copying.set()
            release.wait(timeout=30)

        foreground = threading.Thread(target=lambda: reports.append(store.compact(held)))
        foreground.start()
        try:
            assert copying.wait(timeout=30)
            assert store.wait_for_compaction(timeout=0.01) is False
            assert not reports
        finally:
            release.set()
        assert store.wait_for_compaction(timeout=30) is True
        assert not store.stats().compacting
        foreground.join(timeout=30)
        assert len(reports) == 1


@pytest.mark.spec("ENG-42", "REC-10", "ENG-46", "ENG-57")
def test_a_background_compaction_logs_what_it_did_or_why_it_failed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fs = SimFileSystem()
    with (
        caplog.at_level(logging.INFO, logger="catlog"),
        catlog.open("/db", fs=fs, segment_size=256) as store,
    ):
        for i in range(60):
            store.put(b"k%d" % (i % 12), b"value %d" % i)
        inputs = store.stats().segments
        assert store.compact_in_background()
        assert store.wait_for_compaction()
        done = [r for r in caplog.records if "compacted" in r.getMessage()]
        assert len(done) == 1
        message = done[0].getMessage()
        outputs = store.stats().segments - 1
        assert message.startswith(f"/db: compacted {inputs} segments into {outputs}, reclaiming ")
        assert message.endswith(" bytes in 0.0 s"), "the ManualClock does not move"
        reclaimed = int(message.split("reclaiming ")[1].split()[0])
        assert reclaimed > 1000
        store.put(b"more", b"x")
        fs.fail("rename", nth=1)  # an output's: the compaction fails, the store goes on (ENG-57)
        assert store.compact_in_background()
        assert store.wait_for_compaction()
        failed = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert [r.getMessage() for r in failed] == ["/db: background compaction failed"]
        assert failed[0].exc_info is not None
        assert isinstance(failed[0].exc_info[1], catlog.CompactionError)
        assert store.failure is None
        store.put(b"still", b"writable")
        fs.fail("remove", nth=1)  # an input's removal: that fails the store (REC-10)
        assert store.compact_in_background()
        assert store.wait_for_compaction()
        last = [r for r in caplog.records if r.levelno == logging.ERROR][-1]
        assert last.exc_info is not None
        assert isinstance(last.exc_info[1], catlog.StoreFailedError)
        fs.heal()
        with pytest.raises(catlog.StoreFailedError, match=CLOSED_FAILED):
            store.close()  # ENG-46: the background failure is not hidden at close


@pytest.mark.spec("ENG-39", "ENG-22", "REC-3")
@pytest.mark.parametrize("ttl", [None, 100.0])
def test_compaction_stops_at_a_record_damaged_since_open_and_says_where(
    data_dir: str, ttl: float | None
) -> None:
    with catlog.open(data_dir) as store:
        for key in (b"a", b"b", b"c"):
            store.put(key, b"value", ttl=ttl)
        path = f"{data_dir}/segment-00001.log"
        rtype = RecordType.PUT if ttl is None else RecordType.PUT_EXPIRING
        second = 16 + len(codec.encode_record(rtype, 0, b"a", b"value", 1))
        with open(path, "r+b") as file:
            file.seek(second + 25)  # in the value, or in the expiry: flipped, never set
            byte = file.read(1)[0]
            file.seek(second + 25)
            file.write(bytes([byte ^ 0xFF]))
        with pytest.raises(catlog.CorruptionError) as caught:
            store.compact()
        assert (caught.value.path, caught.value.offset) == (path, second)
        assert caught.value.reason == "crc mismatch"
        assert 1 in segments(data_dir), "no input was removed"
        assert store[b"a"] == b"value"


@pytest.mark.spec("ENG-39", "ENG-37", "ENG-34")
def test_a_live_member_after_a_dead_one_is_copied(data_dir: str, clock: ManualClock) -> None:
    """Each member of a batch is judged alone: one that is a DELETE, overwritten, or expired
    while the compaction ran does not stop the members after it from being copied."""
    with catlog.open(data_dir, clock=clock, segment_size=1024) as store:
        while store.stats().segments < 2:
            store.put(b"filler", bytes(100))
        store.write_batch(
            [
                ("delete", b"gone"),
                ("put", b"overwritten", b"old"),
                ("put", b"expiring", b"e", 1.0),
                ("put", b"kept", b"k"),
            ]
        )
        store.put(b"overwritten", b"new")
        # the batch is in the second input; the clock passes its expiry once the first is read
        store.compact(progress=lambda done, total: clock.advance(2))
        *outputs, _ = segments(data_dir)
        copied = {r.key for number in outputs for r in records(data_dir, number)}
        assert copied == {b"overwritten", b"kept", b"filler"}
        assert dict(store.items()) == {b"overwritten": b"new", b"kept": b"k", b"filler": bytes(100)}


@pytest.mark.spec("ENG-41")
@pytest.mark.parametrize("hints", [False, True], ids=["replayed", "hinted"])
def test_open_counts_the_dead_bytes_exactly_around_the_live_records(
    data_dir: str, clock: ManualClock, hints: bool
) -> None:
    """A live value of 65,535 bytes or more is not dead in part, and a dead one counts whole:
    open knows each live record's size on disk, whatever the index records of it."""
    with catlog.open(data_dir, fsync="never", clock=clock, segment_size=4096, hints=hints) as s:
        s.put(b"k", b"12345")
        s.put(b"k", b"1")
        s.put(b"large", bytes(70_000))
        s.put(b"big", bytes(80_000))
        s.put(b"big", b"small")
        s.put(b"j", b"abc", ttl=100)
    with catlog.open(data_dir, compact_threshold=0.9, clock=clock, hints=hints) as store:
        assert store.stats().dead_bytes == (21 + 1 + 5) + (21 + 3 + 80_000)


@pytest.mark.spec("ENG-41", "FMT-27")
def test_open_counts_the_dead_records_of_a_packed_segment_at_their_size(data_dir: str) -> None:
    """A packed record takes 8 header bytes, not 21: counting the live ones with 21 would hide
    13 dead bytes for each of them."""
    keys = [b"key-%03d" % i for i in range(100)]
    with catlog.open(data_dir, fsync="never") as store:
        store.put_many_nowait((key, bytes(20)) for key in keys)
        store.compact()
        store.put_many_nowait((key, b"new") for key in keys[:30])
    with catlog.open(data_dir, compact_threshold=0.9) as store:
        assert store.stats().dead_bytes == 30 * (8 + 7 + 20)


@pytest.mark.spec("ENG-41", "ENG-73")
def test_large_values_live_at_open_are_not_compacted_again_and_again(data_dir: str) -> None:
    """Found from outside: a store of live values over 64 KiB counted most of their bytes as
    dead at every open, so each rotation compacted live data that no write had touched."""
    with catlog.open(data_dir, fsync="never", segment_size=1 << 20) as store:
        for i in range(40):
            store.put(b"big%d" % i, bytes(200_000))
    with catlog.open(data_dir, fsync="never", segment_size=1 << 20, compact_threshold=0.5) as store:
        assert store.stats().dead_bytes == 0
        for i in range(100):
            store.put(b"small%d" % i, bytes(20_000))  # five rotations
            store.wait_for_compaction()
        assert store.stats().compaction_bytes == 0


@pytest.mark.spec("ENG-41", "ENG-73")
def test_compaction_takes_away_what_open_counted_dead_in_its_inputs(data_dir: str) -> None:
    """Dead large values counted whole at open are taken away whole when their segments go:
    an estimate that kept their bytes beyond 65,535 would stay high after the compaction
    and start another, and another."""
    with catlog.open(data_dir, fsync="never", segment_size=1 << 20) as store:
        for i in range(40):
            store.put(b"big%d" % i, bytes(200_000))
        for i in range(40):
            store.put(b"big%d" % i, b"small")
    with catlog.open(data_dir, fsync="never", segment_size=1 << 20, compact_threshold=0.5) as s:
        assert s.stats().dead_bytes >= 40 * 200_000
        s.compact()
        s._check_invariants()
        assert s.stats().dead_bytes == 0


def _with_valid_crc(rtype: int, key: bytes, value: bytes) -> bytes:
    body = codec.BODY_HEADER.pack(rtype, 0, len(key), len(value)) + key + value
    return codec.CRC_FIELD.pack(crc32c(body)) + body


@pytest.mark.spec("ENG-39", "ENG-22", "REC-7", "FMT-7", "FMT-8")
@pytest.mark.parametrize(
    ("written", "reason"),
    [
        (_with_valid_crc(9, b"kv", b""), "unknown record type: type=9"),
        (_with_valid_crc(RecordType.DELETE, b"k", b"v"), "delete record with a value: value_len=1"),
    ],
)
def test_compaction_stops_at_a_record_written_whole_since_open_that_breaks_the_format(
    data_dir: str, written: bytes, reason: str
) -> None:
    """Written over the PUT of k (23 bytes, crc valid); replay would have refused it at open."""
    path = f"{data_dir}/segment-00001.log"
    with catlog.open(data_dir) as store:
        store.put(b"a", b"1")
        store.put(b"k", b"v")
        offset = 16 + 23
        with open(path, "r+b") as file:
            file.seek(offset)
            file.write(written)
        with pytest.raises(catlog.CorruptionError) as caught:
            store.compact()
        assert (caught.value.path, caught.value.offset, caught.value.reason) == (
            path,
            offset,
            reason,
        )
        assert store[b"a"] == b"1"


@pytest.mark.spec("ENG-39", "ENG-34", "ENG-26", "ENG-41")
def test_a_key_that_expires_while_compaction_copies_it_is_forgotten_at_install(
    data_dir: str, clock: ManualClock
) -> None:
    """The overwrite of q during the compaction is dead already when t's copy is forgotten:
    forgetting t adds its 31 bytes to the 23 of q's first record."""

    def progress(done: int, total: int) -> None:
        clock.advance(2)
        opened.put(b"q", b"1")
        opened.put(b"q", b"2")

    with catlog.open(data_dir, clock=clock) as opened:
        opened.put(b"t", b"v", ttl=1)
        opened.put(b"p", b"v")
        opened.compact(progress)
        stats = opened.stats()
        assert (stats.keys, stats.expiring_keys) == (2, 0)
        assert stats.dead_bytes == (21 + 1 + 1) + (21 + 1 + 9), "its copy in the output is dead"
        assert dict(opened.items()) == {b"p": b"v", b"q": b"2"}


@pytest.mark.spec("ENG-39", "ENG-34", "ENG-41")
def test_a_key_that_expires_while_copied_with_no_write_between_is_forgotten_at_install(
    data_dir: str, clock: ManualClock
) -> None:
    """As above, but no write comes between the copy and the install to forget the key first
    (ENG-61): the install itself must, or the key would stay indexed in the output and its
    copy, dead since it expired, would be missing from the estimate."""
    with catlog.open(data_dir, clock=clock) as opened:
        opened.put(b"t", b"v", ttl=1)
        opened.put(b"p", b"v")
        opened.compact(lambda done, total: clock.advance(2))
        stats = opened.stats()
        assert (stats.keys, stats.expiring_keys) == (1, 0)
        assert stats.dead_bytes == 21 + 1 + 1 + 8, "t's copy: header, key, value, expiry"
        assert dict(opened.items()) == {b"p": b"v"}


@pytest.mark.spec("ENG-39", "ENG-9")
def test_segments_sealed_while_an_output_is_open_keep_their_own_place(data_dir: str) -> None:
    """Writes go on during a compaction (ENG-39), here enough of them after each input to
    rotate the active segment while the output the inputs are copied to is still open: the new
    segments and the output each hold their own records. The progress calls count the input
    bytes read so far, input by input, up to the total."""
    calls: list[tuple[int, int]] = []

    def progress(done: int, total: int) -> None:
        calls.append((done, total))
        for _ in range(2):
            opened.put(b"new%d" % len(calls), b"%d" % len(calls) * 1500)

    with catlog.open(data_dir, fsync="never", segment_size=4096) as opened:
        for i in range(4):
            opened.put(b"k%d" % i, b"%d" % i * 1500)  # two records of 1,523 bytes a segment
        opened.compact(progress)
        expected = {b"k%d" % i: b"%d" % i * 1500 for i in range(4)}
        expected |= {b"new%d" % n: b"%d" % n * 1500 for n in range(1, len(calls) + 1)}
        assert dict(opened.items()) == expected
    size = 16 + 2 * (21 + 2 + 1500)
    assert calls == [(size, 2 * size), (2 * size, 2 * size)]
    with catlog.open(data_dir) as reopened:
        assert dict(reopened.items()) == expected


@pytest.mark.spec("ENG-39")
def test_the_copy_pauses_for_other_threads_without_changing_what_it_copies(
    data_dir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The copy loop looks at the clock every 32 records and sleeps once it has worked a
    millisecond since its last pause. Here any time counts as that millisecond, so it pauses at
    every look: 12 times in 400 records; then the check that no key points into an input looks
    every 32 keys of the index: 7 times for 200 keys, the first at the first key."""
    monkeypatch.setattr(catlog.compaction, "_WORK_BETWEEN_PAUSES", 0.0)
    with catlog.open(data_dir, fsync="never") as opened:  # one input segment
        for i in range(200):
            opened.put(b"k%03d" % i, b"old")
        for i in range(200):
            opened.put(b"k%03d" % i, b"new %d" % i)
        pauses: list[float] = []
        monkeypatch.setattr(time, "sleep", pauses.append)
        opened.compact()
        monkeypatch.undo()
        assert dict(opened.items()) == {b"k%03d" % i: b"new %d" % i for i in range(200)}
    every = catlog.compaction._CLOCK_CHECK_EVERY
    assert pauses == [catlog.compaction._PAUSE] * (400 // every + -(-200 // every))


@pytest.mark.spec("ENG-99", "ENG-42")
def test_a_background_compaction_pauses_on_its_own_shorter_turns(
    data_dir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the caller's turn set past any compaction's length and the background's to the
    least allowed (ten microseconds), the background compaction pauses (at most at every look:
    12 in the copy, 7 in the check, as above) and the same compaction in the caller's thread
    not once."""
    monkeypatch.setattr(catlog.compaction, "_WORK_BETWEEN_PAUSES", 3600.0)
    every = catlog.compaction._CLOCK_CHECK_EVERY
    for background in (True, False):
        with catlog.open(data_dir, fsync="never", compaction_yield_ms=0.01) as opened:
            assert opened.compaction_yield_ms == 0.01
            for i in range(200):
                opened.put(b"k%03d" % i, b"old")
            for i in range(200):
                opened.put(b"k%03d" % i, b"new %d" % i)
            pauses: list[float] = []
            with monkeypatch.context() as patched:
                patched.setattr(time, "sleep", pauses.append)
                if background:
                    assert opened.compact_in_background()
                    assert opened.wait_for_compaction(timeout=30)
                else:
                    opened.compact()
            assert dict(opened.items()) == {b"k%03d" % i: b"new %d" % i for i in range(200)}
        assert set(pauses) <= {catlog.compaction._PAUSE}
        if background:
            assert 1 <= len(pauses) <= 400 // every + -(-200 // every)
        else:
            assert pauses == []


@pytest.mark.spec("ENG-39", "ENG-40", "ENG-9")
def test_outputs_fill_up_to_the_segment_size_and_are_numbered_one_after_another(
    data_dir: str,
) -> None:
    """Eight live packed records of 126 bytes (FMT-27: an 8-byte header, a 2-byte key, a
    116-byte value) fill a 1024-byte output exactly; the ninth goes on."""
    with catlog.open(data_dir, fsync="never", segment_size=1024) as store:
        for i in range(9):
            store.put(b"k%d" % i, bytes(115))
            store.put(b"k%d" % i, bytes(116))
        inputs = segments(data_dir)
        report = store.compact()
        *outputs, _ = segments(data_dir)
        assert outputs == [inputs[-1] + 1, inputs[-1] + 2]
        sizes = [os.path.getsize(f"{data_dir}/segment-{n:05d}.log") for n in outputs]
        assert sizes == [1024, 16 + 126]
        assert [len(records(data_dir, n)) for n in outputs] == [8, 1]
        assert (report.segments_written, report.output_bytes) == (2, sum(sizes))
        assert report.records_copied == 9


@pytest.mark.spec("ENG-40", "ENG-41")
def test_the_report_counts_progress_and_time_and_the_dead_bytes_left_are_those_written_meanwhile(
    data_dir: str, clock: ManualClock
) -> None:
    """One input, one output: what the compaction reclaims is exactly the dead records of the
    input, so the estimate left is what writes during the compaction made dead: the input's
    record of a, then the first of a's two new records (23 bytes each)."""
    calls: list[tuple[int, int]] = []

    def progress(done: int, total: int) -> None:
        calls.append((done, total))
        clock.advance(2)
        opened.put(b"a", b"3")
        opened.put(b"a", b"4")

    with catlog.open(data_dir, fsync="never", clock=clock) as opened:
        opened.put(b"a", b"1")
        opened.put(b"a", b"2")
        clock.advance(5)
        report = opened.compact(progress)
        assert calls == [(16 + 2 * 23, 16 + 2 * 23)]
        assert report.seconds == 2.0
        assert opened.stats().dead_bytes == 2 * 23
        assert opened[b"a"] == b"4"
        opened.put(b"a", b"5")
        report = opened.compact()
        assert opened.stats().dead_bytes == 0
        assert report.input_bytes > report.output_bytes


@pytest.mark.spec("ENG-39", "ENG-22")
def test_a_live_record_left_in_an_input_is_reported_where_it_lies(
    data_dir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with catlog.open(data_dir, fsync="never") as store:
        store.put(b"a", b"1")
        store.put(b"b", b"2")
        monkeypatch.setattr(catlog.compaction, "copy_live", lambda *_: 0)
        with pytest.raises(catlog.CorruptionError) as caught:
            store.compact()
    assert (caught.value.path, caught.value.offset) == (f"{data_dir}/segment-00001.log", 16)
    assert caught.value.reason == (
        "compaction did not copy the live record of key b'a'; no segment was removed"
    )


@pytest.mark.spec("ENG-19", "ENG-38", "ENG-40")
def test_snapshots_and_compaction_of_a_closed_store_name_it(data_dir: str) -> None:
    store = catlog.open(data_dir)
    store.put(b"a", b"1")
    snapshot = store.snapshot()
    store.close()
    closed = f"^{data_dir} is closed$"
    with pytest.raises(catlog.StoreClosedError, match=closed):
        store.snapshot()
    with pytest.raises(catlog.StoreClosedError, match=closed):
        store.compact()
    with pytest.raises(catlog.StoreClosedError, match=closed):
        snapshot[b"a"]


@pytest.mark.spec("ENG-39")
def test_outputs_join_the_segments_in_number_order_and_are_the_inputs_of_the_next_compaction(
    data_dir: str,
) -> None:
    fs = FaultyFileSystem()
    with catlog.open(data_dir, fsync="never", segment_size=1024, fs=fs) as store:
        for i in range(200):
            store.put(b"k%02d" % (i % 40), b"v%d" % i + bytes(30))
        store.compact()
        *first_outputs, _ = segments(data_dir)
        assert len(first_outputs) >= 2
        for i in range(60):
            store.put(b"k%02d" % (i % 40), b"w%d" % i)
        assert store.stats().segments == len(segments(data_dir))
        expected = dict(store.items())
        inputs = segments(data_dir)
        mark = len(fs.trace)
        store.compact()
        removed = [os.path.basename(path) for op, path in fs.trace[mark:] if op == "remove"]
        gone = [n for n in map(parse_segment_name, removed) if n is not None]
        assert gone == inputs, "every input removed, in ascending number order"
        assert not set(first_outputs) & set(segments(data_dir))
        assert dict(store.items()) == expected
    with catlog.open(data_dir) as reopened:
        assert dict(reopened.items()) == expected


@pytest.mark.spec("ENG-41")
def test_automatic_compaction_is_due_at_exactly_both_limits(data_dir: str) -> None:
    """At least 4 segment sizes of dead bytes, and at least the threshold's share of the disk,
    on the disk and slots of a real store (few segments: the ENG-76 rule stays out of it)."""
    with catlog.open(data_dir, fsync="never", segment_size=1024) as store:
        for i in range(400):
            store.put(b"k%d" % (i % 10), b"v%02d" % (i % 100))  # 26 bytes: every size is even
        disk = store.stats().disk_bytes
        in_use = store.stats().segments
        assert in_use < catlog.compactionplan.crowded(store.max_segments)

    def due(dead: int, threshold: float) -> bool:
        return catlog.compactionplan.due_by(
            dead, disk, threshold, 1024, in_use=in_use, max_segments=store.max_segments
        )

    assert disk % 2 == 0
    assert disk // 2 > 4 * 1024
    assert due(disk // 2, 0.5)
    assert not due(disk // 2 - 1, 0.5)
    assert 0.1 * disk < 4 * 1024
    assert due(4 * 1024, 0.1)
    assert not due(4 * 1024 - 1, 0.1)


@pytest.mark.spec("ENG-76")
def test_a_crowded_store_is_due_at_exactly_one_segment_of_dead_bytes() -> None:
    due_by, slots = catlog.compactionplan.due_by, catlog.compactionplan.crowded(256)
    disk = 1 << 30  # far from the threshold: only the crowding rule can make it due
    assert due_by(1024, disk, 0.5, 1024, in_use=slots, max_segments=256)
    assert not due_by(1023, disk, 0.5, 1024, in_use=slots, max_segments=256)
    assert not due_by(1024, disk, 0.5, 1024, in_use=slots - 1, max_segments=256)


@pytest.mark.spec("ENG-39", "ENG-4", "ENG-21")
def test_a_read_that_loses_the_race_with_compaction_reads_the_copy(
    data_dir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Compaction may move a record and close its segment between a get's index lookup and its
    read; the get then reads where the index points now, or returns the default if the key was
    deleted meanwhile."""
    with catlog.open(data_dir, fsync="never") as store:
        store.put(b"moved", b"v")
        read = read_value
        raced: list[bytes] = []

        def racing_read(key: bytes, location: int, slots: list[Segment], active: Segment) -> bytes:
            if key not in raced:
                raced.append(key)
                if key == b"deleted":
                    store.delete(key)
                store.compact()
                raise OSError("the segment was closed under the reader")
            return read(key, location, slots, active)

        monkeypatch.setattr("catlog.store.read_value", racing_read)  # where get calls it
        assert store.get(b"moved", b"default") == b"v"
        store.put(b"deleted", b"w")
        assert store.get(b"deleted", b"default") == b"default"
        assert raced == [b"moved", b"deleted"]


@pytest.mark.spec("ENG-4", "ENG-39")
def test_a_failing_read_that_no_compaction_explains_is_raised(data_dir: str) -> None:
    """get retries only when the index moved; a read error of a record still indexed is real."""
    fs = FaultyFileSystem()
    with catlog.open(data_dir, fsync="never", segment_size=100, fs=fs) as store:
        store.put(b"k", b"v" * 60)
        store.put(b"next", b"w" * 60)  # rotates: k's segment is sealed
        fs.fail("pread", error=errno.EBADF, persistent=True, path=r"segment-00001\.log$")
        with pytest.raises(OSError, match="Bad file descriptor"):
            store.get(b"k")
        assert store.get(b"next") == b"w" * 60


@pytest.mark.spec("ENG-55", "ENG-34", "ENG-39")
@pytest.mark.parametrize("step", ["after", "during"])
def test_keys_that_expire_while_compaction_copies_never_point_into_a_removed_segment(
    data_dir: str, step: str
) -> None:
    """Issue 17: keys expiring mid-copy were skipped but left in the index, pointing into inputs
    compaction then removed; setting the clock back made healthy data read as damage (or, with
    the step during the copy, made compact() report a live record it had not copied)."""
    clock = catlog.ManualClock(1_700_000_000_000)
    with catlog.open(data_dir, segment_size=512, fsync="never", clock=clock) as store:
        for i in range(60):
            store.put(b"k%02d" % i, b"v" * 20, ttl=5 if i % 2 else None)
        store.put(b"last", b"x")

        def progress(done: int, total: int) -> None:
            if done < total:
                clock.advance(10)  # the ttl keys of every later input have expired
            elif step == "during":
                clock.step_wall_clock(-10)  # set back before the check and the removal

        store.compact(progress=progress)
        store._check_invariants()
        if step == "after":
            clock.step_wall_clock(-10)
        for i in range(60):
            store.get(b"k%02d" % i)  # a value or None, never a damage report
        assert len(store) == len(list(store))
        store.compact()
        store._check_invariants()
    with catlog.open(data_dir, clock=clock) as reopened:
        assert all(reopened[b"k%02d" % i] == b"v" * 20 for i in range(0, 60, 2))


@pytest.mark.spec("ENG-83")
def test_wait_for_compaction_without_a_timeout_or_with_less_than_a_second_waits_it_out(
    data_dir: str,
) -> None:
    """A ``compact()`` in another thread, held in its progress call until a timer lets it go
    while this thread waits: with no timeout, then with 0.9 s, which is ample."""
    with catlog.open(data_dir, fsync="never") as store:
        for timeout in (None, 0.9):
            store.put(b"k", b"v")
            store.put(b"k", b"w")
            copying, release = threading.Event(), threading.Event()

            def held(
                _done: int,
                _total: int,
                copying: threading.Event = copying,
                release: threading.Event = release,
            ) -> None:
                copying.set()
                release.wait(timeout=30)

            foreground = threading.Thread(target=store.compact, args=(held,))
            foreground.start()
            assert copying.wait(timeout=30)
            timer = threading.Timer(0.01, release.set)
            timer.start()
            try:
                assert store.wait_for_compaction(timeout=timeout) is True
                assert not store.stats().compacting
            finally:
                release.set()
                timer.cancel()
                foreground.join(timeout=30)


@pytest.mark.spec("ENG-83", "ENG-19", "ENG-40")
def test_a_wait_for_compaction_that_outlasts_the_store_says_it_is_closed(data_dir: str) -> None:
    """The store is closed while a background compaction, parked before it starts, is waited
    for; once the compaction gives up (the store is closed), the wait raises as any operation
    on a closed store does, naming it."""
    store = catlog.open(data_dir, fsync="never")
    store.put(b"k", b"v")
    store.put(b"k", b"w")
    raised: list[BaseException] = []

    def wait() -> None:
        try:
            store.wait_for_compaction(timeout=30)
        except catlog.CatlogError as exc:
            raised.append(exc)

    waiter = threading.Thread(target=wait)
    with catlog.testing.parked_background_compactions(store):
        assert store.compact_in_background()
        waiter.start()
        time.sleep(0.05)  # not needed to pass: lets the waiter reach the compaction's wait
        store.close()
    waiter.join(timeout=30)
    assert not waiter.is_alive()
    assert [type(exc) for exc in raised] == [catlog.StoreClosedError]
    assert str(raised[0]) == f"{data_dir} is closed"


@pytest.mark.spec("ENG-55", "ENG-63", "ENG-39")
def test_thousands_of_keys_that_expire_during_the_copy_are_all_forgotten(
    data_dir: str, clock: ManualClock
) -> None:
    """2,500 keys expire once the first input is copied: the copy skips every one, and they
    are forgotten a thousand at a time, all of them, before any input is removed."""
    with catlog.open(data_dir, fsync="never", segment_size=4096, clock=clock) as store:
        store.put(b"first", bytes(4050))  # fills the first segment
        for i in range(2500):
            store.put(b"t%04d" % i, b"v", ttl=5.0)
        store.put(b"last", b"x")
        advanced: list[bool] = []

        def progress(_done: int, _total: int) -> None:
            if not advanced:
                advanced.append(True)
                clock.advance(10)

        report = store.compact(progress)
        assert report.records_copied == 2
        stats = store.stats()
        assert (stats.keys, stats.expiring_keys) == (2, 0)
        assert dict(store.items()) == {b"first": bytes(4050), b"last": b"x"}


@pytest.mark.spec("ENG-77", "ENG-57")
def test_compaction_bytes_add_up_over_compactions_abandoned_outputs_included() -> None:
    """Three compactions of the same live records into one output each: the second fails at
    its output's rename, after writing the same bytes the third then writes again."""
    fs = SimFileSystem()
    with catlog.open("/db", fs=fs, segment_size=4096, fsync="never") as store:
        for i in range(40):
            store.put(b"k%d" % (i % 10), b"value %d" % i)
        first = store.compact().output_bytes
        assert store.stats().compaction_bytes == first
        store.put(b"k0", b"again")
        fs.fail("rename", nth=1)
        with pytest.raises(catlog.CompactionError):
            store.compact()
        abandoned = store.stats().compaction_bytes - first
        third = store.compact()
        assert third.segments_written == 1
        assert abandoned == third.output_bytes
        assert store.stats().compaction_bytes == first + 2 * third.output_bytes


@pytest.mark.spec("ENG-57", "ENG-41", "ENG-42")
def test_the_backoff_after_failed_compactions_doubles(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Background compactions fail one after another: the next starts 1 s after the first
    failure, 2 s after the second, 4 s after the third, and not half a second sooner."""
    fs = SimFileSystem()
    clock = catlog.ManualClock()
    with (
        caplog.at_level(logging.INFO, logger="catlog"),
        catlog.open(
            "/db", fs=fs, segment_size=256, clock=clock, compact_threshold=0.1, fsync="never"
        ) as store,
    ):
        store.put(b"cold", b"a live record in the oldest segment: an output to rename")
        fs.fail("rename", persistent=True, error=errno.ENOSPC)
        written = 0

        def rotations(writes: int = 40) -> int:
            """Write until a few rotations have passed; how many compactions started."""
            nonlocal written
            before = len(background_compactions(caplog))
            for _ in range(writes):
                store.put(b"k%d" % (written % 5), b"value %d" % written)
                written += 1
                assert store.wait_for_compaction(timeout=30)
            return len(background_compactions(caplog)) - before

        assert rotations(200) == 1, "the first, failed"
        for wait in (1.0, 2.0, 4.0):
            clock.advance(wait - 0.5)
            assert rotations() == 0, f"none within {wait} s"
            clock.advance(0.5)
            assert rotations() == 1, f"one once {wait} s passed"
        assert store.failure is None


@pytest.mark.spec("ENG-41", "ENG-73")
def test_overwritten_large_values_start_compactions_while_the_store_runs(data_dir: str) -> None:
    """A write that supersedes a value of 65,535 bytes or more counts it at its size: counted as
    65,535, a 200,000-byte value dead was a third of itself, and a store overwriting such
    values never reached a threshold of a half, growing without end until a restart."""
    with catlog.open(data_dir, fsync="never", segment_size=1 << 20, compact_threshold=0.5) as store:
        for _ in range(10):
            for i in range(30):
                store.put(b"big%d" % i, bytes(200_000))
            store.wait_for_compaction()
        stats = store.stats()
        store._check_invariants()
    live = 30 * (21 + 5 + 200_000)
    assert stats.disk_bytes < 4 * live, stats
    assert stats.segments < 30, "compactions removed the dead segments"


@pytest.mark.spec("ENG-41")
def test_a_write_over_a_large_value_whose_header_cannot_be_read_still_succeeds(
    data_dir: str,
) -> None:
    """The size of the value a write supersedes is only for the estimate: a read of its header
    that fails counts it as the index records it, and the write goes on."""
    fs = FaultyFileSystem()
    with catlog.open(data_dir, fs=fs, fsync="never") as store:
        store.put(b"big", bytes(200_000))
        store.put(b"big", bytes(100_000))
        assert store.stats().dead_bytes == 21 + 3 + 200_000, "read from its header"
        fs.fail("pread", error=errno.EIO)
        store.put(b"big", b"small")
        assert fs.fired()
        assert store.stats().dead_bytes == (21 + 3 + 200_000) + (21 + 3 + 65_535)
        assert store.failure is None
        assert store[b"big"] == b"small"


@pytest.mark.spec("ENG-41", "ENG-39")
def test_a_large_copy_made_stale_while_compaction_ran_is_counted_dead_in_its_output(
    data_dir: str,
) -> None:
    """The key is written again after its record was copied and before the output is
    installed: the copy in the output is dead at once, at its size there (a packed record's
    13-byte long header), and the input's share leaves with the input."""
    with catlog.open(data_dir, fsync="never", segment_size=256 * 1024) as store:
        store.put(b"big", LARGE)
        store.put(b"filler", b"f")
        store.compact(progress=lambda done, total: store.put(b"big", b"new"))
        assert store[b"big"] == b"new"
        store._check_invariants()
        assert store.stats().dead_bytes == 13 + 3 + len(LARGE)


@pytest.mark.spec("ENG-41", "ENG-61")
def test_a_large_value_expired_at_open_is_forgotten_and_counted_whole(
    data_dir: str, clock: ManualClock
) -> None:
    """Open forgets expired keys before it counts (ENG-61), before the writer that reads a
    large value's length exists: the forgetting counts it as the index records it, and the
    exact count that follows replaces that."""
    with catlog.open(data_dir, fsync="never", clock=clock) as store:
        store.put(b"big", LARGE, ttl=1)
    clock.advance(2)
    with catlog.open(data_dir, compact_threshold=0.5, clock=clock) as store:
        assert b"big" not in store
        assert store.stats().dead_bytes == 21 + 3 + 8 + len(LARGE)
