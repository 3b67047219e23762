"""``catlog check DIR``: verify every record of every segment and change nothing (TOOL-5 ..
TOOL-9, TOOL-21).

It holds the directory lock while it reads (TOOL-2), so it never mistakes a record a live store is
half-way through appending for a torn tail; its verdict is its exit status (TOOL-8).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from catlog.codec import Record
from catlog.fs import FileLock, FileSystem
from catlog.scan import (
    REFUSED_KINDS,
    Region,
    RegionKind,
    Tally,
    file_size,
    is_compaction_leftover,
    is_quarantine_name,
    is_scratch_name,
    lock_directory,
    read_file,
    scan_segment,
)

from .listing import segments_of
from .progress import ProgressBar
from .status import EXIT_DAMAGE, EXIT_OK, EXIT_TORN_TAIL
from .text import count


def check(directory: str, *, fs: FileSystem, lock: bool = True) -> int:
    """TOOL-5 .. TOOL-9: report every problem of every segment, then a summary; never write."""
    directory = directory.rstrip("/") or "/"
    segments_of(fs, directory)  # a wrong path fails before a LOCK file is made in it
    held: FileLock | None = lock_directory(fs, directory) if lock else None
    try:
        names = segments_of(fs, directory)
        sizes = [file_size(fs, f"{directory}/{name}") for name in names]
        bar = ProgressBar.for_stream(sys.stderr, sum(sizes))
        tally = Tally(segments=len(names), disk_bytes=sum(sizes))
        problems: list[Region] = []
        done = 0
        for name, size in zip(names, sizes, strict=True):
            data = read_file(fs, f"{directory}/{name}")
            for entry in scan_segment(data, newest=name == names[-1]):
                if isinstance(entry, Record):
                    tally.add(entry)
                    bar.update(done + entry.offset + entry.size)
                else:
                    problems.append(entry)
                    bar.clear()
                    print(entry.describe(name))
            done += size
        bar.clear()
        for note in directory_notes(fs, directory, names, sizes):
            print(note)
    finally:
        if held is not None:
            held.release()
    hint = check_hint(problems, directory)
    if hint is not None:
        print(hint)
    verdict, status = check_verdict(problems)
    print(f"{verdict}: {summary(tally, len(problems))}")
    return status


def check_verdict(problems: Sequence[Region]) -> tuple[str, int]:
    """TOOL-8: the summary's first word and the exit status, from the worst problem found."""
    kinds = {problem.kind for problem in problems}
    if RegionKind.UNSUPPORTED in kinds:
        return "unreadable", EXIT_DAMAGE
    if kinds - {RegionKind.TORN_TAIL}:
        return "damaged", EXIT_DAMAGE
    if kinds:
        return "torn tail", EXIT_TORN_TAIL
    return "clean", EXIT_OK


def check_hint(problems: Sequence[Region], directory: str) -> str | None:
    """What to do next: the line before the summary, when there is something to do."""
    kinds = {problem.kind for problem in problems}
    if kinds & REFUSED_KINDS:
        return (
            "hint: some bytes were written whole by a writer this catlog does not understand "
            "(FMT-3, FMT-7); catlog repair will not touch them"
        )
    if RegionKind.CORRUPT in kinds:
        return f"hint: `catlog repair {directory}` keeps every valid record, sets the rest aside"
    if kinds:
        return "hint: opening the store cuts a torn tail (REC-4), and so does catlog repair"
    return None


def summary(tally: Tally, problems: int) -> str:
    """TOOL-7: ``3 segments, 530 bytes, 10 records (9 puts, 1 delete), 8 live keys, 0 problems``."""
    return (
        f"{count(tally.segments, 'segment')}, {count(tally.disk_bytes, 'byte')}, "
        f"{count(tally.records, 'record')} ({count(tally.puts, 'put')}, "
        f"{count(tally.deletes, 'delete')}), {count(len(tally.live), 'live key')}, "
        f"{count(problems, 'problem')}"
    )


def directory_notes(
    fs: FileSystem, directory: str, segments: Sequence[str], sizes: Sequence[int]
) -> list[str]:
    """TOOL-7: what else a reader of the directory should know; none of it is a problem."""
    notes: list[str] = []
    if sizes and sizes[-1] == 0:
        notes.append(f"note: {segments[-1]}: empty newest segment; open writes its header (REC-5)")
    for name in sorted(fs.listdir(directory)):
        if is_quarantine_name(name):
            size = file_size(fs, f"{directory}/{name}")
            notes.append(f"note: {name}: quarantine file, {count(size, 'byte')} (REC-12)")
        elif is_scratch_name(name):
            notes.append(f"note: {name}: left by an interrupted repair; catlog repair removes it")
        elif is_compaction_leftover(name):
            notes.append(
                f"note: {name}: left by an interrupted compaction; opening the store removes it "
                "(REC-18)"
            )
    return notes
