"""The keyspace: which keys have a value, where it lies, until when, and what is dead on disk.

It holds four things the store changes together under its write lock:

- ``index``, each indexed key's location (ENG-11, ENG-13; packed as :mod:`catlog.index` says);
- ``expires``, the expiry of each indexed key whose newest record is an expiring PUT (ENG-33);
- ``order``, those same ``(expires_at_ms, key)`` pairs kept sorted (:class:`ExpiryOrder`);
- ``dead``, ENG-41's estimate of the bytes on disk that compaction would reclaim, with the one
  formula for a record's size, :func:`dead_size`.

Theory of operation for expiry (ENG-34, ENG-60 .. ENG-64). A key expires when the clock passes
its expiry; its index entry may stay until the engine *forgets* it (purging), which writes
nothing. Forgetting is incremental: a few keys per write, a bounded step per :meth:`purge` call
(the flusher's tick, the server's timer, compaction), never all of them at once, so 200,000 keys
expiring together stall nothing.

Counting stays exact without forgetting, because ``order`` holds exactly one pair per entry of
``expires`` (no stale pairs: changing or clearing an expiry removes its pair at once), and every
key of ``expires`` is in ``index``. So the keys indexed but expired at ``now`` are exactly the
pairs of ``order`` before ``(now,)``, those with ``expires_at_ms < now``, and::

    live keys = len(index) - order.count_before(now)

Forgetting takes a pair off the front of ``order`` and its key out of ``index`` and ``expires``:
both sides of the subtraction drop by one, so the count is the same before and after any amount
of purging, which is the point: when purging happens changes no answer. ``count_before`` costs a
binary search plus one C-level ``len`` per block of :data:`BLOCK` due pairs, not a Python step per
due key.

Locks: the store's write lock (``Store._lock``, ENG-21) guards every change to all four. Readers
(``get``, ``in``) read ``index`` and ``expires`` without it: each change is one dict operation,
which CPython performs whole. ``order`` and ``dead`` are read and written only under the lock.
The store keeps ``self._index`` and ``self._expires`` as these very dict objects, so its hot paths
(``get``, ``put_nowait``, the appliers) read them without a call.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterator
from typing import Final

from .codec import RECORD_HEADER_SIZE
from .index import LARGE_VALUE

BLOCK: Final = 512
"""Pairs per block of :class:`ExpiryOrder`: a block splits at twice this."""

WRITE_PURGE: Final = 20
"""ENG-61: at most this many expired keys forgotten by one write (Redis samples 20 per cycle)."""

PURGE_STEP: Final = 1000
"""ENG-62: at most this many expired keys forgotten by one :meth:`Keyspace.purge` step."""


def dead_size(key_len: int, location: int) -> int:
    """ENG-41: the size the estimate counts for the record at ``location`` of a key of ``key_len``
    bytes: a 21-byte header (FMT-4), packed or not, the key, and the value length the location
    holds, which is 65,535 for any larger value. A DELETE or a batch frame is ``dead_size(klen, 0)``
    and ``dead_size(0, 0)``: a header, with no value."""
    return RECORD_HEADER_SIZE + key_len + (location & LARGE_VALUE)


class ExpiryOrder:
    """``(expires_at_ms, key)`` pairs in sorted order, in blocks of up to ``2 * BLOCK``.

    One sorted list would make adding a pair a ``memmove`` of every later pair (a megabyte per
    SET EX with 200,000 expiries); a heap cannot count its pairs before a time without popping
    them. Blocks give both: adding or removing moves at most one block's pairs, and counting the
    pairs before a time is a search in ``lasts`` and a sum of whole blocks' lengths.
    """

    __slots__ = ("_blocks", "_lasts", "_size")

    def __init__(self, pairs: list[tuple[int, bytes]]) -> None:
        """``pairs`` sorted and distinct."""
        self._blocks = [pairs[i : i + BLOCK] for i in range(0, len(pairs), BLOCK)]
        self._lasts = [block[-1] for block in self._blocks]
        """The largest pair of each block, for the search that finds a pair's block."""
        self._size = len(pairs)

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        for block in self._blocks:
            yield from block

    def add(self, pair: tuple[int, bytes]) -> None:
        blocks, lasts = self._blocks, self._lasts
        self._size += 1
        if not blocks:
            blocks.append([pair])
            lasts.append(pair)
            return
        i = bisect_left(lasts, pair)
        if i == len(lasts):  # past every pair: the common case, a TTL from now
            i -= 1
            blocks[i].append(pair)
            lasts[i] = pair
        else:
            insort(blocks[i], pair)
        block = blocks[i]
        if len(block) > 2 * BLOCK:
            blocks[i : i + 1] = [block[:BLOCK], block[BLOCK:]]
            lasts[i : i + 1] = [block[BLOCK - 1], block[-1]]

    def remove(self, pair: tuple[int, bytes]) -> None:
        blocks, lasts = self._blocks, self._lasts
        i = bisect_left(lasts, pair)
        block = blocks[i]
        j = bisect_left(block, pair)
        assert block[j] == pair, "every expiry has its pair (see the module's docstring)"
        del block[j]
        self._size -= 1
        if not block:
            del blocks[i]
            del lasts[i]
        elif j == len(block):
            lasts[i] = block[-1]

    def count_before(self, now: int) -> int:
        """The pairs whose expiry is before ``now``: the keys expired at ``now`` (ENG-34)."""
        blocks, lasts = self._blocks, self._lasts
        if not blocks or blocks[0][0][0] >= now:
            return 0
        i = bisect_left(lasts, (now,))  # blocks before i lie wholly before now
        count = sum(map(len, blocks[:i]))
        if i < len(lasts):
            count += bisect_left(blocks[i], (now,))
        return count

    def pop_before(self, now: int, limit: int) -> list[tuple[int, bytes]]:
        """Take off and return the first pairs before ``now``, at most ``limit`` of them."""
        taken: list[tuple[int, bytes]] = []
        blocks, lasts = self._blocks, self._lasts
        while blocks and len(taken) < limit:
            block = blocks[0]
            j = min(bisect_left(block, (now,)), limit - len(taken))
            if not j:
                break
            taken += block[:j]
            del block[:j]
            if not block:
                del blocks[0]
                del lasts[0]
        self._size -= len(taken)
        return taken

    def check(self) -> None:
        """Raise AssertionError unless the blocks are sorted, non-empty and ``lasts`` agrees."""
        flat = list(self)
        assert flat == sorted(flat), "expiry pairs in order"
        assert all(self._blocks), "no empty block"
        assert self._lasts == [block[-1] for block in self._blocks], "lasts match the blocks"
        assert self._size == len(flat), "the size counts every pair"


