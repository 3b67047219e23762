"""The write side of an open store: the write lock and everything it guards (ENG-21).

A write is one record appended to the active segment under the write lock, and its *effect* on
the keyspace: at once under ``interval`` and ``never``, once its fsync returns under ``always``
(group commit, :mod:`catlog.commit`, ENG-14, ENG-29). This module holds that path: the plain
PUTs (:meth:`Writer.put`, the hot path of every benchmark that writes, and
:meth:`Writer.put_many`, a pipeline's run of SETs), appending (rotating, through
:mod:`catlog.rotation`, when a record would overfill the segment: ENG-9, ENG-10), flushing and
fsyncing (ENG-15 .. ENG-17), and the refusal after a failed write or fsync (REC-10). The writes
that read first (DELETE, EXPIRE, PERSIST, read-modify-write, batches and transactions) are
:mod:`catlog.updates`, on the same lock; compaction (:mod:`catlog.compaction`) works on a
:class:`Writer` too, since it appends, rotates and moves index entries under it.

Every attribute below is guarded by ``lock`` unless it says otherwise; the methods are called
with it held unless they say they take it. Readers take no lock: ``index``, ``expires`` and
``segments.slots`` change one whole entry at a time, and ``active`` is replaced whole.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Final

from crc32c import crc32c

from .arguments import check_expiry, check_key, check_value
from .batch import Effect
from .clock import Clock
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
    encode_record,
)
from .commit import GroupCommit, weakly
from .compaction import Compaction
from .errors import CatlogError, CorruptionError, StoreClosedError, StoreFailedError, fresh_copy
from .fs import File, FileSystem
from .hintwriter import HintWriter
from .index import (
    LARGE_VALUE,
    LEN_BITS,
    SLOT_SHIFT,
    live_expiries,
    pack_location,
    unpack_location,
)
from .keyspace import PURGE_STEP, WRITE_PURGE, Keyspace, dead_size
from .opening import Opened
from .options import StoreOptions
from .reading import read_failed, read_value, stored_size
from .rotation import rotate, stall
from .segment import ActiveSegment, Segment
from .segmentset import SegmentSet

_PUT: Final = int(RecordType.PUT)
_PUT_EXPIRING: Final = int(RecordType.PUT_EXPIRING)

Pending = tuple[int, bytes, int | None, int]
"""A write waiting for its fsync under always: its ticket, its key, its location (``None`` for a
delete) and its expiry (0 for none)."""


class Writer:
    """The write lock of one open store and what it guards."""

    def __init__(  # noqa: PLR0917 - the parts opening made, each once
        self,
        options: StoreOptions,
        fs: FileSystem,
        clock: Clock,
        keyspace: Keyspace,
        segments: SegmentSet,
        active: ActiveSegment,
    ) -> None:
        self.options: Final = options
        self.path: Final = options.path
        self.segment_size: Final = options.segment_size
        self.sync_each_write: Final = options.fsync == "always"
        self.fs: Final = fs
        self.clock: Final = clock
        self.now_ms: Final = clock.now_ms
        self.lock: Final = threading.Lock()
        """The write lock (see :mod:`catlog.store` for the lock order). Lock: itself."""
        self.keyspace: Final = keyspace
        """ENG-13, ENG-33, ENG-41, ENG-60: :mod:`catlog.keyspace`."""
        keyspace.large_size = self.large_record_size
        self.index: Final = keyspace.index
        """The keyspace's own index dict, named here so that the writes reach it without a call
        (the fill benchmark). Written under the lock, read without it."""
        self.expires: Final = keyspace.expires
        """The keyspace's expiries dict, named here as ``index`` is."""
        self.segments: Final = segments
        self.active = active
        """The segment appended to. Replaced whole at rotation; read without the lock."""
        self.active_start = active.end
        """ENG-77: where the active segment ended when it became active (or at open)."""
        self.client_bytes = 0
        """ENG-77: bytes appended to segments sealed since open, less where each was at open."""
        self.hints: Final = HintWriter(fs, self.path, segments.order.__contains__)
        self.compaction: Final = Compaction()
        """ENG-39 .. ENG-42, ENG-57, ENG-73 .. ENG-76. Lock: its own ``lock``, taken first."""
        self.behind = False
        """ENG-98: whether the last :meth:`append` rotated while compaction was behind."""
        self.stalls = 0
        """ENG-98: the waits of writers for compaction since open."""
        self.stall_seconds = 0.0
        self.last_ticket = 0
        """The ticket of the newest record appended: records appended since open (ENG-28)."""
        self.unsynced = False
        self.last_sync = clock.monotonic()
        self.refusal: CatlogError | None = None
        """Why writes are refused: the failure (REC-10), or StoreClosedError once closed."""
        self.failure: StoreFailedError | None = None
        """ENG-47: the failure that made the store refuse writes; kept after close."""
        self.closed = False
        """ENG-19. Read without the lock."""
        self.pending: Final[list[Pending]] = []
        """Under always: writes appended and not yet durable, in ticket order. The members of a
        batch share one ticket, so they take effect together. The same list is ``commits``',
        which applies and drops them once durable."""
        self.commits: Final = GroupCommit(
            self.lock,
            self.pending,
            flush=weakly(Writer.begin_commit, self),
            fail=weakly(Writer.fsync_failed, self),
            apply=weakly(Writer.apply_durable, self),
        )
        """Group commit's driver and state (:class:`catlog.commit.GroupCommit`), which holds
        the commit mutex. Lock: its own."""

    def expired(self, key: bytes) -> bool:
        """ENG-34: whether ``key``'s expiry has passed (it expires once the clock is past it).
        Takes no lock."""
        expires_at = self.expires.get(key)
        return expires_at is not None and self.now_ms() > expires_at

    def read_at(self, key: bytes, location: int, slots: list[Segment]) -> bytes:
        """ENG-12, ENG-22: the value at ``location`` of ``slots`` (the store's, or a snapshot's),
        a failed read raised as :meth:`read_error` explains it. Takes no lock."""
        try:
            return read_value(key, location, slots, self.active)
        except (OSError, CorruptionError) as exc:
            error = self.read_error(exc, location, slots)
            if error is exc:
                raise
            raise error from exc

    def large_record_size(self, key_len: int, location: int) -> int:
        """ENG-41: the size on disk of the record with a value of ``LARGE_VALUE`` bytes or more
        at ``location``, read from its header as a write supersedes it. The write must not fail
        for the record it supersedes: a read that fails counts it as :func:`dead_size` does.
        Lock held."""
        segment = self.segments.slots[unpack_location(location)[0]]
        try:
            return stored_size(segment, key_len, location)
        except (OSError, CorruptionError):
            return dead_size(key_len, location)

    def read_error(
        self, exc: OSError | CorruptionError, location: int, slots: list[Segment]
    ) -> CatlogError:
        """ENG-19, ENG-22: a failed read as the caller sees it: the store was closed under it,
        the bytes are damaged, or the operating system failed the read. Takes no lock."""
        if self.closed:
            return StoreClosedError(f"{self.path} is closed")
        if isinstance(exc, CatlogError):
            return exc
        return read_failed(location, slots, exc)

    # ----------------------------------------------------------------------------- plain puts

    def put(self, key: bytes, value: bytes, expires_at_ms: int = 0) -> int:
        """ENG-28: append a PUT and return its ticket (:meth:`catlog.Store.put_nowait`, which is
        this very method: the fill benchmark's every put pays for a call otherwise). Takes the
        lock.

        Each length is taken once and the record is encoded here, sparing the calls.
        """
        if expires_at_ms:
            return self.put_expiring(key, value, expires_at_ms)
        if type(key) is not bytes:
            key = check_key(key)
        if type(value) is not bytes:
            value = check_value(value)
        key_len = len(key)
        value_len = len(value)
        if key_len > MAX_KEY_SIZE or value_len > MAX_VALUE_SIZE:
            check_key(key)
            check_value(value)
        now = self.now_ms()
        body = BODY_HEADER.pack(_PUT, now, key_len, value_len) + key + value
        record = CRC_FIELD.pack(crc32c(body)) + body
        with self.lock:
            active = self.active
            rotating = self.refusal is not None or active.end + len(record) > self.segment_size
            if rotating:
                location = self.append(record, value_len)  # refuses, or rotates first
            else:
                # append's common case, inline: the server benchmark showed its call.
                try:
                    offset = active.append(record)
                except OSError as exc:
                    raise self.fail("write", exc) from exc
                self.last_ticket += 1
                self.unsynced = True
                # inline pack_location: the fill benchmark's every put pays for a call otherwise.
                location = (
                    (active.slot << SLOT_SHIFT)
                    | (offset << LEN_BITS)
                    | (value_len if value_len < LARGE_VALUE else LARGE_VALUE)
                )
            expires = self.expires
            if self.sync_each_write:
                self.pending.append((self.last_ticket, key, location, 0))
            else:
                index = self.index
                old = index.get(key)
                index[key] = location
                if old is not None:
                    self.keyspace.kill(key_len, old)
                if expires and key in expires:
                    self.keyspace.clear_expiry(key)
            ticket = self.last_ticket
            if not rotating:
                if expires and self.keyspace.order.soonest < now:
                    self.keyspace.purge(now, WRITE_PURGE)  # ENG-61 (append's, when rotating)
                return ticket
            behind = self.behind
        if behind:
            stall(self)
        return ticket

    def put_many(self, pairs: Iterable[tuple[bytes, bytes]]) -> int:
        """ENG-44: append a PUT for each ``(key, value)`` pair, as :meth:`put` would; returns the
        last ticket. Takes the lock.

        One clock reading, one encoding loop outside the lock, and one lock, one buffer append
        and one index loop for the group, for the server benchmark's pipelines (SRV-11).
        """
        now = self.now_ms()
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
            with self.lock:
                if self.refusal is not None:
                    raise self.refused()  # ENG-19, ENG-44: refused even with nothing to append
                return self.last_ticket
        data = b"".join(records)
        with self.lock:
            active = self.active
            if self.refusal is None and active.end + len(data) <= self.segment_size:
                return self._put_run(active, data, keys, records, now)
            # One at a time: append refuses, or rotates where a record would not fit.
            behind = False
            for key, record in zip(keys, records, strict=True):
                value_len = len(record) - RECORD_HEADER_SIZE - len(key)
                location = self.append(record, value_len, purge=False)
                behind = behind or self.behind
                self.effect(key, location, 0)
            self.purge_after_write(now)
            ticket = self.last_ticket
        if behind:
            stall(self)
        return ticket

    def _put_run(
        self, active: ActiveSegment, data: bytes, keys: list[bytes], records: list[bytes], now: int
    ) -> int:
        """:meth:`put_many`'s common case: the ``records`` (``data`` joined) fit in the active
        segment: one buffer append and one index loop."""
        keyspace = self.keyspace
        try:
            offset = active.append(data)
        except OSError as exc:
            raise self.fail("write", exc) from exc
        ticket = self.last_ticket
        self.last_ticket = ticket + len(records)
        self.unsynced = True
        # inline pack_location: its slot part, for the spelling in the loop below
        slot_bits = active.slot << SLOT_SHIFT
        pending = self.pending if self.sync_each_write else None
        index = self.index
        expires = self.expires
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
        self.purge_after_write(now)  # ENG-61
        return self.last_ticket

    def put_expiring(self, key: bytes, value: bytes, expires_at_ms: int) -> int:
        """ENG-33: append an expiring PUT (FMT-21); see :meth:`put`. Takes the lock."""
        key = check_key(key)
        value = check_value(value, MAX_EXPIRING_VALUE_SIZE)
        expires_at_ms = check_expiry(expires_at_ms)
        now = self.now_ms()
        record = encode_record(_PUT_EXPIRING, now, key, value, expires_at_ms)
        with self.lock:
            location = self.append(record, len(value) + EXPIRY_SIZE, now)
            self.effect(key, location, expires_at_ms)
            ticket = self.last_ticket
            behind = self.behind
        if behind:
            stall(self)
        return ticket

    # ----------------------------------------------------------------------------- effects

    def effect(self, key: bytes, location: int | None, expires_at_ms: int) -> None:
        """Apply a write just appended (deferred until durable under "always")."""
        if self.sync_each_write:
            self.pending.append((self.last_ticket, key, location, expires_at_ms))
        else:
            self.keyspace.apply(key, location, expires_at_ms, self.active.slot)

    def apply_durable(self, effects: list[Pending]) -> None:
        """Group commit's applier: writes that waited for their fsync take effect."""
        self.keyspace.apply_in_order(effects, self.active.slot)

    def append_batch(self, record: bytes, members: list[bytes], effects: list[Effect]) -> int:
        """ENG-37: append a batch ``record`` of ``members``; its effects wait for its fsync under
        "always" and take effect at once otherwise. Returns its ticket."""
        slot, start, _ = unpack_location(self.append(record))
        self.keyspace.add_dead(slot, dead_size(0, 0))  # ENG-41: the frame
        offset = start + RECORD_HEADER_SIZE
        ticket = self.last_ticket
        located: list[Pending] = []
        for (key, value_len, at), member in zip(effects, members, strict=True):
            location = None if value_len is None else pack_location(slot, offset, value_len)
            located.append((ticket, key, location, at))
            offset += len(member)
        if self.sync_each_write:
            self.pending.extend(located)
        else:
            self.keyspace.apply_in_order(located, self.active.slot)
        return ticket

    # ----------------------------------------------------------------------------- appending

    def append(self, record: bytes, value_len: int = 0, now: int = 0, *, purge: bool = True) -> int:
        """Buffer ``record`` in the active segment; returns its location, for ``value_len``.

        Rotates first if the record would overfill the active segment (ENG-9). Counts the record
        in :attr:`last_ticket`, whose value is its ticket. Then forgets a few expired keys
        (ENG-61), judged at ``now`` if the caller read the clock, unless ``purge`` is false: a
        call that appends several records one at a time does that once, after the last
        (:meth:`purge_after_write`).
        """
        if self.refusal is not None:
            raise self.refused()
        active = self.active
        self.behind = False
        if active.end + len(record) > self.segment_size and active.end > SEGMENT_HEADER_SIZE:
            active = rotate(self)
        try:
            offset = active.append(record)
        except OSError as exc:
            raise self.fail("write", exc) from exc
        self.last_ticket += 1
        self.unsynced = True
        if purge and self.expires and self.keyspace.order.soonest < (now or (now := self.now_ms())):
            self.keyspace.purge(now, WRITE_PURGE)
        # inline pack_location: the fill benchmark's every put pays for a call otherwise.
        return (
            (active.slot << SLOT_SHIFT)
            | (offset << LEN_BITS)
            | (value_len if value_len < LARGE_VALUE else LARGE_VALUE)
        )

    def purge_after_write(self, now: int) -> None:
        """ENG-61: the few expired keys a call that appended records forgets, once per call."""
        if self.expires and self.keyspace.order.soonest < now:
            self.keyspace.purge(now, WRITE_PURGE)

    # ----------------------------------------------------------------------------- durability

    def wait_durable(self, ticket: int) -> None:
        """ENG-14, ENG-29: :meth:`catlog.Store.wait_durable`. Takes no lock."""
        if not self.sync_each_write:
            if self.closed:
                raise StoreClosedError(f"{self.path} is closed")  # ENG-19
            return
        self.commits.wait_durable(ticket)

    def begin_commit(self, durable: int) -> tuple[int, File] | None:
        """Group commit's flush: the newest ticket and the file whose fsync makes it durable, or
        ``None`` if everything up to ``durable`` is, or writes are refused."""
        if self.refusal is not None or durable >= self.last_ticket:
            return None
        self.flush()
        return self.last_ticket, self.active.file

    def fsync_failed(self, exc: OSError) -> StoreFailedError:
        """REC-10: group commit's fsync failed."""
        return self.fail("fsync", exc, fsync_failed=True)

    def flush(self) -> None:
        """ENG-16: hand the active segment's buffer to the operating system."""
        try:
            self.active.flush()
        except OSError as exc:
            raise self.fail("write", exc) from exc

    def flush_and_sync(self) -> None:
        """ENG-17, REC-10: flush and fsync the active segment; a failure stops all writing."""
        self.flush()
        try:
            self.active.file.sync()
        except OSError as exc:
            raise self.fail("fsync", exc, fsync_failed=True) from exc
        self.unsynced = False
        self.last_sync = self.clock.monotonic()
        self.commits.take_effect(self.last_ticket)

    def tick(self, interval: float) -> None:
        """ENG-15, ENG-16, ENG-62: the flusher's step: forget a bounded number of expired keys,
        then sync (or flush) if one is due."""
        if self.expires:
            self.keyspace.purge(self.now_ms(), PURGE_STEP)
        self.sync_if_due(interval)

    def sync_if_due(self, interval: float) -> None:
        """ENG-15, ENG-16: the flusher's step: once ``interval`` seconds passed since the last
        sync, fsync (``interval``) or flush (``never``) what was written since."""
        if self.refusal is not None or not self.unsynced:
            return
        if self.clock.monotonic() - self.last_sync < interval:
            return
        if self.options.fsync == "interval":
            self.flush_and_sync()
        elif self.options.fsync == "never":
            self.flush()
            self.last_sync = self.clock.monotonic()

    def fail(self, what: str, exc: OSError, *, fsync_failed: bool = False) -> StoreFailedError:
        """REC-10: refuse writes from now on; ``fsync_failed`` as ENG-47 defines it."""
        error = StoreFailedError(
            f"{self.active.file.path}: {what} failed ({exc}); writes are refused until the store"
            " is reopened, and writes not yet synced may be lost",
            fsync_failed=fsync_failed,
        )
        self.refusal = error
        self.failure = error
        self.pending.clear()
        self.commits.fail(error)  # each sleeper raises it
        return error

    def refused(self) -> CatlogError:
        """A fresh copy of the refusal, so each raise gets its own traceback."""
        refusal = self.refusal
        assert refusal is not None, "called only when the store refuses writes"
        return fresh_copy(refusal)

    def refuse_if_failed(self) -> None:
        if self.refusal is not None:
            raise self.refused()

    def finish(self) -> StoreFailedError | None:
        """ENG-18: the last sync, then refuse every call as closed; returns the failure the
        store had, if it had one (ENG-46). The caller then closes the files."""
        try:
            if self.refusal is None and (self.unsynced or self.active.unflushed):
                self.flush_and_sync()
        finally:
            self.closed = True
            self.refusal = StoreClosedError(f"{self.path} is closed")
            self.commits.close(self.refusal)
            self.keyspace.clear()
        return self.failure


def assemble(options: StoreOptions, fs: FileSystem, clock: Clock, opened: Opened) -> Writer:
    """ENG-13, ENG-41, ENG-73: the writer over what opening found: its keyspace, its segments
    and, with a compaction threshold, the dead bytes, every expired key forgotten first
    (ENG-61). If that fails, the files opening opened are closed and the directory let go."""
    try:
        keyspace = Keyspace(opened.index, live_expiries(opened.index, opened.expiring))
        segments = SegmentSet(
            options.path, opened.files, opened.slots, options.max_segments, keyspace.slot_dead
        )
        if options.compact_threshold is not None:
            keyspace.purge(clock.now_ms(), len(keyspace.expires))  # ENG-61: all, at open
            segments.count_dead(keyspace)
    except BaseException:
        for segment in opened.slots:
            segment.file.close()
        opened.lock.release()
        raise
    return Writer(options, fs, clock, keyspace, segments, opened.active)
