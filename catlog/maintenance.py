"""What keeps an open store sound, beside reading and writing it: durability, compaction, closing.

:class:`Maintenance` is the half of :class:`catlog.store.Store` a user calls to look after the
store rather than its data: make writes durable (``wait_durable``, ``sync``, ``flush`` and the
flusher's ``tick``: ENG-14 .. ENG-17, ENG-29), compact it (ENG-39 .. ENG-42, ENG-83), close it
(ENG-18, ENG-27, ENG-46), and report on it (``stats``, ENG-26; ``_check_invariants``). The store
inherits it; :meth:`catlog.store.Store.__init__` sets the attributes it declares.

The lock order and the store's states are in :mod:`catlog.store`.
"""

from __future__ import annotations

import atexit
import logging
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Self

from .errors import CatlogError, StoreClosedError, StoreFailedError
from .index import unpack_location
from .stats import StoreStats, stats_of

if TYPE_CHECKING:
    from .commit import Flusher
    from .compaction import CompactionReport
    from .fs import FileLock
    from .opening import TailRepair
    from .segment import Segment
    from .writer import Writer

log = logging.getLogger("catlog")

open_stores: weakref.WeakValueDictionary[int, Maintenance] = weakref.WeakValueDictionary()
"""Stores not yet closed, by id: a Store is a mapping, so it is not hashable itself."""


@atexit.register
def _close_open_stores() -> None:
    """ENG-27: at a normal interpreter exit, close (so flush and fsync) every store left open."""
    for store in list(open_stores.values()):
        try:
            store.close()
        except CatlogError:
            log.exception("closing %s at exit failed", store.path)


