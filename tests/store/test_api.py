"""The embedded API as a user meets it: catlog.open and the Store mapping (spec/engine.md)."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from collections.abc import MutableMapping
from pathlib import Path
from types import ModuleType

import pytest

import catlog
from catlog import codec
from catlog.segment import segment_name
from catlog.simfs import SimFileSystem
from tests.store.recording_fs import RecordingFileSystem


@pytest.mark.spec("ENG-22")
def test_the_public_surface_is_exactly_all() -> None:
    public = {
        name
        for name in dir(catlog)
        if not name.startswith("_") and not isinstance(getattr(catlog, name), ModuleType)
    }
    assert public == set(catlog.__all__) - {"__version__"}
    for name in catlog.__all__:
        assert hasattr(catlog, name)


@pytest.mark.spec("ENG-22")
def test_every_error_derives_from_catlog_error() -> None:
    for name in catlog.__all__:
        item = getattr(catlog, name)
        if isinstance(item, type) and issubclass(item, Exception):
            assert issubclass(item, catlog.CatlogError), name
    error = catlog.CorruptionError("segment-00003.log", 4096, "crc mismatch")
    assert str(error) == "segment-00003.log@4096: crc mismatch"
    assert (error.path, error.offset, error.reason) == ("segment-00003.log", 4096, "crc mismatch")


@pytest.mark.spec("ENG-25", "FMT-1", "FMT-2")
def test_open_creates_the_directory_and_the_first_segment(data_dir: str) -> None:
    with catlog.open(data_dir):
        pass
    assert sorted(os.listdir(data_dir)) == ["LOCK", "segment-00001.log"]
    with open(f"{data_dir}/segment-00001.log", "rb") as segment:
        assert segment.read() == codec.encode_segment_header()


@pytest.mark.spec("ENG-25", "FMT-12", "ENG-99")
@pytest.mark.parametrize(
    "kwargs",
    [
        {"fsync": "sometimes"},
        {"segment_size": 63},
        {"segment_size": 2**29 + 1},
        {"fsync_interval_ms": 0},
        {"compaction_yield_ms": 0},
        {"compaction_yield_ms": 0.001},
        {"compaction_yield_ms": 1001},
        {"compaction_yield_ms": "1"},
        {"compaction_yield_ms": True},
    ],
)
def test_invalid_arguments_are_refused_before_anything_is_touched(
    data_dir: str, kwargs: dict[str, str | int]
) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        catlog.open(data_dir, **kwargs)  # type: ignore[arg-type]
    assert not os.path.exists(data_dir)


@pytest.mark.spec("ENG-1", "ENG-4", "ENG-5", "ENG-6")
def test_put_get_delete_len_contains(store: catlog.Store) -> None:
    assert store.get(b"k") is None
    assert store.get(b"k", b"default") == b"default"
    store.put(b"k", b"v1")
    store[b"k"] = b"v2"
    assert store.get(b"k") == store[b"k"] == b"v2"
    assert len(store) == 1
    assert b"k" in store
    assert b"other" not in store
    assert store.delete(b"k") is True
    assert store.delete(b"k") is False
    assert b"k" not in store
    with pytest.raises(KeyError):
        store[b"k"]
    with pytest.raises(KeyError):
        del store[b"k"]
    assert len(store) == 0


@pytest.mark.spec("ENG-5")
def test_deleting_a_missing_key_writes_nothing(data_dir: str) -> None:
    with catlog.open(data_dir) as store:
        store.put(b"a", b"1")
        size = os.path.getsize(f"{data_dir}/segment-00001.log")
        assert store.delete(b"missing") is False
        assert os.path.getsize(f"{data_dir}/segment-00001.log") == size
        assert store.delete(b"a") is True
        assert os.path.getsize(f"{data_dir}/segment-00001.log") == size + 21 + 1


@pytest.mark.spec("ENG-2")
def test_keys_and_values_must_be_bytes(store: catlog.Store) -> None:
    with pytest.raises(catlog.InvalidTypeError, match="keys must be bytes, not str"):
        store.put("key", b"v")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="values must be bytes, not int"):
        store.put(b"key", 5)  # type: ignore[arg-type]
    with pytest.raises(catlog.InvalidTypeError):
        store.get("key")  # type: ignore[arg-type]
    with pytest.raises(catlog.InvalidTypeError):
        store.delete(None)  # type: ignore[arg-type]
    assert len(store) == 0
    store.put(bytearray(b"ba"), memoryview(b"mv"))  # type: ignore[arg-type]
    assert store[b"ba"] == b"mv"
    assert store.get(bytearray(b"ba")) == b"mv"  # type: ignore[arg-type]
    store.put(b"", b"")
    assert store[b""] == b""
    assert sorted(store) == [b"", b"ba"]


@pytest.mark.spec("ENG-3", "FMT-9")
def test_oversized_keys_and_values_are_refused_and_nothing_is_written(data_dir: str) -> None:
    with catlog.open(data_dir) as store:
        size = os.path.getsize(f"{data_dir}/segment-00001.log")
        with pytest.raises(catlog.KeyTooLargeError, match="65537 bytes"):
            store.put(b"k" * (catlog.MAX_KEY_SIZE + 1), b"v")
        with pytest.raises(ValueError, match="exceeds the limit"):
            store.put(b"k", bytes(catlog.MAX_VALUE_SIZE + 1))
        with pytest.raises(catlog.KeyTooLargeError):
            store.delete(b"k" * (catlog.MAX_KEY_SIZE + 1))
        assert os.path.getsize(f"{data_dir}/segment-00001.log") == size
        store.put(b"k" * catlog.MAX_KEY_SIZE, b"at the limit")
    with catlog.open(data_dir) as store:
        assert store[b"k" * catlog.MAX_KEY_SIZE] == b"at the limit"


@pytest.mark.spec("ENG-7")
def test_iteration_sees_the_keys_of_its_start_while_writes_go_on(store: catlog.Store) -> None:
    for i in range(100):
        store[b"%03d" % i] = b"v"
    seen = []
    for key in store:
        seen.append(key)
        store[b"new" + key] = b"x"
        store.delete(b"%03d" % (99 - int(key)))
    assert sorted(seen) == [b"%03d" % i for i in range(100)]
    assert len(seen) == len(set(seen))


@pytest.mark.spec("ENG-7")
def test_store_is_a_mutable_mapping(store: catlog.Store) -> None:
    assert isinstance(store, MutableMapping)
    store.update({b"a": b"1", b"b": b"2"})
    assert dict(store.items()) == {b"a": b"1", b"b": b"2"}
    assert store.pop(b"a") == b"1"
    assert store.setdefault(b"c", b"3") == b"3"
    assert sorted(store.values()) == [b"2", b"3"]


@pytest.mark.spec("ENG-19", "ENG-18")
def test_a_closed_store_refuses_everything_but_close(data_dir: str) -> None:
    store = catlog.open(data_dir)
    store.put(b"k", b"v")
    store.close()
    store.close()
    assert store.closed
    for operation in (
        lambda: store.get(b"k"),
        lambda: store.get(b"missing"),
        lambda: store.put(b"k", b"v"),
        lambda: store.delete(b"k"),
        lambda: len(store),
        lambda: b"k" in store,
        lambda: list(store),
        store.sync,
        store.flush,
        store.stats,
    ):
        with pytest.raises(catlog.StoreClosedError, match="is closed"):
            operation()


@pytest.mark.spec("ENG-18", "ENG-20")
def test_close_releases_the_directory_and_keeps_the_data(data_dir: str) -> None:
    with catlog.open(data_dir, fsync="never") as store:
        store.put(b"k", b"v")
    with catlog.open(data_dir) as again:
        assert again[b"k"] == b"v"


@pytest.mark.spec("ENG-13", "FMT-13")
def test_after_reopening_writes_go_on_in_the_newest_segment(data_dir: str) -> None:
    with catlog.open(data_dir, segment_size=100) as store:
        for i in range(5):
            store.put(b"k%d" % i, b"v" * 40)
    before = sorted(os.listdir(data_dir))
    with catlog.open(data_dir, segment_size=10_000) as store:
        assert store.stats().active_segment == before[-1]
        store.put(b"later", b"v")
        assert {k: store[k] for k in store} == {
            **{b"k%d" % i: b"v" * 40 for i in range(5)},
            b"later": b"v",
        }
    assert sorted(os.listdir(data_dir)) == before


@pytest.mark.spec("FMT-1")
def test_files_that_are_not_segments_are_ignored(data_dir: str) -> None:
    with catlog.open(data_dir) as store:
        store.put(b"k", b"v")
    Path(data_dir, "segment-1.log").write_bytes(b"not a segment")
    Path(data_dir, "notes.txt").write_text("hello")
    with catlog.open(data_dir) as store:
        assert dict(store.items()) == {b"k": b"v"}


@pytest.mark.spec("FMT-10", "FMT-14", "ENG-24")
def test_order_is_by_position_not_by_timestamp(data_dir: str) -> None:
    class Backwards:
        def __init__(self) -> None:
            self.now = 2_000_000_000_000

        def now_ms(self) -> int:
            self.now -= 1000
            return self.now

        def monotonic(self) -> float:
            return 0.0

    with catlog.open(data_dir, clock=Backwards(), segment_size=64) as store:
        for i in range(5):
            store.put(b"k", b"%d" % i)
    with catlog.open(data_dir) as store:
        assert store[b"k"] == b"4"
    with open(f"{data_dir}/{segment_name(1)}", "rb") as segment:
        records, _ = codec.iter_records(segment.read(), 16)
    assert records[0].timestamp_ms == 2_000_000_000_000 - 1000


@pytest.mark.spec("ENG-24", "FMT-4")
def test_record_timestamps_come_from_the_store_clock(data_dir: str) -> None:
    clock = catlog.ManualClock(now_ms=1_234_567_890_000)
    with catlog.open(data_dir, clock=clock) as store:
        store.put(b"a", b"1")
        clock.advance(2.5)
        store.delete(b"a")
    with open(f"{data_dir}/{segment_name(1)}", "rb") as segment:
        records, damage = codec.iter_records(segment.read(), 16)
    assert damage is None
    assert [r.timestamp_ms for r in records] == [1_234_567_890_000, 1_234_567_892_500]


@pytest.mark.spec("ENG-26")
def test_stats_describe_the_store(data_dir: str) -> None:
    with catlog.open(data_dir, fsync="never", segment_size=200) as store:
        for i in range(10):
            store.put(b"key%d" % i, b"x" * 30)
        stats = store.stats()
        on_disk = sum(
            os.path.getsize(f"{data_dir}/{segment_name(n)}") for n in range(1, stats.segments + 1)
        )
    assert stats.keys == 10
    assert stats.segments == len([n for n in os.listdir(data_dir) if n.endswith(".log")])
    assert stats.active_segment == segment_name(stats.segments)
    assert stats.disk_bytes == on_disk
    assert 0 < stats.unflushed_bytes < 200
    assert stats.tail_repairs == ()


@pytest.mark.spec("ENG-23")
def test_every_file_operation_goes_through_the_given_file_system(data_dir: str) -> None:
    fs = RecordingFileSystem()
    with catlog.open(data_dir, fs=fs, segment_size=100) as store:
        for i in range(5):
            store.put(b"k%d" % i, b"v" * 40)
        store.delete(b"k0")
        assert store[b"k4"] == b"v" * 40
    done = {op for op, _ in fs.calls}
    assert {"makedirs", "lock", "listdir", "open+create", "append", "sync", "sync_dir"} <= done
    assert {"pread", "close"} <= done


@pytest.mark.spec("ENG-27", "ENG-20")
def test_a_store_dropped_without_close_releases_the_directory(data_dir: str) -> None:
    store = catlog.open(data_dir)
    store.put(b"k", b"v")
    del store
    with catlog.open(data_dir) as again:
        assert again[b"k"] == b"v"


@pytest.mark.spec("ENG-27", "ENG-16")
def test_buffered_writes_of_an_unclosed_store_survive_a_normal_exit(data_dir: str) -> None:
    program = (
        "import catlog, signal, sys\n"
        "signal.alarm(60)\n"  # a close that hangs ends the child even if the test is killed first
        "import threading\n"
        "stores = []\n"
        "for path in sys.argv[1:]:\n"  # two stores: each must be closed at exit
        "    stores.append(catlog.open(path, fsync='never', fsync_interval_ms=3600000))\n"
        "    stores[-1].put(b'k', path.encode())\n"
        # held by a daemon thread to the end, so neither is closed by being collected (__del__)
        "threading.Thread(target=lambda held: threading.Event().wait(), args=(stores,),"
        " daemon=True).start()\n"
    )
    paths = [data_dir, f"{data_dir}-2"]
    subprocess.run([sys.executable, "-c", program, *paths], check=True, timeout=60)
    for path in paths:
        with catlog.open(path) as store:
            assert store[b"k"] == path.encode()


@pytest.mark.spec("ENG-22", "ENG-12")
@pytest.mark.parametrize("packed", [False, True])
def test_a_read_the_disk_fails_raises_a_read_error_naming_the_record_and_the_store_goes_on(
    packed: bool,
) -> None:
    fs = SimFileSystem()
    with catlog.open("/db", fs=fs) as store:
        store.put(b"a", b"1")
        store.put(b"b", b"2")
        if packed:
            store.compact()
        number = 1 if not packed else 2
        offset = 16 if not packed else 16 + 10
        fs.fail("pread", error=errno.EIO)
        with pytest.raises(catlog.ReadError) as caught:
            store.get(b"b") if packed else store.get(b"a")
        error = caught.value
        assert isinstance(error, OSError)
        assert isinstance(error, catlog.CatlogError)
        assert (error.path, error.offset) == (f"/db/{segment_name(number)}", offset)
        assert (
            str(error)
            == f"/db/{segment_name(number)}@{offset}: read failed: {os.strerror(errno.EIO)}"
        )
        assert isinstance(error.__cause__, OSError)
        assert error.__cause__.errno == errno.EIO
        assert (store[b"a"], store[b"b"]) == (b"1", b"2"), "the next reads are tried afresh"
        store.put(b"c", b"3")
        with store.snapshot() as snapshot:
            fs.fail("pread", error=errno.EIO)
            with pytest.raises(catlog.ReadError):
                snapshot[b"c"]
            assert snapshot[b"c"] == b"3"


@pytest.mark.spec("ENG-52", "ENG-4", "ENG-34")
def test_get_many_reads_each_key_or_none(data_dir: str) -> None:
    clock = catlog.ManualClock(1_700_000_000_000)
    with catlog.open(data_dir, clock=clock) as store:
        store.put(b"a", b"1")
        store.put(b"b", b"2", ttl=1)
        store.write_batch([("put", b"c", b"3"), ("put", b"d", b"4")])
        assert store.get_many([b"a", b"b", b"missing", b"c", b"a"]) == [
            b"1",
            b"2",
            None,
            b"3",
            b"1",
        ]
        clock.advance(2)
        assert store.get_many([b"b", b"d"]) == [None, b"4"]
        assert store.get_many([]) == []
        bytes_like: list[bytes] = [bytearray(b"a"), memoryview(b"d")]  # type: ignore[list-item]
        assert store.get_many(bytes_like) == [b"1", b"4"]  # ENG-2
        with pytest.raises(catlog.InvalidTypeError):
            store.get_many(["a"])  # type: ignore[list-item]
