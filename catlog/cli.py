"""The ``catlog`` command line (``python -m catlog`` runs the same thing).

Subcommands are added as the issues that own them land: the server (``serve``) and the
``check``/``dump``/``repair`` tools have their own issues. Until ``serve`` exists, running catlog
without a subcommand prints this help.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from . import __version__
from . import open as open_store
from .errors import CatlogError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="catlog",
        description="catlog: a persistent, append-only, log-structured key-value store.",
        epilog="The spec is in spec/; start with spec/README.md.",
    )
    parser.add_argument("--version", action="version", version=f"catlog {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    stats = commands.add_parser(
        "stats", help="open a data directory (recovering it) and print its counters"
    )
    stats.add_argument("data_dir", metavar="DIR")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.command is None:
        parser.print_help()
        return 0
    try:
        with open_store(args.data_dir) as store:
            stats = store.stats()
    except CatlogError as exc:
        print(f"catlog: {exc}", file=sys.stderr)
        return 1
    print(f"keys            {stats.keys}")
    print(f"segments        {stats.segments}")
    print(f"active segment  {stats.active_segment}")
    print(f"bytes on disk   {stats.disk_bytes}")
    for repair in stats.tail_repairs:
        where = f"{repair.segment}@{repair.offset}"
        print(f"tail cut        {where}: {repair.length} bytes, {repair.reason}")
    return 0
