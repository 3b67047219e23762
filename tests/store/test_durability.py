"""The fsync policies (ENG-14 .. ENG-17), observed through the file system interface."""

from __future__ import annotations

import os
import time

import pytest

import catlog
from catlog.segment import WRITE_BUFFER_SIZE, segment_name
from tests.store.recording_fs import RecordingFileSystem

SEGMENT = segment_name(1)


@pytest.mark.spec("ENG-14", "REC-8")
def test_always_fsyncs_every_write_before_returning(data_dir: str) -> None:
    fs = RecordingFileSystem()
    with catlog.open(data_dir, fs=fs, fsync="always") as store:
        fs.calls.clear()
        store.put(b"a", b"1")
        assert fs.calls[-2:] == [("append", SEGMENT), ("sync", SEGMENT)]
        store.delete(b"a")
        assert fs.calls[-2:] == [("append", SEGMENT), ("sync", SEGMENT)]
        assert len(fs.ops("sync")) == 2


@pytest.mark.spec("ENG-15", "ENG-24")
def test_interval_syncs_only_when_the_interval_has_passed_on_the_clock(data_dir: str) -> None:
    fs = RecordingFileSystem()
    clock = catlog.ManualClock()
    with catlog.open(
        data_dir, fs=fs, clock=clock, fsync="interval", fsync_interval_ms=60_000
    ) as store:
        fs.calls.clear()
        store.put(b"a", b"1")
        assert fs.ops("append") == fs.ops("sync") == []
        assert store.get(b"a") == b"1"
        clock.advance(59.0)
        store.tick()
        assert fs.ops("sync") == []
        clock.advance(1.0)
        store.tick()
        assert fs.calls == [("append", SEGMENT), ("sync", SEGMENT)]
        clock.advance(120.0)
        store.tick()
        assert len(fs.ops("sync")) == 1, "nothing new was written, so nothing to sync"
        for write in (
            lambda: store.delete(b"a"),
            lambda: store.put(b"b", b"2", ttl=600),
            lambda: store.write_batch([("put", b"c", b"3")]),
        ):
            fs.calls.clear()
            write()
            store.tick()
            assert fs.calls == [("append", SEGMENT), ("sync", SEGMENT)]
            clock.advance(60.0)


@pytest.mark.spec("ENG-15")
def test_the_background_thread_syncs_under_interval(data_dir: str) -> None:
    fs = RecordingFileSystem()
    with catlog.open(data_dir, fs=fs, fsync="interval", fsync_interval_ms=10) as store:
        fs.calls.clear()
        store.put(b"a", b"1")
        deadline = time.monotonic() + 10
        while not fs.ops("sync") and time.monotonic() < deadline:
            time.sleep(0.005)
        assert fs.ops("sync") == [SEGMENT]


@pytest.mark.spec("ENG-16")
def test_never_buffers_in_the_process_until_64_kib_or_flush(data_dir: str) -> None:
    fs = RecordingFileSystem()
    path = f"{data_dir}/{SEGMENT}"
    with catlog.open(data_dir, fs=fs, fsync="never", fsync_interval_ms=600_000) as store:
        fs.calls.clear()
        store.put(b"a", b"1")
        assert os.path.getsize(path) == 16
        assert store[b"a"] == b"1"
        store.flush()
        assert os.path.getsize(path) == 16 + 21 + 2
        for i in range(700):
            store.put(b"k%d" % i, b"v" * 100)
        assert os.path.getsize(path) > 64 * 1024
        assert fs.ops("sync") == []
        store.sync()
        assert fs.ops("sync") == [SEGMENT]
        assert os.path.getsize(path) == store.stats().disk_bytes


@pytest.mark.spec("ENG-16")
def test_never_hands_the_buffer_over_once_it_holds_exactly_64_kib(data_dir: str) -> None:
    path = f"{data_dir}/{SEGMENT}"
    with catlog.open(data_dir, fsync="never", fsync_interval_ms=600_000) as store:
        store.put(b"a", bytes(WRITE_BUFFER_SIZE - 22 - 22))  # a record of 64 KiB less 22 bytes
        assert store.stats().unflushed_bytes == WRITE_BUFFER_SIZE - 22
        assert os.path.getsize(path) == 16
        store.put(b"b", b"")  # 22 bytes more: the buffer holds 64 KiB exactly
        assert store.stats().unflushed_bytes == 0
        assert os.path.getsize(path) == 16 + WRITE_BUFFER_SIZE


@pytest.mark.spec("ENG-16")
def test_never_hands_the_buffer_to_the_os_on_the_flusher_tick(data_dir: str) -> None:
    clock = catlog.ManualClock()
    path = f"{data_dir}/{SEGMENT}"
    with catlog.open(data_dir, clock=clock, fsync="never", fsync_interval_ms=60_000) as store:
        store.put(b"a", b"1")
        store.tick()
        assert os.path.getsize(path) == 16
        clock.advance(60)
        store.tick()
        assert os.path.getsize(path) == 16 + 21 + 2


@pytest.mark.spec("ENG-17", "ENG-18")
@pytest.mark.parametrize("policy", ["interval", "never"])
def test_sync_and_close_make_buffered_writes_durable(
    data_dir: str, policy: catlog.FsyncPolicy
) -> None:
    fs = RecordingFileSystem()
    store = catlog.open(data_dir, fs=fs, fsync=policy, fsync_interval_ms=600_000)
    store.put(b"a", b"1")
    fs.calls.clear()
    store.sync()
    assert fs.calls == [("append", SEGMENT), ("sync", SEGMENT)]
    store.put(b"b", b"2")
    fs.calls.clear()
    store.close()
    assert fs.calls[:2] == [("append", SEGMENT), ("sync", SEGMENT)]
    with catlog.open(data_dir) as again:
        assert dict(again.items()) == {b"a": b"1", b"b": b"2"}
