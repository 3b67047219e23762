"""The server under a descriptor limit lower than its store's segments (SRV-2, ENG-65)."""

from __future__ import annotations

import logging
import os
import resource
import socket
import subprocess
import sys
from pathlib import Path
from typing import Final

import pytest

from catlog.server import raise_open_file_limit
from catlog.serverconfig import (
    ServerConfig,
    raised_soft_limit,
    store_open_files,
    wanted_open_files,
)
from tests.server.conftest import RunningServer, send_and_read, start_server
from tests.store.segments import key_of, value_of, write_segments

SEGMENTS: Final = 3000
LIMIT: Final = 256

needs_proc = pytest.mark.skipif(
    not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc/<pid>/fd"
)


def start_limited(data_dir: str, limit: int, *flags: str, hard: int | None = None) -> RunningServer:
    """``catlog serve`` in a child whose soft ``RLIMIT_NOFILE`` is ``limit`` and whose hard one
    is ``hard``, by default ``limit`` too: a machine where the server cannot raise it (SRV-30)."""
    ceiling = limit if hard is None else hard

    def lower() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, ceiling))

    return start_server(data_dir, *flags, preexec=lower)


def soft_limit_of(server: RunningServer) -> int:
    """The child's soft ``RLIMIT_NOFILE`` now, from /proc/<pid>/limits."""
    with open(f"/proc/{server.process.pid}/limits") as limits:
        for row in limits:
            if row.startswith("Max open files"):
                return int(row.split()[3])
    raise AssertionError("no open-file limit in /proc/<pid>/limits")


def held(server: RunningServer) -> int:
    return len(os.listdir(f"/proc/{server.process.pid}/fd"))


@needs_proc
@pytest.mark.spec("SRV-2", "ENG-65", "ENG-69", "SRV-26")
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
            budget = 16 if flags else 8  # SRV-26: 1,024 connections leave no room under 256
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


@pytest.mark.spec("SRV-26", "ENG-65")
@pytest.mark.parametrize(
    ("soft", "connections", "given", "budget"),
    [
        (1024, 1024, None, 8),  # no room left: the least budget
        (1024, 100, None, 480),  # room enough: the engine's default, (1024 - 64) // 2
        (1024, 700, None, 260),  # 1024 - 64 - 700
        (65_536, 1024, None, 10_000),  # the engine's ceiling
        (resource.RLIM_INFINITY, 1024, None, 10_000),
        (1024, 1024, 16, 16),  # --max-open-files as given
    ],
)
def test_the_servers_default_budget_leaves_a_descriptor_per_connection(
    soft: int, connections: int, given: int | None, budget: int
) -> None:
    config = ServerConfig(max_connections=connections, max_open_files=given)
    assert store_open_files(config, soft) == budget


@needs_proc
@pytest.mark.spec("SRV-26", "ENG-65")
def test_a_server_keeps_fewer_segments_open_when_its_connections_need_the_descriptors(
    tmp_path: Path,
) -> None:
    """256 descriptors, 150 connections: (256 - 64) // 2 = 96 would leave 96 for the
    connections and everything else; 256 - 64 - 150 = 42 leaves them theirs."""
    count = 300
    write_segments(tmp_path / "data", count)
    server = start_limited(str(tmp_path / "data"), LIMIT, "--no-hints", "--max-connections", "150")
    try:
        with server.connect() as sock:
            for number in range(1, count + 1):
                reply = send_and_read(sock, f"GET {key_of(number).decode()}\n".encode(), 1)
                assert reply == [b"VALUE " + value_of(number)]
            assert held(server) <= 42 + 1 + 16
    finally:
        assert server.stop() == 0, server.output[-20:]


@pytest.mark.spec("SRV-27", "FMT-12")
@pytest.mark.parametrize("size", ["63", "536870913"])
def test_a_segment_size_a_store_would_refuse_is_a_usage_error(tmp_path: Path, size: str) -> None:
    data_dir = tmp_path / "data"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "catlog",
            "serve",
            "--data-dir",
            str(data_dir),
            "--segment-size",
            size,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "--segment-size: must be between 64 and 536870912 bytes" in done.stderr
    assert not data_dir.exists()


