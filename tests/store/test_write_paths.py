"""Each path a plain write takes through the writer keeps the same promises.

A plain put appends inline when its record fits the active segment and through the general
append when it rotates; a group of puts appends one buffer when it fits and record by record
when it does not. The paths repeat each other's steps for speed (the fill and server
benchmarks), so each is checked here on its own: forgetting expired keys (ENG-61) once, at the
call's one clock reading, counting no stall without a compaction (ENG-98), and naming the store
when its close overtakes a call (ENG-19). Forgetting is observed through ``stats().dead_bytes``,
to which each forgotten record adds its size (ENG-63) and nothing else here adds.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass

import pytest

import catlog
from catlog.clock import ManualClock
from catlog.codec import EXPIRY_SIZE, RECORD_HEADER_SIZE, SEGMENT_HEADER_SIZE
from catlog.fs import File
from tests.passthrough_fs import PassThroughFile, PassThroughFileSystem

SEGMENT = 4096
EXPIRING = 100
EXPIRING_RECORD = RECORD_HEADER_SIZE + len(b"x000") + len(b"v") + EXPIRY_SIZE


class MovesAfterOneReading(ManualClock):
    """A :class:`ManualClock` that, once :meth:`arm` ed, moves on by a second right after its
    next wall-clock reading: a call that read the clock twice would see two instants."""

    armed = False

    def arm(self) -> None:
        self.armed = True

    def now_ms(self) -> int:
        now = super().now_ms()
        if self.armed:
            self.armed = False
            self.advance(1)
        return now


def _expiring(store: catlog.Store, clock: ManualClock) -> int:
    """``EXPIRING`` keys expired a second ago; returns the dead bytes before any is forgotten."""
    later = clock.now_ms() + 1000
    for i in range(EXPIRING):
        store.put_nowait(b"x%03d" % i, b"v", expires_at_ms=later)
    clock.advance(2)
    return store.stats().dead_bytes


def _forgotten(store: catlog.Store, dead_before: int) -> int:
    grown = store.stats().dead_bytes - dead_before
    assert grown % EXPIRING_RECORD == 0, "only expired records were added to the estimate"
    return grown // EXPIRING_RECORD


def _put_fitting(store: catlog.Store) -> None:
    store.put(b"new", b"v")


def _put_rotating(store: catlog.Store) -> None:
    store.put(b"new", b"v" * (SEGMENT - 100))


def _put_many_fitting(store: catlog.Store) -> None:
    store.put_many_nowait([(b"n1", b"v"), (b"n2", b"v")])


def _put_many_rotating(store: catlog.Store) -> None:
    store.put_many_nowait([(b"n1", b"v" * (SEGMENT // 2)), (b"n2", b"v" * (SEGMENT // 2))])


WRITES: dict[str, tuple[Callable[[catlog.Store], None], bool]] = {
    "put": (_put_fitting, False),
    "put that rotates": (_put_rotating, True),
    "put_many_nowait": (_put_many_fitting, False),
    "put_many_nowait that rotates": (_put_many_rotating, True),
}
"""Each plain write path, and whether it rotates."""


@pytest.mark.spec("ENG-61", "ENG-63", "ENG-98")
@pytest.mark.parametrize("path", list(WRITES))
def test_each_plain_write_path_forgets_20_expired_keys_and_stalls_for_no_compaction(
    data_dir: str, path: str
) -> None:
    write, rotates = WRITES[path]
    clock = ManualClock()
    with catlog.open(data_dir, fsync="never", clock=clock, segment_size=SEGMENT) as store:
        dead = _expiring(store, clock)
        segments = store.stats().segments
        write(store)
        assert (store.stats().segments > segments) == rotates
        assert _forgotten(store, dead) == 20, "ENG-61: a write forgets 20 expired keys"
        assert store.stats().write_stalls == 0, "ENG-98: no compaction runs, nobody waits"
        store._check_invariants()


@pytest.mark.spec("ENG-61")
@pytest.mark.parametrize("path", ["expiring put", "put that fills its segment exactly"])
def test_a_write_judges_expiry_at_its_one_clock_reading(data_dir: str, path: str) -> None:
    """The key expiring at the write's own reading is not yet expired then (ENG-34): a write
    that read the clock again, a second later, to forget expired keys would forget it."""
    clock = MovesAfterOneReading()
    with catlog.open(data_dir, fsync="never", clock=clock, segment_size=SEGMENT) as store:
        store.put_nowait(b"x", b"v", expires_at_ms=clock.now_ms())
        dead = store.stats().dead_bytes
        later = clock.now_ms() + 10_000
        clock.arm()
        if path == "expiring put":
            store.put_nowait(b"y", b"v", expires_at_ms=later)
        else:
            used = SEGMENT_HEADER_SIZE + RECORD_HEADER_SIZE + len(b"xv") + EXPIRY_SIZE
            fill = SEGMENT - used - RECORD_HEADER_SIZE - len(b"y")
            store.put_nowait(b"y", b"v" * fill)
            assert store.stats().segments == 1, "the put filled the segment without rotating"
        assert not clock.armed, "the write read the clock"
        assert store.stats().dead_bytes == dead, "the write forgot the key expiring at its reading"


@dataclass
class ClosesBeforeARead(PassThroughFileSystem):
    """A file system whose next positional read, once ``store`` is set, first closes that store
    and then fails as a read of a closed descriptor does (EBADF)."""

    store: catlog.Store | None = None

    def wrap(self, file: File) -> File:
        return _ClosingFile(file, self)


class _ClosingFile(PassThroughFile):
    def __init__(self, inner: File, fs: ClosesBeforeARead) -> None:
        super().__init__(inner)
        self._fs = fs

    def pread(self, size: int, offset: int) -> bytes:
        store, self._fs.store = self._fs.store, None
        if store is not None:
            store.close()
            raise OSError(errno.EBADF, "Bad file descriptor")
        return self._inner.pread(size, offset)


@pytest.mark.spec("ENG-19", "ENG-38")
def test_a_snapshot_read_that_a_close_overtakes_names_the_closed_store(data_dir: str) -> None:
    fs = ClosesBeforeARead()
    store = catlog.open(data_dir, fs=fs, fsync="never")
    store.put(b"k", b"v")
    store.flush()
    snapshot = store.snapshot()
    fs.store = store
    with pytest.raises(catlog.StoreClosedError, match=f"^{data_dir} is closed$"):
        snapshot[b"k"]
    assert store.closed
