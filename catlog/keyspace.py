"""The keyspace: which keys have a value, where it lies, until when, and what is dead on disk.

It holds four things the store changes together under its write lock, and the appliers that
change them as each write takes effect (:meth:`Keyspace.apply` and, for writes that waited for
their fsync or a batch's members, :meth:`Keyspace.apply_in_order`; ENG-37, ENG-41, ENG-58):

- ``index``, each indexed key's location (ENG-11, ENG-13; packed as :mod:`catlog.index` says);
- ``expires``, the expiry of each indexed key whose newest record is an expiring PUT (ENG-33);
- ``order``, those same ``(expires_at_ms, key)`` pairs kept sorted (:class:`ExpiryOrder`);
- ``dead``, ENG-41's estimate of the bytes on disk that compaction would reclaim, the sum of
  ``slot_dead``, each open segment's share (ENG-73), with what a write counts for a record it
  supersedes, :meth:`Keyspace.size_of` (open counts exactly, :mod:`catlog.segmentset`).

Theory of operation for expiry (ENG-34, ENG-60 .. ENG-64). A key expires when the clock passes
its expiry; its index entry may stay until the engine *forgets* it (purging), which writes
nothing. Forgetting is incremental: a few keys per write, a bounded step per :meth:`purge` call
(the flusher's tick, the server's timer), and compaction forgets the keys it skipped a bounded
number per hold of the lock; never all of them at once, so 200,000 keys expiring together stall
nothing.

Counting stays exact without forgetting, because ``order`` holds exactly one pair per entry of
``expires`` (no stale pairs: changing or clearing an expiry removes its pair at once), and every
key of ``expires`` is in ``index``. So the keys indexed but expired at ``now`` are exactly the
pairs of ``order`` with ``expires_at_ms < now``, a prefix of it, and::

    live keys = len(index) - order.count_before(now)

Forgetting takes a pair off the front of ``order`` and its key out of ``index`` and ``expires``:
both sides of the subtraction drop by one, so the count is the same before and after any amount
of purging, which is the point: when purging happens changes no answer. ``count_before`` costs a
binary search plus one C-level ``len`` per block of due pairs (128 to 1,024 of them, see
:data:`BLOCK`), not a Python step per due key. The count is judged at the same ``now`` as ``get``
judges a key, so the two agree at any clock reading, even one set back: a key forgotten is in
neither ``index`` nor ``order``, and one not forgotten is counted as ``get`` sees it.

Locks: the store's write lock (:attr:`catlog.writer.Writer.lock`, ENG-21) guards every change to
all four. Readers (``get``, ``in``) read ``index`` and ``expires`` without it: each change is one
dict operation, which CPython performs whole. ``order`` and ``dead`` are read and written only
under the lock.
The store and its writer name ``index`` and ``expires`` as these very dict objects (which is why
closing clears them in place), so their hot paths (``get``, :meth:`catlog.writer.Writer.put` and
``put_many``, which inline :meth:`Keyspace.apply`'s plain PUT) read them without a call.
"""

from __future__ import annotations

import struct
from bisect import bisect_left, insort
from collections.abc import Callable, Iterator
from typing import Final

from .codec import RECORD_HEADER_SIZE
from .index import LARGE_VALUE, MAX_SLOTS, SLOT_SHIFT

BLOCK: Final = 512
"""Pairs per block of :class:`ExpiryOrder`: a block splits past twice this, and one below a
quarter of it is merged into its neighbour, so blocks hold 128 to 1,024 pairs (but a lone one)."""

WRITE_PURGE: Final = 20
"""ENG-61: at most this many expired keys forgotten by one write (Redis samples 20 per cycle)."""

PURGE_STEP: Final = 1000
"""ENG-62: at most this many expired keys forgotten by one :meth:`Keyspace.purge` step."""

NEVER: Final = 1 << 63
"""Later than any expiry (ENG-33's largest is 2^63 - 1): :attr:`ExpiryOrder.soonest` when empty."""


def dead_size(key_len: int, location: int) -> int:
    """ENG-41: the size the estimate counts for the record at ``location`` of a key of ``key_len``
    bytes, from the location alone: a 21-byte header (FMT-4), packed or not, the key, and the
    value length the location holds, which is 65,535 for any larger value (whose true size
    :attr:`Keyspace.large_size` reads). A DELETE or a batch frame is ``dead_size(klen, 0)`` and
    ``dead_size(0, 0)``: a header, with no value."""
    return RECORD_HEADER_SIZE + key_len + (location & LARGE_VALUE)


_AT: Final = struct.Struct(">Q")
"""An entry of :class:`ExpiryOrder` starts with its expiry as 8 big-endian bytes."""


