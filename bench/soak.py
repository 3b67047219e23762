"""``python -m bench.soak``: sustained random overwrite of an embedded store, for minutes.

What automatic compaction (ENG-41, ENG-72 .. ENG-77) does to a store that never stops writing:
one thread overwrites random keys of a fixed set and reads random keys, one GET per SET, in
small segments so that rotations and compactions come often; a second thread samples the store
every ``SAMPLE_S`` seconds. It reports, over time and at steady state (the second half of the
run):

- bytes on disk over the bytes of the live records (FMT-4's 21-byte header, key and value each);
- write amplification: bytes appended to compaction outputs over bytes of records the client
  wrote, both counted by a file system wrapped around the operating system's, so that the same
  figure can be measured on a checkout older than ``StoreStats.write_amplification``;
- p99 of GET and SET while a compaction runs and while none does.

Targets (issue 17): disk at most 1.5 times live at steady state, write amplification at most 3,
p99 during compaction at most 3 times that outside. ``--server`` runs the same overwrite through
a catlog server with ``redis-benchmark`` instead, for disk over live and INFO's figures.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Final

import catlog
from catlog.fs import File, FileSystem, OsFileSystem

HEADER: Final = 21
"""FMT-4's record header: the live bytes count it once per key."""
SAMPLE_S: Final = 0.05
REPORT_EVERY_S: Final = 10.0
COMPACTING_SUFFIX: Final = ".log.compacting"


class CountedFile:
    """A compaction output, counting what is appended to it."""

    def __init__(self, file: File, counter: list[int]) -> None:
        self._file = file
        self._counter = counter

    @property
    def path(self) -> str:
        return self._file.path

    def size(self) -> int:
        return self._file.size()

    def pread(self, size: int, offset: int) -> bytes:
        return self._file.pread(size, offset)

    def append(self, data: bytes | bytearray | memoryview) -> int:
        self._counter[0] += len(data)
        return self._file.append(data)

    def truncate(self, size: int) -> None:
        self._file.truncate(size)

    def sync(self) -> None:
        self._file.sync()

    def close(self) -> None:
        self._file.close()


class CountingFileSystem(OsFileSystem):
    """The operating system's file system, counting bytes appended to compaction outputs."""

    def __init__(self) -> None:
        self.compaction_bytes = [0]

    def open(self, path: str, *, writable: bool = False, create: bool = False) -> File:
        file = super().open(path, writable=writable, create=create)
        if writable and path.endswith(COMPACTING_SUFFIX):
            return CountedFile(file, self.compaction_bytes)
        return file


@dataclass
class Run:
    seconds: float
    keys: int
    value_size: int
    segment_size: int
    threshold: float
    fsync: str
    rate: int
    max_bytes: int | None = None
    """``compact_max_bytes`` (ENG-73), or ``None`` for the store's default."""
    """SETs a second (each followed by a GET), or 0 for as many as one thread can do."""
    samples: list[tuple[float, float, float, int, bool]] = field(default_factory=list)
    """(elapsed s, disk/live, write amplification, segments, compacting)"""
    latency: dict[tuple[str, bool], list[int]] = field(default_factory=dict)
    """(GET or SET, during a compaction) -> latencies in ns"""
    compactions: int = 0
    client_bytes: int = 0
    compaction_bytes: int = 0
    store_amplification: float | None = None


def _percentile(values: list[int], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] / 1000


def soak(directory: str, run: Run, fs: FileSystem | None = None) -> Run:
    """Fill every key once, then overwrite and read random keys for ``run.seconds``."""
    counting = CountingFileSystem() if fs is None else None
    bound: dict[str, int] = {} if run.max_bytes is None else {"compact_max_bytes": run.max_bytes}
    store = catlog.open(
        directory,
        fsync=run.fsync,  # type: ignore[arg-type]
        segment_size=run.segment_size,
        compact_threshold=run.threshold,
        fs=counting if counting is not None else fs,
        **bound,  # type: ignore[arg-type]  # a checkout older than ENG-73 does not take it
    )
    keys = [b"key:%012d" % i for i in range(run.keys)]
    live = sum(HEADER + len(key) + run.value_size for key in keys)
    rng = random.Random(17)
    client = 0
    value = bytes(rng.getrandbits(8) for _ in range(run.value_size))
    for key in keys:
        store.put(key, value)
        client += HEADER + len(key) + len(value)
    compacting = [False]
    stop = threading.Event()
    started = time.perf_counter()
    written = [client]

    def sample() -> None:
        was = False
        while not stop.wait(SAMPLE_S):
            stats = store.stats()
            compacting[0] = stats.compacting
            if stats.compacting and not was:
                run.compactions += 1
            was = stats.compacting
            output = counting.compaction_bytes[0] if counting is not None else 0
            run.samples.append(
                (
                    time.perf_counter() - started,
                    (stats.disk_bytes + stats.unflushed_bytes) / live,
                    output / written[0],
                    stats.segments,
                    stats.compacting,
                )
            )

    sampler = threading.Thread(target=sample, name="soak-sampler", daemon=True)
    sampler.start()
    latency = run.latency
    for name in ("GET", "SET"):
        for during in (False, True):
            latency[(name, during)] = []
    clock = time.perf_counter_ns
    deadline = started + run.seconds
    last_report = started
    count = 0
    size = HEADER + len(keys[0]) + run.value_size
    while True:
        count += 1
        if not count % 256:
            now = time.perf_counter()
            if now >= deadline:
                break
            if run.rate and count / run.rate > now - started:
                time.sleep(count / run.rate - (now - started))  # the compactor runs meanwhile
            if now - last_report >= REPORT_EVERY_S and run.samples:
                last_report = now
                elapsed, ratio, amplification, segments, _ = run.samples[-1]
                print(
                    f"  {elapsed:6.1f} s  disk/live {ratio:5.2f}  write amp {amplification:5.2f}"
                    f"  segments {segments:6d}  compactions {run.compactions}",
                    file=sys.stderr,
                )
        key = keys[rng.randrange(run.keys)]
        during = compacting[0]
        before = clock()
        store.put(key, value)
        after = clock()
        latency[("SET", during)].append(after - before)
        written[0] += size
        key = keys[rng.randrange(run.keys)]
        during = compacting[0]
        before = clock()
        store.get(key)
        latency[("GET", during)].append(clock() - before)
    stop.set()
    sampler.join()
    stats = store.stats()
    run.client_bytes = written[0]
    run.compaction_bytes = counting.compaction_bytes[0] if counting is not None else 0
    run.store_amplification = getattr(stats, "write_amplification", None)
    store.close()
    return run


