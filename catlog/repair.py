"""``catlog repair``: keep every valid record, set every damaged byte aside, never delete one.

Implements TOOL-13 .. TOOL-19 of spec/tools.md. The *plan* is pure: from the bytes of a segment,
:func:`plan_segment` works out which byte ranges hold valid records (kept, in order, byte for byte)
and which regions hold damage (quarantined). :func:`repair_directory` is the edge that carries the
plan out through a :class:`~catlog.fs.FileSystem` (TOOL-1), holding the directory lock (TOOL-2).

Theory of operation. Repair runs in two passes. The first scans every segment and changes nothing;
if any segment holds bytes that may be a newer writer's data (a record of a reserved type, a
header of an unknown version: TOOL-17), repair stops there, so that a refusal never leaves a
half-repaired directory. The second pass rewrites each damaged segment, oldest first, in the one
order that a crash cannot make lose a byte (TOOL-15):

1. each damaged region goes to its own quarantine file (written as ``<name>.repairing``, fsynced,
   renamed), then the directory is fsynced;
2. the header and the kept records go to ``<segment>.repairing``, which is fsynced;
3. that file is renamed over the segment, and the directory is fsynced.

Until step 3 the old segment is intact; after it, every byte the old segment held is either in the
new segment or in a quarantine file that was durable before the rename. A crash anywhere leaves a
directory that a second run repairs to the same result: it finds the same damage, reuses a
quarantine file whose bytes already match (TOOL-13), and removes the scratch files, which are
never the only copy of anything.
"""

from __future__ import annotations

from dataclasses import dataclass

from .codec import (
    FORMAT_VERSION,
    PACKED_VERSION,
    SEGMENT_HEADER_SIZE,
    HeaderStatus,
    Record,
    decode_segment_header,
    encode_segment_header,
)
from .fs import FileSystem, OsFileSystem
from .hint import hint_name
from .scan import (
    REFUSED_KINDS,
    SCRATCH_SUFFIX,
    Region,
    RegionKind,
    is_scratch_name,
    list_segments,
    lock_directory,
    read_file,
    scan_segment,
)
from .segment import parse_segment_name


@dataclass(frozen=True, slots=True)
class SegmentPlan:
    """What repair would do to one segment: the regions to set aside and the bytes to keep."""

    regions: tuple[Region, ...]
    kept: tuple[tuple[int, int], ...]
    """Byte ranges ``(start, end)`` of valid records, adjacent records merged into one range."""
    records: int
    packed: bool = False
    """Whether the segment is read as a packed one (FMT-26): its header says so or, when the header
    is damaged, its first valid record after it is a packed record (REC-22)."""

    @property
    def needs_rewrite(self) -> bool:
        return bool(self.regions)

    @property
    def new_size(self) -> int:
        return SEGMENT_HEADER_SIZE + sum(end - start for start, end in self.kept)


def plan_segment(data: bytes | memoryview, *, newest: bool) -> SegmentPlan:
    """TOOL-14: keep every valid record in order; every other byte is in exactly one region."""
    regions: list[Region] = []
    kept: list[tuple[int, int]] = []
    records = 0
    packed = False
    for entry in scan_segment(data, newest=newest):
        if isinstance(entry, Record):
            records += 1
            packed = entry.packed
            end = entry.offset + entry.size
            if kept and kept[-1][1] == entry.offset:
                kept[-1] = (kept[-1][0], end)
            else:
                kept.append((entry.offset, end))
        else:
            regions.append(entry)
    return SegmentPlan(tuple(regions), tuple(kept), records, packed)


def quarantine_base(segment: str, region: Region) -> str:
    """TOOL-13: ``<segment>.torn-<offset>`` for a torn tail (REC-4's name), else ``.damaged-``."""
    what = "torn" if region.kind is RegionKind.TORN_TAIL else "damaged"
    return f"{segment}.{what}-{region.start}"


@dataclass(frozen=True, slots=True)
class Quarantined:
    """One region and the file its bytes were kept in (``None``: the region held no bytes)."""

    region: Region
    file: str | None


@dataclass(frozen=True, slots=True)
class SegmentRepair:
    """TOOL-18: what repair did (or, in a dry run, would do) to one segment."""

    segment: str
    old_size: int
    new_size: int
    records_kept: int
    quarantined: tuple[Quarantined, ...]

    @property
    def bytes_quarantined(self) -> int:
        return sum(q.region.length for q in self.quarantined)


@dataclass(frozen=True, slots=True)
class RepairReport:
    """TOOL-18: the outcome of one run of ``catlog repair``."""

    directory: str
    segments: int
    records: int
    """Valid records in the directory, all of which are kept."""
    repaired: tuple[SegmentRepair, ...]
    refused: tuple[tuple[str, Region], ...]
    """Regions repair will not touch (TOOL-17); when there are any, no file was changed."""
    scratch_removed: tuple[str, ...]
    dry_run: bool

    @property
    def changed(self) -> bool:
        return not self.dry_run and bool(self.repaired or self.scratch_removed)


def repair_directory(
    directory: str, *, fs: FileSystem | None = None, dry_run: bool = False
) -> RepairReport:
    """Repair the data directory ``directory`` (TOOL-14 .. TOOL-19); see the module docstring.

    Raises :class:`~catlog.LockedError` if a store (or another tool) holds the directory, and
    ``OSError`` if the file system fails; a failure part-way leaves a state a rerun completes.
    """
    fs = fs if fs is not None else OsFileSystem()
    directory = directory.rstrip("/") or "/"
    lock = lock_directory(fs, directory)
    try:
        return _repair_locked(fs, directory, dry_run=dry_run)
    finally:
        lock.release()


