"""The store façade over the writer: what it keeps of its arguments, the threads it starts, the
keys it accepts, and the stores it closes at exit, each checked where a survivor of mutation
testing (tests/MUTANTS.md, issue 15) showed no test looked."""

from __future__ import annotations

import threading

import pytest

import catlog


@pytest.mark.spec("ENG-116", "ENG-25")
def test_a_store_keeps_the_arguments_it_was_opened_with(data_dir: str) -> None:
    options = {
        "fsync": "never",
        "segment_size": 4096,
        "fsync_interval_ms": 250,
        "hints": True,
        "compact_threshold": 0.25,
        "compact_max_bytes": 12_345,
        "max_segments": 64,
        "max_open_files": 7,
        "compaction_yield_ms": 2.5,
    }
    with catlog.open(data_dir, **options) as store:  # type: ignore[arg-type]
        kept = {name: getattr(store, name) for name in options}
        assert (store.path, kept) == (data_dir, options)


@pytest.mark.spec("ENG-117", "ENG-15")
def test_under_always_no_flusher_thread_runs(data_dir: str) -> None:
    flusher = f"catlog-flush {data_dir}"
    with catlog.open(data_dir, fsync="always") as store:
        store.put(b"k", b"v")
        assert flusher not in [thread.name for thread in threading.enumerate()]


@pytest.mark.spec("ENG-52", "ENG-2")
def test_get_many_takes_bytes_like_keys_as_get_does(data_dir: str) -> None:
    with catlog.open(data_dir, fsync="never") as store:
        store.put(b"k", b"v")
        keys: list[object] = [bytearray(b"k"), memoryview(b"k"), b"k", bytearray(b"x")]
        assert store.get_many(keys) == [b"v", b"v", b"v", None]  # type: ignore[arg-type]
        assert [store.get(key) for key in keys] == [b"v", b"v", b"v", None]  # type: ignore[arg-type]
        with pytest.raises(catlog.InvalidTypeError, match=r"^keys must be bytes, not str$"):
            store.get_many(["k"])  # type: ignore[list-item]
