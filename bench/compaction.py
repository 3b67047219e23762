"""The compaction workloads: space reclaimed against semidbm's compact, and latency meanwhile.

``compact``: every key written ``OVERWRITES`` times, then one compaction; bytes on disk before
and after, against the live keys and values, and the time it took, for catlog and for semidbm
(whose ``compact()`` rewrites its one file), in the same run.

``compact-latency``: a catlog server over a store of ``OVERWRITES`` versions per key; one client
times single GETs and SETs (no pipelining, one connection) for a while with no compaction, then
while a compaction runs (started with BGREWRITEAOF, PROTO-59, and followed through INFO's
``aof_rewrite_in_progress``). It reports the 50th and 99th percentiles of each.
"""

from __future__ import annotations

import os
import random
import socket
import statistics
import sys
import time
from typing import Final

import semidbm

import catlog

from . import dataset
from .children import Reply
from .report import Figure, Outcome, Target
from .servers import Contender, _free_port, _start, _stop
from .sizes import KEY_SIZE, VALUE_SIZE

OVERWRITES: Final = 10
BASELINE_SECONDS: Final = 3.0
"""How long the latency client runs with no compaction."""


def _directory_bytes(path: str, *, segments_only: bool = False) -> int:
    total = 0
    for name in os.listdir(path):
        if segments_only and not (name.startswith("segment-") and name.endswith(".log")):
            continue
        total += os.path.getsize(os.path.join(path, name))
    return total


def _fill(put: object, keys: list[bytes], values: list[bytes]) -> int:
    """Write every key OVERWRITES times (the last round's values win); returns the live bytes."""
    assert callable(put)
    for round_ in range(OVERWRITES):
        rotated = values[round_:] + values[:round_]
        for key, value in zip(keys, rotated, strict=True):
            put(key, value)
    final = values[OVERWRITES - 1 :] + values[: OVERWRITES - 1]
    return sum(len(k) + len(v) for k, v in zip(keys, final, strict=True))


def one_store(kind: str, path: str, keys_count: int) -> Reply:
    """Overwrite every key ``OVERWRITES`` times in one store, then compact it once (timed).

    Runs in a child process with the catlog being measured (:mod:`bench.tasks`, ``compact``).
    """
    keys = dataset.keys(keys_count)
    values = dataset.values(keys_count)
    if kind == "semidbm":
        db = semidbm.open(path, "c")
        live = _fill(db.__setitem__, keys, values)
        db.sync()
        before = _directory_bytes(path)
        start = time.perf_counter()
        db.compact()
        seconds = time.perf_counter() - start
        db.close()
        return {"live": live, "before": before, "after": _directory_bytes(path), "seconds": seconds}
    assert kind == "catlog", f"unknown compaction contender {kind!r}"
    store = catlog.open(path, fsync="never")
    live = _fill(store.put, keys, values)
    store.flush()
    before = _directory_bytes(path, segments_only=True)
    start = time.perf_counter()
    report = store.compact()
    seconds = time.perf_counter() - start
    after = _directory_bytes(path, segments_only=True)
    store.close()
    return {
        "live": live,
        "before": before,
        "after": after,
        "seconds": seconds,
        "records": live + catlog.codec.PACKED_SHORT_SIZE * keys_count,
        "copied": report.records_copied,
        "reclaimed": report.reclaimed_bytes,
    }


def space(found: dict[str, Reply], keys_count: int) -> list[Outcome]:
    """The two compaction rows from each store's :func:`one_store` answer, catlog's first.

    ``found`` is keyed by label: ``catlog``, any ``catlog@LABEL`` checkouts, then ``semidbm``.
    """

    def ratio(reply: Reply, name: str, of: str = "live") -> float:
        return float(reply[name]) / float(reply[of])

    catlogs = [label for label in found if label != "semidbm"]
    before = ", ".join(f"{label} {ratio(reply, 'before'):.2f}x" for label, reply in found.items())
    packed = "; ".join(
        f"{label} {ratio(found[label], 'after', 'records'):.3f}x, "
        f"{int(float(found[label]['copied'])):,} records copied, "
        f"{int(float(found[label]['reclaimed'])):,} bytes reclaimed"
        for label in catlogs
    )
    notes = (
        f"{keys_count:,} keys of {KEY_SIZE} bytes, {OVERWRITES} writes each of {VALUE_SIZE}-byte "
        "values; live bytes = keys + values of the last writes.",
        f"before compaction: {before} the live bytes.",
        f"catlog after / its live records (packed, FMT-27: an 8-byte header each): {packed}.",
    )
    sizes = [Figure(label, ratio(reply, "after"), "x live") for label, reply in found.items()]
    times = [Figure(label, float(reply["seconds"]), "s") for label, reply in found.items()]
    return [
        Outcome(
            f"space after compaction: {keys_count:,} keys x {OVERWRITES} writes",
            sizes[0],
            tuple(sizes[1:]),
            None,
            Target(1.10, at_least=False, absolute=True),
            notes,
        ),
        Outcome(
            f"compaction time: {keys_count:,} keys x {OVERWRITES} writes",
            times[0],
            tuple(times[1:]),
            "semidbm",
            None,
            (
                "catlog compacts while the store stays open for reads and writes (ENG-39); "
                "semidbm's compact() holds the store.",
            ),
        ),
    ]


