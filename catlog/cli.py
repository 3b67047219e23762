"""The ``catlog`` command line (``python -m catlog`` runs the same thing): its arguments, which
tool each subcommand runs, and the exit status each error maps to (TOOL-1, TOOL-38 .. TOOL-41).

Subcommands: ``serve`` runs the server (spec/server.md), and is what catlog does when no
subcommand is given, so ``python -m catlog`` starts a server as the original design's binary did;
``stats`` opens a store and prints its counters; ``check``, ``dump``, ``repair``, ``compact``,
``map`` and ``export`` are the data-directory tools of spec/tools.md, each in its module of
:mod:`catlog.tools`. Errors are turned into exit statuses here, in one place, by
:func:`catlog.tools.status.status_of`, so that every tool follows the same table.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import Final

from . import __version__, server, serverconfig
from . import open as open_store
from .clock import SystemClock
from .errors import CatlogError
from .fs import FileSystem, OsFileSystem
from .options import DEFAULT_SEGMENT_SIZE
from .tools.check import check
from .tools.compact import compact
from .tools.dump import dump
from .tools.export import export
from .tools.listing import segments_of
from .tools.map import draw_map
from .tools.repair import repair
from .tools.status import EXIT_OK, status_of

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
        "stats",
        help="open a data directory (recovering it) and print its counters",
        description="Open DIR as a store (taking its lock and recovering it as an open does) and "
        "print its counters. Exit status: 0 printed, 1 the store cannot be opened (damage: run "
        "check and repair), 2 usage or I/O error, or a lock held elsewhere.",
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
        "Never takes the lock and never changes a file; on a directory a server is using it "
        "prints the segments of one moment. Exit status: 0 printed (damage or not), 2 usage or "
        "I/O error.",
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
    compact.add_argument(
        "--segment-size",
        type=serverconfig.segment_size,
        default=DEFAULT_SEGMENT_SIZE,
        metavar="N",
        help="bytes per output segment, as serve --segment-size (default %(default)s)",
    )

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

    export = commands.add_parser(
        "export",
        help="write the live keys as Redis commands, for redis-cli --pipe",
        description="Write every live key of DIR to stdout as Redis's mass-insertion stream: "
        "one RESP array SET key value per key, with PXAT <ms> for a key that expires; keys "
        "already expired are left out. `catlog export DIR | redis-cli --pipe` moves a store "
        "into Redis. Like dump, it takes no lock and changes no file. Exit status: 0 written, "
        "1 damage that opening the store refuses (nothing written), 2 usage or I/O error.",
    )
    export.add_argument("data_dir", metavar="DIR")
    return parser


SUBCOMMANDS: Final = frozenset(
    {"serve", "stats", "check", "dump", "repair", "compact", "map", "export"}
)


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
    simulated file system (TOOL-1); ``stats`` opens the store with it too.

    Bad arguments raise ``SystemExit(2)`` from :mod:`argparse`, which prints the usage (TOOL-40).
    """
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
    try:
        return _run(args, fs)
    except BrokenPipeError:  # ``catlog dump DIR | head``: the reader has seen enough
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except (CatlogError, OSError) as exc:  # TOOL-39, TOOL-40: one table for every tool
        print(f"catlog {args.command}: {exc}", file=sys.stderr)
        return status_of(exc)


def _run(args: argparse.Namespace, fs: FileSystem) -> int:
    if args.command == "stats":
        return _stats(args.data_dir, fs)
    if args.command == "compact":
        return compact(args.data_dir, fs=fs, segment_size=args.segment_size)
    if args.command == "check":
        return check(args.data_dir, fs=fs, lock=not args.no_lock)
    if args.command == "dump":
        return dump(args.path, fs=fs, as_json=args.json, values=args.values, limit=args.limit)
    if args.command == "map":
        return draw_map(args.data_dir, args.html, fs=fs, now_ms=SystemClock().now_ms())
    if args.command == "export":
        return export(args.data_dir, fs=fs, now_ms=SystemClock().now_ms())
    assert args.command == "repair", "argparse admits only the subcommands defined above"
    return repair(args.data_dir, fs=fs, dry_run=args.dry_run)


def _stats(data_dir: str, fs: FileSystem) -> int:
    """ENG-26: open the store and print its counters; errors map as every tool's (TOOL-41)."""
    data_dir = data_dir.rstrip("/") or "/"
    segments_of(fs, data_dir)  # a wrong path fails before a store is made in it
    with open_store(data_dir, fs=fs) as store:
        stats = store.stats()
    print(f"keys            {stats.keys}")
    print(f"segments        {stats.segments}")
    print(f"active segment  {stats.active_segment}")
    print(f"bytes on disk   {stats.disk_bytes}")
    print(f"expiring keys   {stats.expiring_keys}")
    for tail in stats.tail_repairs:
        where = f"{tail.segment}@{tail.offset}"
        print(f"tail cut        {where}: {tail.length} bytes, {tail.reason}")
    return EXIT_OK