@pytest.mark.spec("SRV-30")
@pytest.mark.parametrize(
    ("connections", "given", "wanted"),
    [
        (1024, None, 64 + 1024 + 10_000),
        (100, None, 64 + 100 + 10_000),
        (1024, 16, 64 + 1024 + 16),
    ],
)
def test_a_server_wants_a_descriptor_per_connection_and_its_stores_files(
    connections: int, given: int | None, wanted: int
) -> None:
    config = ServerConfig(max_connections=connections, max_open_files=given)
    assert wanted_open_files(config) == wanted


@pytest.mark.spec("SRV-30")
@pytest.mark.parametrize(
    ("soft", "hard", "wanted", "raised"),
    [
        (1024, 524_288, 11_088, 11_088),  # the usual machine: soft 1,024, hard far above
        (1024, 4096, 11_088, 4096),  # never above the hard limit
        (1024, resource.RLIM_INFINITY, 11_088, 11_088),
        (20_000, 524_288, 11_088, None),  # never lowered
        (11_088, 524_288, 11_088, None),  # enough already
        (1024, 1024, 11_088, None),  # the hard limit leaves nothing to raise
        (resource.RLIM_INFINITY, resource.RLIM_INFINITY, 11_088, None),
    ],
)
def test_the_soft_limit_rises_as_far_as_the_hard_one_allows(
    soft: int, hard: int, wanted: int, raised: int | None
) -> None:
    assert raised_soft_limit(soft, hard, wanted) == raised


@needs_proc
@pytest.mark.spec("SRV-30", "SRV-26")
def test_a_server_raises_its_soft_limit_and_gives_the_store_the_room(tmp_path: Path) -> None:
    """Soft 256 under a hard 4,096: the server raises itself to 4,096 and logs it; its store's
    budget is then min((4096 - 64) // 2, 4096 - 64 - 1024) = 2016, not SRV-26's least 8."""
    count = 100
    write_segments(tmp_path / "data", count)
    server = start_limited(str(tmp_path / "data"), LIMIT, "--no-hints", hard=4096)
    try:
        assert soft_limit_of(server) == 4096
        line = "raised the open-file limit (ulimit -n) from 256 to 4096 for 1024 connections"
        assert any(line in logged for logged in server.output), server.output
        assert not any("no room is left" in logged for logged in server.output)
        with server.connect() as sock:
            for number in range(1, count + 1):
                reply = send_and_read(sock, f"GET {key_of(number).decode()}\n".encode(), 1)
                assert reply == [b"VALUE " + value_of(number)]
            assert held(server) >= count  # every segment read stays open: the budget is 2016
    finally:
        assert server.stop() == 0, server.output[-20:]


@needs_proc
@pytest.mark.spec("SRV-30", "SRV-26")
def test_a_server_whose_hard_limit_starves_its_store_says_so(tmp_path: Path) -> None:
    server = start_limited(str(tmp_path / "data"), LIMIT)
    try:
        assert soft_limit_of(server) == LIMIT
        warning = (
            "the open-file limit (ulimit -n) is 256: after 1024 connections no room is left for"
            " the store's segment files, so it keeps at most 8 open and reads older segments"
            " slowly; raise the hard limit or lower --max-connections"
        )
        assert any(warning in logged for logged in server.output), server.output
        assert not any("raised the open-file limit" in logged for logged in server.output)
    finally:
        assert server.stop() == 0, server.output[-20:]


@pytest.mark.spec("SRV-30")
def test_a_raise_the_system_refuses_is_a_warning_with_its_reason(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The hard limit allows it, but the system refuses (a container's seccomp policy, say):
    the server goes on with the limit it has, and says why."""

    def refuse(resource_id: int, limits: tuple[int, int]) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(resource, "getrlimit", lambda resource_id: (1024, 524_288))
    monkeypatch.setattr(resource, "setrlimit", refuse)
    with caplog.at_level(logging.INFO, logger="catlog"):
        raise_open_file_limit(ServerConfig(max_connections=100))
    assert [(record.levelname, record.getMessage()) for record in caplog.records] == [
        (
            "WARNING",
            "could not raise the open-file limit from 1024 to 10164: [Errno 1] Operation not"
            " permitted",
        )
    ]
