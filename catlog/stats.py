"""The counters :meth:`catlog.Store.stats` returns (ENG-26), read from the writer in one step."""

from __future__ import annotations

from dataclasses import dataclass

from .opening import TailRepair
from .segment import segment_name
from .writer import Writer


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
    write_stalls: int = 0
    """ENG-98: how many times a writer waited for compaction since open."""
    write_stall_seconds: float = 0.0
    """ENG-98: the time those waits took, in all."""


def stats_of(writer: Writer, tail_repairs: tuple[TailRepair, ...]) -> StoreStats:
    """The store's counters now. Write lock held, so that they agree with each other."""
    keyspace = writer.keyspace
    active = writer.active
    expired = keyspace.expired(writer.now_ms())  # ENG-60: counted, not forgotten
    client = writer.client_bytes + active.end - writer.active_start
    written = writer.compaction.written_bytes
    return StoreStats(
        keys=len(keyspace.index) - expired,
        segments=len(writer.segments.order),
        active_segment=segment_name(active.number),
        disk_bytes=writer.segments.disk_bytes() - active.unflushed,
        unflushed_bytes=active.unflushed,
        tail_repairs=tail_repairs,
        expiring_keys=len(keyspace.expires) - expired,
        dead_bytes=keyspace.dead,
        compacting=writer.compaction.running(),
        compaction_error=writer.compaction.error,
        client_bytes=client,
        compaction_bytes=written,
        write_amplification=written / client if client else 0.0,
        write_stalls=writer.stalls,
        write_stall_seconds=writer.stall_seconds,
    )
