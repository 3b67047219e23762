"""The ``catlog`` command line (``python -m catlog`` runs the same thing).

Subcommands: ``serve`` runs the server (spec/server.md), and is what catlog does when no
subcommand is given, so ``python -m catlog`` starts a server as the original design's binary did;
``stats`` opens a store and prints its counters; ``check``, ``dump``, ``repair``, ``compact`` and
``map`` are the data-directory tools of spec/tools.md, in the manner of ``fsck`` and
``redis-check-aof``.

This module is the tools' edge: arguments, exit codes, and the words and JSON they print. What the
bytes of a segment hold is decided in :mod:`catlog.scan`, what repair does in :mod:`catlog.repair`
and what the map draws in :mod:`catlog.datamap`; the rendering functions here are pure, so tests
read them without files.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Final, TextIO

from . import __version__, server, serverconfig
from . import open as open_store
from .clock import SystemClock
from .codec import (
    PACKED_LONG,
    PACKED_LONG_BIT,
    PACKED_LONG_SIZE,
    PACKED_SHORT,
    PACKED_SHORT_SIZE,
    PACKED_VERSION,
    RECORD_HEADER,
    RECORD_HEADER_SIZE,
    SEGMENT_HEADER,
    SEGMENT_HEADER_SIZE,
    HeaderStatus,
    Record,
    RecordType,
    decode_segment_header,
)
from .datamap import DirectoryMap, DirectoryMapper, judge_hint, render_html
from .errors import CatlogError, LockedError
from .fs import FileLock, FileSystem, OsFileSystem
from .hint import TEMPORARY_SUFFIX as HINT_TEMPORARY_SUFFIX
from .hint import hint_name, parse_hint_name
from .index import MAX_SLOTS
from .repair import RepairReport, repair_directory
from .scan import (
    LOCK_NAME,
    REFUSED_KINDS,
    Entry,
    Region,
    RegionKind,
    Tally,
    file_size,
    is_compaction_leftover,
    is_quarantine_name,
    is_scratch_name,
    list_segments,
    lock_directory,
    read_file,
    scan_segment,
)
from .segment import parse_segment_name

EXIT_OK: Final = 0
EXIT_DAMAGE: Final = 1
"""TOOL-8, TOOL-18: damage that opening the store refuses, or that repair would not touch."""
EXIT_USAGE: Final = 2
"""TOOL-8: bad arguments, no such data directory, a locked directory, a failing file system."""
EXIT_TORN_TAIL: Final = 3
"""TOOL-8: check found only a torn tail, which opening the store cuts by itself (REC-4)."""

PROGRESS_MIN_BYTES: Final = 8 * 1024 * 1024
"""TOOL-9: below this a check takes well under a second, and a bar would only flicker."""
PROGRESS_WIDTH: Final = 30
KEY_SHOWN: Final = 48
"""TOOL-10: key bytes shown in text dumps before the truncation marker."""
VALUE_SHOWN: Final = 64
_MIB: Final = 1024 * 1024


# --------------------------------------------------------------------------------- arguments


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="catlog",
        description="catlog: a persistent, append-only, log-structured key-value store.",
        epilog="The spec is in spec/; start with spec/README.md. The tools are in spec/tools.md.",
    )
    parser.add_argument("--version", action="version", version=f"catlog {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="run the server: the line protocol and RESP on one port (the default command)",
        description="Serve the store in --data-dir over TCP: the original line protocol and "
        "RESP 2/3 on one port (spec/protocol.md, spec/server.md). SIGTERM or SIGINT stops it "
        "cleanly.",
    )
    serverconfig.add_arguments(serve)
    stats = commands.add_parser(
        "stats", help="open a data directory (recovering it) and print its counters"
    )
    stats.add_argument("data_dir", metavar="DIR")

    check = commands.add_parser(
        "check",
        help="verify every record of every segment; exit 0 clean, 1 damaged, 3 torn tail only",
        description="Verify every segment header and record of DIR without changing any file. "
        "Exit status: 0 clean, 1 damage that opening the store refuses, 2 usage or I/O error, "
        "3 only a torn tail (opening the store cuts it).",
    )
    check.add_argument("data_dir", metavar="DIR")
    check.add_argument(
        "--no-lock",
        action="store_true",
        help="read without taking the directory lock (for read-only media); a write in progress "
        "in a live store may then show as a torn tail",
    )

    dump = commands.add_parser(
        "dump",
        help="print every record of a data directory or of one segment file",
        description="Print each segment header and record, for reading beside spec/format.md. "
        "Never takes the lock and never changes a file.",
    )
    dump.add_argument("path", metavar="DIR|SEGMENT")
    dump.add_argument("--json", action="store_true", help="one JSON object per line (JSON Lines)")
    dump.add_argument("--values", action="store_true", help="print values too")
    dump.add_argument(
        "--limit", type=_positive, metavar="N", help="stop after N records and damaged regions"
    )

    repair = commands.add_parser(
        "repair",
        help="keep every valid record, move damaged bytes to quarantine files",
        description="Rewrite each damaged segment of DIR with its valid records, in order; the "
        "damaged bytes go to <segment>.damaged-<offset> (a torn tail to <segment>.torn-<offset>)"
        " in DIR. Nothing is deleted. Exit status: 0 done or nothing to do, 1 refused (no file "
        "changed), 2 usage or I/O error.",
    )
    repair.add_argument("data_dir", metavar="DIR")
    repair.add_argument(
        "--dry-run", action="store_true", help="report what would be done; change nothing"
    )

    compact = commands.add_parser(
        "compact",
        help="rewrite the live records of a data directory and remove the dead ones",
        description="Open DIR as a store (recovering it as an open does), copy every live "
        "record into new segments and remove the old ones (spec/engine.md, ENG-39). Exit "
        "status: 0 done, 1 the store cannot be opened (damage: run check and repair), 2 usage "
        "or I/O error.",
    )
    compact.add_argument("data_dir", metavar="DIR")

    draw = commands.add_parser(
        "map",
        help="draw a data directory as one self-contained HTML page",
        description="Write one HTML page (no server, nothing loaded from elsewhere) drawing each "
        "segment of DIR as a bar of live, dead and damaged bytes, with its hint's state and, on "
        "click, its records as dump prints them. Like dump, it takes no lock and changes no "
        "file of DIR. Exit status: 0 written, 2 usage or I/O error.",
    )
    draw.add_argument("data_dir", metavar="DIR")
    draw.add_argument("--html", required=True, metavar="FILE", help="the page to write")
    return parser


SUBCOMMANDS: Final = frozenset({"serve", "stats", "check", "dump", "repair", "compact", "map"})


class _ServerLogFormat(logging.Formatter):
    """SRV-3: INFO lines bare, like the original's ``[CONN] ADDR``; others say their level."""

    def format(self, record: logging.LogRecord) -> str:
        if record.levelno == logging.INFO:
            return record.getMessage()
        return f"{record.levelname} {record.name}: {record.getMessage()}"


