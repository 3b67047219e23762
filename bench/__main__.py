"""``python -m bench``: run the workloads, print the markdown table, save the JSON.

See bench/README.md for what each workload measures and why; ``--help`` for the flags.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, replace
from importlib import metadata
from pathlib import Path

import lmdb

from .children import HERE, REPOSITORY, Checkout
from .report import Outcome, comparison, markdown, write_json
from .sizes import FULL, QUICK
from .workloads import WORKLOADS, Run

RESULTS = REPOSITORY / "bench" / "results" / "latest.json"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="small sizes for a smoke run (ratios not meaningful)"
    )
    parser.add_argument(
        "--keys", type=int, help="keys in the reopen and index-memory stores (default 1,000,000)"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=list(WORKLOADS),
        metavar="NAME",
        help=f"run only this workload (repeatable): {', '.join(WORKLOADS)}",
    )
    parser.add_argument("--repeats", type=int, help="repetitions per timed workload (default 3)")
    parser.add_argument(
        "--server-rounds",
        type=int,
        help="interleaved rounds of the server workload at -P 16 (default 9)",
    )
    parser.add_argument(
        "--tmp", help="directory for the stores (default: the system temp dir, /tmp)"
    )
    parser.add_argument(
        "--compare-with",
        action="append",
        default=[],
        metavar="[LABEL=]DIR",
        help="also measure the catlog package in DIR/catlog, labelled catlog@LABEL (default: "
        "DIR's name less a 'catlog-' prefix), interleaved with the catlog beside bench/; "
        "repeatable",
    )
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="run the timed loops in this process, as the harness once did, to see what that "
        "does to the figures (not with --compare-with)",
    )
    parser.add_argument(
        "--json", type=Path, default=RESULTS, help=f"where to write the results (default {RESULTS})"
    )
    return parser


def _filesystem(path: str) -> str:
    """The file-system type the stores were written to: fsync costs depend on it."""
    best = ("", "unknown")
    try:
        with open("/proc/mounts") as mounts:
            for line in mounts:
                fields = line.split()
                point, kind = fields[1], fields[2]
                if os.path.realpath(path).startswith(point) and len(point) > len(best[0]):
                    best = (point, kind)
    except OSError:
        pass
    return f"{best[1]} at {best[0] or '?'}"


def _checkout(text: str) -> Checkout:
    """``--compare-with [LABEL=]DIR``, checked: DIR must hold a catlog package."""
    label, _, path = text.rpartition("=") if not os.path.isdir(text) else ("", "", text)
    path = os.path.abspath(path)
    if not os.path.isfile(os.path.join(path, "catlog", "__init__.py")):
        raise argparse.ArgumentTypeError(f"--compare-with: no catlog package in {path}")
    name = label or os.path.basename(os.path.normpath(path)).removeprefix("catlog-")
    return Checkout(f"catlog@{name}", path)


def _revision(repository: str = str(REPOSITORY)) -> str:
    """The commit measured, marked ``+dirty`` when catlog/ has uncommitted edits (read-only git);
    ``unknown`` outside a git work tree (an exported copy)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=repository,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        edits = subprocess.run(
            ["git", "status", "--porcelain", "--", "catlog"],
            cwd=repository,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}+dirty" if edits else head


def _versions() -> dict[str, str]:
    found = {"python": platform.python_version(), "sqlite": sqlite3.sqlite_version}
    found["lmdb (C library)"] = ".".join(map(str, lmdb.version()))
    for name in ("catlog", "crc32c", "semidbm", "lmdb", "psutil"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.keys is not None:
        sizes = replace(sizes, large_keys=args.keys)
    if args.repeats is not None:
        sizes = replace(sizes, repeats=args.repeats)
    if args.server_rounds is not None:
        sizes = replace(sizes, server_rounds=args.server_rounds)
    names = args.only or list(WORKLOADS)
    try:
        compared = tuple(_checkout(text) for text in args.compare_with)
    except argparse.ArgumentTypeError as error:
        parser.error(str(error))
    if len({c.label for c in compared}) < len(compared):
        parser.error("--compare-with: two checkouts with one label; name them LABEL=DIR")
    if compared and args.in_process:
        parser.error("--in-process measures only the catlog beside bench/")
    root = tempfile.mkdtemp(prefix="catlog-bench-", dir=args.tmp)
    machine: dict[str, object] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "filesystem": _filesystem(root),
    }
    revision = _revision()
    run = Run(root, sizes, (HERE, *compared), in_process=args.in_process)
    outcomes: list[Outcome] = []
    started = time.time()
    try:
        for name in names:
            began = time.perf_counter()
            outcomes += WORKLOADS[name](run)
            print(f"{name}: {time.perf_counter() - began:.1f} s", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    caveat = " (--quick: too small to judge the targets by)" if args.quick else ""
    print(markdown(outcomes))
    for checkout in compared:
        print(f"\n{comparison(outcomes, checkout.label)}")
    others = "".join(f"; {c.label} from {c.path} ({_revision(c.path or '')})" for c in compared)
    where = "in this process (--in-process)" if args.in_process else "each in a fresh process"
    print(
        f"\ncatlog {revision}{others}, Python {platform.python_version()},"
        f" {machine['platform']}, {machine['cpus']} CPUs, stores on {machine['filesystem']};"
        f" timed loops {where}; best of {sizes.repeats} runs"
        f" (server: median of {sizes.server_rounds} rounds at -P 16){caveat}."
    )
    context: dict[str, object] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "seconds": round(time.time() - started, 1),
        "argv": sys.argv[1:] if argv is None else argv,
        "quick": args.quick,
        "sizes": asdict(sizes),
        "machine": machine,
        "versions": _versions(),
        "catlog revision": revision,
        "compared": {
            c.label: {"path": c.path, "revision": _revision(c.path or "")} for c in compared
        },
        "in process": args.in_process,
    }
    write_json(args.json, outcomes, context)
    print(f"\nresults written to {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
