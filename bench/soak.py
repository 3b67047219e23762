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
p99 during compaction at most 3 times that outside. ``--server`` (``--only-server``: without the
embedded run) runs the same overwrite through a catlog server: ``redis-benchmark`` drives the
load for ``--seconds`` while one probe client times single GETs and SETs and asks INFO every
``POLL_S`` whether a compaction runs, so that its p99 during compaction can be set against that
outside; and disk over live, from INFO and DBSIZE, over time.
"""

from __future__ import annotations

import argparse
import csv
import io
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


POLL_S: Final = 0.05
"""How often the probe asks the server whether a compaction runs (INFO persistence)."""
KEYS_EVERY: Final = 20
"""Every this many polls the probe also asks DBSIZE, for the live bytes."""
CHUNK_S: Final = 10.0
"""The longest one redis-benchmark run lasts; the runs repeat until ``--seconds`` pass."""
BENCH_CLIENTS: Final = 50
WARM_S: Final = 0.2
"""What the probe measures in the first this many seconds of a redis-benchmark run is left out:
its clients are still connecting, and the gaps between runs would flatter the figures."""
KEY_FORMAT: Final = "key:%012d"
"""How ``redis-benchmark -r`` names its keys (``key:__rand_int__``)."""


class Resp:
    """One RESP connection, one request at a time: enough of a client for the probe."""

    def __init__(self, port: int) -> None:
        self._sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buffer = b""

    def call(self, *parts: bytes) -> bytes | int | None:
        request = b"*%d\r\n" % len(parts)
        for part in parts:
            request += b"$%d\r\n%s\r\n" % (len(part), part)
        self._sock.sendall(request)
        return self._reply()

    def _line(self) -> bytes:
        while b"\r\n" not in self._buffer:
            self._more()
        line, _, self._buffer = self._buffer.partition(b"\r\n")
        return line

    def _more(self) -> None:
        data = self._sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed the probe's connection")
        self._buffer += data

    def _reply(self) -> bytes | int | None:
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest
        if kind == b":":
            return int(rest)
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b"$":
            size = int(rest)
            if size < 0:
                return None
            while len(self._buffer) < size + 2:
                self._more()
            body, self._buffer = self._buffer[:size], self._buffer[size + 2 :]
            return body
        raise RuntimeError(f"unexpected reply {line!r}")

    def close(self) -> None:
        self._sock.close()


def _fields(text: bytes | int | None) -> dict[str, str]:
    assert isinstance(text, bytes), "INFO answers a bulk string"
    found = {}
    for line in text.decode().splitlines():
        name, _, value = line.partition(":")
        if value:
            found[name] = value.strip()
    return found


@dataclass
class Probe:
    """What the probe saw: its own latencies, classified by the server's ``aof_rewrite_in_progress``
    at the poll before and the poll after each request."""

    latency: dict[tuple[str, bool], list[tuple[float, int]]] = field(
        default_factory=lambda: {(n, d): [] for n in ("GET", "SET") for d in (False, True)}
    )
    """(GET or SET, during a compaction) -> (perf_counter when sent, latency in ns)"""
    ambiguous: int = 0
    """Requests between a poll that saw a compaction and one that did not: dropped."""
    polls: int = 0
    polls_compacting: int = 0
    compactions: int = 0
    """Polls that saw a compaction where the one before saw none: a lower bound, since a
    compaction that starts and ends between two polls is not seen."""
    samples: list[tuple[float, float, int]] = field(default_factory=list)
    """(elapsed s, disk/live, segments)"""
    first: dict[str, str] = field(default_factory=dict)
    last: dict[str, str] = field(default_factory=dict)
    error: str | None = None


def probe(port: int, run: Run, stop: threading.Event, seen: Probe) -> None:
    """One GET or SET of a random key at a time, timed, with INFO persistence every ``POLL_S``.

    The polls go over the same connection as the requests, so each request lies strictly between
    the poll before it and the poll after it: it counts as during a compaction if both saw one
    running, outside if neither did, and is dropped otherwise."""
    rng = random.Random(18)
    value = bytes(rng.getrandbits(8) for _ in range(run.value_size))
    size = HEADER + len(KEY_FORMAT % 0) + run.value_size
    clock = time.perf_counter_ns
    started = time.perf_counter()
    connection = Resp(port)
    try:
        pending: list[tuple[str, float, int]] = []
        keys = 0
        was: bool | None = None
        last_report = started
        next_poll = 0.0
        turn = 0
        while not stop.is_set():
            now = time.perf_counter()
            if now >= next_poll:
                next_poll = now + POLL_S
                info = _fields(connection.call(b"INFO", b"persistence"))
                if not seen.first:
                    seen.first = info
                seen.last = info
                compacting = info.get("aof_rewrite_in_progress") == "1"
                if seen.polls % KEYS_EVERY == 0:
                    answer = connection.call(b"DBSIZE")
                    keys = answer if isinstance(answer, int) else 0
                seen.polls += 1
                seen.polls_compacting += compacting
                if was is not None and compacting == was:
                    for name, sent, ns in pending:
                        seen.latency[(name, compacting)].append((sent, ns))
                else:
                    seen.ambiguous += len(pending)
                    seen.compactions += compacting and was is False
                pending.clear()
                was = compacting
                disk = int(info.get("catlog_disk_bytes", "0"))
                disk += int(info.get("catlog_unflushed_bytes", "0"))
                segments = int(info.get("catlog_segments", "0"))
                if keys:
                    elapsed = now - started
                    seen.samples.append((elapsed, disk / (keys * size), segments))
                    if now - last_report >= REPORT_EVERY_S:
                        last_report = now
                        print(
                            f"  {elapsed:6.1f} s  server disk/live {disk / (keys * size):5.2f}"
                            f"  segments {segments:6d}  compactions seen {seen.compactions}"
                            f"  probe ops {sum(map(len, seen.latency.values()))}",
                            file=sys.stderr,
                        )
                continue
            key = (KEY_FORMAT % rng.randrange(run.keys)).encode()
            turn += 1
            sent = time.perf_counter()
            if turn % 2:
                before = clock()
                connection.call(b"GET", key)
                pending.append(("GET", sent, clock() - before))
            else:
                before = clock()
                connection.call(b"SET", key, value)
                pending.append(("SET", sent, clock() - before))
    except (OSError, RuntimeError) as error:
        seen.error = f"{type(error).__name__}: {error}"
    finally:
        connection.close()


def _benchmark(
    port: int, run: Run, deadline: float, loaded: list[tuple[float, float]]
) -> dict[str, tuple[int, float, float]]:
    """``redis-benchmark -t set,get -r KEYS`` again and again until ``deadline``: each run sized
    from the rate of the one before to last at most ``CHUNK_S``. Returns, per test, the requests,
    the seconds they took and the largest p99 redis-benchmark reported (ms). Appends to
    ``loaded`` each run's span less ``WARM_S`` at its start, while its clients connect."""
    totals: dict[str, tuple[int, float, float]] = {}
    requests = 20_000
    while (remaining := deadline - time.perf_counter()) > 1:
        started = time.perf_counter()
        out = subprocess.run(
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
                "-c",
                str(BENCH_CLIENTS),
                "-n",
                str(requests),
                "--csv",
            ],
            capture_output=True,
            text=True,
            timeout=remaining + 60,
            check=False,
        ).stdout
        took = time.perf_counter() - started
        loaded.append((started + WARM_S, started + took))
        for row in csv.reader(io.StringIO(out)):
            if len(row) < 7 or row[0] not in ("SET", "GET"):
                continue
            count, seconds, p99 = totals.get(row[0], (0, 0.0, 0.0))
            rate = float(row[1])
            totals[row[0]] = (
                count + requests,
                seconds + requests / max(rate, 1.0),
                max(p99, float(row[6])),
            )
        per_second = 2 * requests / max(took, 0.001)
        left = deadline - time.perf_counter()
        requests = max(1_000, int(per_second * min(left, CHUNK_S) / 2))
    return totals


