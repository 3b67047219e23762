"""The server under a descriptor limit lower than its store's segments (SRV-2, ENG-65)."""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
from pathlib import Path
from typing import Final

import pytest

from tests.server.conftest import RunningServer, send_and_read, start_server
from tests.store.segments import key_of, value_of, write_segments

SEGMENTS: Final = 3000
LIMIT: Final = 256

needs_proc = pytest.mark.skipif(
    not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc/<pid>/fd"
)


def start_limited(data_dir: str, limit: int, *flags: str) -> RunningServer:
    """``catlog serve`` in a child whose soft ``RLIMIT_NOFILE`` is ``limit``."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)

    def lower() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))

    return start_server(data_dir, *flags, preexec=lower)


def held(server: RunningServer) -> int:
    return len(os.listdir(f"/proc/{server.process.pid}/fd"))


@needs_proc
@pytest.mark.spec("SRV-2", "ENG-65", "ENG-69")
@pytest.mark.parametrize("flags", [(), ("--max-open-files", "16")])
def test_the_server_opens_and_serves_a_store_of_more_segments_than_its_limit(
    tmp_path: Path, flags: tuple[str, ...]
) -> None:
    write_segments(tmp_path / "data", SEGMENTS)
    server = start_limited(str(tmp_path / "data"), LIMIT, "--no-hints", *flags)
    try:
        clients: list[socket.socket] = [server.connect() for _ in range(20)]
        try:
            for number in range(1, SEGMENTS + 1, 7):
                sock = clients[number % len(clients)]
                key = key_of(number).decode()
                reply = send_and_read(sock, f"GET {key}\n".encode(), 1)
                assert reply == [b"VALUE " + value_of(number)], key
            assert send_and_read(clients[0], b"PUT new v\nGET new\n", 2) == [b"OK", b"VALUE v"]
            budget = 16 if flags else (LIMIT - 64) // 2
            assert held(server) <= budget + len(clients) + 16
        finally:
            for sock in clients:
                sock.close()
    finally:
        assert server.stop() == 0, server.output[-20:]


def test_max_open_files_below_one_is_a_usage_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "catlog",
            "serve",
            "--data-dir",
            str(tmp_path),
            "--max-open-files",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "--max-open-files: must be at least 1" in done.stderr
