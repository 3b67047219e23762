"""The server's own work per request, without sockets or redis-benchmark.

On two cores, redis-benchmark competes with the server it measures, and rounds of the network
workload swing by half either way. Here the same reads that ``redis-benchmark -P 16 -r 100000
-d 100`` sends (16 commands each) are handed straight to each server's ``data_received``, whose
replies go to a transport that drops them: catlog's :class:`catlog.connection.Connection` on a store
with fsync never, against the minimal asyncio server's protocol (:mod:`bench.minimal_server`).
What is left is the Python each server runs per request, measured in the same run, interleaved,
each repetition of each server in a child process of its own. catlog is fed the reads of
``redis-benchmark -t incr`` too (keys ``counter:<n>``), which the minimal server does not know:
that row is catlog's INCR against its own SET, issue 14's ratio without the client's noise.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from typing import Final

import catlog
from catlog.connection import Connection
from catlog.protocol.resp import encode_command
from catlog.server import Server
from catlog.serverconfig import ServerConfig

from . import minimal_server
from .report import Figure, Outcome
from .timing import Sample, Timing

PIPELINE = 16
KEY_SPACE = 100_000
VALUE = b"x" * 100


class _Sink(asyncio.Transport):
    """A transport that accepts what it is given and sends nothing."""

    def write(self, data: bytes | bytearray | memoryview) -> None:
        pass

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("127.0.0.1", 1) if name == "peername" else default

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def is_closing(self) -> bool:
        return False


def _reads(name: bytes, reads: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    prefix = b"counter:" if name == b"INCR" else b"key:"  # as redis-benchmark names them
    out = []
    for _ in range(reads):
        commands = []
        for _ in range(PIPELINE):
            key = b"%b%012d" % (prefix, rng.randrange(KEY_SPACE))
            commands.append(
                encode_command(name, key, VALUE) if name == b"SET" else encode_command(name, key)
            )
        out.append(b"".join(commands))
    return out


def _cpu(feed: Callable[[bytes], object], reads: list[bytes]) -> Sample:
    start = time.process_time()
    for data in reads:
        feed(data)
    return Sample(len(reads) * PIPELINE, time.process_time() - start)


def once(kind: str, root: str, reads: int) -> Timings:
    """One server (``catlog`` or ``ceiling``) fed the SET reads, then the GET reads, then
    (catlog only) the INCR reads; CPU time of each feeding loop. Runs in a child process of its
    own (:mod:`bench.tasks`, ``loop``)."""
    sets = _reads(b"SET", reads, 1)
    gets = _reads(b"GET", reads, 2)
    incrs = _reads(b"INCR", reads, 3)
    if kind == "ceiling":
        minimal_server._data.clear()
        protocol = minimal_server._Minimal()
        protocol.connection_made(_Sink())
        return _cpu(protocol.data_received, sets), _cpu(protocol.data_received, gets), None
    assert kind == "catlog", f"unknown server-loop contender {kind!r}"
    directory = tempfile.mkdtemp(dir=root)
    store = catlog.open(directory, fsync="never")
    server = Server(ServerConfig(data_dir=directory, fsync="never", idle_timeout=0), store)
    connection = Connection(server)
    connection.connection_made(_Sink())
    feed = connection.data_received
    timings = _cpu(feed, sets), _cpu(feed, gets), _cpu(feed, incrs)
    store.close()
    shutil.rmtree(directory)
    return timings


CEILING: Final = "minimal asyncio dict server (ceiling)"

Timings = tuple[Sample, Sample, Sample | None]
"""One repetition of one server: its SET, GET and INCR (catlog only) feeding loops."""


def _set(runs: Timings) -> Sample:
    return runs[0]


def _get(runs: Timings) -> Sample:
    return runs[1]


def outcomes(found: dict[str, list[Timings]], reads: int) -> list[Outcome]:
    """The SET and GET rows from every repetition of each server, keyed by label (catlog's
    first, then any ``catlog@LABEL`` checkouts, then :data:`CEILING`), and the INCR row: each
    catlog's INCR against the first one's own SET."""
    result = []
    for command, pick in (("SET", _set), ("GET", _get)):
        timings = {label: Timing(tuple(map(pick, runs))) for label, runs in found.items()}
        figures = [
            Figure(label, t.rate, "req/s", tuple(s.rate for s in t.samples))
            for label, t in timings.items()
        ]
        cpu = ", ".join(f"{label} {1e6 / t.rate:.2f} µs" for label, t in timings.items())
        result.append(
            Outcome(
                f"server loop, {command} x{PIPELINE} per read, no sockets",
                figures[0],
                tuple(figures[1:]),
                CEILING,
                None,
                (
                    f"{reads:,} reads of {PIPELINE} pipelined {command}s (random keys out of "
                    f"{KEY_SPACE:,}, 100-byte values) fed to data_received; CPU time per "
                    f"request: {cpu}.",
                ),
            )
        )
    incr = {
        label: (Timing(tuple(r[0] for r in runs)), Timing(tuple(r[2] for r in runs if r[2])))
        for label, runs in found.items()
        if label != CEILING
    }
    own_set = f"{next(iter(incr))} SET"
    figures = [
        Figure(f"{label} INCR", t.rate, "req/s", tuple(s.rate for s in t.samples))
        for label, (_, t) in incr.items()
    ]
    sets = next(iter(incr.values()))[0]
    ratios = ", ".join(
        f"{label} {1e6 / t.rate:.2f} µs an INCR, {1e6 / s.rate:.2f} a SET, {t.rate / s.rate:.2f}x"
        for label, (s, t) in incr.items()
    )
    result.append(
        Outcome(
            f"server loop, INCR x{PIPELINE} per read, no sockets",
            figures[0],
            (
                Figure(own_set, sets.rate, "req/s", tuple(s.rate for s in sets.samples)),
                *figures[1:],
            ),
            own_set,
            None,
            (
                f"{reads:,} reads of {PIPELINE} pipelined INCRs of counter:<n> (random out of "
                f"{KEY_SPACE:,}; each catlog after its SET and GET reads), against the same "
                f"server's SET (issue 14's ratio, without the client); CPU time: {ratios}.",
            ),
        )
    )
    return result
