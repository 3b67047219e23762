"""Scanning a data directory for the tools: every record, every damaged byte, and what each means.

``catlog check``, ``catlog dump`` and ``catlog repair`` (spec/tools.md) all start from the same
question: what do the bytes of this segment hold? The engine's replay stops at the first damage
(REC-3), because it must not guess. A tool must go on, to show the user everything, so this module
walks a segment from end to end and yields, in file order, each valid :class:`~catlog.codec.Record`
and each :class:`Region` of bytes that are not one (TOOL-3). It judges each region the way opening
the store would (TOOL-4): a torn tail that open cuts (REC-4, REC-5), corruption that open refuses
(REC-6), a record written whole that breaks the format (REC-7), or a segment this version cannot
read at all (FMT-3, FMT-12).

Theory of operation. From the first offset where :func:`~catlog.codec.decode_record` finds damage,
the scan does not believe the damaged header's lengths (REC-3): it asks
:func:`~catlog.codec.find_next_record` for the next offset at which a record's crc verifies, and
the bytes in between are one region. No valid record after the damage means the region runs to the
end of the file. A record whose crc verifies but whose type is reserved or whose DELETE carries a
value is the exception: its crc vouches for its lengths, so it is a region of exactly its own
size, and the scan goes on after it.

The top half of the module is pure (bytes in, findings out); the bottom half is the edge the tools
share: listing segments, reading one, and taking the directory lock, all through a
:class:`~catlog.fs.FileSystem` (TOOL-1) so the crash-simulating file system can test the tools too.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final

from .codec import (
    PACKED_VERSION,
    SEGMENT_HEADER_SIZE,
    WRITTEN_WHOLE,
    HeaderStatus,
    Record,
    RecordType,
    decode_record,
    decode_segment_header,
    find_follower_of_header,
    find_next_record,
)
from .errors import LockedError
from .fs import FileLock, FileSystem
from .index import FORMER_MAX_SEGMENT_SIZE, MAX_SEGMENT_SIZE, older_segment
from .segment import COMPACTING_SUFFIX, parse_segment_name, segment_name

LOCK_NAME: Final = "LOCK"
"""ENG-20: the file whose ``flock`` marks a directory as held (the store uses the same name)."""

QUARANTINE_NAME: Final = re.compile(r"(segment-\d{5,}\.log)\.(torn|damaged)-(\d+)(?:\.(\d+))?")
"""REC-4 and TOOL-13: the files where the engine and ``catlog repair`` keep bytes they cut."""

SCRATCH_SUFFIX: Final = ".repairing"
"""TOOL-15: a file ``catlog repair`` is writing (segment or quarantine file) before its rename."""


class RegionKind(enum.Enum):
    """What opening the store would do with a region (TOOL-4). The value is how check says it."""

    CORRUPT = "corrupt"
    """Damage open refuses with ``CorruptionError`` (REC-6)."""
    TORN_TAIL = "torn tail, open cuts it"
    """Damage at the end of the newest segment with no valid record after it (REC-4, REC-5)."""
    FORMAT_VIOLATION = "crc ok but breaks the format, repair refuses"
    """A record written whole with a reserved type or a DELETE with a value (REC-7)."""
    UNSUPPORTED = "unreadable by this version, repair refuses"
    """A header of an unknown format version (FMT-3), or a segment over FMT-12's limit, which
    an older catlog may have written (FMT-36)."""


REFUSED_KINDS: Final = frozenset({RegionKind.FORMAT_VIOLATION, RegionKind.UNSUPPORTED})
"""TOOL-17: regions that may hold a newer writer's data; repair will not move or drop them."""


@dataclass(frozen=True, slots=True)
class Region:
    """Bytes ``start`` up to (not including) ``end`` of a segment that hold no valid record."""

    start: int
    end: int
    reason: str
    kind: RegionKind

    @property
    def length(self) -> int:
        return self.end - self.start

    def describe(self, segment: str) -> str:
        """TOOL-6: ``segment-00003.log@4096: crc mismatch (43 bytes, 4096..4139; corrupt)``.

        The part before the first ``: `` reads like a :class:`~catlog.CorruptionError`, so people
        (and grep) find the same place whichever of open and check reported it.
        """
        size = f"{self.length} byte{'' if self.length == 1 else 's'}"
        return (
            f"{segment}@{self.start}: {self.reason} "
            f"({size}, {self.start}..{self.end}; {self.kind.value})"
        )


Entry = Record | Region
"""What a scan yields: a valid record, or a region of bytes that are not one."""


