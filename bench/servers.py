"""The server workload: redis-benchmark against catlog, redis-server and a minimal asyncio server.

redis-benchmark (Debian's redis-tools) drives every server the same way, so the numbers compare
the servers, not the clients. On two cores the client competes with the server for CPU, so the
non-pipelined figures mostly measure round trips; ``-P 16`` (16 requests per round trip) is where
servers separate, and the targets are judged there.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from .report import Figure, Outcome, Target

REQUESTS = 100_000
CLIENTS = 50
KEYSPACE = 100_000
VALUE_SIZE = 100


@dataclass(frozen=True, slots=True)
class Contender:
    label: str
    command: tuple[str, ...]
    ready_line: str
    """A prefix of the line the server prints on stdout once it accepts connections."""


def _start(contender: Contender, port: int) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [part.replace("{port}", str(port)) for part in contender.command],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None, "stdout is piped"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        if contender.ready_line in line:
            return process
    process.kill()
    raise RuntimeError(f"{contender.label} did not start")


def _stop(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_benchmark(port: int, pipeline: int, requests: int) -> dict[str, float]:
    """Requests per second for SET and GET, as redis-benchmark's CSV reports them."""
    done = subprocess.run(
        [
            "redis-benchmark",
            "-p",
            str(port),
            "-t",
            "set,get",
            "-n",
            str(requests),
            "-c",
            str(CLIENTS),
            "-r",
            str(KEYSPACE),
            "-d",
            str(VALUE_SIZE),
            "-P",
            str(pipeline),
            "--csv",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    rates: dict[str, float] = {}
    for row in csv.DictReader(io.StringIO(done.stdout)):
        rates[row["test"]] = float(row["rps"])
    return rates


def contenders(root: str) -> list[Contender]:
    python = sys.executable
    found = [
        Contender(
            'catlog fsync="never"',
            (
                python,
                "-m",
                "catlog",
                "serve",
                "--port",
                "{port}",
                "--fsync",
                "never",
                "--data-dir",
                os.path.join(root, "catlog-never"),
                "--log-level",
                "warning",
            ),
            "[LISTENING]",
        ),
        Contender(
            'catlog fsync="always"',
            (
                python,
                "-m",
                "catlog",
                "serve",
                "--port",
                "{port}",
                "--fsync",
                "always",
                "--data-dir",
                os.path.join(root, "catlog-always"),
                "--log-level",
                "warning",
            ),
            "[LISTENING]",
        ),
        Contender(
            "minimal asyncio dict server (ceiling)",
            (python, "-m", "bench.minimal_server", "{port}"),
            "[LISTENING]",
        ),
    ]
    if shutil.which("redis-server"):
        for label, extra in (
            ("redis-server, no persistence", ("--save", "", "--appendonly", "no")),
            (
                "redis-server, appendfsync always",
                (
                    "--save",
                    "",
                    "--appendonly",
                    "yes",
                    "--appendfsync",
                    "always",
                    "--dir",
                    root,
                    "--appendfilename",
                    "bench.aof",
                ),
            ),
        ):
            found.append(
                Contender(label, ("redis-server", "--port", "{port}", *extra), "Ready to accept")
            )
    return found


def server_workload(
    root: str, requests: int = REQUESTS, pipelines: Sequence[int] = (1, 16)
) -> list[Outcome]:
    """Run redis-benchmark against each contender, one at a time, and compare."""
    if shutil.which("redis-benchmark") is None:
        raise RuntimeError("redis-benchmark is missing: apt-get install redis-tools")
    results: dict[tuple[str, int], dict[str, float]] = {}
    for contender in contenders(root):
        port = _free_port()
        process = _start(contender, port)
        try:
            for pipeline in pipelines:
                results[(contender.label, pipeline)] = redis_benchmark(port, pipeline, requests)
        finally:
            _stop(process)
    outcomes = []
    ceiling = "minimal asyncio dict server (ceiling)"
    never = 'catlog fsync="never"'
    always = 'catlog fsync="always"'
    labels = [c.label for c in contenders(root)]
    judged = max(pipelines)
    for pipeline in pipelines:
        for test in ("SET", "GET"):
            figures = {
                label: Figure(label, results[(label, pipeline)][test], "req/s") for label in labels
            }
            outcomes.append(
                Outcome(
                    f"server {test}, -c {CLIENTS} -P {pipeline}",
                    figures[never],
                    tuple(figure for label, figure in figures.items() if label != never),
                    ceiling,
                    Target(0.8, at_least=True) if pipeline == judged else None,
                    (f"redis-benchmark -t set,get -n {requests} -r {KEYSPACE} -d {VALUE_SIZE}.",),
                )
            )
        outcomes.append(
            Outcome(
                f"server SET durable, -c {CLIENTS} -P {pipeline}",
                Figure(always, results[(always, pipeline)]["SET"], "req/s"),
                (Figure(never, results[(never, pipeline)]["SET"], "req/s"),),
                never,
                Target(0.5, at_least=True) if pipeline == judged else None,
                ("group commit: writes of all connections share each fsync (SRV-5).",),
            )
        )
    return outcomes