class Keyspace:
    """The index, the expiries and the dead-byte estimate of one open store (see the module).

    Every method is called with the store's write lock held.
    """

    __slots__ = ("dead", "expires", "index", "order")

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

    def set_expiry(self, key: bytes, expires_at_ms: int) -> None:
        """ENG-33: ``key``, indexed, now expires at ``expires_at_ms``."""
        old = self.expires.get(key)
        if old is not None:
            self.order.remove((old, key))
        self.expires[key] = expires_at_ms
        self.order.add((expires_at_ms, key))

    def clear_expiry(self, key: bytes) -> None:
        """ENG-33: ``key`` no longer expires (its newest record is a plain PUT, or it is gone)."""
        old = self.expires.pop(key, None)
        if old is not None:
            self.order.remove((old, key))

    def live_bytes(self) -> int:
        """ENG-41: :func:`dead_size` summed over the index, the bytes of the records it points at.

        Spelled out with C-level maps rather than a call per key, since open computes it for a
        whole index; :meth:`check` compares it with the sum of :func:`dead_size`."""
        index = self.index
        return (
            RECORD_HEADER_SIZE * len(index)
            + sum(map(len, index))
            + sum(map(LARGE_VALUE.__and__, index.values()))
        )

    def forget(self, key: bytes) -> None:
        """ENG-34, ENG-41: drop the expired ``key`` from the index; its record becomes dead."""
        self.clear_expiry(key)
        self.dead += dead_size(len(key), self.index.pop(key))

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
        index, expires = self.index, self.expires
        dead = 0
        pairs = self.order.pop_before(now, limit)
        for _, key in pairs:
            del expires[key]
            dead += dead_size(len(key), index.pop(key))
        self.dead += dead
        return len(pairs)

    def check(self) -> None:
        """The keyspace's invariants, for :meth:`catlog.store.Store._check_invariants`."""
        self.order.check()
        assert self.expires.keys() <= self.index.keys(), "ENG-33: expiries only of indexed keys"
        assert sorted(self.order) == sorted((at, key) for key, at in self.expires.items()), (
            "ENG-60: one expiry pair for each expiry, and no other"
        )
        assert self.dead >= 0, "ENG-41: dead bytes are never negative"
        summed = sum(dead_size(len(key), location) for key, location in self.index.items())
        assert self.live_bytes() == summed, "ENG-41: live_bytes is dead_size summed"
