"""Rotation: sealing the active segment and starting the next one (ENG-9, ENG-10).

A rotation happens under the write lock, when a record would overfill the active segment
(:meth:`catlog.writer.Writer.append`) or when a compaction makes room for its outputs
(:mod:`catlog.compaction`, ENG-39). It is the store's one moment of segment-level bookkeeping:
the old segment is fsynced and sealed, its hint written (ENG-30, ENG-31), the next segment
created (which fsyncs the directory), a due compaction planned and started (ENG-73), and the
writer told whether compaction has fallen behind, so that the writer waits for it once the lock
is let go (:func:`stall`, ENG-98).

These functions work on a :class:`catlog.writer.Writer`, which they name only in annotations,
as compaction does.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Final

from .hint import hint_name
from .segment import ActiveSegment, Segment

if TYPE_CHECKING:
    from .writer import Writer

STALL_AT: Final = 1.1
"""ENG-98: writers wait at a rotation once the dead bytes reach this many times the share of
the disk that makes a compaction due (``compact_threshold``)."""
STALL_MOST: Final = 0.02
"""ENG-98: the longest one writer waits for compaction, in seconds."""


def rotate(writer: Writer, gap: int = 0) -> ActiveSegment:
    """ENG-9, ENG-10: seal the active segment (durable first), then start the next one. Write
    lock held.

    ``gap`` numbers are skipped for a compaction's outputs (ENG-39).
    """
    old = writer.active
    writer.flush_and_sync()
    slot = writer.segments.new_slot(compaction=bool(gap))
    options = writer.options
    if options.hints is True:
        write_hint(writer, old)
    planned = 0
    compaction = writer.compaction
    if not gap and compaction.due(writer):
        planned = compaction.plan(writer)  # ENG-73: the outputs go below the new one
    try:
        new = ActiveSegment.create(writer.fs, writer.path, old.number + 1 + gap + planned, slot)
    except OSError as exc:
        raise writer.fail("creating a segment", exc) from exc
    sealed = old.seal()
    writer.segments.seal(old, sealed)
    writer.segments.place(new)
    writer.client_bytes += old.end - writer.active_start  # ENG-77
    writer.active_start = new.end
    writer.active = new
    if options.hints == "background" and not gap:
        writer.hints.queue(sealed)
    if planned:
        compaction.start(writer, options.compact_max_bytes)  # ENG-73: bounded
    threshold = options.compact_threshold
    writer.behind = (
        not gap
        and threshold is not None
        and compaction.running_in_background()
        and writer.keyspace.dead >= STALL_AT * threshold * writer.segments.disk_bytes()
    )
    return new


def stall(writer: Writer) -> None:
    """ENG-98: the writer whose record made the store rotate while compaction is behind waits,
    with no lock held, for the compaction to end, at most :data:`STALL_MOST`. Takes the lock to
    count the wait."""
    started = time.monotonic()
    writer.compaction.wait_in_background(STALL_MOST)
    with writer.lock:
        writer.stalls += 1
        writer.stall_seconds += time.monotonic() - started


def write_hint(writer: Writer, segment: Segment) -> None:
    """ENG-30, ENG-31: write the hint of a segment that just stopped being active. Write lock
    held.

    Called at rotation, after the segment was fsynced and before its successor is created:
    that creation fsyncs the directory (ENG-10), which makes the rename below durable too.
    A failing call here is a failing disk like any other (REC-10): the store stops writing,
    and the write that caused the rotation, not yet appended, is not acknowledged.
    """
    try:
        writer.hints.write(segment.number, segment.file.pread(segment.size(), 0))
    except OSError as exc:
        raise writer.fail(f"writing the hint {hint_name(segment.number)}", exc) from exc