def _repair_locked(fs: FileSystem, directory: str, *, dry_run: bool) -> RepairReport:
    names = list_segments(fs, directory)
    newest = names[-1] if names else None
    damaged: list[str] = []
    refused: list[tuple[str, Region]] = []
    records = 0
    for name in names:  # pass 1: look, change nothing
        plan = plan_segment(read_file(fs, f"{directory}/{name}"), newest=name == newest)
        records += plan.records
        refused.extend((name, r) for r in plan.regions if r.kind in REFUSED_KINDS)
        if plan.needs_rewrite:
            damaged.append(name)
    if refused:
        return RepairReport(directory, len(names), records, (), tuple(refused), (), dry_run)

    scratch = tuple(sorted(n for n in fs.listdir(directory) if is_scratch_name(n)))
    if scratch and not dry_run:
        for name in scratch:
            fs.remove(f"{directory}/{name}")
        fs.sync_dir(directory)
    repaired = tuple(
        _repair_segment(fs, directory, name, newest=name == newest, dry_run=dry_run)
        for name in damaged
    )
    return RepairReport(directory, len(names), records, repaired, (), scratch, dry_run)


def _repair_segment(
    fs: FileSystem, directory: str, name: str, *, newest: bool, dry_run: bool
) -> SegmentRepair:
    """Pass 2 for one segment, in TOOL-15's order."""
    data = read_file(fs, f"{directory}/{name}")
    plan = plan_segment(data, newest=newest)
    assert plan.needs_rewrite, "pass 1 found damage and the lock kept the file as it was"
    view = memoryview(data)
    quarantined = tuple(
        Quarantined(region, _keep_aside(fs, directory, name, region, view, dry_run=dry_run))
        for region in plan.regions
    )
    if not dry_run:
        if any(q.file is not None for q in quarantined):
            fs.sync_dir(directory)  # the quarantine files' names are durable before the rename
        # TOOL-14, TOOL-23: the new header has the version the kept records are read in, so a
        # packed segment stays packed even when damage took its header (REC-22).
        packed = plan.packed or decode_segment_header(data) == (HeaderStatus.OK, PACKED_VERSION)
        chunks: list[memoryview | bytes] = [
            encode_segment_header(PACKED_VERSION if packed else FORMAT_VERSION)
        ]
        chunks.extend(view[start:end] for start, end in plan.kept)
        _remove_hint(fs, directory, name)
        _write_new(fs, f"{directory}/{name}", chunks)
        fs.sync_dir(directory)
    return SegmentRepair(name, len(data), plan.new_size, plan.records, quarantined)


def _remove_hint(fs: FileSystem, directory: str, name: str) -> None:
    """TOOL-24: the hint of a segment about to be rewritten describes the old bytes; remove it
    (durably, before the rename) so that no open meets a stale hint, and the next scans it."""
    number = parse_segment_name(name)
    hint = f"{directory}/{hint_name(number)}" if number is not None else None
    if hint is not None and fs.exists(hint):
        fs.remove(hint)
        fs.sync_dir(directory)


def _keep_aside(
    fs: FileSystem,
    directory: str,
    segment: str,
    region: Region,
    data: memoryview,
    *,
    dry_run: bool,
) -> str | None:
    """TOOL-13: write ``region``'s bytes to a fresh quarantine file, or reuse an identical one.

    A quarantine file that exists with other bytes is never touched: the next free name
    (``.2``, ``.3``, ... as REC-4 does) is used instead. One with the very same bytes is what an
    interrupted earlier run left, and reusing it keeps a rerun from piling up copies.
    """
    if region.length == 0:
        return None
    content = data[region.start : region.end]
    base = quarantine_base(segment, region)
    existing = set(fs.listdir(directory))
    name, suffix = base, 1
    while name in existing:
        if read_file(fs, f"{directory}/{name}") == content:
            if not dry_run:
                _sync_existing(fs, f"{directory}/{name}")
            return name
        suffix += 1
        name = f"{base}.{suffix}"
    if not dry_run:
        _write_new(fs, f"{directory}/{name}", [content])
    return name


def _write_new(fs: FileSystem, path: str, chunks: list[memoryview | bytes]) -> None:
    """Make ``path`` hold ``chunks``, all or nothing: write a scratch file, fsync, rename.

    The caller fsyncs the directory afterwards. A crash before the rename leaves only the scratch
    file, which the next run removes (TOOL-15); so a file under its final name is always whole,
    and a rerun finds either nothing or exactly these bytes.
    """
    scratch = path + SCRATCH_SUFFIX
    if fs.exists(scratch):  # opening with create keeps old bytes; a leftover must not prefix ours
        fs.remove(scratch)
    file = fs.open(scratch, writable=True, create=True)
    try:
        for chunk in chunks:
            file.append(chunk)
        file.sync()
    finally:
        file.close()
    fs.rename(scratch, path)


def _sync_existing(fs: FileSystem, path: str) -> None:
    """fsync a quarantine file an interrupted run may have written but not yet made durable."""
    file = fs.open(path, writable=True)
    try:
        file.sync()
    finally:
        file.close()
