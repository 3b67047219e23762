"""``catlog repair DIR``: keep every valid record, move damaged bytes to quarantine files, and say
what was done (TOOL-13 .. TOOL-19, TOOL-24).

What repair does to the files, and in which order, is :mod:`catlog.repair`'s; this module runs it
and prints its report.
"""

from __future__ import annotations

from catlog.fs import FileSystem
from catlog.repair import RepairReport, repair_directory

from .listing import segments_of
from .status import EXIT_DAMAGE, EXIT_OK
from .text import count


def repair(directory: str, *, fs: FileSystem, dry_run: bool = False) -> int:
    """TOOL-18: carry out (or, with ``dry_run``, describe) a repair, and say what it did."""
    directory = directory.rstrip("/") or "/"
    segments_of(fs, directory)
    report = repair_directory(directory, fs=fs, dry_run=dry_run)
    for line in repair_lines(report):
        print(line)
    return EXIT_DAMAGE if report.refused else EXIT_OK


def repair_lines(report: RepairReport) -> list[str]:
    """TOOL-18: one line per region, one per segment rewritten, and a summary line."""
    lines: list[str] = []
    if report.refused:
        lines.extend(region.describe(name) for name, region in report.refused)
        lines.append(
            f"refused: no file changed; {count(len(report.refused), 'region')} may hold a newer "
            "catlog's data (FMT-3, FMT-7): open it with that version, or move it aside by hand"
        )
        return lines
    would = "would be " if report.dry_run else ""
    for name in report.scratch_removed:
        lines.append(f"{name}: {would}removed (left by an interrupted repair)")
    quarantined = 0
    for seg in report.repaired:
        for q in seg.quarantined:
            kept = f" -> {would}kept in {q.file}" if q.file is not None else " (no bytes to keep)"
            lines.append(q.region.describe(seg.segment) + kept)
        quarantined += seg.bytes_quarantined
        lines.append(
            f"{seg.segment}: {would}rewritten, {seg.old_size} -> {count(seg.new_size, 'byte')}, "
            f"{count(seg.records_kept, 'record')} kept, "
            f"{count(seg.bytes_quarantined, 'byte')} quarantined"
        )
    counts = f"{count(report.segments, 'segment')}, {count(report.records, 'record')}"
    if not report.repaired and not report.scratch_removed:
        lines.append(f"clean: nothing to repair; {counts}")
    else:
        head = "dry run, nothing changed" if report.dry_run else "repaired"
        lines.append(
            f"{head}: {len(report.repaired)} of {count(report.segments, 'segment')} rewritten, "
            f"{count(quarantined, 'byte')} quarantined, all {count(report.records, 'record')} "
            "kept"
        )
    return lines