def scan_segment(
    data: bytes | memoryview, *, newest: bool, max_size: int = MAX_SEGMENT_SIZE
) -> Iterator[Entry]:
    """TOOL-3, TOOL-4: every record and every damaged region of one segment, in file order.

    ``newest`` says whether this is the directory's newest segment, the only one a crash can leave
    with a torn tail (ENG-10). The entries tile the segment: after the header (or after a region
    starting at 0 that replaces it) each entry begins where the one before it ended, and the last
    ends at ``len(data)``. ``max_size`` is FMT-12's limit, a parameter only so tests can reach it.
    """
    size = len(data)
    if size > max_size:
        reason = f"segment of {size} bytes is longer than the format allows ({max_size})"
        if max_size == MAX_SEGMENT_SIZE and size <= FORMER_MAX_SEGMENT_SIZE:
            reason = older_segment(size, "DIR")
        yield Region(0, size, reason, RegionKind.UNSUPPORTED)
        return
    status, version = decode_segment_header(data)
    if status is HeaderStatus.UNSUPPORTED_VERSION:
        yield Region(0, size, f"{status.value} {version}", RegionKind.UNSUPPORTED)
        return
    if size == 0:
        # REC-5: an empty newest segment is valid (open writes its header); an empty older one
        # lost its header, which no crash explains (ENG-10).
        if not newest:
            reason = f"{HeaderStatus.INCOMPLETE.value}: empty segment"
            yield Region(0, 0, reason, RegionKind.CORRUPT)
        return
    offset = SEGMENT_HEADER_SIZE
    packed = status is HeaderStatus.OK and version == PACKED_VERSION
    if status is not HeaderStatus.OK:
        follower = None
        if size > SEGMENT_HEADER_SIZE:
            follower, packed = find_follower_of_header(data)
        offset = size if follower is None else follower
        yield Region(0, offset, status.value, _damage_kind(newest, follower))
    newest = newest and not packed  # REC-19, TOOL-23: no damage in a packed segment is torn
    while offset < size:
        found = decode_record(data, offset, packed=packed)
        if isinstance(found, Record):
            yield found
            offset += found.size
        elif found.kind in WRITTEN_WHOLE:
            # The crc verified, so the lengths are the writer's own (FMT-5), and they were checked
            # against FMT-9 and the end of the data before the crc was computed.
            yield Region(offset, found.end, found.reason, RegionKind.FORMAT_VIOLATION)
            offset = found.end
        else:
            follower = find_next_record(data, offset + 1, packed=packed)
            end = size if follower is None else follower
            yield Region(offset, end, found.reason, _damage_kind(newest, follower))
            offset = end


def _damage_kind(newest: bool, follower: int | None) -> RegionKind:
    """REC-4 .. REC-6, as :func:`catlog.recovery.judge_damage` decides them for open."""
    return RegionKind.TORN_TAIL if newest and follower is None else RegionKind.CORRUPT


@dataclass(slots=True)
class Tally:
    """Counts for check's summary line (TOOL-7), fed every valid record in directory order.

    ``live`` is the set of keys that have a value if every valid record is applied in order
    (FMT-14): what the store would hold after ``catlog repair``.
    """

    segments: int = 0
    disk_bytes: int = 0
    puts: int = 0
    deletes: int = 0
    live: set[bytes] = field(default_factory=set)

    @property
    def records(self) -> int:
        return self.puts + self.deletes

    def add(self, record: Record) -> None:
        """One record; a batch counts as its members (FMT-22)."""
        for member in record.members or (record,):
            if member.type is RecordType.DELETE:
                self.deletes += 1
                self.live.discard(member.key)
            else:
                self.puts += 1
                self.live.add(member.key)


def is_quarantine_name(name: str) -> bool:
    """Whether ``name`` is a file where the engine (REC-4) or repair (TOOL-13) kept cut bytes."""
    return QUARANTINE_NAME.fullmatch(name) is not None


def is_compaction_leftover(name: str) -> bool:
    """Whether ``name`` is an output an interrupted compaction was writing (FMT-25, REC-18)."""
    base = name.removesuffix(COMPACTING_SUFFIX)
    return base != name and parse_segment_name(base) is not None


def is_scratch_name(name: str) -> bool:
    """Whether ``name`` is a file repair was writing when it was interrupted (TOOL-15)."""
    base = name.removesuffix(SCRATCH_SUFFIX)
    return base != name and (parse_segment_name(base) is not None or is_quarantine_name(base))


# --------------------------------------------------------------------------------- the I/O edge


def list_segments(fs: FileSystem, directory: str) -> list[str]:
    """The segment files of ``directory``, oldest first (FMT-1, FMT-13); other names ignored."""
    numbers = sorted(n for n in map(parse_segment_name, fs.listdir(directory)) if n is not None)
    return [segment_name(n) for n in numbers]


def read_file(fs: FileSystem, path: str) -> bytes:
    """The whole of one file, read in one positional read as the engine's replay does."""
    file = fs.open(path)
    try:
        return file.pread(file.size(), 0)
    finally:
        file.close()


def file_size(fs: FileSystem, path: str) -> int:
    file = fs.open(path)
    try:
        return file.size()
    finally:
        file.close()


def lock_directory(fs: FileSystem, directory: str) -> FileLock:
    """TOOL-2: hold ``directory`` as an open store would, or say which process holds it.

    The lock is the store's own (ENG-20), so a store cannot open the directory while a tool works
    on it either. Raises :class:`~catlog.LockedError` naming the holder's pid.
    """
    lock_path = f"{directory}/{LOCK_NAME}"
    try:
        return fs.lock(lock_path)
    except BlockingIOError:
        holder = ""
        try:
            pid = read_file(fs, lock_path)[:32].decode("ascii", "replace").strip()
            holder = f" (pid {pid})" if pid else ""
        except OSError:
            pass
        raise LockedError(
            f"{directory} is open in another process{holder}; "
            "close that store first: a tool must not work on a directory a store is writing"
        ) from None