def _log_for_server(level: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_ServerLogFormat())
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def main(argv: Sequence[str] | None = None, *, fs: FileSystem | None = None) -> int:
    """Run the command line; returns the exit status. ``fs`` lets tests run the tools on a
    simulated file system (TOOL-1); ``stats`` opens the store with it too."""
    parser = _parser()
    arguments = list(sys.argv[1:] if argv is None else argv)
    if not arguments or arguments[0] not in SUBCOMMANDS | {"-h", "--help", "--version"}:
        arguments.insert(0, "serve")  # SRV-2: serving is what catlog does by default
    args = parser.parse_args(arguments)
    if args.command == "serve":
        _log_for_server(args.log_level)
        try:
            config = serverconfig.config_from(args)
        except serverconfig.StartError as exc:  # SRV-21, as SRV-15 says a start error
            print(f"catlog: {exc}", file=sys.stderr)
            return 1
        return server.run(config)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    fs = fs if fs is not None else OsFileSystem()
    if args.command == "stats":
        return _stats(args.data_dir, fs)
    if args.command == "compact":
        return compact(args.data_dir, fs=fs)
    try:
        if args.command == "check":
            return check(args.data_dir, fs=fs, lock=not args.no_lock)
        if args.command == "dump":
            return dump(args.path, fs=fs, as_json=args.json, values=args.values, limit=args.limit)
        if args.command == "map":
            return draw_map(args.data_dir, args.html, fs=fs, now_ms=SystemClock().now_ms())
        assert args.command == "repair", "argparse admits only the subcommands defined above"
        return repair(args.data_dir, fs=fs, dry_run=args.dry_run)
    except BrokenPipeError:  # ``catlog dump DIR | head``: the reader has seen enough
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except (CatlogError, OSError) as exc:
        print(f"catlog {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _stats(data_dir: str, fs: FileSystem) -> int:
    try:
        with open_store(data_dir, fs=fs) as store:
            stats = store.stats()
    except CatlogError as exc:
        print(f"catlog: {exc}", file=sys.stderr)
        return 1
    print(f"keys            {stats.keys}")
    print(f"segments        {stats.segments}")
    print(f"active segment  {stats.active_segment}")
    print(f"bytes on disk   {stats.disk_bytes}")
    print(f"expiring keys   {stats.expiring_keys}")
    for tail in stats.tail_repairs:
        where = f"{tail.segment}@{tail.offset}"
        print(f"tail cut        {where}: {tail.length} bytes, {tail.reason}")
    return 0


def compact(directory: str, *, fs: FileSystem) -> int:
    """TOOL-22: compact a data directory, with a progress bar on a terminal and a report."""
    directory = directory.rstrip("/") or "/"
    try:
        _segments_of(fs, directory)  # a wrong path fails before a store is made in it
        with open_store(directory, fs=fs) as store:
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
    except (UsageError, LockedError, OSError) as exc:
        print(f"catlog compact: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except CatlogError as exc:
        print(f"catlog compact: {exc}", file=sys.stderr)
        return EXIT_DAMAGE
    share = report.reclaimed_bytes / report.input_bytes if report.input_bytes else 0.0
    print(
        f"compacted {_count(report.segments_removed, 'segment')} into "
        f"{report.segments_written}: {report.input_bytes} -> {report.output_bytes} bytes, "
        f"{report.reclaimed_bytes} reclaimed ({share:.0%}); "
        f"{_count(report.records_copied, 'record')} copied in {report.seconds:.2f} s"
    )
    return EXIT_OK


class UsageError(CatlogError):
    """The path given to a tool is not a data directory or segment it can work on."""


def _segments_of(fs: FileSystem, directory: str) -> list[str]:
    names = list_segments(fs, directory)
    if not names:
        raise UsageError(f"{directory} holds no segment files; is it a catlog data directory?")
    return names


# --------------------------------------------------------------------------------- check


def check(directory: str, *, fs: FileSystem, lock: bool = True) -> int:
    """TOOL-5 .. TOOL-9: report every problem of every segment, then a summary; never write."""
    directory = directory.rstrip("/") or "/"
    _segments_of(fs, directory)  # a wrong path fails before a LOCK file is made in it
    held: FileLock | None = lock_directory(fs, directory) if lock else None
    try:
        names = _segments_of(fs, directory)
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
        f"{_count(tally.segments, 'segment')}, {_count(tally.disk_bytes, 'byte')}, "
        f"{_count(tally.records, 'record')} ({_count(tally.puts, 'put')}, "
        f"{_count(tally.deletes, 'delete')}), {_count(len(tally.live), 'live key')}, "
        f"{_count(problems, 'problem')}"
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


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
            notes.append(f"note: {name}: quarantine file, {_count(size, 'byte')} (REC-12)")
        elif is_scratch_name(name):
            notes.append(f"note: {name}: left by an interrupted repair; catlog repair removes it")
        elif is_compaction_leftover(name):
            notes.append(
                f"note: {name}: left by an interrupted compaction; opening the store removes it "
                "(REC-18)"
            )
    return notes


class ProgressBar:
    """TOOL-9: a one-line bar on a terminal's stderr, redrawn in place; silent anywhere else."""

    def __init__(
        self, stream: TextIO, total: int, *, enabled: bool, label: str = "checking"
    ) -> None:
        self._stream = stream
        self._total = total
        self._label = label
        self._enabled = enabled
        self._step = max(1, total // 200)
        self._next = 0
        self._shown = 0

    @classmethod
    def for_stream(cls, stream: TextIO, total: int, label: str = "checking") -> ProgressBar:
        enabled = total > PROGRESS_MIN_BYTES and stream.isatty()
        return cls(stream, total, enabled=enabled, label=label)

    def update(self, done: int) -> None:
        if not self._enabled or done < self._next:
            return
        self._next = done + self._step
        line = render_progress(done, self._total, label=self._label)
        self._stream.write("\r" + line.ljust(self._shown))
        self._stream.flush()
        self._shown = len(line)

    def clear(self) -> None:
        """Erase the bar, so that a line printed next starts at the left margin."""
        if self._shown:
            self._stream.write("\r" + " " * self._shown + "\r")
            self._stream.flush()
            self._shown = 0
            self._next = 0


def render_progress(
    done: int, total: int, width: int = PROGRESS_WIDTH, *, label: str = "checking"
) -> str:
    """``checking [#########---------------------]  30%  3.0/10.0 MiB``."""
    fraction = 1.0 if total <= 0 else min(max(done / total, 0.0), 1.0)
    filled = int(fraction * width)
    return (
        f"{label} [{'#' * filled}{'-' * (width - filled)}] {fraction:4.0%} "
        f"{done / _MIB:.1f}/{total / _MIB:.1f} MiB"
    )


# --------------------------------------------------------------------------------- dump


def dump(
    path: str,
    *,
    fs: FileSystem,
    as_json: bool = False,
    values: bool = False,
    limit: int | None = None,
) -> int:
    """TOOL-10 .. TOOL-12: print a directory's segments, or one segment file; lock-free."""
    path = path.rstrip("/") or "/"
    try:
        names = _segments_of(fs, path)
        files = [(f"{path}/{name}", name, name == names[-1]) for name in names]
        title = f"{path}: {_count(len(names), 'segment')}"
    except NotADirectoryError:
        directory, _, name = path.rpartition("/")
        files = [(path, name, _is_newest(fs, directory or ".", name))]
        title = path
    if not as_json:
        print(DUMP_PREAMBLE.format(title=title))
    shown = 0
    for file_path, name, newest in files:
        data = read_file(fs, file_path)
        print(json.dumps(header_json(name, data)) if as_json else header_text(name, data))
        for entry in scan_segment(data, newest=newest):
            if limit is not None and shown >= limit:
                if not as_json:
                    print(f"# stopped after {limit} records and regions (--limit {limit})")
                return EXIT_OK
            shown += 1
            members, batch_at = (
                (entry.members, entry.offset) if isinstance(entry, Record) else ((), 0)
            )
            if as_json:
                print(json.dumps(entry_json(name, entry, data, values=values)))
                for member in members:
                    obj = entry_json(name, member, data, values=values)
                    print(json.dumps({**obj, "entry": "member", "batch": batch_at}))
            else:
                print(entry_text(entry, data, values=values))
                for member in members:
                    print("  " + entry_text(member, data, values=values))
    return EXIT_OK


def _is_newest(fs: FileSystem, directory: str, name: str) -> bool:
    """Whether a segment given by path is its directory's newest, so a torn tail shows as one."""
    number = parse_segment_name(name)
    if number is None:
        return False
    numbers = map(parse_segment_name, fs.listdir(directory))
    later = [n for n in numbers if n is not None and n > number]
    return not later


DUMP_PREAMBLE: Final = """\
# catlog dump of {title}
# Read it beside spec/format.md. A segment starts with a 16-byte header (FMT-2: magic, version,
# crc); records follow back to back from offset 16 (FMT-11). Each record line shows the fields of
# FMT-4: @offset, type (FMT-6), size, timestamp_ms (FMT-10, also as UTC), key_len, value_len,
# crc (FMT-5: CRC-32C of everything after the crc field), key. A packed segment (version 2,
# FMT-26) holds packed records (FMT-27), which have no timestamp. Bytes that are not a valid
# record are shown as one range; their lengths are never believed (REC-3)."""


def header_text(name: str, data: bytes) -> str:
    """TOOL-10: the segment's first line: its size, then the header's fields and status."""
    first = f"== {name}: {_count(len(data), 'byte')}\n@0 header "
    if not data:
        return first + "none: empty segment (open writes it if this is the newest, REC-5)"
    if len(data) < SEGMENT_HEADER_SIZE:
        return first + f"incomplete: {_count(len(data), 'byte')} of {SEGMENT_HEADER_SIZE}"
    status, version = decode_segment_header(data)
    magic, _, crc = SEGMENT_HEADER.unpack_from(data)
    verdict = "ok" if status is HeaderStatus.OK else f"bad ({status.value})"
    return first + f"magic={magic!r} version={version} crc=0x{crc:08x} {verdict}"


def entry_text(entry: Entry, data: bytes, *, values: bool = False) -> str:
    """TOOL-10: one line per record or damaged region."""
    if isinstance(entry, Record):
        crc = int.from_bytes(data[entry.offset : entry.offset + 4], "little")
        what = f"member {entry.type.name}" if entry.in_batch else entry.type.name
        when = f"time={iso_utc(entry.timestamp_ms)} ms={entry.timestamp_ms}"
        if entry.packed:
            what, when = f"{what} packed", "time=- ms=-"  # TOOL-23: FMT-28, no timestamp
        line = (
            f"@{entry.offset} {what} size={entry.size} {when} "
            f"key_len={len(entry.key)} value_len={entry.value_len} crc=0x{crc:08x} ok "
            f"key={show_bytes(entry.key, KEY_SHOWN)}"
        )
        if entry.type is RecordType.PUT_EXPIRING:
            line += f" expires={iso_utc(entry.expires_at_ms)} expires_ms={entry.expires_at_ms}"
        if entry.type is RecordType.BATCH:
            line += f" members={len(entry.members)}"
        if values and entry.type is not RecordType.BATCH:
            line += f" value={show_bytes(entry.value, VALUE_SHOWN)}"
        return line
    label = _REGION_LABELS[entry.kind]
    line = (
        f"@{entry.start} {label} {_count(entry.length, 'byte')} ({entry.start}..{entry.end}): "
        f"{entry.reason}; {entry.kind.value}"
    )
    claims = _claimed_header(entry, data)
    return line if claims is None else f"{line}; {claims}"


_REGION_LABELS: Final = {
    RegionKind.CORRUPT: "DAMAGED",
    RegionKind.TORN_TAIL: "TORN",
    RegionKind.FORMAT_VIOLATION: "INVALID",
    RegionKind.UNSUPPORTED: "UNREADABLE",
}


def _claimed_header(region: Region, data: bytes) -> str | None:
    """What a damaged record header says, for learners, marked as not believed (REC-3)."""
    if region.kind is RegionKind.UNSUPPORTED or region.start < SEGMENT_HEADER_SIZE:
        return None
    packed = decode_segment_header(data) == (HeaderStatus.OK, PACKED_VERSION)
    head = RECORD_HEADER_SIZE
    if packed:
        head = PACKED_LONG_SIZE if data[region.start + 4] & PACKED_LONG_BIT else PACKED_SHORT_SIZE
    if region.end - region.start < head:
        return None
    if not packed:
        crc, rtype, _ts, key_len, value_len = RECORD_HEADER.unpack_from(data, region.start)
    else:
        layout = PACKED_LONG if head == PACKED_LONG_SIZE else PACKED_SHORT
        crc, rtype, key_len, value_len = layout.unpack_from(data, region.start)
    trust = "crc ok" if region.kind is RegionKind.FORMAT_VIOLATION else "not believed"
    fields = f"type={rtype} key_len={key_len} value_len={value_len} crc=0x{crc:08x}"
    return f"header says {fields} ({trust})"


def header_json(name: str, data: bytes) -> dict[str, object]:
    """TOOL-11: the segment header as one JSON object."""
    obj: dict[str, object] = {"segment": name, "entry": "header", "offset": 0}
    obj["file_size"] = len(data)
    if len(data) < SEGMENT_HEADER_SIZE:
        obj["status"] = "empty" if not data else HeaderStatus.INCOMPLETE.value
        return obj
    status, version = decode_segment_header(data)
    magic, _, crc = SEGMENT_HEADER.unpack_from(data)
    obj.update(
        status=status.value, magic_hex=bytes(magic).hex(), version=version, crc=f"0x{crc:08x}"
    )
    return obj


def entry_json(name: str, entry: Entry, data: bytes, *, values: bool = False) -> dict[str, object]:
    """TOOL-11: a record or a region as one JSON object; bytes as hex, plus text when printable."""
    if isinstance(entry, Record):
        crc = int.from_bytes(data[entry.offset : entry.offset + 4], "little")
        obj: dict[str, object] = {
            "segment": name,
            "entry": "record",
            "offset": entry.offset,
            "size": entry.size,
            "type": entry.type.name,
            "type_code": int(entry.type),
            "timestamp_ms": None if entry.packed else entry.timestamp_ms,
            "time": None if entry.packed else iso_utc(entry.timestamp_ms),
            "key_len": len(entry.key),
            "value_len": entry.value_len,
            "crc": f"0x{crc:08x}",
            "crc_ok": True,
            "key_hex": entry.key.hex(),
            "key_text": text_form(entry.key),
        }
        if entry.packed:
            obj["packed"] = True  # TOOL-23
        if entry.type is RecordType.PUT_EXPIRING:
            obj["expires_at_ms"] = entry.expires_at_ms
            obj["expires"] = iso_utc(entry.expires_at_ms)
        if entry.type is RecordType.BATCH:
            obj["members"] = len(entry.members)
        if values:
            obj["value_hex"] = entry.value.hex()
            obj["value_text"] = text_form(entry.value)
        return obj
    return {
        "segment": name,
        "entry": "region",
        "offset": entry.start,
        "end": entry.end,
        "length": entry.length,
        "reason": entry.reason,
        "verdict": entry.kind.name.lower(),
        "crc_ok": entry.kind is RegionKind.FORMAT_VIOLATION,
    }


def show_bytes(data: bytes, limit: int) -> str:
    """A printable Python repr of ``data``, cut after ``limit`` bytes with a marker saying so."""
    if len(data) <= limit:
        return repr(data)
    return f"{data[:limit]!r}...(+{len(data) - limit} bytes)"


def text_form(data: bytes) -> str | None:
    """``data`` as text when it is printable UTF-8, else ``None`` (the hex form is always there)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text if text.isprintable() else None


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def iso_utc(timestamp_ms: int) -> str:
    """FMT-10's milliseconds as ISO-8601 UTC, ``2023-11-14T22:13:20.000Z``."""
    try:
        moment = _EPOCH + timedelta(milliseconds=timestamp_ms)
    except OverflowError:
        return "out-of-range"
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --------------------------------------------------------------------------------- map


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
    segments = _count(len(dmap.segments), "segment")
    print(f"{html_path}: map of {directory}, {segments}, {_count(len(page), 'byte')}")
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
    names = _segments_of(fs, directory)
    if len(names) > MAX_SLOTS:  # the store's own limit (ENG-13): its index cannot name more
        raise UsageError(
            f"{directory} holds {len(names)} segments; a store opens at most {MAX_SLOTS}"
        )
    present = set(fs.listdir(directory))
    mapper = DirectoryMapper(directory, now_ms=now_ms)
    sizes: list[int] = []
    for name in names:
        data = read_file(fs, f"{directory}/{name}")
        sizes.append(len(data))
        number = parse_segment_name(name)
        assert number is not None, "list_segments returns segment names only"
        newest = name == names[-1]
        hint_path = f"{directory}/{hint_name(number)}"
        hint = read_file(fs, hint_path) if hint_name(number) in present else None
        mapper.add(
            name,
            data,
            scan_segment(data, newest=newest),
            newest=newest,
            hint=judge_hint(number, data, hint, newest=newest),
            header_lines=header_text(name, data).splitlines(),
            describe=dump_lines,
        )
    return mapper.finish(directory_notes(fs, directory, names, sizes))


def dump_lines(entry: Entry, data: bytes) -> list[str]:
    """TOOL-10: an entry's lines as ``catlog dump`` prints them, a batch's members indented."""
    members = entry.members if isinstance(entry, Record) else ()
    return [entry_text(entry, data)] + ["  " + entry_text(m, data) for m in members]


# --------------------------------------------------------------------------------- repair


def repair(directory: str, *, fs: FileSystem, dry_run: bool = False) -> int:
    """TOOL-18: carry out (or, with ``dry_run``, describe) a repair, and say what it did."""
    directory = directory.rstrip("/") or "/"
    _segments_of(fs, directory)
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
            f"refused: no file changed; {_count(len(report.refused), 'region')} may hold a newer "
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
            f"{seg.segment}: {would}rewritten, {seg.old_size} -> {_count(seg.new_size, 'byte')}, "
            f"{_count(seg.records_kept, 'record')} kept, "
            f"{_count(seg.bytes_quarantined, 'byte')} quarantined"
        )
    counts = f"{_count(report.segments, 'segment')}, {_count(report.records, 'record')}"
    if not report.repaired and not report.scratch_removed:
        lines.append(f"clean: nothing to repair; {counts}")
    else:
        head = "dry run, nothing changed" if report.dry_run else "repaired"
        lines.append(
            f"{head}: {len(report.repaired)} of {_count(report.segments, 'segment')} rewritten, "
            f"{_count(quarantined, 'byte')} quarantined, all {_count(report.records, 'record')} "
            "kept"
        )
    return lines
