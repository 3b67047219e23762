"""The server's own work per request, without sockets or redis-benchmark.

On two cores, redis-benchmark competes with the server it measures, and rounds of the network
workload swing by half either way. Here the same reads that ``redis-benchmark -P 16 -r 100000
-d 100`` sends (16 commands each) are handed straight to each server's ``data_received``, whose
replies go to a transport that drops them: catlog's :class:`catlog.connection.Connection` on a store
with fsync never, against the minimal asyncio server's protocol (:mod:`bench.minimal_server`).
What is left is the Python each server runs per request, measured in the same run, interleaved,
each repetition of each server in a child process of its own.
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
    out = []
    for _ in range(reads):
        commands = []
        for _ in range(PIPELINE):
            key = b"key:%012d" % rng.randrange(KEY_SPACE)
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


def once(kind: str, root: str, reads: int) -> tuple[Sample, Sample]:
    """One server (``catlog`` or ``ceiling``) fed the SET reads, then the GET reads; CPU time
    of each feeding loop. Runs in a child process of its own (:mod:`bench.tasks`, ``loop``)."""
    sets = _reads(b"SET", reads, 1)
    gets = _reads(b"GET", reads, 2)
    if kind == "ceiling":
        minimal_server._data.clear()
        protocol = minimal_server._Minimal()
        protocol.connection_made(_Sink())
        return _cpu(protocol.data_received, sets), _cpu(protocol.data_received, gets)
    assert kind == "catlog", f"unknown server-loop contender {kind!r}"
    directory = tempfile.mkdtemp(dir=root)
    store = catlog.open(directory, fsync="never")
    server = Server(ServerConfig(data_dir=directory, fsync="never", idle_timeout=0), store)
    connection = Connection(server)
    connection.connection_made(_Sink())
    timings = _cpu(connection.data_received, sets), _cpu(connection.data_received, gets)
    store.close()
    shutil.rmtree(directory)
    return timings


CEILING: Final = "minimal asyncio dict server (ceiling)"


def outcomes(found: dict[str, list[tuple[Sample, Sample]]], reads: int) -> list[Outcome]:
    """The SET and GET rows from every repetition of each server, keyed by label (catlog's
    first, then any ``catlog@LABEL`` checkouts, then :data:`CEILING`)."""
    result = []
    for index, command in enumerate(("SET", "GET")):
        timings = {
            label: Timing(tuple(pair[index] for pair in pairs)) for label, pairs in found.items()
        }
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
    return result
