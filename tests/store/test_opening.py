"""Opening at the edges: the defaults, the limits of each argument, odd paths, failed opens.

ENG-25 gives open's defaults and its ranges; REC-9 the directory fsyncs an open owes the
directories it created; ENG-27 says a store is closed when it is collected, which must hold for a
store whose opening failed half-way too.
"""

from __future__ import annotations

import errno
import gc
import logging
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import catlog
from catlog.filecache import default_max_open_files
from catlog.index import MAX_SEGMENT_SIZE
from catlog.simfs import SimFileSystem
from tests.crash.faulty_fs import FaultyFileSystem
from tests.store.recording_fs import RecordingFileSystem


@pytest.mark.spec("ENG-25")
def test_store_and_open_have_the_documented_defaults(data_dir: str) -> None:
    for store in (catlog.Store(data_dir), catlog.open(f"{data_dir}-2")):
        with store:
            assert (store.fsync, store.segment_size, store.fsync_interval_ms, store.hints) == (
                "always",
                64 * 1024 * 1024,
                1000,
                False,
            )


@pytest.mark.spec("ENG-25", "ENG-30")
def test_by_default_rotation_writes_no_hint(data_dir: str) -> None:
    with catlog.open(data_dir, segment_size=64) as store:
        for i in range(4):
            store.put(b"k%d" % i, b"v" * 40)
        assert store.stats().segments == 4
    assert not [name for name in os.listdir(data_dir) if ".hint" in name]


@pytest.mark.spec("ENG-25")
def test_the_argument_ranges_include_their_bounds(data_dir: str) -> None:
    with catlog.open(data_dir, segment_size=MAX_SEGMENT_SIZE, fsync_interval_ms=1) as store:
        assert store.segment_size == 1 << 29  # FMT-12
    with catlog.open(data_dir, segment_size=64, fsync="interval", fsync_interval_ms=1) as store:
        assert store.fsync_interval_ms == 1


@pytest.mark.spec("ENG-25")
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fsync": "sometimes"}, "fsync must be one of always, interval, never, not 'sometimes'"),
        ({"fsync_interval_ms": 0}, "fsync_interval_ms must be positive"),
        ({"segment_size": 63}, "segment_size must be between 64 and 536870912 bytes"),
        ({"segment_size": 2**29 + 1}, "segment_size must be between 64 and 536870912 bytes"),
    ],
)
def test_an_invalid_argument_is_named_with_what_is_allowed(
    data_dir: str, kwargs: dict[str, str | int], message: str
) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        catlog.open(data_dir, **kwargs)  # type: ignore[arg-type]


@pytest.mark.spec("ENG-25")
def test_a_pathlib_path_opens_the_same_store_and_other_types_are_refused(tmp_path: Path) -> None:
    with catlog.open(tmp_path / "data") as store:
        store.put(b"k", b"v")
        assert store.path == str(tmp_path / "data")
    with catlog.open(str(tmp_path / "data")) as store:
        assert store.get(b"k") == b"v"
    message = "path must be a str or an os.PathLike of str, not bytes"
    with pytest.raises(TypeError, match=f"^{re.escape(message)}$"):
        catlog.open(os.fsencode(tmp_path / "other"))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        catlog.open(7)  # type: ignore[arg-type]
    assert not (tmp_path / "other").exists()


@pytest.mark.spec("ENG-25")
def test_a_trailing_slash_a_relative_path_and_the_root_all_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with catlog.open(f"{tmp_path}/data/") as store:
        assert store.path == f"{tmp_path}/data"
    with catlog.open(f"{tmp_path}/endsXX") as store:
        assert store.path == f"{tmp_path}/endsXX"
    monkeypatch.chdir(tmp_path)
    with catlog.open("relative") as store:
        store.put(b"a", b"1")
    assert (tmp_path / "relative" / "segment-00001.log").exists()
    fs = SimFileSystem()
    with catlog.open("/", fs=fs) as store:
        assert store.path == "/"
        store.put(b"a", b"1")
    assert "segment-00001.log" in fs.listdir("/")