class Maintenance:
    """Durability, compaction, closing and counters of an open store (see the module)."""

    path: str
    fsync_interval_ms: int
    _writer: Writer
    """The write side (:mod:`catlog.writer`); absent until the directory is locked and
    recovered, which ``__del__`` and ``closed`` allow for."""
    _dir_lock: FileLock
    _tail_repairs: tuple[TailRepair, ...]
    _flusher: Flusher | None
    _index: dict[bytes, int]
    _expires: dict[bytes, int]
    _slots: list[Segment]

    @contextmanager
    def _locked(self) -> Iterator[Writer]:
        """The writer with its lock held, if the store is not closed (ENG-19): looked at before
        waiting for the lock and again once it is held, since ``close()`` may come between."""
        writer = self._open()
        with writer.lock:
            yield self._open()

    def _open(self) -> Writer:
        """The writer, if the store is not closed (ENG-19)."""
        writer = self._writer
        if writer.closed:
            raise StoreClosedError(f"{self.path} is closed")
        return writer

    # ----------------------------------------------------------------------------- durability

    def wait_durable(self, ticket: int) -> None:
        """ENG-14, ENG-29: return once the write with ``ticket`` is durable and has taken effect.

        Under ``interval`` and ``never`` a write is as durable as its policy promises when it
        is appended, so this returns at once. Under ``always`` it is group commit's
        (:meth:`catlog.commit.GroupCommit.wait_durable`), which the store's ``__init__`` assigns
        over this method so that a durable put pays no extra call (the durable-put benchmark).
        """
        self._open().wait_durable(ticket)

    def sync(self) -> None:
        """ENG-17: make every write so far durable, whatever the fsync policy."""
        with self._locked() as writer:
            writer.refuse_if_failed()
            writer.flush_and_sync()

    def flush(self) -> None:
        """ENG-16, ENG-17: hand buffered writes to the OS (safe from a process crash only)."""
        with self._locked() as writer:
            writer.refuse_if_failed()
            writer.flush()

    def tick(self) -> None:
        """ENG-15, ENG-16: the background flusher's step; syncs (or flushes) when one is due.
        ENG-62: it also forgets a bounded number of expired keys.

        Public so that tests driving a :class:`~catlog.clock.ManualClock` can run the step
        themselves instead of waiting for the thread.
        """
        with self._locked() as writer:
            writer.tick(self.fsync_interval_ms / 1000)

    # ----------------------------------------------------------------------------- compaction

    def compact_in_background(self) -> bool:
        """ENG-42: start a compaction in a background thread; False if one is running already."""
        with self._locked() as writer:
            if writer.compaction.running():
                return False
            writer.compaction.start(writer)
            return True

    def compact(
        self,
        progress: Callable[[int, int], None] | None = None,
        *,
        max_bytes: int | None = None,
    ) -> CompactionReport:
        """ENG-39, ENG-40: copy the live records of every segment, then remove them; with
        ``max_bytes``, of the oldest sealed segments ENG-73 chooses.

        ``progress(done, total)`` is called with input bytes read so far, for a progress bar.
        """
        if max_bytes is not None and (type(max_bytes) is not int or max_bytes <= 0):
            raise ValueError("max_bytes must be a positive int or None")
        writer = self._open()
        return writer.compaction.run(writer, progress, max_bytes)

    def wait_for_compaction(self, timeout: float | None = None) -> bool:
        """ENG-83: block until no compaction runs, so that a caller who started one in the
        background (or whose writes made one due) can act on its result; ``False`` if
        ``timeout`` seconds passed first.

        Waits in real time, not the store's clock: the compactor's progress is real work.
        """
        writer = self._open()
        deadline = None if timeout is None else time.monotonic() + timeout
        return writer.compaction.wait(writer, deadline)

    # ----------------------------------------------------------------------------- closing

    def close(self) -> None:
        """ENG-18, ENG-46: sync everything, release the directory; a second close does nothing.

        Raises :class:`StoreFailedError` if the store had failed (REC-10), even in a background
        thread: its buffered writes could not be made durable, so returning would acknowledge
        writes the disk never received (REC-20).
        """
        writer = self._writer
        with writer.compaction.lock:  # ENG-40: a running compaction finishes first
            writer.hints.stop()
            if self._flusher is not None:
                self._flusher.stop()
            writer.commits.wait_for_term()  # a term ends before the files close (ENG-59)
            with writer.lock:
                if writer.closed:
                    return
                try:
                    failure = writer.finish()
                finally:
                    open_stores.pop(id(self), None)
                    writer.segments.close_files()
                    self._dir_lock.release()
        if failure is not None:
            raise StoreFailedError(
                f"{self.path}: closed without making its buffered writes durable, because"
                f" the store had failed: {failure}",
                fsync_failed=failure.fsync_failed,
            ) from failure

    def __del__(self) -> None:
        """ENG-27: a store dropped without close() still releases its directory."""
        writer: Writer | None = getattr(self, "_writer", None)
        if writer is not None and not writer.closed:
            try:
                self.close()
            except CatlogError:
                log.exception("closing %s when it was dropped failed", self.path)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        writer: Writer | None = getattr(self, "_writer", None)
        return writer is None or writer.closed

    @property
    def failure(self) -> StoreFailedError | None:
        """ENG-47: the failure that made the store refuse writes, or ``None``."""
        return self._writer.failure

    # ----------------------------------------------------------------------------- looking in

    def stats(self) -> StoreStats:
        """A snapshot of counters for people and tests (ENG-26)."""
        with self._locked() as writer:
            return stats_of(writer, self._tail_repairs)

    def _check_invariants(self) -> None:
        """A test hook, as SQLite's pager asserts its state: raise AssertionError if the store's
        structures disagree with each other. The model tests call it after every step."""
        writer = self._writer
        with writer.lock:
            if writer.closed:
                assert isinstance(writer.refusal, StoreClosedError), "closed: refuses as closed"
                return
            assert self._index is writer.keyspace.index, "the store's index is the keyspace's"
            assert self._expires is writer.keyspace.expires, "and so are its expiries"
            assert self._slots is writer.segments.slots, "and its slots the segment set's"
            _check_writer(writer)


def _check_writer(writer: Writer) -> None:
    """The write side's invariants. Write lock held."""
    assert writer.refusal is None or writer.refusal is writer.failure, "open or failed (REC-10)"
    writer.segments.check(writer.active)
    live = {id(segment) for segment in writer.segments.order}
    for key, location in writer.index.items():
        segment = writer.segments.slots[unpack_location(location)[0]]
        assert id(segment) in live, f"ENG-55: {key!r:.40} points into a removed segment"
    writer.keyspace.check()
    slot_dead = writer.keyspace.slot_dead
    shares = sum(slot_dead[segment.slot] for segment in writer.segments.order)
    assert writer.keyspace.dead == shares, "ENG-41: the sum of the open segments' shares"
    assert sum(slot_dead) == shares, "ENG-73: a slot with no segment has no share (none is < 0)"
    tickets = [entry[0] for entry in writer.pending]
    assert tickets == sorted(tickets), "effects wait in ticket order"
    assert not tickets or writer.sync_each_write, "effects wait only under always"
    assert all(writer.commits.durable < ticket <= writer.last_ticket for ticket in tickets)
