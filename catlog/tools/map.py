"""``catlog map DIR --html FILE``: draw a data directory as one self-contained HTML page (TOOL-30 ..
TOOL-35), read as ``dump`` reads it, from a directory a server may be using (TOOL-36).

What the page draws is decided in :mod:`catlog.datamap` (pure: what the scan found in, the page
out); this module reads the files and writes the page.
"""

from __future__ import annotations

from catlog.datamap import DirectoryMap, DirectoryMapper, judge_hint, render_html
from catlog.fs import FileSystem
from catlog.hint import TEMPORARY_SUFFIX as HINT_TEMPORARY_SUFFIX
from catlog.hint import hint_name, parse_hint_name
from catlog.index import MAX_SLOTS
from catlog.scan import (
    LOCK_NAME,
    is_compaction_leftover,
    is_quarantine_name,
    is_scratch_name,
    read_file,
    scan_segment,
)
from catlog.segment import parse_segment_name

from .check import directory_notes
from .dump import dump_lines, header_text
from .listing import open_listing, segments_of
from .status import EXIT_OK, UsageError
from .text import count


def draw_map(directory: str, html_path: str, *, fs: FileSystem, now_ms: int) -> int:
    """TOOL-30: draw ``directory`` into the page ``html_path``; no lock, no change to the data.

    ``now_ms`` is the time expiries are judged by for the dead-bytes estimate (TOOL-32).
    """
    directory = directory.rstrip("/") or "/"
    if is_catlog_name(html_path.rpartition("/")[2]):
        raise UsageError(
            f"{html_path} has the name of a data directory's file; the map will not overwrite it"
        )
    dmap = map_of(directory, fs=fs, now_ms=now_ms)
    page = render_html(dmap).encode("ascii")
    file = fs.open(html_path, writable=True, create=True)
    try:
        file.truncate(0)
        file.append(page)
    finally:
        file.close()
    segments = count(len(dmap.segments), "segment")
    print(f"{html_path}: map of {directory}, {segments}, {count(len(page), 'byte')}")
    return EXIT_OK


def is_catlog_name(name: str) -> bool:
    """TOOL-30: whether a store or a tool names a file of a data directory so."""
    return (
        name == LOCK_NAME
        or parse_segment_name(name) is not None
        or parse_hint_name(name.removesuffix(HINT_TEMPORARY_SUFFIX)) is not None
        or is_quarantine_name(name)
        or is_compaction_leftover(name)
        or is_scratch_name(name)
    )


def map_of(directory: str, *, fs: FileSystem, now_ms: int) -> DirectoryMap:
    """TOOL-31, TOOL-32: read and scan every segment and hint of ``directory``; change nothing."""
    names = segments_of(fs, directory)
    if len(names) > MAX_SLOTS:  # the store's own limit (ENG-13): its index cannot name more
        raise UsageError(
            f"{directory} holds {len(names)} segments; a store opens at most {MAX_SLOTS}"
        )
    with open_listing(fs, directory) as listing:
        names = listing.names
        present = set(fs.listdir(directory))
        mapper = DirectoryMapper(directory, now_ms=now_ms)
        sizes: list[int] = []
        for i, name in enumerate(names):
            data = listing.read(i)
            sizes.append(len(data))
            number = parse_segment_name(name)
            assert number is not None, "list_segments returns segment names only"
            newest = name == names[-1]
            mapper.add(
                name,
                data,
                scan_segment(data, newest=newest),
                newest=newest,
                hint=judge_hint(number, data, _hint(fs, directory, number, present), newest=newest),
                header_lines=header_text(name, data).splitlines(),
                describe=dump_lines,
            )
    return mapper.finish(directory_notes(fs, directory, names, sizes))


def _hint(fs: FileSystem, directory: str, number: int, present: set[str]) -> bytes | None:
    """A segment's hint file, or ``None``; a hint removed since the listing counts as none."""
    if hint_name(number) not in present:
        return None
    try:
        return read_file(fs, f"{directory}/{hint_name(number)}")
    except FileNotFoundError:
        return None