SLOW_NS: Final = 10_000_000
"""A probe request this slow waited for something other than its turn among the clients."""


def _share(latencies: list[int]) -> float:
    return sum(ns >= SLOW_NS for ns in latencies) / max(1, len(latencies))


def _inside(moment: float, spans: list[tuple[float, float]]) -> bool:
    return any(start <= moment < end for start, end in spans)


def _catlog_of(root: str) -> str:
    """Where a ``python -m catlog`` started in ``root`` with ``PYTHONPATH=root`` imports catlog."""
    return subprocess.run(
        [sys.executable, "-c", "import catlog; print(catlog.__file__)"],
        cwd=root,
        env={**os.environ, "PYTHONPATH": root},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def server_soak(directory: str, run: Run) -> str:
    """The overwrite through a catlog server: ``redis-benchmark -r`` drives the load for
    ``run.seconds`` while one probe client times single GETs and SETs against the server's own
    word on whether a compaction runs."""
    port = _free_port()
    # The server imports the catlog this process imported, whatever the caller's cwd.
    root = os.path.dirname(os.path.dirname(os.path.abspath(catlog.__file__)))
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
        cwd=root,
        env={**os.environ, "PYTHONPATH": root},
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
        load = os.getloadavg()
        started = time.perf_counter()
        stop = threading.Event()
        seen = Probe()
        loaded: list[tuple[float, float]] = []
        prober = threading.Thread(
            target=probe, args=(port, run, stop, seen), name="soak-probe", daemon=True
        )
        prober.start()
        try:
            totals = _benchmark(port, run, started + run.seconds, loaded)
        finally:
            stop.set()
            prober.join(timeout=30)
        elapsed = time.perf_counter() - started
        load_after = os.getloadavg()
        info = _info(port)
        keys = int(info.get("db0", "keys=0").split(",")[0].split("=")[1] or 0)
        live = keys * (HEADER + len(KEY_FORMAT % 0) + run.value_size)
        disk = int(info.get("catlog_disk_bytes", "0"))
        amplification = info.get("catlog_write_amplification", "n/a")
        rates = [
            f"{test}: {count / seconds:.0f} requests per second, p99 {p99:.2f} ms"
            for test, (count, seconds, p99) in sorted(totals.items(), reverse=True)
        ]
        stalls = info.get("catlog_write_stalls")
        stall_s = info.get("catlog_write_stall_seconds")  # not in INFO: an experiment may add it
        lines = [
            f"server ({', '.join(rates)}): disk/live {disk / max(1, live):.2f},"
            f" write amplification {amplification}",
            f"server: catlog {_catlog_of(root)}, {elapsed:.0f} s of redis-benchmark -c"
            f" {BENCH_CLIENTS} -r {run.keys} -d {run.value_size}, load average"
            f" {load[0]:.2f} before, {load_after[0]:.2f} after",
        ]
        steady = [s for s in seen.samples if s[0] >= run.seconds / 2] or seen.samples
        if steady:
            ratios = [s[1] for s in steady]
            lines.append(
                f"server disk/live at steady state ({len(steady)} polls, DBSIZE every"
                f" {POLL_S * KEYS_EVERY:.0f} s): mean {sum(ratios) / len(ratios):.2f},"
                f" min {min(ratios):.2f}, max {max(ratios):.2f} (target: at most 1.5)"
            )
        lines.append(
            f"server: {seen.polls} polls of INFO persistence, {seen.polls_compacting} saw"
            f" aof_rewrite_in_progress:1, {seen.compactions} compactions seen (a lower bound),"
            f" write stalls {stalls if stalls is not None else 'n/a (no catlog_write_stalls)'}"
            + (f" ({stall_s} s in all)," if stall_s is not None else ",")
            + f" {seen.ambiguous} probe requests dropped (a compaction began or ended between"
            f" the polls around them)" + (f", probe stopped: {seen.error}" if seen.error else "")
        )
        unloaded = 0
        for name in ("GET", "SET"):
            found = {}
            for side in (False, True):
                timed = seen.latency[(name, side)]
                found[side] = [ns for sent, ns in timed if _inside(sent, loaded)]
                unloaded += len(timed) - len(found[side])
            outside, during = found[False], found[True]
            p50_out, p50_in = _percentile(outside, 0.5), _percentile(during, 0.5)
            p99_out, p99_in = _percentile(outside, 0.99), _percentile(during, 0.99)
            lines.append(
                f"server {name} probe: p50 {p50_out:.0f} us outside compaction, {p50_in:.0f} us"
                f" during; p99 {p99_out:.0f} us outside ({len(outside)} ops), {p99_in:.0f} us"
                f" during ({len(during)} ops): {p99_in / p99_out:.2f}x (target: 3x); over"
                f" {SLOW_NS // 1_000_000} ms: {_share(outside):.2%} outside, {_share(during):.2%}"
                " during"
            )
        lines.append(
            f"server: {unloaded} probe requests outside redis-benchmark's runs (between"
            f" them or in the {WARM_S} s their clients take to connect) left out"
        )
        return "\n".join(lines)
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
    parser.add_argument(
        "--only-server", action="store_true", help="run it through a server only (no embedded run)"
    )
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
        if not args.only_server:
            print(report(soak(os.path.join(scratch, "store"), run)))
        if args.server or args.only_server:
            print(server_soak(os.path.join(scratch, "server"), run))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
