"""A real catlog server in a child process, for tests that talk to it over loopback sockets."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import pytest

STARTUP_SECONDS = 30


@dataclass
class RunningServer:
    process: subprocess.Popen[str]
    host: str
    port: int
    data_dir: str
    output: list[str] = field(default_factory=list)

    def connect(self, timeout: float = 10.0) -> socket.socket:
        return socket.create_connection((self.host, self.port), timeout=timeout)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Signal the server and wait; returns its exit status, with its output collected."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            out, _ = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, _ = self.process.communicate()
        self.output.extend(out.splitlines())
        return self.process.returncode


def start_server(
    data_dir: str, *flags: str, preexec: Callable[[], None] | None = None
) -> RunningServer:
    """Start ``python -m catlog serve --port 0`` and wait for its ``[LISTENING]`` line (SRV-3).

    ``preexec`` runs in the child before it execs (a lowered resource limit, say)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "catlog", "serve", "--port", "0", "--data-dir", data_dir, *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        preexec_fn=preexec,  # noqa: PLW1509 - the child runs no threads before it execs
    )
    assert process.stdout is not None, "stdout is piped"
    deadline = time.monotonic() + STARTUP_SECONDS
    seen: list[str] = []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line.rstrip("\n"))
        if line.startswith("[LISTENING] "):
            host, port = line.split()[1].rsplit(":", 1)
            server = RunningServer(process, host, int(port), data_dir, seen)
            _drain_in_background(server)
            return server
    process.kill()
    raise AssertionError(f"server did not start; it said: {seen}")


def _drain_in_background(server: RunningServer) -> None:
    """Keep reading the server's output so a chatty log never blocks it on a full pipe."""
    stdout = server.process.stdout
    assert stdout is not None, "stdout is piped"

    def drain() -> None:
        for line in stdout:
            server.output.append(line.rstrip("\n"))

    threading.Thread(target=drain, daemon=True).start()


class Serve(Protocol):
    def __call__(self, *flags: str, data_dir: str | None = None) -> RunningServer: ...


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    """Start servers on demand (``serve("--fsync", "never")``); all are stopped afterwards."""
    started: list[RunningServer] = []

    def start(*flags: str, data_dir: str | None = None) -> RunningServer:
        server = start_server(data_dir or str(tmp_path / f"data{len(started)}"), *flags)
        started.append(server)
        return server

    yield start
    for server in started:
        if server.process.poll() is None:
            server.stop()  # SIGTERM first: a child stopped cleanly saves its coverage data


def require_tool(name: str) -> str:
    """The path of an external tool; skip (or, in CI, fail) when it is not installed."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (apt-get install redis-tools netcat-openbsd)"
        if os.environ.get("CATLOG_REQUIRE_TOOLS"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def send_and_read(sock: socket.socket, data: bytes, expect_lines: int) -> list[bytes]:
    """Send ``data`` and read until ``expect_lines`` newline-terminated lines have arrived."""
    sock.sendall(data)
    buf = b""
    while buf.count(b"\n") < expect_lines:
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
    return buf.splitlines()


def kill_while_clients_run(
    server: RunningServer,
    client: Callable[[int, threading.Event], None],
    clients: int,
    after: float,
) -> None:
    """Run ``client(number, stop)`` in ``clients`` threads, kill -9 the server ``after`` seconds
    in, then set ``stop`` and wait for every thread (bounded): the kill -9 tests' common part.

    A client loops until ``stop`` is set or its connection fails, recording what the server
    acknowledged; the test then opens the data directory and checks it.
    """
    stop = threading.Event()
    threads = [threading.Thread(target=client, args=(n, stop)) for n in range(clients)]
    for thread in threads:
        thread.start()
    time.sleep(after)
    server.process.send_signal(signal.SIGKILL)
    server.process.wait()
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