def _entry(expires_at_ms: int, key: bytes) -> bytes:
    return _AT.pack(expires_at_ms) + key


class ExpiryOrder:
    """``(expires_at_ms, key)`` pairs in sorted order, in blocks of up to ``2 * BLOCK``.

    One sorted list would make adding a pair a ``memmove`` of every later pair (a megabyte per
    SET EX with 200,000 expiries); a heap cannot count its pairs before a time without popping
    them. Blocks give both: adding or removing moves at most one block's pairs, and counting the
    pairs before a time is a search in ``lasts`` and a sum of whole blocks' lengths.

    Each pair is held as one ``bytes``, the expiry in 8 big-endian bytes then the key, which
    sorts as the pair does (ENG-33's expiries are below 2^63) but compares with one ``memcmp``
    rather than a tuple's element-by-element comparison: 200,000 keys given one expiry were
    added at a third of the old heap's speed as tuples, and at close to it as bytes.
    """

    __slots__ = ("_blocks", "_lasts", "_size", "soonest")

    def __init__(self, pairs: list[tuple[int, bytes]]) -> None:
        """``pairs`` sorted and distinct."""
        entries = [_entry(at, key) for at, key in pairs]
        self._blocks = [entries[i : i + BLOCK] for i in range(0, len(entries), BLOCK)]
        if len(self._blocks) > 1 and len(self._blocks[-1]) < BLOCK // 4:
            self._blocks[-2:] = [self._blocks[-2] + self._blocks[-1]]
        self._lasts = [block[-1] for block in self._blocks]
        """The largest entry of each block, for the search that finds an entry's block."""
        self._size = len(entries)
        self.soonest = pairs[0][0] if pairs else NEVER
        """The earliest expiry held, or :data:`NEVER`: a write compares it with the clock so
        that it calls :meth:`Keyspace.purge` only when some key has expired (ENG-61)."""

    def __len__(self) -> int:
        return self._size

    def clear(self) -> None:
        self._blocks.clear()
        self._lasts.clear()
        self._size = 0
        self.soonest = NEVER

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        unpack = _AT.unpack_from
        for block in self._blocks:
            for entry in block:
                yield unpack(entry)[0], entry[8:]

    def _first(self) -> int:
        blocks = self._blocks
        return int(_AT.unpack_from(blocks[0][0])[0]) if blocks else NEVER

    def add(self, expires_at_ms: int, key: bytes) -> None:
        entry = _AT.pack(expires_at_ms) + key
        blocks, lasts = self._blocks, self._lasts
        self._size += 1
        if expires_at_ms < self.soonest:  # noqa: PLR1730 (min() is a call, on SET EX's path)
            self.soonest = expires_at_ms
        if not blocks:
            blocks.append([entry])
            lasts.append(entry)
            return
        i = bisect_left(lasts, entry)
        if i == len(lasts):  # past every entry: the common case, a TTL from now
            i -= 1
            blocks[i].append(entry)
            lasts[i] = entry
        else:
            insort(blocks[i], entry)
        if len(blocks[i]) > 2 * BLOCK:
            self._mend(i)

    def remove(self, expires_at_ms: int, key: bytes) -> None:
        entry = _AT.pack(expires_at_ms) + key
        blocks, lasts = self._blocks, self._lasts
        i = bisect_left(lasts, entry)
        block = blocks[i]
        j = bisect_left(block, entry)
        assert block[j] == entry, "every expiry has its pair (see the module's docstring)"
        del block[j]
        self._size -= 1
        if j == len(block) and block:
            lasts[i] = block[-1]
        if len(block) < BLOCK // 4:
            self._mend(i)
        if not i and not j:
            self.soonest = self._first()

    def _mend(self, i: int) -> None:
        """Bring block ``i`` back within its bounds: drop it if empty, merge it into a neighbour
        if small, split it if large (see :data:`BLOCK`)."""
        blocks, lasts = self._blocks, self._lasts
        block = blocks[i]
        if not block:
            del blocks[i]
            del lasts[i]
            return
        if len(block) < BLOCK // 4 and len(blocks) > 1:
            i = i if i + 1 < len(blocks) else i - 1
            block = blocks[i] + blocks[i + 1]
            blocks[i : i + 2] = [block]
            lasts[i : i + 2] = [block[-1]]
        if len(block) > 2 * BLOCK:
            blocks[i : i + 1] = [block[:BLOCK], block[BLOCK:]]
            lasts[i : i + 1] = [block[BLOCK - 1], block[-1]]

    def count_before(self, now: int) -> int:
        """The pairs whose expiry is before ``now``: the keys expired at ``now`` (ENG-34)."""
        if self.soonest >= now:
            return 0
        blocks = self._blocks
        probe = _AT.pack(now)  # sorts before every entry of expiry now, after all earlier ones
        i = bisect_left(self._lasts, probe)  # blocks before i lie wholly before now
        count = sum(map(len, blocks[:i]))
        if i < len(blocks):
            count += bisect_left(blocks[i], probe)
        return count

    def pop_before(self, now: int, limit: int) -> list[bytes]:
        """Take off the first keys whose expiry is before ``now``, at most ``limit`` of them."""
        taken: list[bytes] = []
        blocks = self._blocks
        probe = _AT.pack(now)
        while blocks and len(taken) < limit:
            block = blocks[0]
            j = min(bisect_left(block, probe), limit - len(taken))
            if not j:
                break
            taken += [entry[8:] for entry in block[:j]]
            del block[:j]
            if len(block) < BLOCK // 4:
                self._mend(0)
        self._size -= len(taken)
        self.soonest = self._first()
        return taken

    def check(self) -> None:
        """Raise AssertionError unless the blocks are sorted, non-empty and ``lasts`` agrees."""
        entries = [entry for block in self._blocks for entry in block]
        assert entries == sorted(entries), "expiry entries in order"
        sizes = [len(block) for block in self._blocks]
        bounded = all(BLOCK // 4 <= size <= 2 * BLOCK for size in sizes)
        assert bounded or len(sizes) == 1, "blocks hold 128 to 1,024 entries, but a lone one"
        assert all(sizes), "no empty block"
        assert self._lasts == [block[-1] for block in self._blocks], "lasts match the blocks"
        assert self._size == len(entries), "the size counts every entry"
        assert self.soonest == self._first(), "soonest is the first expiry"


class Keyspace:
    """The index, the expiries and the dead-byte estimate of one open store (see the module).

    Every method is called with the store's write lock held.
    """

    __slots__ = ("dead", "expires", "index", "large_size", "order", "slot_dead")

    def __init__(self, index: dict[bytes, int], expires: dict[bytes, int]) -> None:
        """ENG-13, ENG-33: the index and expiries replay left (``expires`` only of indexed keys)."""
        self.index: Final = index
        """ENG-11: each indexed key's location. Lock: written under the write lock, read without."""
        self.expires: Final = expires
        """ENG-33: expiry of each indexed key whose newest record expires. Lock: as ``index``."""
        self.order: Final = ExpiryOrder(sorted((at, key) for key, at in expires.items()))
        """Exactly the pairs ``(expires[key], key)``, sorted. Lock: the write lock."""
        self.dead = 0
        """ENG-41: the estimate of dead bytes. Lock: the write lock."""
        self.slot_dead: Final = [0] * MAX_SLOTS
        """ENG-73: ``dead`` by segment slot, for compaction's choice of inputs. Lock: the write
        lock."""
        self.large_size: Callable[[int, int], int] = dead_size
        """ENG-41: the size of the record at a location whose value is ``LARGE_VALUE`` bytes or
        more, which the index does not hold: the writer reads it from the record's header
        (:meth:`catlog.writer.Writer.large_record_size`); until then, :func:`dead_size`."""

    def size_of(self, key_len: int, location: int) -> int:
        """ENG-41: what the estimate counts for the record at ``location`` once it is dead."""
        value_len = location & LARGE_VALUE
        if value_len == LARGE_VALUE:
            return self.large_size(key_len, location)
        return RECORD_HEADER_SIZE + key_len + value_len

    def kill(self, key_len: int, location: int) -> None:
        """ENG-41, ENG-73: the record at ``location`` (of a key ``key_len`` long) is dead now:
        count it, in all and in its segment. One call for both, on the put path's overwrites,
        with :meth:`size_of` spelled inline (the fill benchmark pays for a second call)."""
        value_len = location & LARGE_VALUE
        if value_len == LARGE_VALUE:
            size = self.large_size(key_len, location)
        else:
            size = RECORD_HEADER_SIZE + key_len + value_len
        self.dead += size
        # inline unpack_location: its slot, on the overwrite path of the fill benchmark.
        self.slot_dead[location >> SLOT_SHIFT] += size

    def add_dead(self, slot: int, size: int) -> None:
        """ENG-41, ENG-73: ``size`` bytes of the segment in ``slot`` are dead (a tombstone or a
        batch's frame, which nothing in the index points at)."""
        self.dead += size
        self.slot_dead[slot] += size

    def set_expiry(self, key: bytes, expires_at_ms: int) -> None:
        """ENG-33: ``key``, indexed, now expires at ``expires_at_ms``."""
        old = self.expires.get(key)
        if old is not None:
            self.order.remove(old, key)
        self.expires[key] = expires_at_ms
        self.order.add(expires_at_ms, key)

    def clear_expiry(self, key: bytes) -> None:
        """ENG-33: ``key`` no longer expires (its newest record is a plain PUT, or it is gone)."""
        old = self.expires.pop(key, None)
        if old is not None:
            self.order.remove(old, key)

    def apply(self, key: bytes, location: int | None, expires_at_ms: int, active_slot: int) -> None:
        """ENG-1, ENG-5, ENG-33, ENG-41: make one write's effect visible: ``key`` now at
        ``location`` (``None``: deleted), expiring at ``expires_at_ms`` (0: never). A delete's
        tombstone is counted dead in the segment of ``active_slot`` (ENG-73), where it was
        appended or, once a rotation came between, near it."""
        index = self.index
        if location is None:
            old = index.pop(key, None)
            self.add_dead(active_slot, dead_size(len(key), 0))  # ENG-41: the tombstone itself
        else:
            old = index.get(key)
            index[key] = location
        if old is not None:
            self.kill(len(key), old)
        if expires_at_ms and location is not None:
            self.set_expiry(key, expires_at_ms)
        elif self.expires and key in self.expires:
            self.clear_expiry(key)

    def apply_in_order(
        self, effects: list[tuple[int, bytes, int | None, int]], active_slot: int
    ) -> None:
        """ENG-37, ENG-58: make writes' effects visible in order: ``(ticket, key, location or
        None, expiry or 0)``, as the store's appends left them; runs of plain PUTs go in one
        update.

        A run of plain PUTs (all of an MSET's, ENG-37) then becomes visible to lock-free readers
        in one ``dict.update``, which CPython performs without letting another thread run.
        """
        run: dict[bytes, int] = {}
        for _, key, location, expires_at in effects:
            if location is not None and not expires_at:
                replaced = run.get(key)
                if replaced is not None:  # ENG-41: a PUT overwritten within the run is dead too
                    self.kill(len(key), replaced)
                run[key] = location
                continue
            if run:
                self._apply_run(run)
                run = {}
            self.apply(key, location, expires_at, active_slot)
        if run:
            self._apply_run(run)

    def _apply_run(self, run: dict[bytes, int]) -> None:
        index = self.index
        get = index.get
        kill = self.kill
        for key in run:
            old = get(key)
            if old is not None:
                kill(len(key), old)
        index.update(run)
        expires = self.expires
        if expires:
            for key in run:
                if key in expires:
                    self.clear_expiry(key)

    def forget(self, key: bytes) -> None:
        """ENG-34, ENG-41: drop the expired ``key`` from the index; its record becomes dead."""
        self.clear_expiry(key)
        self.kill(len(key), self.index.pop(key))

    def expired(self, now: int) -> int:
        """ENG-60: how many indexed keys have expired at ``now`` and are not forgotten yet."""
        return self.order.count_before(now)

    def live_keys(self, now: int) -> int:
        """ENG-60: the number of keys with a value at ``now`` (see the module for why exact)."""
        return len(self.index) - self.order.count_before(now)

    def due(self, now: int) -> Iterator[bytes]:
        """The keys expired at ``now`` not forgotten yet, for a listing to leave out."""
        for expires_at, key in self.order:
            if expires_at >= now:
                return
            yield key

    def purge(self, now: int, limit: int) -> int:
        """ENG-61, ENG-62: forget at most ``limit`` keys expired at ``now``, soonest first;
        returns how many. Writes nothing (ENG-34); each forgotten record counts as dead."""
        index, expires, kill = self.index, self.expires, self.kill
        keys = self.order.pop_before(now, limit)
        for key in keys:
            del expires[key]
            kill(len(key), index.pop(key))
        return len(keys)

    def clear(self) -> None:
        """ENG-18: a closed store lets go of its keys (the objects stay, so that the names the
        store and its writer hold for them stay right)."""
        self.index.clear()
        self.expires.clear()
        self.order.clear()
        self.dead = 0
        self.slot_dead[:] = [0] * len(self.slot_dead)

    def check(self) -> None:
        """The keyspace's invariants, for the store's ``_check_invariants``
        (:mod:`catlog.maintenance`)."""
        self.order.check()
        assert self.expires.keys() <= self.index.keys(), "ENG-33: expiries only of indexed keys"
        assert sorted(self.order) == sorted((at, key) for key, at in self.expires.items()), (
            "ENG-60: one expiry pair for each expiry, and no other"
        )
        assert self.dead >= 0, "ENG-41: dead bytes are never negative"
        assert min(self.slot_dead) >= 0, "ENG-73: nor are a segment's"
