"""A write or fsync that fails: the store stops writing, keeps reading, and reopens to a prefix.

The faults come from :class:`tests.crash.faulty_fs.FaultyFileSystem`, which fails the Nth call of
an operation with the ``OSError`` a broken or full disk gives. What must follow is REC-10 (the
failing call raises ``StoreFailedError``, every later write is refused, nothing is retried) and
REC-11 (a healthy reopen yields a prefix holding every write acknowledged as durable).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

import catlog
from catlog.simfs import Operation
from tests.crash.faulty_fs import FaultyFileSystem
from tests.failing_store import CLOSED_FAILED, failing

NOW_MS = 1_700_000_000_000


def open_store(directory: str, fs: FaultyFileSystem, segment_size: int = 1 << 20) -> catlog.Store:
    return catlog.open(
        directory, fs=fs, segment_size=segment_size, clock=catlog.ManualClock(NOW_MS)
    )


def open_never(directory: str, fs: FaultyFileSystem) -> catlog.Store:
    return catlog.open(directory, fs=fs, fsync="never", clock=catlog.ManualClock(NOW_MS))


def reopened(directory: str) -> dict[bytes, bytes]:
    """The contents a healthy file system finds after the failure."""
    with catlog.open(directory) as store:
        return dict(store.items())


def assert_refuses_writes(store: catlog.Store) -> None:
    """REC-10: every write, flush and sync is refused, even with the disk healthy again."""
    with pytest.raises(catlog.StoreFailedError):
        store.put(b"later", b"refused")
    with pytest.raises(catlog.StoreFailedError):
        store.delete(b"acknowledged")
    with pytest.raises(catlog.StoreFailedError):
        store.sync()
    with pytest.raises(catlog.StoreFailedError):
        store.flush()
    with pytest.raises(catlog.StoreFailedError):
        store[b"later"] = b"refused"
    assert store.get(b"later") is None


@pytest.mark.spec("REC-10", "ENG-14", "ENG-22")
@pytest.mark.parametrize("error", [errno.EIO, errno.ENOSPC], ids=["EIO", "ENOSPC"])
def test_failed_fsync_fails_the_put_and_hides_its_write(data_dir: str, error: int) -> None:
    fs = FaultyFileSystem()
    with failing(open_store(data_dir, fs)) as store:
        store.put(b"acknowledged", b"durable")
        fs.fail("sync", error=error)
        with pytest.raises(catlog.StoreFailedError) as caught:
            store.put(b"failed", b"not acknowledged")
        cause = caught.value.__cause__
        assert isinstance(cause, OSError)
        assert cause.errno == error
        assert isinstance(caught.value, catlog.CatlogError)
        assert store.get(b"failed") is None, "a write is visible only once it is durable"
        assert b"failed" not in store
        assert store.get(b"acknowledged") == b"durable"
        assert dict(store.items()) == {b"acknowledged": b"durable"}


@pytest.mark.spec("REC-10")
def test_failed_store_refuses_every_write_until_reopened(data_dir: str) -> None:
    """No retry: a second fsync after a failed one can succeed with the data gone."""
    fs = FaultyFileSystem()
    with failing(open_store(data_dir, fs)) as store:
        store.put(b"acknowledged", b"durable")
        fs.fail("sync")
        with pytest.raises(catlog.StoreFailedError):
            store.delete(b"acknowledged")
        assert store.get(b"acknowledged") == b"durable", "the failed delete took no effect"
        fs.heal()
        syncs = fs.calls["sync"]
        assert_refuses_writes(store)
        assert fs.calls["sync"] == syncs, "a failed store never fsyncs again"
        assert store.get(b"acknowledged") == b"durable"
        assert len(store) == 1
    with catlog.open(data_dir) as store:
        store.put(b"after reopen", b"accepted")


@pytest.mark.spec("REC-10", "ENG-18", "ENG-46", "ENG-47")
def test_close_after_a_failure_releases_the_directory_and_raises(data_dir: str) -> None:
    fs = FaultyFileSystem()
    store = open_store(data_dir, fs)
    store.put(b"acknowledged", b"durable")
    healthy = store.failure
    assert healthy is None
    fs.fail("sync", persistent=True)
    with pytest.raises(catlog.StoreFailedError) as failed:
        store.put(b"failed", b"x")
    assert failed.value.fsync_failed, "ENG-47: an fsync failed"
    assert store.failure is not None
    assert str(store.failure) == str(failed.value)
    with pytest.raises(catlog.StoreFailedError, match=CLOSED_FAILED) as closing:
        store.close()
    assert closing.value.fsync_failed
    assert store.closed
    assert store.failure is not None, "ENG-47: the failure outlives close()"
    store.close()  # ENG-18: a second close does nothing
    with pytest.raises(catlog.StoreClosedError):
        store.put(b"k", b"v")
    assert reopened(data_dir)[b"acknowledged"] == b"durable"


@pytest.mark.spec("REC-11", "REC-2", "REC-8")
@pytest.mark.parametrize("operation", ["append", "sync"])
def test_reopen_after_a_failed_put_yields_a_prefix(data_dir: str, operation: Operation) -> None:
    fs = FaultyFileSystem()
    acknowledged = {b"k%d" % i: b"v%d" % i for i in range(5)}
    with failing(open_store(data_dir, fs)) as store:
        store.update(acknowledged)
        fs.fail(operation)
        with pytest.raises(catlog.StoreFailedError):
            store.put(b"failed", b"maybe")
    found = reopened(data_dir)
    assert found in (acknowledged, {**acknowledged, b"failed": b"maybe"})
    if operation == "append":
        assert found == acknowledged, "the record never reached the file"


@pytest.mark.spec("REC-11", "REC-4", "REC-2")
def test_short_write_leaves_a_torn_tail_that_reopen_cuts_off(data_dir: str) -> None:
    fs = FaultyFileSystem()
    with failing(open_store(data_dir, fs)) as store:
        store.put(b"acknowledged", b"durable")
        end = store.stats().disk_bytes
        fs.fail("append", error=errno.ENOSPC, partial=10)
        with pytest.raises(catlog.StoreFailedError):
            store.put(b"failed", b"out of space")
    segment = Path(data_dir, "segment-00001.log")
    assert segment.stat().st_size == end + 10
    with catlog.open(data_dir) as store:
        assert dict(store.items()) == {b"acknowledged": b"durable"}
        (repair,) = store.stats().tail_repairs
        assert (repair.segment, repair.offset, repair.length) == (segment.name, end, 10)
    assert segment.stat().st_size == end


@pytest.mark.spec("REC-10", "REC-11", "ENG-16")
def test_failed_write_under_never_fails_the_flush_and_loses_only_unsynced_writes(
    data_dir: str,
) -> None:
    fs = FaultyFileSystem()
    with failing(open_never(data_dir, fs)) as store:
        store.put(b"acknowledged", b"synced")
        store.sync()
        appends = fs.calls["append"]
        store.put(b"buffered", b"never reached the file")
        assert fs.calls["append"] == appends, "under never, a put does not write"
        fs.fail("append", error=errno.ENOSPC)
        with pytest.raises(catlog.StoreFailedError) as caught:
            store.flush()
        assert isinstance(caught.value.__cause__, OSError)
        assert caught.value.__cause__.errno == errno.ENOSPC
        assert store.get(b"buffered") == b"never reached the file", "reads go on"
        assert_refuses_writes(store)
    assert reopened(data_dir) == {b"acknowledged": b"synced"}


@pytest.mark.spec("REC-10", "ENG-16")
def test_a_failed_write_of_a_put_names_the_segment_and_what_failed(data_dir: str) -> None:
    """A put whose record fills the 64 KiB write buffer is written at once, so the put itself
    meets the failure."""
    fs = FaultyFileSystem()
    with failing(open_never(data_dir, fs)) as store:
        fs.fail("append", error=errno.ENOSPC)
        with pytest.raises(catlog.StoreFailedError) as caught:
            store.put(b"big", bytes(1 << 16))
        assert_refuses_writes(store)
    cause = caught.value.__cause__
    assert isinstance(cause, OSError)
    assert cause.errno == errno.ENOSPC
    assert str(caught.value) == (
        f"{data_dir}/segment-00001.log: write failed ({cause}); writes are refused until the"
        " store is reopened, and writes not yet synced may be lost"
    )


@pytest.mark.spec("REC-10", "REC-11")
def test_failed_fsync_under_never_fails_sync(data_dir: str) -> None:
    fs = FaultyFileSystem()
    with failing(open_never(data_dir, fs)) as store:
        store.put(b"acknowledged", b"synced")
        store.sync()
        store.put(b"pending", b"handed to the OS")
        fs.fail("sync")
        with pytest.raises(catlog.StoreFailedError):
            store.sync()
        assert store.get(b"pending") == b"handed to the OS"
        assert_refuses_writes(store)
    found = reopened(data_dir)
    assert found in (
        {b"acknowledged": b"synced"},
        {b"acknowledged": b"synced", b"pending": b"handed to the OS"},
    )


@pytest.mark.spec("REC-10", "REC-11", "ENG-10", "REC-9")
@pytest.mark.parametrize("operation", ["open", "append", "sync", "sync_dir"])
def test_failure_while_starting_a_segment_fails_the_put(
    data_dir: str, operation: Operation
) -> None:
    """Rotation writes a header and fsyncs file and directory; any of them may fail."""
    fs = FaultyFileSystem()
    with failing(open_store(data_dir, fs, segment_size=100)) as store:
        store.put(b"first", b"fills most of segment one" * 2)
        fs.fail(operation, persistent=True)
        with pytest.raises(catlog.StoreFailedError) as caught:
            store.put(b"second", b"needs a new segment")
        assert isinstance(caught.value.__cause__, OSError)
        assert store.get(b"second") is None
        assert store.get(b"first") == b"fills most of segment one" * 2
        fs.heal()
        assert_refuses_writes(store)
    assert reopened(data_dir) == {b"first": b"fills most of segment one" * 2}
    with catlog.open(data_dir) as store:
        store.put(b"third", b"after the failed rotation")
    assert reopened(data_dir)[b"third"] == b"after the failed rotation"


@pytest.mark.spec("ENG-14")
def test_always_fsyncs_once_per_acknowledged_write(data_dir: str) -> None:
    fs = FaultyFileSystem()
    with open_store(data_dir, fs) as store:
        syncs, appends = fs.calls["sync"], fs.calls["append"]
        store.put(b"a", b"1")
        store.put(b"b", b"2")
        store[b"a"] = b"3"
        assert store.delete(b"b")
        assert not store.delete(b"missing"), "nothing to delete, nothing written"
        assert fs.calls["sync"] - syncs == 4
        assert fs.calls["append"] - appends == 4


@pytest.mark.spec("ENG-16", "ENG-17")
def test_never_leaves_writes_in_the_buffer_until_flush_or_sync(data_dir: str) -> None:
    fs = FaultyFileSystem()
    with open_never(data_dir, fs) as store:
        syncs, appends = fs.calls["sync"], fs.calls["append"]
        for i in range(10):
            store.put(b"k%d" % i, b"v")
        assert (fs.calls["sync"], fs.calls["append"]) == (syncs, appends)
        store.flush()
        assert (fs.calls["sync"], fs.calls["append"]) == (syncs, appends + 1)
        store.sync()
        assert fs.calls["sync"] == syncs + 1


@pytest.mark.spec("ENG-23")
def test_every_file_operation_goes_through_the_given_file_system(tmp_path: Path) -> None:
    """The store is given a directory that does not exist; only the wrapper knows where it is.

    An operation that went around the file system would fail or land outside ``real``, so the
    walk below (create, write, rotate, delete, read, repair a torn tail, reopen) proves the seam.
    """
    mount = f"/nonexistent-catlog-{os.getpid()}"
    virtual = f"{mount}/data"
    real = str(tmp_path / "real")
    os.makedirs(real)  # the mount point exists; the data directory in it does not
    fs = FaultyFileSystem(mount=(mount, real))
    with catlog.open(virtual, fs=fs, segment_size=128) as store:
        for i in range(8):
            store.put(b"key %d" % i, b"value %d" % i)
        assert store.delete(b"key 0")
        assert store.get(b"key 5") == b"value 5"
        assert store.stats().segments > 1
        newest = store.stats().active_segment
    with Path(real, "data", newest).open("ab") as file:
        file.write(b"torn")
    with catlog.open(virtual, fs=fs, fsync="never", segment_size=128) as store:
        assert len(store) == 7
        assert [repair.segment for repair in store.stats().tail_repairs] == [newest]
        store.put(b"key 9", b"value 9")
        store.flush()
    assert not os.path.exists(virtual)
    assert [name for name in os.listdir(f"{real}/data") if ".torn-" in name] != []
    for operation in ("makedirs", "lock", "listdir", "open", "pread", "append"):
        assert fs.calls[operation] > 0, operation
    for operation in ("sync", "sync_dir", "truncate", "size", "close"):
        assert fs.calls[operation] > 0, operation
    assert all(path.startswith(mount) for _, path in fs.trace)