@pytest.mark.spec("REC-9", "ENG-25")
def test_open_fsyncs_every_directory_it_created_and_the_one_above(tmp_path: Path) -> None:
    fs = RecordingFileSystem()
    with catlog.open(f"{tmp_path}/x/y/z", fs=fs):
        pass
    assert set(fs.ops("sync_dir")) == {"z", "y", "x", tmp_path.name}


@pytest.mark.spec("ENG-27", "ENG-25")
@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
def test_a_store_whose_opening_failed_is_collected_quietly(data_dir: str) -> None:
    """A half-built Store is no open store: collecting it must not try to close it."""
    with pytest.raises(ValueError, match="fsync"):
        catlog.open(data_dir, fsync="sometimes")  # type: ignore[arg-type]
    with catlog.open(data_dir):
        with pytest.raises(catlog.LockedError):
            catlog.open(data_dir)
        gc.collect()
    gc.collect()


@pytest.mark.spec("ENG-18", "REC-13")
@pytest.mark.parametrize("policy", ["always", "interval", "never"])
def test_closing_a_store_that_wrote_nothing_fsyncs_nothing(
    data_dir: str, policy: catlog.FsyncPolicy
) -> None:
    with catlog.open(data_dir) as store:
        store.put(b"a", b"1")
    fs = RecordingFileSystem()
    store = catlog.open(data_dir, fs=fs, fsync=policy)
    fs.calls.clear()
    store.close()
    assert fs.ops("sync") == []


@pytest.mark.spec("ENG-28")
def test_tickets_count_the_records_appended_since_open_from_one(data_dir: str) -> None:
    with catlog.open(data_dir, fsync="never") as store:
        assert store.last_ticket == 0
        assert store.put_nowait(b"a", b"1") == 1
        assert store.delete_nowait(b"a") == (True, 2)
        assert store.delete_nowait(b"a") == (False, 2)
    with catlog.open(data_dir) as store:
        assert store.put_nowait(b"b", b"2") == 1


@pytest.mark.spec("ENG-15")
def test_the_background_flusher_thread_is_named_after_its_store(data_dir: str) -> None:
    with catlog.open(data_dir, fsync="interval"):
        names = [thread.name for thread in threading.enumerate()]
        assert f"catlog-flush {data_dir}" in names


@pytest.mark.spec("ENG-105", "ENG-27")
@pytest.mark.parametrize("fsync", ["interval", "never"])
def test_the_flusher_is_a_daemon_thread_that_close_ends(data_dir: str, fsync: str) -> None:
    """In process, not at an exit: the interpreter joins a non-daemon thread before the exit
    handlers run, so a child left open would hang, and a subprocess test sees only a timeout."""
    store = catlog.open(data_dir, fsync=fsync)  # type: ignore[arg-type]
    with store:  # closed even when the check fails: a non-daemon flusher would hang pytest
        flushers = [t for t in threading.enumerate() if t.name == f"catlog-flush {data_dir}"]
        daemon = [flusher.daemon for flusher in flushers]
    assert daemon == [True]
    assert not flushers[0].is_alive(), "close() returned before the flusher ended"