def report(run: Run) -> str:
    """The figures of one run, as lines for bench/README.md."""
    steady = [s for s in run.samples if s[0] >= run.seconds / 2] or run.samples
    ratios = [s[1] for s in steady]
    lines = [
        f"soak: {run.keys} keys of {run.value_size}-byte values, segment_size={run.segment_size},"
        f" compact_threshold={run.threshold}, fsync={run.fsync}, {run.seconds:.0f} s,"
        f" {'SETs as fast as one thread can' if not run.rate else f'{run.rate} SET/s'},"
        f" compact_max_bytes={run.max_bytes or 'default'}, {run.compactions} compactions",
        f"disk/live at steady state: mean {sum(ratios) / len(ratios):.2f},"
        f" min {min(ratios):.2f}, max {max(ratios):.2f} (target: at most 1.5)",
        f"write amplification: {run.compaction_bytes / run.client_bytes:.2f}"
        f" (store's own figure: {run.store_amplification}) (target: at most 3)",
    ]
    for name in ("GET", "SET"):
        outside = run.latency[(name, False)]
        during = run.latency[(name, True)]
        p99_out = _percentile(outside, 0.99)
        p99_in = _percentile(during, 0.99)
        lines.append(
            f"{name} p99: {p99_out:.1f} us outside compaction ({len(outside)} ops),"
            f" {p99_in:.1f} us during ({len(during)} ops): {p99_in / p99_out:.2f}x (target: 3x)"
        )
    return "\n".join(lines)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _info(port: int) -> dict[str, str]:
    out = subprocess.run(
        ["redis-cli", "-p", str(port), "INFO"], capture_output=True, text=True, check=True
    ).stdout
    fields = {}
    for line in out.splitlines():
        name, _, value = line.partition(":")
        if value:
            fields[name] = value.strip()
    return fields


def server_soak(directory: str, run: Run) -> str:
    """The overwrite through a catlog server and ``redis-benchmark -r``: disk over live."""
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "catlog",
            "serve",
            "--data-dir",
            directory,
            "--port",
            str(port),
            "--segment-size",
            str(run.segment_size),
            "--compact-threshold",
            str(run.threshold),
            "--fsync",
            run.fsync,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.1)
        bench = subprocess.run(
            [
                "redis-benchmark",
                "-p",
                str(port),
                "-t",
                "set,get",
                "-r",
                str(run.keys),
                "-d",
                str(run.value_size),
                "-n",
                str(run.keys * 20),
                "-q",
            ],
            capture_output=True,
            text=True,
            timeout=run.seconds * 10,
            check=False,
        ).stdout
        info = _info(port)
        keys = int(info.get("db0", "keys=0").split(",")[0].split("=")[1] or 0)
        live = keys * (HEADER + len("key:000000000000") + run.value_size)
        disk = int(info.get("catlog_disk_bytes", "0"))
        amplification = info.get("catlog_write_amplification", "n/a")
        rates = [
            line.strip() for line in bench.replace("\r", "\n").splitlines() if "per second" in line
        ]
        return (
            f"server ({', '.join(rates)}): disk/live {disk / max(1, live):.2f},"
            f" write amplification {amplification}"
        )
    finally:
        server.terminate()
        server.wait(timeout=30)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--value-size", type=int, default=100)
    parser.add_argument("--segment-size", type=int, default=64 * 1024)
    parser.add_argument("--threshold", type=float, default=0.3)
    parser.add_argument("--fsync", default="never", choices=["always", "interval", "never"])
    parser.add_argument(
        "--rate", type=int, default=5000, help="SETs a second, each with a GET (0: no limit)"
    )
    parser.add_argument("--max-bytes", type=int, default=None, help="compact_max_bytes")
    parser.add_argument("--tmp", default=None, help="where the store goes")
    parser.add_argument("--server", action="store_true", help="also run it through a server")
    args = parser.parse_args(argv)
    run = Run(
        seconds=args.seconds,
        keys=args.keys,
        value_size=args.value_size,
        segment_size=args.segment_size,
        threshold=args.threshold,
        fsync=args.fsync,
        rate=args.rate,
        max_bytes=args.max_bytes,
    )
    scratch = tempfile.mkdtemp(prefix="catlog-soak-", dir=args.tmp)
    try:
        print(report(soak(os.path.join(scratch, "store"), run)))
        if args.server:
            print(server_soak(os.path.join(scratch, "server"), run))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