# ------------------------------------------------------------------------------- latency


class _Client:
    """A blocking RESP client of one connection, enough for GET, SET, BGREWRITEAOF and INFO."""

    def __init__(self, port: int) -> None:
        self._sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._file = self._sock.makefile("rb")

    def call(self, *words: bytes) -> bytes | None:
        parts = [b"*%d\r\n" % len(words)]
        for word in words:
            parts.append(b"$%d\r\n%b\r\n" % (len(word), word))
        self._sock.sendall(b"".join(parts))
        line = self._file.readline()
        kind, rest = line[:1], line[1:-2]
        if kind == b"$":
            size = int(rest)
            if size < 0:
                return None
            return self._file.read(size + 2)[:-2]
        if kind == b"-":
            raise RuntimeError(rest.decode())
        return rest

    def close(self) -> None:
        self._file.close()
        self._sock.close()


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return (
        statistics.median(ordered) * 1000,
        ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
    )


def _time_requests(
    client: _Client, keys: list[bytes], value: bytes, until: object
) -> tuple[list[float], list[float]]:
    assert callable(until)
    gets: list[float] = []
    sets: list[float] = []
    rng = random.Random(7)
    clock = time.perf_counter
    while not until(len(gets)):
        for _ in range(50):
            key = rng.choice(keys)
            start = clock()
            client.call(b"GET", key)
            middle = clock()
            client.call(b"SET", key, value)
            gets.append(middle - start)
            sets.append(clock() - middle)
    return gets, sets


def latency(root: str, keys_count: int) -> list[Outcome]:
    keys = dataset.keys(keys_count)
    values = dataset.values(keys_count)
    path = os.path.join(root, "compact-latency")
    with catlog.open(path, fsync="never") as store:
        _fill(store.put, keys, values)
    port = _free_port()
    contender = Contender(
        "catlog",
        (
            sys.executable,
            "-m",
            "catlog",
            "serve",
            "--port",
            "{port}",
            "--data-dir",
            path,
            "--fsync",
            "never",
            "--compact-threshold",
            "0",
            "--log-level",
            "warning",
        ),
        "[LISTENING]",
    )
    process = _start(contender, port)
    client = _Client(port)
    control = _Client(port)
    value = b"x" * 100
    try:
        started = time.monotonic()
        outside = _time_requests(
            client, keys, value, lambda n: time.monotonic() - started >= BASELINE_SECONDS
        )
        assert control.call(b"BGREWRITEAOF") == b"Background append only file rewriting started"
        compaction_started = time.monotonic()

        def compacting_done(n: int) -> bool:
            info = control.call(b"INFO", b"persistence") or b""
            return b"aof_rewrite_in_progress:0" in info

        during = _time_requests(client, keys, value, compacting_done)
        compaction_seconds = time.monotonic() - compaction_started
    finally:
        client.close()
        control.close()
        _stop(process)
    outcomes = []
    for name, index in (("GET", 0), ("SET", 1)):
        p50_out, p99_out = _percentiles(outside[index])
        p50_in, p99_in = _percentiles(during[index])
        outcomes.append(
            Outcome(
                f"server {name} latency during compaction: {keys_count:,} keys x {OVERWRITES}",
                Figure("p99 during compaction", p99_in, "ms"),
                (
                    Figure("p99 outside compaction", p99_out, "ms"),
                    Figure("p50 during compaction", p50_in, "ms"),
                    Figure("p50 outside compaction", p50_out, "ms"),
                ),
                "p99 outside compaction",
                None,
                (
                    f"one client, one request at a time; {len(during[index]):,} requests during "
                    f"a {compaction_seconds:.1f} s compaction, {len(outside[index]):,} in "
                    f"{BASELINE_SECONDS:.0f} s before it; fsync never.",
                ),
            )
        )
    return outcomes
