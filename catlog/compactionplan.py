"""Compaction's plan: which segments one compaction takes, how many outputs it may need, and
when the trigger calls for one (ENG-41, ENG-72 .. ENG-76). Pure arithmetic on sizes and counts,
tested at its exact limits without building a store that sits on them; :mod:`catlog.compaction`
carries the plan out.
"""

from __future__ import annotations

import math
from typing import Final

from .codec import SEGMENT_HEADER_SIZE

DEFAULT_MAX_SEGMENTS_IN: Final = 16
DEFAULT_MAX_BYTES: Final = 256 * 1024 * 1024
"""ENG-73: by default one compaction the trigger starts reads at most 16 segments' bytes, and
at most 256 MiB (4 segments of the default size). The soak workload (bench/README.md) needs the
bound: with none, each compaction took the whole store and the disk swung with each one."""


def default_max_bytes(segment_size: int) -> int:
    """ENG-73: ``compact_max_bytes`` when ``catlog.open`` is not given one."""
    return min(DEFAULT_MAX_SEGMENTS_IN * segment_size, DEFAULT_MAX_BYTES)


RESERVED_SLOTS: Final = 16
"""ENG-74: segment slots a rotation for writes never takes, so that a compaction always has
one for its own rotation and some for its outputs."""


def output_bound(input_bytes: int, segment_size: int) -> int:
    """ENG-39's ``G``: the most outputs ``input_bytes`` of inputs can fill."""
    return 2 * math.ceil(input_bytes / segment_size) + 1


def choose_inputs(
    segments: list[tuple[int, int]],
    *,
    segment_size: int,
    free_slots: int,
    max_bytes: int | None,
    worth: float = 0.0,
) -> int:
    """ENG-72, ENG-73: how many of the oldest segments one compaction takes as its inputs.

    ``segments`` holds ``(size, dead bytes)`` of each candidate, oldest first. The inputs are
    always a prefix (ENG-72 says why no other set is safe): the oldest segments while their
    bytes stay within ``max_bytes`` (``None``: no bound) and their outputs, with the
    compaction's own rotation, within ``free_slots``; then, when bounded, the segments at the
    end of that prefix whose own dead fraction is below ``worth`` are left for a later
    compaction, by which time more of them will be dead. At least one is taken, if any.
    """
    total = 0
    count = 0
    for size, _ in segments:
        total += size
        if count and (
            (max_bytes is not None and total > max_bytes)
            or output_bound(total, segment_size) + 1 > free_slots
        ):
            break
        count += 1
    if max_bytes is not None:
        while count > 1 and _dead_fraction(*segments[count - 1]) < worth:
            count -= 1
    return count


def _dead_fraction(size: int, dead: int) -> float:
    """ENG-41 counts a packed record with a 21-byte header, so the fraction may pass 1, as the
    store's may that it is compared with: neither is cut at 1, or a store deader than its disk
    would find every segment below its own fraction and take the oldest alone."""
    return dead / max(1, size - SEGMENT_HEADER_SIZE)


def due_by(
    dead: int, disk: int, threshold: float, segment_size: int, *, in_use: int, max_segments: int
) -> bool:
    """ENG-41, ENG-76: the trigger's arithmetic on its own, so that its exact limits are tested
    without building a store that sits on them: ``dead`` of ``disk`` bytes, ``in_use`` of the
    slots."""
    if dead >= segment_size and in_use >= crowded(max_segments):
        return True
    return dead >= 4 * segment_size and dead >= threshold * disk


def crowded(max_segments: int) -> int:
    """ENG-76: from this many segments open, the trigger compacts: at least three quarters of
    the slots writes may take, so rounded up."""
    return math.ceil((max_segments - RESERVED_SLOTS) * 3 / 4)
