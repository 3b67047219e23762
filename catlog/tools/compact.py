"""``catlog compact DIR``: one compaction from the command line, with a progress bar on a terminal
and a one-line report (TOOL-22, TOOL-42).

The tool opens the directory as a store (taking its lock and recovering it), so that the engine's
own compaction (ENG-39), and nothing written for the tool, rewrites the segments.
"""

from __future__ import annotations

import sys

from catlog import open as open_store
from catlog.fs import FileSystem
from catlog.options import DEFAULT_SEGMENT_SIZE

from .listing import segments_of
from .progress import ProgressBar
from .status import EXIT_OK
from .text import count


def compact(directory: str, *, fs: FileSystem, segment_size: int = DEFAULT_SEGMENT_SIZE) -> int:
    """TOOL-22, TOOL-42: compact ``directory`` into outputs of at most ``segment_size`` bytes."""
    directory = directory.rstrip("/") or "/"
    segments_of(fs, directory)  # a wrong path fails before a store is made in it
    with open_store(directory, fs=fs, segment_size=segment_size) as store:
        bar: ProgressBar | None = None

        def progress(done: int, total: int) -> None:
            nonlocal bar
            if bar is None:
                bar = ProgressBar.for_stream(sys.stderr, total, label="compacting")
            bar.update(done)

        try:
            report = store.compact(progress)
        finally:
            if bar is not None:
                bar.clear()
    share = report.reclaimed_bytes / report.input_bytes if report.input_bytes else 0.0
    print(
        f"compacted {count(report.segments_removed, 'segment')} into "
        f"{report.segments_written}: {report.input_bytes} -> {report.output_bytes} bytes, "
        f"{report.reclaimed_bytes} reclaimed ({share:.0%}); "
        f"{count(report.records_copied, 'record')} copied in {report.seconds:.2f} s"
    )
    return EXIT_OK
