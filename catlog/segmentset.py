"""The segments of an open store: by slot, for the index, and in number order, for everything else.

A location names its segment by *slot* (:mod:`catlog.index`), a small number reused once the
segment in it is removed, rather than by the segment's number, which only grows: so the index's
integers stay small however long the store runs (ENG-74). This module keeps the two views in step:
``slots`` for reads (a list indexed by slot) and ``order`` (FMT-13: number order, the active
segment last) for rotation, compaction, hints and stats, with the slots compaction freed and the
removed segments still open for a snapshot (ENG-40, ENG-68).

Lock: the store's write lock guards every change. Readers index ``slots`` without it: a slot's
entry is replaced whole, and a slot is handed out again only after the index stops pointing into
it (ENG-55).
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Final

from .codec import RECORD_HEADER_SIZE, SEGMENT_HEADER_SIZE
from .compactionplan import RESERVED_SLOTS
from .errors import CatlogError
from .filecache import FileCache
from .index import LARGE_VALUE, MAX_SLOTS, SLOT_SHIFT
from .keyspace import Keyspace
from .reading import stored_size
from .segment import ActiveSegment, Segment

if TYPE_CHECKING:
    from .snapshot import Snapshot


class SegmentSet:
    """Every segment of one open store, by slot and in number order."""

    __slots__ = (
        "files",
        "free",
        "max_segments",
        "order",
        "path",
        "retired",
        "slot_dead",
        "slots",
        "snapshots",
    )

    def __init__(
        self,
        path: str,
        files: FileCache,
        segments: list[Segment],
        max_segments: int,
        slot_dead: list[int],
    ) -> None:
        """``segments`` as opening found them: in number order, each in the slot of its place."""
        self.path: Final = path
        self.files: Final = files
        """ENG-65: which sealed segments hold a descriptor (its own lock)."""
        self.slots: Final = list(segments)
        """Segments by slot; a slot whose segment compaction removed keeps the old object until
        :meth:`new_slot` hands it out again."""
        self.order: Final = list(segments)
        """The segments that exist, in number order (FMT-13), the active one last. The hint
        writer's membership test reads it without the lock."""
        self.free: Final[list[int]] = []
        """Slots compaction freed."""
        self.retired: Final[list[Segment]] = []
        """Removed by compaction but still open, for the snapshots that may read them."""
        self.snapshots: Final[weakref.WeakSet[Snapshot]] = weakref.WeakSet()
        """The snapshots not yet closed: while there is one, a removed segment stays open."""
        self.max_segments: Final = max_segments
        self.slot_dead: Final = slot_dead
        """ENG-73: the keyspace's dead bytes by slot, zeroed as a slot gets a new segment."""

    def in_use(self) -> int:
        """ENG-74: the segments open, compaction outputs not yet installed included."""
        return len(self.slots) - len(self.free)

    def disk_bytes(self) -> int:
        return sum(segment.size() for segment in self.order)

    def count_dead(self, keyspace: Keyspace) -> None:
        """ENG-41, ENG-73: at open, each segment's dead bytes are its bytes less its header and
        the bytes its live records take on disk, which a large value's or a packed record's
        :func:`~catlog.keyspace.dead_size` would miscount; the estimate is their sum."""
        live = [0] * len(self.slots)
        slots = self.slots
        packed = [segment.packed for segment in slots]
        for key, location in keyspace.index.items():
            # inline unpack_location: a store opened with compact_threshold (every server's)
            # walks its whole index here, and a record of a plain segment needs no call.
            slot = location >> SLOT_SHIFT
            value_len = location & LARGE_VALUE
            if value_len < LARGE_VALUE and not packed[slot]:
                live[slot] += RECORD_HEADER_SIZE + len(key) + value_len
                continue
            # Opening checked every byte of every segment (a hint's crc covers its segment's,
            # FMT-19), so the header read for a large value's length finds no damage.
            live[slot] += stored_size(slots[slot], len(key), location)
        for segment in self.order:
            size = segment.size() - SEGMENT_HEADER_SIZE
            self.slot_dead[segment.slot] = max(0, size - live[segment.slot])
        keyspace.dead = sum(self.slot_dead[segment.slot] for segment in self.order)

    def new_slot(self, *, compaction: bool = False) -> int:
        """A slot for a new segment: one compaction freed, or the next unused one.

        ENG-74: a rotation for writes leaves ``RESERVED_SLOTS`` free for compaction, and says
        what to do instead of wedging at the limit.
        """
        in_use = self.in_use()
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
        if self.free:
            return self.free.pop()
        return len(self.slots)

    def hold(self, slot: int, holder: Segment) -> None:
        """Keep a compaction output's new ``slot`` taken, by ``holder``, until it is placed."""
        if slot == len(self.slots):
            self.slots.append(holder)

    def place(self, segment: Segment) -> None:
        """Record a new segment in its slot and in number order."""
        if not isinstance(segment, ActiveSegment):
            self.files.adopt(segment, segment.file)  # ENG-65: a compaction's output
        if segment.slot == len(self.slots):
            self.slots.append(segment)
        else:
            self.slots[segment.slot] = segment
        self.slot_dead[segment.slot] = 0  # ENG-73: nothing points into it yet
        position = len(self.order)
        while position and self.order[position - 1].number > segment.number:
            position -= 1
        self.order.insert(position, segment)

    def seal(self, old: ActiveSegment, sealed: Segment) -> None:
        """ENG-9: the active segment ``old`` is ``sealed`` now, in its slot and place."""
        self.files.adopt(sealed, old.file, writable=True)  # ENG-65
        self.slots[old.slot] = sealed
        self.order[-1] = sealed

    def release(self, slot: int) -> None:
        """ENG-57: a compaction output that was never placed gives its slot back."""
        self.free.append(slot)
        self.slot_dead[slot] = 0

    def remove(self, segment: Segment) -> None:
        """ENG-39 step 3, ENG-40: ``segment``'s file is gone; its slot is free, and its file
        stays open while a snapshot may read it."""
        self.order.remove(segment)
        self.release(segment.slot)
        if len(self.snapshots):
            self.retired.append(segment)
        else:
            segment.file.close()

    def snapshot_closed(self, snapshot: Snapshot) -> None:
        """ENG-40: close the segments compaction removed once no snapshot can read them."""
        self.snapshots.discard(snapshot)
        if not len(self.snapshots) and self.retired:
            for segment in self.retired:
                segment.file.close()
            self.retired.clear()

    def close_files(self) -> None:
        for segment in [*self.slots, *self.retired]:
            segment.file.close()

    def check(self, active: Segment) -> None:
        """The segments' invariants, for the store's ``_check_invariants``
        (:mod:`catlog.maintenance`)."""
        order = self.order
        assert order, "a store has at least its active segment"
        assert order[-1] is active, "the active segment is the newest"
        numbers = [segment.number for segment in order]
        assert numbers == sorted(set(numbers)), "segments in number order, once each"
        assert self.slots[active.slot] is active, "the active one's slot"
        assert self.in_use() <= self.max_segments, "ENG-74: within the limit"
        assert len(self.slots) <= MAX_SLOTS, "ENG-74: slots the index can name"
