"""A writer that outruns compaction waits for it at a rotation (ENG-98).

A parked background compaction (catlog.testing) is one that runs and makes no progress: exactly
a compaction that has fallen behind. The waits are bounded below by the 20 ms the writer gives
the compaction (a thread join with that timeout returns no sooner), which is the behaviour the
clause promises, not a measure of speed.
"""

from __future__ import annotations

import threading
import time

import pytest

import catlog
import catlog.testing
from catlog.commands import ServerInfo, Session
from catlog.protocol.replies import Verbatim

SEGMENT = 1024
VALUE = b"v" * 100


def overwrite(store: catlog.Store, rounds: int, keys: int = 4) -> None:
    """Each round overwrites ``keys`` keys: the older records become dead bytes."""
    for i in range(rounds):
        for k in range(keys):
            store.put(b"k%d" % k, VALUE + b"%06d" % i)


def rotate(store: catlog.Store) -> None:
    """Write until the store rotates once (a new active segment)."""
    before = store.stats().active_segment
    for i in range(100):
        store.put(b"rotating", VALUE + b"%03d" % i)
        if store.stats().active_segment != before:
            return
    raise AssertionError("the store did not rotate")


@pytest.mark.spec("ENG-98", "ENG-26")
def test_a_put_that_rotates_while_compaction_is_behind_waits_for_it(data_dir: str) -> None:
    started = time.monotonic()
    with catlog.open(data_dir, fsync="never", segment_size=SEGMENT, compact_threshold=0.3) as store:
        with catlog.testing.parked_background_compactions(store):
            overwrite(store, 60)  # far past the trigger: it starts one, which stays parked
            stats = store.stats()
            assert stats.compacting, "the trigger started a compaction"
            assert stats.dead_bytes >= 1.1 * 0.3 * stats.disk_bytes, "and it is behind"
            waits = stats.write_stalls
            assert waits >= 1, "a rotation already waited while the trigger's compaction ran"
            rotate(store)
            stats = store.stats()
            assert stats.write_stalls == waits + 1, "one wait for the one rotation"
            assert stats.write_stall_seconds >= 0.02 * (waits + 1), "each waited out its 20 ms"
            assert stats.write_stall_seconds <= time.monotonic() - started, "and no longer"
            store.put(b"k0", b"no rotation")
            assert store.stats().write_stalls == waits + 1, "a write that does not rotate: none"
        assert store.wait_for_compaction(timeout=30)
        assert store.get(b"k0") == b"no rotation"


@pytest.mark.spec("ENG-98")
def test_no_wait_while_the_dead_bytes_are_below_the_bound(data_dir: str) -> None:
    with catlog.open(data_dir, fsync="never", segment_size=SEGMENT, compact_threshold=0.3) as store:
        for i in range(40):
            store.put(b"live%d" % i, VALUE)  # every record live: no dead bytes
        with catlog.testing.parked_background_compactions(store):
            assert store.compact_in_background()
            rotate(store)
            rotate(store)
            stats = store.stats()
            assert stats.compacting
            assert stats.dead_bytes < 1.1 * 0.3 * stats.disk_bytes
            assert stats.write_stalls == 0
        assert store.wait_for_compaction(timeout=30)


@pytest.mark.spec("ENG-98")
def test_no_wait_without_a_compact_threshold(data_dir: str) -> None:
    with catlog.open(data_dir, fsync="never", segment_size=SEGMENT) as store:
        overwrite(store, 60)
        with catlog.testing.parked_background_compactions(store):
            assert store.compact_in_background()
            rotate(store)
            assert store.stats().write_stalls == 0
        assert store.wait_for_compaction(timeout=30)


@pytest.mark.spec("ENG-98")
def test_put_many_and_expiring_puts_wait_too(data_dir: str) -> None:
    with catlog.open(data_dir, fsync="never", segment_size=SEGMENT, compact_threshold=0.3) as store:
        with catlog.testing.parked_background_compactions(store):
            overwrite(store, 60)
            waits = store.stats().write_stalls
            before = store.stats().active_segment
            for i in range(100):
                store.put_many_nowait([(b"many", VALUE + b"%03d" % i)])
                if store.stats().active_segment != before:
                    break
            assert store.stats().write_stalls == waits + 1
            before = store.stats().active_segment
            for i in range(100):
                store.put(b"expiring", VALUE + b"%03d" % i, ttl=3600)
                if store.stats().active_segment != before:
                    break
            assert store.stats().write_stalls == waits + 2
        assert store.wait_for_compaction(timeout=30)


@pytest.mark.spec("ENG-98")
def test_writes_from_a_compaction_in_the_callers_thread_never_wait(data_dir: str) -> None:
    """Writes from compact()'s own progress callback, which rotate the store while it is far
    behind, do not wait: that compaction runs in the caller's thread, not in the background, and
    a wait for it there could only wait for itself."""
    with catlog.open(data_dir, fsync="never", segment_size=SEGMENT, compact_threshold=0.3) as store:
        with catlog.testing.parked_background_compactions(store):
            overwrite(store, 60)
        assert store.wait_for_compaction(timeout=30)
        overwrite(store, 20)
        waits = store.stats().write_stalls

        def progress(done: int, total: int) -> None:
            assert threading.current_thread() is threading.main_thread()
            for i in range(12):
                store.put(b"during", VALUE + b"%03d" % i)

        store.compact(progress)
        assert store.stats().write_stalls == waits


@pytest.mark.spec("ENG-98", "PROTO-46")
def test_info_reports_the_write_stalls(data_dir: str) -> None:
    with catlog.open(data_dir, fsync="never", segment_size=SEGMENT, compact_threshold=0.3) as store:
        session = Session(store, server=ServerInfo(fsync="never"))

        def fields() -> dict[str, str]:
            reply = session.execute([b"INFO", b"persistence"])
            assert isinstance(reply, Verbatim)
            return dict(line.partition(":")[::2] for line in reply.text.decode().split("\r\n"))

        def stalls() -> str:
            return fields()["catlog_write_stalls"]

        assert stalls() == "0"
        assert fields()["catlog_write_stall_seconds"] == "0.000"
        with catlog.testing.parked_background_compactions(store):
            overwrite(store, 60)
            stats = store.stats()
            assert stalls() == str(stats.write_stalls) != "0"
            seconds = fields()["catlog_write_stall_seconds"]
            assert seconds == f"{stats.write_stall_seconds:.3f}"
            assert float(seconds) > 0  # each wait lasted a while: compaction was parked
        assert store.wait_for_compaction(timeout=30)
