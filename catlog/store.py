"""The store: a data directory opened as a ``MutableMapping[bytes, bytes]`` (spec/engine.md).

This module is the façade a user holds; the engine is the parts it assembles, each a module:

- :mod:`catlog.options`: the settings :func:`open` takes, checked before anything is touched;
- :mod:`catlog.opening`: locking the directory and recovering what it holds (ENG-13, REC-*);
- :mod:`catlog.keyspace`: the index, the expiries and the dead bytes (ENG-11, ENG-33, ENG-41);
- :mod:`catlog.segmentset`: the segments by slot and in number order (ENG-74);
- :mod:`catlog.reading`: one read, crc-checked (ENG-12, ENG-22);
- :mod:`catlog.writer`: the write lock, appending, fsyncing, the refusal after a failure;
  :mod:`catlog.rotation`: sealing a segment and starting the next; :mod:`catlog.updates`: the
  writes that read first; :mod:`catlog.commit`: group commit;
- :mod:`catlog.compaction`, :mod:`catlog.hintwriter`, :mod:`catlog.snapshot`, :mod:`catlog.batch`
  and :mod:`catlog.transaction`;
- :mod:`catlog.maintenance`: the store's durability, compaction, closing and counters, the half
  of its API that looks after the store rather than its data (:class:`Store` inherits it).

What stays here is the data API, the read path (``get`` reads the index and one record with no
call between), and opening. The hot writes are the writer's own methods: ``__init__``
binds :meth:`Writer.put` as this store's ``put_nowait`` (and ``put_many_nowait``, and group
commit's ``wait_durable`` under "always"), so a put through the façade pays no extra call.

Locks, in the order they are taken (a thread holding one takes only those after it):

1. The compaction lock (:class:`catlog.compaction.Compaction`'s ``lock``): held for a whole
   compaction; ``close()`` takes it to wait for one.
2. The *write lock* (:attr:`catlog.writer.Writer.lock`, ENG-21): appending a record, and every
   change to the keyspace, the segment set and the refusal. Readers take no lock: a read is a
   dict lookup and one positional read, and the structures it touches are replaced whole or
   appended to, never changed in place (see :mod:`catlog.segment`).
3. The *commit mutex* (and the condition on it), held by the writer's
   :class:`catlog.commit.GroupCommit`: the group-commit state, a
   :class:`catlog.commit.CommitMachine`. The fsync itself runs with no lock held (ENG-29).
4. The file cache's lock (:class:`catlog.filecache.FileCache`): which sealed segments are open.
   Taken inside the write lock (rotation, compaction's install and removal, closing), or alone by
   a read of a segment whose file is closed (ENG-66); a read of an open one takes no lock.

Each waiter's own sleeper lock (see :meth:`catlog.commit.GroupCommit.wait_durable`) is released
by another thread and nests inside nothing. The writer's attributes say which lock guards them.

The store's states, and what each allows (the writer's ``closed`` and ``refusal``):

=============  ======================================  ===================================
state          ``closed`` / ``refusal``                reads / writes
=============  ======================================  ===================================
open           ``False`` / ``None``                    yes / yes
failed         ``False`` / a StoreFailedError          yes / raise StoreFailedError
closed         ``True`` / a StoreClosedError           raise StoreClosedError (ENG-19)
=============  ======================================  ===================================

open -> failed when a write or fsync fails (REC-10); open or failed -> closed by ``close()``, which
raises if it leaves a failed store (ENG-46). No state is left for another: a failed store is
reopened, not repaired in place (REC-11). :meth:`Store._check_invariants` (in
:mod:`catlog.maintenance`) asserts them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator, MutableMapping

from . import updates
from .arguments import check_expiry, check_key, ttl_ms
from .batch import Batch, BatchOp
from .clock import Clock, SystemClock
from .commit import Flusher
from .errors import CorruptionError, StoreClosedError
from .fs import FileSystem, OsFileSystem
from .index import MAX_SLOTS
from .keyspace import PURGE_STEP
from .maintenance import Maintenance, open_stores
from .opening import open_directory
from .options import (
    DEFAULT_COMPACTION_YIELD_MS,
    DEFAULT_FSYNC_INTERVAL_MS,
    DEFAULT_SEGMENT_SIZE,
    FsyncPolicy,
    HintMode,
    check_options,
)
from .reading import read_value
from .segment import Segment
from .snapshot import Snapshot
from .transaction import Transaction
from .writer import assemble

log = logging.getLogger("catlog")


def open(  # the public name is catlog.open, like dbm.open and shelve.open
    path: str | os.PathLike[str],
    *,
    fsync: FsyncPolicy = "always",
    segment_size: int = DEFAULT_SEGMENT_SIZE,
    fsync_interval_ms: int = DEFAULT_FSYNC_INTERVAL_MS,
    hints: HintMode = False,
    compact_threshold: float | None = None,
    compact_max_bytes: int | None = None,
    max_segments: int = MAX_SLOTS,
    fs: FileSystem | None = None,
    clock: Clock | None = None,
    max_open_files: int | None = None,
    compaction_yield_ms: float = DEFAULT_COMPACTION_YIELD_MS,
) -> Store:
    """Open (creating if needed) the store in directory ``path``; see spec/engine.md."""
    return Store(
        path,
        fsync=fsync,
        segment_size=segment_size,
        fsync_interval_ms=fsync_interval_ms,
        hints=hints,
        compact_threshold=compact_threshold,
        compact_max_bytes=compact_max_bytes,
        max_segments=max_segments,
        fs=fs,
        clock=clock,
        max_open_files=max_open_files,
        compaction_yield_ms=compaction_yield_ms,
    )


class Store(Maintenance, MutableMapping[bytes, bytes]):
    """An open data directory. Use :func:`catlog.open` to make one.

    Its data API is here; durability, compaction, closing and counters are
    :class:`catlog.maintenance.Maintenance`'s.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fsync: FsyncPolicy = "always",
        segment_size: int = DEFAULT_SEGMENT_SIZE,
        fsync_interval_ms: int = DEFAULT_FSYNC_INTERVAL_MS,
        hints: HintMode = False,
        compact_threshold: float | None = None,
        compact_max_bytes: int | None = None,
        max_segments: int = MAX_SLOTS,
        fs: FileSystem | None = None,
        clock: Clock | None = None,
        max_open_files: int | None = None,
        compaction_yield_ms: float = DEFAULT_COMPACTION_YIELD_MS,
    ) -> None:
        options = check_options(
            path,
            fsync=fsync,
            segment_size=segment_size,
            fsync_interval_ms=fsync_interval_ms,
            hints=hints,
            compact_threshold=compact_threshold,
            compact_max_bytes=compact_max_bytes,
            max_segments=max_segments,
            max_open_files=max_open_files,
            compaction_yield_ms=compaction_yield_ms,
        )
        self.path = options.path
        self.fsync = options.fsync
        self.segment_size = options.segment_size
        self.fsync_interval_ms = options.fsync_interval_ms
        self.hints = options.hints
        """ENG-30: write a hint for each segment at rotation (opening uses hints regardless)."""
        self.max_open_files = options.max_open_files
        """ENG-65: at most this many descriptors are held by open sealed segments."""
        self.compact_threshold = options.compact_threshold
        self.compact_max_bytes = options.compact_max_bytes
        """ENG-73: the bound on the input bytes of a compaction the trigger starts."""
        self.max_segments = options.max_segments
        """ENG-74: the most segments open at once; writes leave RESERVED_SLOTS to compaction."""
        self.compaction_yield_ms = options.compaction_yield_ms
        """ENG-99: a background compaction sleeps after each turn of this many ms of work."""
        fs = fs if fs is not None else OsFileSystem()
        clock = clock if clock is not None else SystemClock()
        self._now_ms = clock.now_ms
        self._sync_each_write = options.fsync == "always"

        opened = open_directory(fs, self.path, self.max_open_files)
        self._dir_lock = opened.lock
        self._tail_repairs = tuple(opened.tail_repairs)
        writer = assemble(options, fs, clock, opened)
        self._writer = writer
        # The writer's index, expiries and segments by slot, named here so that ``get`` reaches
        # them without a call (the get benchmark). Written under the write lock, read without.
        self._index = writer.index
        self._expires = writer.expires
        self._slots = writer.segments.slots
        # The hot writes, bound to the writer's own methods (see the module's docstring).
        self.put_nowait = writer.put  # type: ignore[method-assign]
        self.put_many_nowait = writer.put_many  # type: ignore[method-assign]
        if writer.sync_each_write:
            self.wait_durable = writer.commits.wait_durable  # type: ignore[method-assign]
        self._flusher = Flusher(self, fsync_interval_ms / 1000) if fsync != "always" else None
        open_stores[id(self)] = self

    def open_again(self) -> Store:
        """ENG-116: this store's directory opened anew with every setting this store was opened
        with, its file system and clock among them: how a caller goes on after a failure that
        makes reopening safe, once it has closed this store (the server does, SRV-18)."""
        writer = self._writer
        options = writer.options
        return Store(
            options.path,
            fsync=options.fsync,
            segment_size=options.segment_size,
            fsync_interval_ms=options.fsync_interval_ms,
            hints=options.hints,
            compact_threshold=options.compact_threshold,
            compact_max_bytes=options.compact_max_bytes,
            max_segments=options.max_segments,
            fs=writer.fs,
            clock=writer.clock,
            max_open_files=options.max_open_files,
            compaction_yield_ms=options.compaction_yield_ms,
        )

    @property
    def last_ticket(self) -> int:
        """The ticket of the newest record appended: records appended since open (ENG-28). The
        server reads it after each command to learn whether the command wrote, which costs less
        than wrapping every write."""
        return self._writer.last_ticket

    # ----------------------------------------------------------------------------- reading

    def get(self, key: bytes, default: bytes | None = None) -> bytes | None:  # type: ignore[override]
        """ENG-4, ENG-11, ENG-12: the newest value of ``key``: one positional read, crc-checked."""
        if type(key) is not bytes:
            key = check_key(key)
        location = self._index.get(key)
        writer = self._writer
        if location is None:
            if writer.closed:
                raise StoreClosedError(f"{self.path} is closed")
            return default
        if self._expires and writer.expired(key):
            return default
        try:
            return read_value(key, location, self._slots, writer.active)
        except (OSError, CorruptionError) as exc:
            if self._index.get(key) == location:
                error = writer.read_error(exc, location, self._slots)
                if error is exc:
                    raise
                raise error from exc
        # ENG-39: compaction moved the record (and may have closed its old segment) between
        # the index lookup and the read; the index now points at the copy.
        return self.get(key, default)

    def __getitem__(self, key: bytes) -> bytes:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        writer = self._open()
        if key not in self._index:
            return False
        return not (self._expires and writer.expired(key))

    def __len__(self) -> int:
        """ENG-6, ENG-60: the number of live keys, exact without forgetting any expired key."""
        with self._locked() as writer:
            return writer.keyspace.live_keys(self._now_ms())

    def __iter__(self) -> Iterator[bytes]:
        """ENG-7: every live key once, in no promised order, as of the moment iteration began."""
        with self._locked() as writer:
            keys = list(self._index)
            due = set(writer.keyspace.due(self._now_ms()))  # ENG-64: left out, not forgotten
            return iter([key for key in keys if key not in due] if due else keys)

    def get_many(self, keys: Iterable[bytes]) -> list[bytes | None]:
        """ENG-52: the value of each key (or ``None``), all as of one instant.

        The lookups and reads hold the write lock, under which every write takes effect, so a
        batch is seen whole or not at all; a plain ``get`` per key could see half of one.
        """
        checked = [key if type(key) is bytes else check_key(key) for key in keys]
        with self._locked() as writer:
            values: list[bytes | None] = []
            for key in checked:
                location = self._index.get(key)
                if location is None or (self._expires and writer.expired(key)):
                    values.append(None)
                    continue
                values.append(writer.read_at(key, location, self._slots))
            return values

    def _read_located(self, key: bytes, location: int, slots: list[Segment]) -> bytes:
        """ENG-38: a snapshot's read at a location it holds, in the slots it copied."""
        return self._writer.read_at(key, location, slots)

    def now_ms(self) -> int:
        """The store's clock (ENG-24) in ms since the epoch: the time expiries are judged by."""
        self._open()
        return self._now_ms()

    def expires_at(self, key: bytes) -> int | None:
        """ENG-35: when ``key`` expires, in ms since the epoch, or ``None`` if it never does.

        Raises ``KeyError`` if the key has no value (so a missing key and a key without expiry,
        which Redis's TTL tells apart as -2 and -1, are told apart here too).
        """
        key = check_key(key)
        writer = self._open()
        if key not in self._index or (self._expires and writer.expired(key)):
            raise KeyError(key)
        return self._expires.get(key)

    def snapshot(self) -> Snapshot:
        """ENG-38: a consistent, read-only view of the store as it is now, while writes go on."""
        with self._locked() as writer:
            index = dict(self._index)
            for key in writer.keyspace.due(self._now_ms()):  # ENG-64: left out, not forgotten
                del index[key]
            snapshot = Snapshot(self, index, list(self._slots))
            writer.segments.snapshots.add(snapshot)
            return snapshot

    def _snapshot_closed(self, snapshot: Snapshot) -> None:
        """ENG-40: the segments compaction removed close once no snapshot can read them."""
        writer = self._writer
        writer.segments.snapshots.discard(snapshot)
        with writer.lock:
            if not writer.closed:
                writer.segments.snapshot_closed(snapshot)

    def items(self) -> Iterator[tuple[bytes, bytes]]:  # type: ignore[override]
        """ENG-38: every live key and its value, read from one snapshot taken now."""
        return self.snapshot().items()

    def values(self) -> Iterator[bytes]:  # type: ignore[override]
        """ENG-38: every live value, read from one snapshot taken now."""
        return (value for _, value in self.snapshot().items())

    def purge_expired(self, limit: int = PURGE_STEP) -> int:
        """ENG-62: forget at most ``limit`` expired keys, soonest expiry first; returns how many.

        A step of the server's active expiry, and of :meth:`tick`; it changes no answer, since
        expired keys are neither seen nor counted (ENG-34, ENG-60), only the memory they hold
        and the dead-byte estimate (ENG-41).
        """
        with self._locked() as writer:
            return writer.keyspace.purge(self._now_ms(), limit)

    # ----------------------------------------------------------------------------- writing

    def put(
        self,
        key: bytes,
        value: bytes,
        *,
        ttl: float | None = None,
        expires_at_ms: int | None = None,
    ) -> None:
        """ENG-1, ENG-33: make ``value`` the value of ``key``; durable on return under "always".

        With ``ttl`` (seconds) or ``expires_at_ms`` (absolute) the key expires then; without,
        it never does, whatever expiry an earlier value had.
        """
        if ttl is not None:
            if expires_at_ms is not None:
                raise ValueError("give ttl or expires_at_ms, not both")
            expires_at_ms = self._now_ms() + ttl_ms(ttl)
        elif expires_at_ms is not None:
            check_expiry(expires_at_ms)
        ticket = self.put_nowait(key, value, expires_at_ms=expires_at_ms or 0)
        if self._sync_each_write:
            self.wait_durable(ticket)

    def put_nowait(self, key: bytes, value: bytes, *, expires_at_ms: int = 0) -> int:
        """ENG-28: append a PUT and return its ticket without waiting for it to be durable.

        ``expires_at_ms`` is an absolute expiry (ENG-33), 0 for none. Under ``fsync="always"``
        the write takes effect (becomes visible) when :meth:`wait_durable` of its ticket, or of a
        later one, returns. This is how the server lets many clients' writes share one fsync
        without a thread per write. (:meth:`catlog.writer.Writer.put`, bound in ``__init__``.)
        """
        return self._open().put(key, value, expires_at_ms)

    def put_many_nowait(self, pairs: Iterable[tuple[bytes, bytes]]) -> int:
        """ENG-44: append a PUT for each ``(key, value)`` pair, as :meth:`put_nowait` would;
        returns the last ticket (:meth:`catlog.writer.Writer.put_many`, bound in ``__init__``)."""
        return self._open().put_many(pairs)

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.put(key, value)

    def delete(self, key: bytes) -> bool:
        """ENG-5: remove ``key``; returns whether it was there. A missing key writes nothing."""
        return self._waited(self.delete_nowait(key))

    def __delitem__(self, key: bytes) -> None:
        if not self.delete(key):
            raise KeyError(key)

    def _waited(self, outcome: tuple[bool, int]) -> bool:
        """Wait for a conditional write's ticket (ENG-14); pass on whether it wrote.

        One that wrote nothing waits too (ENG-51): it was judged on writes that may still wait
        for their fsync, and its answer holds only once they have taken effect. With none
        waiting, the ticket is durable already and this returns at once.
        """
        wrote, ticket = outcome
        self.wait_durable(ticket)
        return wrote

    def delete_nowait(self, key: bytes) -> tuple[bool, int]:
        """ENG-28: append a DELETE if ``key`` has a value; returns that, and the ticket to wait on.

        Whether the key has a value is judged on every write appended before it (ENG-51), a PUT
        or DELETE still waiting for its fsync included. An expired key has no value (ENG-34).
        """
        return updates.delete(self._open(), key)

    def expire(self, key: bytes, ttl: float) -> bool:
        """ENG-35: make ``key`` expire ``ttl`` seconds from now; False if it has no value."""
        return self.expire_at(key, self._now_ms() + ttl_ms(ttl))

    def expire_at(self, key: bytes, expires_at_ms: int) -> bool:
        """ENG-35: make ``key`` expire at ``expires_at_ms``; False if it has no value."""
        return self._waited(self.expire_at_nowait(key, expires_at_ms))

    def expire_at_nowait(self, key: bytes, expires_at_ms: int) -> tuple[bool, int]:
        """ENG-35: rewrite ``key``'s value with a new expiry; a time already past deletes it.
        Judged, like :meth:`delete_nowait`, on every write appended before it."""
        return updates.expire_at(self._open(), key, expires_at_ms)

    def persist(self, key: bytes) -> bool:
        """ENG-36: make ``key`` never expire; True if it had an expiry to remove."""
        return self._waited(self.persist_nowait(key))

    def persist_nowait(self, key: bytes) -> tuple[bool, int]:
        """ENG-36: rewrite ``key``'s value as a plain PUT if it has an expiry."""
        return updates.persist(self._open(), key)

    def modify(self, key: bytes, change: Callable[[bytes | None], bytes | None]) -> bytes | None:
        """ENG-80: replace ``key``'s value with ``change(value)`` as one step; returns the value
        written, or ``None`` if ``change`` returned ``None`` and nothing was written. Durable
        on return under "always" (ENG-81)."""
        written, ticket = self.modify_nowait(key, change)
        if self._sync_each_write:
            self.wait_durable(ticket)
        return written

    def modify_nowait(
        self, key: bytes, change: Callable[[bytes | None], bytes | None]
    ) -> tuple[bytes | None, int]:
        """ENG-80, ENG-81: :meth:`modify` without the wait (:func:`catlog.updates.modify`)."""
        return updates.modify(self._open(), key, change)

    def modify_many_nowait(
        self, changes: Iterable[tuple[bytes, Callable[[bytes | None], bytes | None]]]
    ) -> tuple[list[bytes | Exception | None], int]:
        """ENG-90, ENG-91: :meth:`modify_nowait` for each ``(key, change)`` in order, under one
        hold of the write lock (:func:`catlog.updates.modify_many`); returns each one's outcome
        (the value written, ``None``, or the exception it met) and the newest ticket."""
        return updates.modify_many(self._open(), changes)

    def write_batch(self, ops: Iterable[BatchOp]) -> None:
        """ENG-37: apply every operation of ``ops`` in order, all or nothing, even across a crash.

        Each operation is ``("put", key, value)``, ``("put", key, value, ttl_seconds)`` or
        ``("delete", key)``. Durable on return under ``fsync="always"``. An empty batch writes
        nothing.
        """
        ticket = self.write_batch_nowait(ops)
        if self._sync_each_write:
            self.wait_durable(ticket)

    def write_batch_nowait(self, ops: Iterable[BatchOp]) -> int:
        """ENG-37: append one batch record (FMT-22) and return its ticket."""
        return updates.write_batch(self._open(), ops)

    def batch(self) -> Batch:
        """ENG-37: ``with store.batch() as b: b.put(k, v); b.delete(k2)`` writes one batch."""
        self._open()
        return Batch(self)

    def transaction(self, *, wait: bool = True) -> Transaction:
        """ENG-54: ``with store.transaction() as tx:`` reads and writes keys as one step.

        The block holds the store's write lock: no other write is appended while it runs, and
        its reads see every write appended before it (ENG-51). Its writes are appended as one
        batch when the block ends without an exception (nothing, if it wrote nothing), and,
        under "always" and with ``wait``, the block returns once that batch is durable; with
        ``wait=False`` the caller waits on ``tx.ticket`` itself (the server does). Inside the
        block use only ``tx``: the store's own writing methods would wait for the block to end.
        """
        return Transaction(self._open(), wait=wait)

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{len(self._index)} keys"
        return f"<catlog.Store {self.path!r} fsync={self.fsync} {state}>"