@pytest.mark.spec("ENG-105", "ENG-46")
def test_close_waits_for_the_flusher_to_end_even_while_it_logs_its_failure(data_dir: str) -> None:
    """The flusher's write fails (REC-10) and its thread then spends up to a second logging
    that: close() raises the failure (ENG-46) only once the thread has ended."""
    entered, release = threading.Event(), threading.Event()

    class Stalling(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if threading.current_thread().name.startswith("catlog-flush"):
                entered.set()
                release.wait(1.0)

    handler = Stalling()
    logger = logging.getLogger("catlog")
    logger.addHandler(handler)
    try:
        fs = FaultyFileSystem()
        store = catlog.open(data_dir, fs=fs, fsync="interval", fsync_interval_ms=10)
        flushers = [t for t in threading.enumerate() if t.name == f"catlog-flush {data_dir}"]
        fs.fail("append", error=errno.ENOSPC, persistent=True, thread="catlog-flush")
        store.put(b"k", b"v")
        assert entered.wait(30), "the flusher never failed"
        with pytest.raises(catlog.StoreFailedError):
            store.close()
        alive = [flusher.is_alive() for flusher in flushers]
    finally:
        release.set()
        logger.removeHandler(handler)
    assert alive == [False], "close() returned while the flusher was still logging"


@pytest.mark.spec("ENG-19", "ENG-18")
def test_closed_is_false_while_open_and_true_after_close(data_dir: str) -> None:
    store = catlog.open(data_dir)
    assert store.closed is False
    store.close()
    assert store.closed is True


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.spec("ENG-56")
@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_a_reopened_store_holds_one_descriptor_per_segment(data_dir: str) -> None:
    """Issue 17: after an open every sealed segment held two descriptors (its own and its memory
    map's), so a store written under a descriptor limit could not be opened again."""
    with catlog.open(data_dir, segment_size=256, fsync="never") as store:
        for i in range(400):
            store.put(b"k%03d" % (i % 50), b"v" * 40)
        segments = store.stats().segments
    assert segments > 100
    before = _open_descriptors()
    with catlog.open(data_dir) as store:
        held = _open_descriptors() - before
        assert len(store) == 50
        assert store[b"k007"] == b"v" * 40
    assert held <= segments + 4, f"{held} descriptors for {segments} segments"
    assert _open_descriptors() == before, "close() gives every descriptor back"


@pytest.mark.spec("ENG-56", "ENG-49", "ENG-65", "ENG-70")
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs a child process")
def test_a_store_opens_under_a_descriptor_limit_just_above_its_segments(data_dir: str) -> None:
    """Under a limit below its segments it opens too, with the default budget (ENG-65); a
    budget above the limit fails, and the error says what to do (ENG-70)."""
    with catlog.open(data_dir, segment_size=256, fsync="never") as store:
        for i in range(600):
            store.put(b"k%03d" % (i % 40), b"v" * 40)
        segments = store.stats().segments
    script = (
        "import resource, sys, catlog\n"
        f"resource.setrlimit(resource.RLIMIT_NOFILE, ({segments + 40}, {segments + 40}))\n"
        f"with catlog.open({data_dir!r}) as store:\n"
        "    print(len(store))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert (done.returncode, done.stdout.strip()) == (0, "40"), done.stderr[-2000:]
    tight = script.replace(f"({segments + 40}, {segments + 40})", "(64, 64)")
    done = subprocess.run(
        [sys.executable, "-c", tight], capture_output=True, text=True, timeout=120, check=False
    )
    assert (done.returncode, done.stdout.strip()) == (0, "40"), done.stderr[-2000:]
    too_many = tight.replace(
        f"catlog.open({data_dir!r})", f"catlog.open({data_dir!r}, max_open_files=1000)"
    )
    done = subprocess.run(
        [sys.executable, "-c", too_many], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode != 0
    assert "catlog.errors.OpenError: cannot open" in done.stderr, "ENG-49 names what failed"
    assert (
        "Too many open files; raise the descriptor limit (ulimit -n) or lower max_open_files"
        in (done.stderr)
    )


@pytest.mark.spec("ENG-25", "ENG-65")
def test_the_open_store_keeps_each_setting_as_an_attribute(tmp_path: Path) -> None:
    given = {
        "fsync": "interval",
        "segment_size": 4096,
        "fsync_interval_ms": 250,
        "hints": "background",
        "compact_threshold": 0.3,
        "compact_max_bytes": 1 << 20,
        "max_segments": 64,
        "max_open_files": 12,
        "compaction_yield_ms": 0.5,
    }
    with catlog.open(tmp_path / "given", **given) as store:  # type: ignore[arg-type]
        assert {name: getattr(store, name) for name in given} == given
        assert store.path == str(tmp_path / "given")
    with catlog.open(str(tmp_path / "defaults"), segment_size=4096) as store:
        assert (store.fsync, store.compact_threshold) == ("always", None)
        assert store.compact_max_bytes == 16 * 4096  # ENG-73: 16 segments, at most 256 MiB
        assert store.max_open_files == default_max_open_files()


@pytest.mark.spec("ENG-105", "ENG-14")
def test_under_always_no_flusher_thread_runs(data_dir: str) -> None:
    with catlog.open(data_dir, fsync="always"):
        names = [thread.name for thread in threading.enumerate()]
        assert f"catlog-flush {data_dir}" not in names
