"""The store: a data directory opened as a ``MutableMapping[bytes, bytes]`` (spec/engine.md).

Everything else is a part this module assembles: the codec encodes records, segments hold them,
the index finds them, the recovery module judges what start-up found on disk, and the file system
and clock come in from the caller (ENG-23, ENG-24).

The parts it delegates to, each a module of its own: :mod:`catlog.opening` (opening a directory),
:mod:`catlog.reading` (one read), :mod:`catlog.keyspace` (the index, the expiries, the dead bytes
and forgetting expired keys), :mod:`catlog.hintwriter`, :mod:`catlog.compaction`,
:mod:`catlog.snapshot`, :mod:`catlog.batch` and :mod:`catlog.transaction`, and group commit,
its state and the driver that runs it from the writers' threads, with the interval flusher's
loop, :mod:`catlog.commit`. What stays here is the mapping API, the writes and their effects on
the index, the fsync policies, and closing.

Locks, in the order they are taken (a thread holding one takes only those after it):

1. ``_compaction.lock`` (:class:`catlog.compaction.Compaction`): held for a whole compaction;
   ``close()`` takes it to wait for one.
2. ``_lock``, the *write lock* (ENG-21): appending a record, and every change to the keyspace
   (the index, the expiries and the dead-byte count: :mod:`catlog.keyspace`), the segment lists
   and the refusal. Readers take no lock: a read is a dict lookup and one positional read, and
   the structures it touches are replaced whole or appended to, never changed in place (see
   :mod:`catlog.segment`).
3. The *commit mutex* (and the condition on it), held by ``_commits``
   (:class:`catlog.commit.GroupCommit`): the group-commit state, a
   :class:`catlog.commit.CommitMachine`. The fsync itself runs with no lock held (ENG-29).
4. ``_files``' lock (:class:`catlog.filecache.FileCache`): which sealed segments are open. Taken
   inside ``_lock`` (rotation, compaction's install and removal, closing), or alone by a read of
   a segment whose file is closed (ENG-66); a read of an open one takes no lock.

Each waiter's own sleeper lock (see :meth:`catlog.commit.GroupCommit.wait_durable`) is released
by another thread and nests inside nothing. The attributes below say which lock guards them
("lock:" in their docstrings).

The store's states, and what each allows:

=============  ======================================  ===================================
state          ``_closed`` / ``_refusal``              reads / writes
=============  ======================================  ===================================
open           ``False`` / ``None``                    yes / yes
failed         ``False`` / a StoreFailedError          yes / raise StoreFailedError
closed         ``True`` / a StoreClosedError           raise StoreClosedError (ENG-19)
=============  ======================================  ===================================

open -> failed when a write or fsync fails (REC-10); open or failed -> closed by ``close()``, which
raises if it leaves a failed store (ENG-46). No state is left for another: a failed store is
reopened, not repaired in place (REC-11).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from dataclasses import dataclass
from typing import Final, Literal, get_args

from crc32c import crc32c

from .arguments import check_expiry, check_key, check_value, ttl_ms
from .batch import Batch, BatchOp, Effect, Write, encode_ops, encode_writes
from .clock import Clock, SystemClock
from .codec import (
    BODY_HEADER,
    CRC_FIELD,
    EXPIRY_SIZE,
    MAX_EXPIRING_VALUE_SIZE,
    MAX_KEY_SIZE,
    MAX_VALUE_SIZE,
    RECORD_HEADER_SIZE,
    SEGMENT_HEADER_SIZE,
    RecordType,
    encode_batch,
    encode_record,
)
from .commit import GroupCommit, flush_in_background, weakly
from .compaction import RESERVED_SLOTS, Compaction, CompactionReport, default_max_bytes
from .errors import (
    CatlogError,
    CorruptionError,
    StoreClosedError,
    StoreFailedError,
    fresh_copy,
)
from .filecache import default_max_open_files
from .fs import File, FileSystem, OsFileSystem
from .hint import hint_name
from .hintwriter import HintWriter
from .index import (
    LARGE_VALUE,
    LEN_BITS,
    MAX_SEGMENT_SIZE,
    MAX_SLOTS,
    SLOT_SHIFT,
    live_expiries,
    pack_location,
    unpack_location,
)
from .keyspace import PURGE_STEP, WRITE_PURGE, Keyspace, dead_size
from .opening import TailRepair, open_directory
from .reading import read_failed, read_value
from .segment import (
    ActiveSegment,
    Segment,
    segment_name,
)
from .snapshot import Snapshot
from .transaction import Transaction

log = logging.getLogger("catlog")


FsyncPolicy = Literal["always", "interval", "never"]
HintMode = bool | Literal["background"]
"""ENG-30, ENG-43: no hints at rotation, hints in the rotating call, or in a background thread."""
FSYNC_POLICIES: Final = get_args(FsyncPolicy)

DEFAULT_SEGMENT_SIZE: Final = 64 * 1024 * 1024
"""ENG-9: a new segment is started once the active one would grow past this many bytes."""
MIN_SEGMENT_SIZE: Final = 64
DEFAULT_FSYNC_INTERVAL_MS: Final = 1000
_PUT: Final = int(RecordType.PUT)
_DELETE: Final = int(RecordType.DELETE)
_PUT_EXPIRING: Final = int(RecordType.PUT_EXPIRING)


@dataclass(frozen=True, slots=True)
class StoreStats:
    keys: int
    segments: int
    active_segment: str
    disk_bytes: int
    unflushed_bytes: int
    tail_repairs: tuple[TailRepair, ...]
    expiring_keys: int = 0
    dead_bytes: int = 0
    """ENG-41: the estimate of bytes on disk that compaction would reclaim."""
    compacting: bool = False
    """ENG-42: whether a compaction is running."""
    compaction_error: str | None = None
    """ENG-57: why the last compaction failed, or ``None`` if it did not."""
    client_bytes: int = 0
    """ENG-77: bytes of records appended to the active segment since open."""
    compaction_bytes: int = 0
    """ENG-77: bytes appended to compaction outputs since open."""
    write_amplification: float = 0.0
    """ENG-77: ``compaction_bytes / client_bytes``, 0 before any client write."""


_open_stores: weakref.WeakValueDictionary[int, Store] = weakref.WeakValueDictionary()
"""Stores not yet closed, by id: a Store is a mapping, so it is not hashable itself."""


@atexit.register
def _close_open_stores() -> None:
    """ENG-27: at a normal interpreter exit, close (so flush and fsync) every store left open."""
    for store in list(_open_stores.values()):
        try:
            store.close()
        except CatlogError:
            log.exception("closing %s at exit failed", store.path)


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
    )


class Store(MutableMapping[bytes, bytes]):
    """An open data directory. Use :func:`catlog.open` to make one."""

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
    ) -> None:
        if not (hints is False or hints is True or hints == "background"):  # ENG-25: not 1
            raise ValueError(f"hints must be False, True or 'background', not {hints!r}")
        if compact_threshold is not None and not 0 < compact_threshold < 1:
            raise ValueError("compact_threshold must be between 0 and 1 (exclusive), or None")
        if fsync not in FSYNC_POLICIES:
            raise ValueError(f"fsync must be one of {', '.join(FSYNC_POLICIES)}, not {fsync!r}")
        if not MIN_SEGMENT_SIZE <= segment_size <= MAX_SEGMENT_SIZE:
            raise ValueError(
                f"segment_size must be between {MIN_SEGMENT_SIZE} and {MAX_SEGMENT_SIZE} bytes"
            )
        if fsync_interval_ms <= 0:
            raise ValueError("fsync_interval_ms must be positive")
        if max_open_files is not None and max_open_files < 1:
            raise ValueError("max_open_files must be at least 1, or None for the default")
        if compact_max_bytes is None:
            compact_max_bytes = default_max_bytes(segment_size)
        if type(compact_max_bytes) is not int or compact_max_bytes <= 0:
            raise ValueError("compact_max_bytes must be a positive int or None")
        if type(max_segments) is not int or not 2 * RESERVED_SLOTS <= max_segments <= MAX_SLOTS:
            raise ValueError(f"max_segments must be between {2 * RESERVED_SLOTS} and {MAX_SLOTS}")
        directory: object = os.fspath(path)  # a bytes path passes the type checker's view
        if not isinstance(directory, str):
            kind = type(directory).__name__
            raise TypeError(f"path must be a str or an os.PathLike of str, not {kind}")
        self.path = directory.rstrip("/") or "/"
        self.fsync: Final = fsync
        self.segment_size: Final = segment_size
        self.fsync_interval_ms: Final = fsync_interval_ms
        self.hints: Final = hints
        """ENG-30: write a hint for each segment at rotation (opening uses hints regardless)."""
        self.max_open_files: Final = (
            default_max_open_files() if max_open_files is None else max_open_files
        )
        """ENG-65: at most this many descriptors are held by open sealed segments."""
        self._fs: Final = fs if fs is not None else OsFileSystem()
        self._clock: Final = clock if clock is not None else SystemClock()
        self._now_ms = self._clock.now_ms
        self._sync_each_write: Final = fsync == "always"
        self._lock = threading.Lock()
        """The write lock (see the module's docstring for the lock order)."""
        self._keyspace = Keyspace({}, {})
        """ENG-13, ENG-33, ENG-41, ENG-60: the index, the expiries and the dead bytes
        (:mod:`catlog.keyspace`). Lock: ``_lock``."""
        self._index = self._keyspace.index
        """The keyspace's own index dict, named here so that ``get`` and the writes reach it
        without a call (the get and fill benchmarks). Lock: written under ``_lock``, read
        without it."""
        self._expires = self._keyspace.expires
        """The keyspace's expiries dict, named here as ``_index`` is. Lock: as ``_index``."""
        self._slots: list[Segment] = []
        """Segments by slot, the number the index packs (catlog.index); a slot whose segment
        compaction removed keeps the old object until :meth:`_new_slot` hands it out again.
        Lock: written under ``_lock``, read without it."""
        self._order: list[Segment] = []
        """The segments that exist, in number order (FMT-13), the active one last. Lock:
        ``_lock`` (the hint writer's membership test reads it without)."""
        self._free_slots: list[int] = []
        """Slots compaction freed. Lock: ``_lock``."""
        self._retired: list[Segment] = []
        """Removed by compaction but still open, for the snapshots that may read them. Lock:
        ``_lock``."""
        self._snapshots: weakref.WeakSet[Snapshot] = weakref.WeakSet()
        self.compact_threshold: Final = compact_threshold
        self.compact_max_bytes: Final = compact_max_bytes
        """ENG-73: the bound on the input bytes of a compaction the trigger starts."""
        self.max_segments: Final = max_segments
        """ENG-74: the most segments open at once; writes leave RESERVED_SLOTS to compaction."""
        self._slot_dead = self._keyspace.slot_dead
        """ENG-73: the dead bytes of ENG-41's estimate that lie in each slot's segment (the
        keyspace's own list, by the name compaction reads). Lock: ``_lock``."""
        self._client_bytes = 0
        """ENG-77: bytes appended to segments sealed since open, less where each was at open."""
        self._hints = HintWriter(self._fs, self.path, self._order.__contains__)
        self._compaction = Compaction()
        self._refusal: CatlogError | None = None
        """Why writes are refused: the failure (REC-10), or StoreClosedError once closed."""
        self._failure: StoreFailedError | None = None
        """ENG-47: the failure that made the store refuse writes; kept after close."""
        self._closed = True  # until the directory is locked and recovered
        self._unsynced = False
        self._last_sync = self._clock.monotonic()
        self.last_ticket = 0
        """The ticket of the newest record appended: records appended since open (ENG-28).
        Read it, never write it; the server reads it after each command to learn whether the
        command wrote, which costs less than wrapping every write."""
        self._pending: list[tuple[int, bytes, int | None, int]] = []
        """Under always: (ticket, key, location or None for a delete, expiry or 0), not yet
        durable. The members of a batch share one ticket, so they take effect together. The
        same list is ``_commits``', which applies and drops them once durable. Lock: ``_lock``."""
        self._commits = GroupCommit(
            self._lock,
            self._pending,
            flush=weakly(Store._begin_commit, self),
            fail=weakly(Store._fsync_failed, self),
            apply=weakly(Store._apply_durable, self),
        )
        """Group commit's driver and state (:class:`catlog.commit.GroupCommit`), which holds
        the commit mutex. Lock: its own."""
        if self._sync_each_write:
            # The durable-put benchmark's every put pays for Store.wait_durable's call otherwise.
            self.wait_durable = self._commits.wait_durable  # type: ignore[method-assign]

        opened = open_directory(self._fs, self.path, self.max_open_files)
        self._files = opened.files
        self._dir_lock = opened.lock
        self._slots = opened.slots
        self._order[:] = opened.slots  # in place: the hint writer holds the list
        self._active = opened.active
        self._tail_repairs = opened.tail_repairs
        self._active_start = self._active.end
        try:
            keyspace = Keyspace(opened.index, live_expiries(opened.index, opened.expiring))
            self._keyspace = keyspace
            self._index = keyspace.index
            self._expires = keyspace.expires
            self._slot_dead = keyspace.slot_dead
            if compact_threshold is not None:
                keyspace.purge(self._now_ms(), len(keyspace.expires))  # ENG-61: all, at open
                headers = SEGMENT_HEADER_SIZE * len(self._order)
                keyspace.dead = max(0, self._disk_bytes() - headers - keyspace.live_bytes())
                self._count_dead_by_slot()
        except BaseException:
            self._close_files()
            self._dir_lock.release()
            raise
        self._stop_flusher = threading.Event()
        self._flusher: threading.Thread | None = None
        if fsync != "always":
            self._flusher = threading.Thread(
                target=flush_in_background,
                args=(weakref.ref(self), self._stop_flusher, fsync_interval_ms / 1000),
                name=f"catlog-flush {self.path}",
                daemon=True,
            )
            self._flusher.start()
        self._closed = False
        _open_stores[id(self)] = self

    def _count_dead_by_slot(self) -> None:
        """ENG-73: at open, each segment's dead bytes are its bytes less its live records'."""
        live = [0] * len(self._slots)
        for key, location in self._index.items():
            live[unpack_location(location)[0]] += dead_size(len(key), location)
        for segment in self._order:
            size = segment.size() - SEGMENT_HEADER_SIZE
            self._slot_dead[segment.slot] = max(0, size - live[segment.slot])

    def _disk_bytes(self) -> int:
        return sum(segment.size() for segment in self._order)

    def _slots_in_use(self) -> int:
        """ENG-74: the segments open, compaction outputs not yet installed included."""
        return len(self._slots) - len(self._free_slots)

    def _write_hint(self, segment: Segment) -> None:
        """ENG-30, ENG-31: write the hint of a segment that just stopped being active.

        Called at rotation, after the segment was fsynced and before its successor is created:
        that creation fsyncs the directory (ENG-10), which makes the rename below durable too.
        A failing call here is a failing disk like any other (REC-10): the store stops writing,
        and the write that caused the rotation, not yet appended, is not acknowledged.
        """
        try:
            self._hints.write(segment.number, segment.file.pread(segment.size(), 0))
        except OSError as exc:
            raise self._fail(f"writing the hint {hint_name(segment.number)}", exc) from exc

    # ----------------------------------------------------------------------------- reading

    def get(self, key: bytes, default: bytes | None = None) -> bytes | None:  # type: ignore[override]
        """ENG-4, ENG-11, ENG-12: the newest value of ``key``: one positional read, crc-checked."""
        if type(key) is not bytes:
            key = check_key(key)
        location = self._index.get(key)
        if location is None:
            if self._closed:
                raise StoreClosedError(f"{self.path} is closed")
            return default
        if self._expires and self._expired(key):
            return default
        try:
            return read_value(key, location, self._slots, self._active)
        except (OSError, CorruptionError) as exc:
            if self._index.get(key) == location:
                error = self._read_error(exc, location, self._slots)
                if error is exc:
                    raise
                raise error from exc
        # ENG-39: compaction moved the record (and may have closed its old segment) between
        # the index lookup and the read; the index now points at the copy.
        return self.get(key, default)

    def _read_error(
        self, exc: OSError | CorruptionError, location: int, slots: list[Segment]
    ) -> CatlogError:
        """ENG-19, ENG-22: a failed read as the caller sees it: the store was closed under it,
        the bytes are damaged, or the operating system failed the read."""
        if self._closed:
            return StoreClosedError(f"{self.path} is closed")
        if isinstance(exc, CatlogError):
            return exc
        return read_failed(location, slots, exc)

    def _expired(self, key: bytes) -> bool:
        """ENG-34: whether ``key``'s expiry has passed (it expires once the clock is past it)."""
        expires_at = self._expires.get(key)
        return expires_at is not None and self._now_ms() > expires_at

    def __getitem__(self, key: bytes) -> bytes:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        if self._closed:
            raise StoreClosedError(f"{self.path} is closed")
        if key not in self._index:
            return False
        return not (self._expires and self._expired(key))

    def __len__(self) -> int:
        """ENG-6, ENG-60: the number of live keys, exact without forgetting any expired key."""
        with self._lock:
            if self._closed:
                raise StoreClosedError(f"{self.path} is closed")
            return self._keyspace.live_keys(self._now_ms())

    def __iter__(self) -> Iterator[bytes]:
        """ENG-7: every live key once, in no promised order, as of the moment iteration began."""
        with self._lock:
            if self._closed:
                raise StoreClosedError(f"{self.path} is closed")
            keys = list(self._index)
            due = set(self._keyspace.due(self._now_ms()))  # ENG-64: left out, not forgotten
            return iter([key for key in keys if key not in due] if due else keys)

    def purge_expired(self, limit: int = PURGE_STEP) -> int:
        """ENG-62: forget at most ``limit`` expired keys, soonest expiry first; returns how many.

        A step of the server's active expiry, and of :meth:`tick`; it changes no answer, since
        expired keys are neither seen nor counted (ENG-34, ENG-60), only the memory they hold
        and the dead-byte estimate (ENG-41).
        """
        with self._lock:
            if self._closed:
                raise StoreClosedError(f"{self.path} is closed")
            return self._keyspace.purge(self._now_ms(), limit)

    @property
    def _dead(self) -> int:
        """ENG-41: the keyspace's dead-byte estimate, by the name compaction reads. Lock held."""
        return self._keyspace.dead

    @_dead.setter
    def _dead(self, value: int) -> None:
        self._keyspace.dead = value

    def now_ms(self) -> int:
        """The store's clock (ENG-24) in ms since the epoch: the time expiries are judged by."""
        if self._closed:
            raise StoreClosedError(f"{self.path} is closed")  # ENG-19
        return self._now_ms()

    def expires_at(self, key: bytes) -> int | None:
        """ENG-35: when ``key`` expires, in ms since the epoch, or ``None`` if it never does.

        Raises ``KeyError`` if the key has no value (so a missing key and a key without expiry,
        which Redis's TTL tells apart as -2 and -1, are told apart here too).
        """
        key = check_key(key)
        if self._closed:
            raise StoreClosedError(f"{self.path} is closed")
        if key not in self._index or (self._expires and self._expired(key)):
            raise KeyError(key)
        return self._expires.get(key)

    def snapshot(self) -> Snapshot:
        """ENG-38: a consistent, read-only view of the store as it is now, while writes go on."""
        with self._lock:
            if self._closed:
                raise StoreClosedError(f"{self.path} is closed")
            index = dict(self._index)
            for key in self._keyspace.due(self._now_ms()):  # ENG-64: left out, not forgotten
                del index[key]
            snapshot = Snapshot(self, index, list(self._slots))
            self._snapshots.add(snapshot)
            return snapshot

    def items(self) -> Iterator[tuple[bytes, bytes]]:  # type: ignore[override]
        """ENG-38: every live key and its value, read from one snapshot taken now."""
        return self.snapshot().items()

    def values(self) -> Iterator[bytes]:  # type: ignore[override]
        """ENG-38: every live value, read from one snapshot taken now."""
        return (value for _, value in self.snapshot().items())

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
        later one, returns. This is how the server
        lets many clients' writes share one fsync without a thread per write.

        The hot path of both the fill benchmark and the server's SET: each length is taken once
        and the record is encoded here, sparing the calls.
        """
        if expires_at_ms:
            return self._put_expiring(key, value, expires_at_ms)
        if type(key) is not bytes:
            key = check_key(key)
        if type(value) is not bytes:
            value = check_value(value)
        key_len = len(key)
        value_len = len(value)
        if key_len > MAX_KEY_SIZE or value_len > MAX_VALUE_SIZE:
            check_key(key)
            check_value(value)
        now = self._now_ms()
        body = BODY_HEADER.pack(_PUT, now, key_len, value_len) + key + value
        record = CRC_FIELD.pack(crc32c(body)) + body
        with self._lock:
            active = self._active
            if self._refusal is not None or active.end + len(record) > self.segment_size:
                location = self._append(record, value_len)  # refuses, or rotates first
            else:
                # _append's common case, inline: the server benchmark showed its call.
                try:
                    offset = active.append(record)
                except OSError as exc:
                    raise self._fail("write", exc) from exc
                self.last_ticket += 1
                self._unsynced = True
                # inline pack_location: the fill benchmark's every put pays for a call otherwise.
                location = (
                    (active.slot << SLOT_SHIFT)
                    | (offset << LEN_BITS)
                    | (value_len if value_len < LARGE_VALUE else LARGE_VALUE)
                )
            expires = self._expires
            if self._sync_each_write:
                self._pending.append((self.last_ticket, key, location, 0))
            else:
                index = self._index
                old = index.get(key)
                index[key] = location
                if old is not None:
                    self._keyspace.kill(key_len, old)
                if expires and key in expires:
                    self._keyspace.clear_expiry(key)
            if expires and self._keyspace.order.soonest < now:
                self._keyspace.purge(now, WRITE_PURGE)  # ENG-61
            return self.last_ticket

    def put_many_nowait(self, pairs: Iterable[tuple[bytes, bytes]]) -> int:
        """ENG-44: append a PUT for each ``(key, value)`` pair, as :meth:`put_nowait` would;
        returns the last ticket.

        One clock reading, one encoding loop outside the lock, and one lock, one buffer append
        and one index loop for the group, for the server benchmark's pipelines (SRV-11).
        """
        now = self._now_ms()
        pack = BODY_HEADER.pack
        crc_field = CRC_FIELD.pack
        keys: list[bytes] = []
        records: list[bytes] = []
        for given_key, given_value in pairs:
            key = given_key
            if type(key) is not bytes or len(key) > MAX_KEY_SIZE:
                key = check_key(key)
            value = given_value
            if type(value) is not bytes or len(value) > MAX_VALUE_SIZE:
                value = check_value(value)
            body = pack(_PUT, now, len(key), len(value)) + key + value
            records.append(crc_field(crc32c(body)) + body)
            keys.append(key)
        if not records:
            with self._lock:
                if self._refusal is not None:
                    raise self._refused()  # ENG-19, ENG-44: refused even with nothing to append
                return self.last_ticket
        data = b"".join(records)
        with self._lock:
            active = self._active
            if self._refusal is not None or active.end + len(data) > self.segment_size:
                # One at a time: _append refuses, or rotates where a record would not fit.
                for key, record in zip(keys, records, strict=True):
                    value_len = len(record) - RECORD_HEADER_SIZE - len(key)
                    location = self._append(record, value_len)
                    self._effect(key, location, 0)
                return self.last_ticket
            keyspace = self._keyspace
            try:
                offset = active.append(data)
            except OSError as exc:
                raise self._fail("write", exc) from exc
            ticket = self.last_ticket
            self.last_ticket = ticket + len(records)
            self._unsynced = True
            # inline pack_location: its slot part, for the spelling in the loop below
            slot_bits = active.slot << SLOT_SHIFT
            pending = self._pending if self._sync_each_write else None
            index = self._index
            expires = self._expires
            for key, record in zip(keys, records, strict=True):
                size = len(record)
                value_len = size - RECORD_HEADER_SIZE - len(key)
                # inline pack_location: the server benchmark's pipelined SETs come here.
                location = (
                    slot_bits
                    | (offset << LEN_BITS)
                    | (value_len if value_len < LARGE_VALUE else LARGE_VALUE)
                )
                offset += size
                if pending is not None:
                    ticket += 1
                    pending.append((ticket, key, location, 0))
                    continue
                old = index.get(key)
                index[key] = location
                if old is not None:
                    keyspace.kill(len(key), old)
                if expires and key in expires:
                    keyspace.clear_expiry(key)
            if expires and keyspace.order.soonest < now:
                keyspace.purge(now, WRITE_PURGE)  # ENG-61
            return self.last_ticket

    def _put_expiring(self, key: bytes, value: bytes, expires_at_ms: int) -> int:
        """ENG-33: append an expiring PUT (FMT-21); see :meth:`put_nowait`."""
        key = check_key(key)
        value = check_value(value, MAX_EXPIRING_VALUE_SIZE)
        expires_at_ms = check_expiry(expires_at_ms)
        now = self._now_ms()
        record = encode_record(_PUT_EXPIRING, now, key, value, expires_at_ms)
        with self._lock:
            location = self._append(record, len(value) + EXPIRY_SIZE, now)
            self._effect(key, location, expires_at_ms)
            return self.last_ticket

    def _effect(self, key: bytes, location: int | None, expires_at_ms: int) -> None:
        """Apply a write just appended (deferred until durable under "always"). Lock held."""
        if self._sync_each_write:
            self._pending.append((self.last_ticket, key, location, expires_at_ms))
        else:
            self._keyspace.apply(key, location, expires_at_ms, self._active.slot)

    def _apply_durable(self, effects: list[tuple[int, bytes, int | None, int]]) -> None:
        """Group commit's applier (write lock held): the keyspace's of the moment, which
        closing replaces."""
        self._keyspace.apply_in_order(effects, self._active.slot)

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.put(key, value)

    def delete(self, key: bytes) -> bool:
        """ENG-5: remove ``key``; returns whether it was there. A missing key writes nothing."""
        return self._waited(self.delete_nowait(key))

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
        key = check_key(key)
        with self._lock:
            if self._newest(key) is None:
                if self._refusal is not None:
                    raise self._refused()
                return False, self.last_ticket
            self._append(encode_record(RecordType.DELETE, self._now_ms(), key))
            self._effect(key, None, 0)
            return True, self.last_ticket

    def expire(self, key: bytes, ttl: float) -> bool:
        """ENG-35: make ``key`` expire ``ttl`` seconds from now; False if it has no value."""
        return self.expire_at(key, self._now_ms() + ttl_ms(ttl))

    def expire_at(self, key: bytes, expires_at_ms: int) -> bool:
        """ENG-35: make ``key`` expire at ``expires_at_ms``; False if it has no value."""
        return self._waited(self.expire_at_nowait(key, expires_at_ms))

    def expire_at_nowait(self, key: bytes, expires_at_ms: int) -> tuple[bool, int]:
        """ENG-35: rewrite ``key``'s value with a new expiry; a time already past deletes it.

        Judged, like :meth:`delete_nowait`, on the writes that have taken effect.
        """
        key = check_key(key)
        expires_at_ms = check_expiry(expires_at_ms)
        with self._lock:
            value = self._live_value(key)
            if value is None:
                return False, self.last_ticket
            if expires_at_ms <= self._now_ms():
                self._append(encode_record(RecordType.DELETE, self._now_ms(), key))
                self._effect(key, None, 0)
                return True, self.last_ticket
            if len(value) > MAX_EXPIRING_VALUE_SIZE:
                check_value(value, MAX_EXPIRING_VALUE_SIZE)
            record = encode_record(_PUT_EXPIRING, self._now_ms(), key, value, expires_at_ms)
            location = self._append(record, len(value) + EXPIRY_SIZE)
            self._effect(key, location, expires_at_ms)
            return True, self.last_ticket

    def persist(self, key: bytes) -> bool:
        """ENG-36: make ``key`` never expire; True if it had an expiry to remove."""
        return self._waited(self.persist_nowait(key))

    def persist_nowait(self, key: bytes) -> tuple[bool, int]:
        """ENG-36: rewrite ``key``'s value as a plain PUT if it has an expiry."""
        key = check_key(key)
        with self._lock:
            newest = self._newest(key)
            if newest is None or not newest[1]:
                if self._refusal is not None:
                    raise self._refused()
                return False, self.last_ticket
            value = self._live_value(key)
            if value is None:
                return False, self.last_ticket
            record = encode_record(_PUT, self._now_ms(), key, value)
            location = self._append(record, len(value))
            self._effect(key, location, 0)
            return True, self.last_ticket

    def _live_value(self, key: bytes) -> bytes | None:
        """ENG-51: the value of ``key`` as every write appended so far leaves it. Lock held."""
        if self._refusal is not None:
            raise self._refused()
        newest = self._newest(key)
        if newest is None:
            return None
        return read_value(key, newest[0], self._slots, self._active)

    def _newest(self, key: bytes) -> tuple[int, int] | None:
        """ENG-51: where ``key``'s value is, and its expiry or 0, as every write appended so far
        leaves it (those still waiting for their fsync under "always" included); ``None`` if
        that leaves no value. Lock held."""
        for _, pending, location, expires_at in reversed(self._pending):
            if pending == key:
                if location is None or (expires_at and self._now_ms() > expires_at):
                    return None
                return location, expires_at
        location = self._index.get(key)
        if location is None or (self._expires and self._expired(key)):
            return None
        return location, self._expires.get(key, 0)

    def get_many(self, keys: Iterable[bytes]) -> list[bytes | None]:
        """ENG-52: the value of each key (or ``None``), all as of one instant.

        The lookups and reads hold the write lock, under which every write takes effect, so a
        batch is seen whole or not at all; a plain ``get`` per key could see half of one.
        """
        checked = [key if type(key) is bytes else check_key(key) for key in keys]
        with self._lock:
            if self._closed:
                raise StoreClosedError(f"{self.path} is closed")
            index = self._index
            values: list[bytes | None] = []
            for key in checked:
                location = index.get(key)
                if location is None or (self._expires and self._expired(key)):
                    values.append(None)
                    continue
                try:
                    values.append(read_value(key, location, self._slots, self._active))
                except (OSError, CorruptionError) as exc:
                    error = self._read_error(exc, location, self._slots)
                    if error is exc:
                        raise
                    raise error from exc
            return values

    def write_batch(self, ops: Iterable[BatchOp]) -> None:
        """ENG-37: apply every operation of ``ops`` in order, all or nothing, even across a crash.

        Each operation is ``("put", key, value)``, ``("put", key, value, ttl_seconds)`` or
        ``("delete", key)``. Durable on return under ``fsync="always"``. An empty batch writes
        nothing.
        """
        ticket = self.write_batch_nowait(ops)
        if self._sync_each_write:
            self.wait_durable(ticket)

    def batch(self) -> Batch:
        """ENG-37: ``with store.batch() as b: b.put(k, v); b.delete(k2)`` writes one batch."""
        if self._closed:
            raise StoreClosedError(f"{self.path} is closed")  # ENG-19
        return Batch(self)

    def write_batch_nowait(self, ops: Iterable[BatchOp]) -> int:
        """ENG-37: append one batch record (FMT-22) and return its ticket."""
        timestamp = self._now_ms()
        members, effects = encode_ops(ops, timestamp)
        if not members:
            with self._lock:
                if self._refusal is not None:
                    raise self._refused()
                return self.last_ticket
        record = encode_batch(timestamp, members)
        with self._lock:
            return self._append_batch(record, members, effects)

    def _append_batch(self, record: bytes, members: list[bytes], effects: list[Effect]) -> int:
        """ENG-37: append a batch ``record`` of ``members``; its effects wait for its fsync under
        "always" and take effect at once otherwise. Returns its ticket. Lock held."""
        slot, start, _ = unpack_location(self._append(record))
        self._keyspace.add_dead(slot, dead_size(0, 0))  # ENG-41: the frame
        offset = start + RECORD_HEADER_SIZE
        ticket = self.last_ticket
        located: list[tuple[int, bytes, int | None, int]] = []
        for (key, value_len, at), member in zip(effects, members, strict=True):
            location = None if value_len is None else pack_location(slot, offset, value_len)
            located.append((ticket, key, location, at))
            offset += len(member)
        if self._sync_each_write:
            self._pending.extend(located)
        else:
            self._keyspace.apply_in_order(located, self._active.slot)
        return ticket

    def transaction(self, *, wait: bool = True) -> Transaction:
        """ENG-54: ``with store.transaction() as tx:`` reads and writes keys as one step.

        The block holds the store's write lock: no other write is appended while it runs, and
        its reads see every write appended before it (ENG-51). Its writes are appended as one
        batch when the block ends without an exception (nothing, if it wrote nothing), and,
        under "always" and with ``wait``, the block returns once that batch is durable; with
        ``wait=False`` the caller waits on ``tx.ticket`` itself (the server does). Inside the
        block use only ``tx``: the store's own writing methods would wait for the block to end.
        """
        if self._closed:
            raise StoreClosedError(f"{self.path} is closed")  # ENG-19
        return Transaction(self, wait=wait)

    def _begin(self) -> None:
        """ENG-54: a transaction takes the write lock for its whole block."""
        self._lock.acquire()
        if self._refusal is not None:
            self._lock.release()
            raise self._refused()

    def _commit_transaction(self, writes: list[Write]) -> int:
        """ENG-54: append a transaction's writes as one batch, then let go of the lock."""
        try:
            if not writes:
                return 0
            timestamp = self._now_ms()
            members, effects = encode_writes(writes, timestamp)
            return self._append_batch(encode_batch(timestamp, members), members, effects)
        finally:
            self._lock.release()

    def _abort_transaction(self) -> None:
        self._lock.release()

    def _newest_value(self, key: bytes) -> tuple[bytes, int] | None:
        """ENG-51, ENG-54: the value and expiry (or 0) of ``key`` as every write appended so far
        leaves it, or ``None``. Lock held."""
        newest = self._newest(key)
        if newest is None:
            return None
        return read_value(key, newest[0], self._slots, self._active), newest[1]

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
        """ENG-80, ENG-81: :meth:`modify` without the wait; returns the value written (or
        ``None``) and the ticket to wait on: the write's, or, if nothing was written, that of the
        newest write ``change`` was shown the result of (ENG-51).

        A transaction (ENG-54) does the same for one key at three times the cost: its object,
        its batch frame and its per-call checks. The server benchmark's INCR is this call.
        ``change`` runs with the write lock held, so it must be quick and must not call the
        store; an exception from it propagates with nothing written.
        """
        if type(key) is not bytes or len(key) > MAX_KEY_SIZE:
            key = check_key(key)
        with self._lock:
            if self._refusal is not None:
                raise self._refused()
            index = self._index
            expires_at = 0
            if self._pending or self._expires:
                newest = self._newest(key)
                location = None
                if newest is not None:
                    location, expires_at = newest
            else:  # _newest's common case, inline (the server benchmark's INCR)
                location = index.get(key)
            old = None
            if location is not None:
                try:
                    old = read_value(key, location, self._slots, self._active)
                except (OSError, CorruptionError) as exc:
                    error = self._read_error(exc, location, self._slots)
                    if error is exc:
                        raise
                    raise error from exc
            new = change(old)
            if new is None:
                return None, self.last_ticket
            if expires_at:  # ENG-80: the value keeps its expiry, as Redis's INCR keeps a TTL
                new = check_value(new, MAX_EXPIRING_VALUE_SIZE)
                record = encode_record(_PUT_EXPIRING, self._now_ms(), key, new, expires_at)
                location = self._append(record, len(new) + EXPIRY_SIZE)
                self._effect(key, location, expires_at)
                return new, self.last_ticket
            if type(new) is not bytes or len(new) > MAX_VALUE_SIZE:
                new = check_value(new)
            # As put_nowait from here: its inline append and index update.
            key_len = len(key)
            value_len = len(new)
            now = self._now_ms()
            body = BODY_HEADER.pack(_PUT, now, key_len, value_len) + key + new
            record = CRC_FIELD.pack(crc32c(body)) + body
            active = self._active
            if active.end + len(record) > self.segment_size:
                location = self._append(record, value_len, now)  # rotates first
            else:
                try:
                    offset = active.append(record)
                except OSError as exc:
                    raise self._fail("write", exc) from exc
                self.last_ticket += 1
                self._unsynced = True
                # inline pack_location: the server benchmark's INCR, as put_nowait's SET.
                location = (
                    (active.slot << SLOT_SHIFT)
                    | (offset << LEN_BITS)
                    | (value_len if value_len < LARGE_VALUE else LARGE_VALUE)
                )
            expires = self._expires
            if self._sync_each_write:
                self._pending.append((self.last_ticket, key, location, 0))
            else:
                old_location = index.get(key)
                index[key] = location
                if old_location is not None:
                    self._keyspace.dead += dead_size(key_len, old_location)
                if expires and key in expires:
                    self._keyspace.clear_expiry(key)
            if expires and self._keyspace.order.soonest < now:
                self._keyspace.purge(now, WRITE_PURGE)  # ENG-61
            return new, self.last_ticket

    def modify_many_nowait(
        self, changes: Iterable[tuple[bytes, Callable[[bytes | None], bytes | None]]]
    ) -> tuple[list[bytes | Exception | None], int]:
        """ENG-90, ENG-91: :meth:`modify_nowait` for each ``(key, change)`` in order, under one
        hold of the write lock; returns each one's outcome (the value written, ``None``, or the
        exception it met) and the newest ticket, which covers every write a change was shown.

        One lock, one clock reading and one buffer append for the run, as
        :meth:`put_many_nowait` does for SETs: for the server benchmark's pipelined INCRs
        (SRV-28). A change that raises an ``Exception`` spoils only its own outcome.
        """
        with self._lock:
            if self._refusal is not None:
                raise self._refused()
            now = self._now_ms()
            index = self._index
            slots = self._slots
            active = self._active
            pack = BODY_HEADER.pack
            crc_field = CRC_FIELD.pack
            outcomes: list[bytes | Exception | None] = []
            seen: dict[bytes, tuple[bytes | None, int]] = {}
            """ENG-90: each key's value and expiry as this call's earlier changes left them."""
            writes: list[tuple[bytes, bytes, int, int]] = []
            """(key, record, value length for its location, expiry or 0), in order."""
            lookup = self._pending or self._expires
            for given_key, change in changes:
                key = given_key
                try:
                    if type(key) is not bytes or len(key) > MAX_KEY_SIZE:
                        key = check_key(key)
                    if key in seen:
                        old, expires_at = seen[key]
                    else:
                        expires_at = 0
                        if lookup:
                            newest = self._newest(key)
                            location = None
                            if newest is not None:
                                location, expires_at = newest
                        else:  # _newest's common case, inline (the server benchmark's INCR)
                            location = index.get(key)
                        old = None
                        if location is not None:
                            try:
                                old = read_value(key, location, slots, active)
                            except (OSError, CorruptionError) as exc:
                                error = self._read_error(exc, location, slots)
                                if error is exc:
                                    raise
                                raise error from exc
                    new = change(old)
                    if new is None:
                        outcomes.append(None)
                        continue
                    if expires_at:  # ENG-80: the value keeps its expiry
                        new = check_value(new, MAX_EXPIRING_VALUE_SIZE)
                        record = encode_record(_PUT_EXPIRING, now, key, new, expires_at)
                        value_len = len(new) + EXPIRY_SIZE
                    else:
                        if type(new) is not bytes or len(new) > MAX_VALUE_SIZE:
                            new = check_value(new)
                        value_len = len(new)
                        body = pack(_PUT, now, len(key), value_len) + key + new
                        record = crc_field(crc32c(body)) + body
                except Exception as exc:
                    outcomes.append(exc)  # ENG-90: this change's own, nothing written for it
                    continue
                seen[key] = new, expires_at
                writes.append((key, record, value_len, expires_at))
                outcomes.append(new)
            if not writes:
                return outcomes, self.last_ticket
            data = b"".join([write[1] for write in writes])
            if active.end + len(data) > self.segment_size:
                # One at a time: _append rotates where a record would not fit (ENG-9).
                for key, record, value_len, expires_at in writes:
                    self._effect(key, self._append(record, value_len, now), expires_at)
                return outcomes, self.last_ticket
            try:
                offset = active.append(data)
            except OSError as exc:
                raise self._fail("write", exc) from exc
            ticket = self.last_ticket
            self.last_ticket = ticket + len(writes)
            self._unsynced = True
            keyspace = self._keyspace
            slot = active.slot
            pending = self._pending if self._sync_each_write else None
            expires = self._expires
            for key, record, value_len, expires_at in writes:
                # inline pack_location: the server benchmark's pipelined INCRs come here.
                location = (
                    (slot << SLOT_SHIFT)
                    | (offset << LEN_BITS)
                    | (value_len if value_len < LARGE_VALUE else LARGE_VALUE)
                )
                offset += len(record)
                if pending is not None:
                    ticket += 1
                    pending.append((ticket, key, location, expires_at))
                elif expires_at:
                    keyspace.apply(key, location, expires_at, slot)
                else:
                    old_location = index.get(key)
                    index[key] = location
                    if old_location is not None:
                        keyspace.kill(len(key), old_location)
                    if expires and key in expires:
                        keyspace.clear_expiry(key)
            if expires and keyspace.order.soonest < now:
                keyspace.purge(now, WRITE_PURGE)  # ENG-61
            return outcomes, self.last_ticket

    def __delitem__(self, key: bytes) -> None:
        if not self.delete(key):
            raise KeyError(key)

    def _append(self, record: bytes, value_len: int = 0, now: int = 0) -> int:
        """Buffer ``record`` in the active segment; returns its location, for ``value_len``.

        Called with the write lock held. Rotates first if the record would overfill the active
        segment (ENG-9). Counts the record in :attr:`_appended`, whose value is its ticket. Then
        forgets a few expired keys (ENG-61), judged at ``now`` if the caller read the clock.
        """
        if self._refusal is not None:
            raise self._refused()
        active = self._active
        if active.end + len(record) > self.segment_size and active.end > SEGMENT_HEADER_SIZE:
            active = self._rotate()
        try:
            offset = active.append(record)
        except OSError as exc:
            raise self._fail("write", exc) from exc
        self.last_ticket += 1
        self._unsynced = True
        if self._expires and self._keyspace.order.soonest < (now or (now := self._now_ms())):
            self._keyspace.purge(now, WRITE_PURGE)
        # inline pack_location: the fill benchmark's every put pays for a call otherwise.
        return (
            (active.slot << SLOT_SHIFT)
            | (offset << LEN_BITS)
            | (value_len if value_len < LARGE_VALUE else LARGE_VALUE)
        )

    # ----------------------------------------------------------------------------- group commit

    def wait_durable(self, ticket: int) -> None:
        """ENG-14, ENG-29: return once the write with ``ticket`` is durable and has taken effect.

        Under ``interval`` and ``never`` a write is as durable as its policy promises when it
        is appended, so this returns at once. Under ``always`` it is group commit's
        (:meth:`catlog.commit.GroupCommit.wait_durable`), which ``__init__`` assigns over this
        method so that a durable put pays no extra call (the durable-put benchmark).
        """
        if not self._sync_each_write:
            if self._closed:
                raise StoreClosedError(f"{self.path} is closed")  # ENG-19
            return
        self._commits.wait_durable(ticket)

    def _begin_commit(self, durable: int) -> tuple[int, File] | None:
        """Group commit's flush (write lock held): the newest ticket and the file whose fsync
        makes it durable, or ``None`` if everything up to ``durable`` is, or writes are refused."""
        if self._refusal is not None or durable >= self.last_ticket:
            return None
        self._flush()
        return self.last_ticket, self._active.file

    def _fsync_failed(self, exc: OSError) -> StoreFailedError:
        """REC-10: group commit's fsync failed (write lock held)."""
        return self._fail("fsync", exc, fsync_failed=True)

    def _flush(self) -> None:
        try:
            self._active.flush()
        except OSError as exc:
            raise self._fail("write", exc) from exc

    def _flush_and_sync(self) -> None:
        """ENG-17, REC-10: flush and fsync the active segment; a failure stops all writing."""
        self._flush()
        try:
            self._active.file.sync()
        except OSError as exc:
            raise self._fail("fsync", exc, fsync_failed=True) from exc
        self._unsynced = False
        self._last_sync = self._clock.monotonic()
        self._commits.take_effect(self.last_ticket)

    def _fail(self, what: str, exc: OSError, *, fsync_failed: bool = False) -> StoreFailedError:
        """REC-10: refuse writes from now on; ``fsync_failed`` as ENG-47 defines it."""
        error = StoreFailedError(
            f"{self._active.file.path}: {what} failed ({exc}); writes are refused until the store"
            " is reopened, and writes not yet synced may be lost",
            fsync_failed=fsync_failed,
        )
        self._refusal = error
        self._failure = error
        self._pending.clear()
        self._commits.fail(error)  # each sleeper raises it
        return error

    def _refused(self) -> CatlogError:
        """A fresh copy of the refusal, so each raise gets its own traceback."""
        refusal = self._refusal
        assert refusal is not None, "called only when the store refuses writes"
        return fresh_copy(refusal)

    def _rotate(self, gap: int = 0) -> ActiveSegment:
        """ENG-9, ENG-10: seal the active segment (durable first), then start the next one.

        ``gap`` numbers are skipped for a compaction's outputs (ENG-39).
        """
        old = self._active
        self._flush_and_sync()
        slot = self._new_slot(compaction=bool(gap))
        if self.hints is True:
            self._write_hint(old)
        planned = 0
        if not gap and self._compaction.due(self):
            planned = self._compaction.plan(self)  # ENG-73: the outputs go below the new one
        try:
            new = ActiveSegment.create(self._fs, self.path, old.number + 1 + gap + planned, slot)
        except OSError as exc:
            raise self._fail("creating a segment", exc) from exc
        sealed = old.seal()
        self._files.adopt(sealed, old.file, writable=True)  # ENG-65
        self._slots[old.slot] = sealed
        self._order[-1] = sealed
        self._place(new)
        self._client_bytes += old.end - self._active_start  # ENG-77
        self._active_start = new.end
        self._active = new
        if self.hints == "background" and not gap:
            self._hints.queue(sealed)
        if planned:
            self._compaction.start(self, self.compact_max_bytes)  # ENG-73: bounded
        return new

    def _new_slot(self, *, compaction: bool = False) -> int:
        """A slot for a new segment: one compaction freed, or the next unused one.

        ENG-74: a rotation for writes leaves ``RESERVED_SLOTS`` free for compaction, and says
        what to do instead of wedging at the limit.
        """
        in_use = self._slots_in_use()
        limit = self.max_segments if compaction else self.max_segments - RESERVED_SLOTS
        if in_use >= limit:
            if compaction:
                raise CatlogError(f"{self.path}: all {self.max_segments} segment slots are in use")
            raise CatlogError(
                f"{self.path}: {in_use} segments are open, the most writes may fill"
                f" (max_segments={self.max_segments} less {RESERVED_SLOTS} kept for compaction);"
                " compact the store (Store.compact() or catlog compact) or use a larger"
                " segment_size"
            )
        if self._free_slots:
            return self._free_slots.pop()
        return len(self._slots)

    def _place(self, segment: Segment) -> None:
        """Record a new segment in its slot and in number order. Lock held."""
        if not isinstance(segment, ActiveSegment):
            self._files.adopt(segment, segment.file)  # ENG-65: a compaction's output
        if segment.slot == len(self._slots):
            self._slots.append(segment)
        else:
            self._slots[segment.slot] = segment
        self._slot_dead[segment.slot] = 0  # ENG-73: nothing points into it yet
        position = len(self._order)
        while position and self._order[position - 1].number > segment.number:
            position -= 1
        self._order.insert(position, segment)

    def compact_in_background(self) -> bool:
        """ENG-42: start a compaction in a background thread; False if one is running already."""
        with self._lock:
            if self._closed:
                raise StoreClosedError(f"{self.path} is closed")
            if self._compaction.running():
                return False
            self._compaction.start(self)
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
        return self._compaction.run(self, progress, max_bytes)

    # ----------------------------------------------------------------------------- durability

    def sync(self) -> None:
        """ENG-17: make every write so far durable, whatever the fsync policy."""
        with self._lock:
            if self._refusal is not None:
                raise self._refused()
            self._flush_and_sync()

    def flush(self) -> None:
        """ENG-16, ENG-17: hand buffered writes to the OS (safe from a process crash only)."""
        with self._lock:
            if self._refusal is not None:
                raise self._refused()
            self._flush()

    def tick(self) -> None:
        """ENG-15, ENG-16: the background flusher's step; syncs (or flushes) when one is due.
        ENG-62: it also forgets a bounded number of expired keys.

        Public so that tests driving a :class:`~catlog.clock.ManualClock` can run the step
        themselves instead of waiting for the thread.
        """
        with self._lock:
            if self._closed:
                raise StoreClosedError(f"{self.path} is closed")  # ENG-19
            if self._expires:
                self._keyspace.purge(self._now_ms(), PURGE_STEP)
            if self._refusal is not None or not self._unsynced:
                return
            due = self._clock.monotonic() - self._last_sync >= self.fsync_interval_ms / 1000
            if self.fsync == "interval" and due:
                self._flush_and_sync()
            elif self.fsync == "never" and due:
                self._flush()
                self._last_sync = self._clock.monotonic()

    # ----------------------------------------------------------------------------- closing

    # ----------------------------------------------------------------------------- compaction

    def _read_located(self, key: bytes, location: int, slots: list[Segment]) -> bytes:
        """ENG-38: a snapshot's read at a location it holds, in the slots it copied."""
        try:
            return read_value(key, location, slots, self._active)
        except (OSError, CorruptionError) as exc:
            error = self._read_error(exc, location, slots)
            if error is exc:
                raise
            raise error from exc

    def _snapshot_closed(self, snapshot: Snapshot) -> None:
        """ENG-40: close the segments compaction removed once no snapshot can read them."""
        self._snapshots.discard(snapshot)
        with self._lock:
            if not len(self._snapshots) and self._retired and not self._closed:
                for segment in self._retired:
                    segment.file.close()
                self._retired.clear()

    def close(self) -> None:
        """ENG-18, ENG-46: sync everything, release the directory; a second close does nothing.

        Raises :class:`StoreFailedError` if the store had failed (REC-10), even in a background
        thread: its buffered writes could not be made durable, so returning would acknowledge
        writes the disk never received (REC-20).
        """
        with self._compaction.lock:  # ENG-40: a running compaction finishes first
            self._hints.stop()
            self._close()

    def _close(self) -> None:
        if self._flusher is not None:
            self._stop_flusher.set()
            if self._flusher is not threading.current_thread():  # dropped in its own tick
                self._flusher.join()
        self._commits.wait_for_term()  # a term ends before the files close (ENG-59)
        with self._lock:
            if self._closed:
                return
            try:
                if self._refusal is None and (self._unsynced or self._active.unflushed):
                    self._flush_and_sync()
            finally:
                failure = self._failure
                self._closed = True
                _open_stores.pop(id(self), None)
                self._refusal = StoreClosedError(f"{self.path} is closed")
                self._commits.close(self._refusal)
                self._keyspace = Keyspace({}, {})
                self._index = self._keyspace.index
                self._expires = self._keyspace.expires
                self._slot_dead = self._keyspace.slot_dead
                self._close_files()
                self._dir_lock.release()
            if failure is not None:
                raise StoreFailedError(
                    f"{self.path}: closed without making its buffered writes durable, because"
                    f" the store had failed: {failure}",
                    fsync_failed=failure.fsync_failed,
                ) from failure

    def _close_files(self) -> None:
        for segment in [*self._slots, *self._retired]:
            segment.file.close()

    def __del__(self) -> None:
        """ENG-27: a store dropped without close() still releases its directory."""
        if not getattr(self, "_closed", True):
            try:
                self.close()
            except CatlogError:
                log.exception("closing %s when it was dropped failed", self.path)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._index)} keys"
        return f"<catlog.Store {self.path!r} fsync={self.fsync} {state}>"

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def failure(self) -> StoreFailedError | None:
        """ENG-47: the failure that made the store refuse writes, or ``None``."""
        return self._failure

    def _check_invariants(self) -> None:
        """A test hook, as SQLite's pager asserts its state: raise AssertionError if the store's
        structures disagree with each other. The model tests call it after every step."""
        with self._lock:
            refusal, closed = self._refusal, self._closed
            if closed:
                assert isinstance(refusal, StoreClosedError), "closed: refuses as closed"
                return
            assert refusal is None or refusal is self._failure, "open or failed (REC-10)"
            order = self._order
            assert order, "a store has at least its active segment"
            assert order[-1] is self._active, "the active segment is the newest"
            numbers = [segment.number for segment in order]
            assert numbers == sorted(set(numbers)), "segments in number order, once each"
            assert self._slots[self._active.slot] is self._active, "the active one's slot"
            live = {id(segment) for segment in order}
            for key, location in self._index.items():
                segment = self._slots[unpack_location(location)[0]]
                assert id(segment) in live, f"ENG-55: {key!r:.40} points into a removed segment"
            keyspace = self._keyspace
            assert self._index is keyspace.index, "the store's index is the keyspace's own"
            assert self._expires is keyspace.expires, "the store's expiries are the keyspace's"
            keyspace.check()
            assert self._slot_dead is keyspace.slot_dead, "compaction reads the keyspace's own"
            assert self._slots_in_use() <= self.max_segments, "ENG-74: within the limit"
            assert len(self._slots) <= MAX_SLOTS, "ENG-74: slots the index can name"
            tickets = [entry[0] for entry in self._pending]
            assert tickets == sorted(tickets), "effects wait in ticket order"
            assert not tickets or self._sync_each_write, "effects wait only under always"
            assert all(self._commits.durable < ticket <= self.last_ticket for ticket in tickets)

    def stats(self) -> StoreStats:
        """A snapshot of counters for people and tests (ENG-26)."""
        with self._lock:
            if self._closed:
                raise StoreClosedError(f"{self.path} is closed")
            keyspace = self._keyspace
            expired = keyspace.expired(self._now_ms())  # ENG-60: counted, not forgotten
            client = self._client_bytes + self._active.end - self._active_start
            written = self._compaction.written_bytes
            return StoreStats(
                keys=len(self._index) - expired,
                segments=len(self._order),
                active_segment=segment_name(self._active.number),
                disk_bytes=self._disk_bytes() - self._active.unflushed,
                unflushed_bytes=self._active.unflushed,
                tail_repairs=tuple(self._tail_repairs),
                expiring_keys=len(self._expires) - expired,
                dead_bytes=keyspace.dead,
                compacting=self._compaction.running(),
                compaction_error=self._compaction.error,
                client_bytes=client,
                compaction_bytes=written,
                write_amplification=written / client if client else 0.0,
            )

    def wait_for_compaction(self, timeout: float | None = None) -> bool:
        """ENG-83: block until no compaction runs, so that a caller who started one in the
        background (or whose writes made one due) can act on its result; ``False`` if
        ``timeout`` seconds passed first.

        Waits in real time, not the store's clock: the compactor's progress is real work.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                if self._closed:
                    raise StoreClosedError(f"{self.path} is closed")
                if not self._compaction.running():
                    return True
                compactor = self._compaction.thread
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            if compactor is not None and compactor.is_alive():
                compactor.join(left)
            elif self._compaction.lock.acquire(timeout=-1 if left is None else left):
                self._compaction.lock.release()  # a compact() call in another thread ended
