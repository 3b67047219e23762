"""Inline commands through a real server: health checks and redis-benchmark's default tests."""

from __future__ import annotations

import subprocess

import pytest

from tests.server.conftest import Serve, require_tool, send_and_read


@pytest.mark.spec("PROTO-1", "PROTO-86")
def test_a_health_checks_inline_ping_is_answered_pong(serve: Serve) -> None:
    server = serve()
    with server.connect() as sock:
        assert send_and_read(sock, b"PING\r\n", 1) == [b"+PONG"]
        reply = send_and_read(sock, b'SET "a key" "x y"\r\nGET "a key"\r\nQUIT\r\n', 4)
        assert reply == [b"+OK", b"$3", b"x y", b"+OK"]
    with server.connect() as sock:
        sock.sendall(b"\r\n\r\nPI")  # the first word arrives in pieces
        sock.sendall(b"NG\n")
        assert send_and_read(sock, b"", 1) == [b"+PONG"]


@pytest.mark.spec("PROTO-1")
def test_a_line_protocol_connection_still_starts_with_its_command_word(serve: Serve) -> None:
    server = serve()
    with server.connect() as sock:
        assert send_and_read(sock, b"PUT name Bob\nget name\nPING\n", 3) == [
            b"OK",
            b"VALUE Bob",
            b"ERROR unknown command 'PING'; expected PUT, PUTEX, GET or DELETE",
        ]
    with server.connect() as sock:
        sock.sendall(b"P")  # the first word arrives in pieces
        sock.sendall(b"UTEX")
        assert send_and_read(sock, b" k 100 v\nGET k\n", 2) == [b"OK", b"VALUE v"]


@pytest.mark.spec("PROTO-1", "PROTO-86", "PROTO-87")
def test_redis_benchmark_runs_its_ping_set_get_incr_and_mset_tests(serve: Serve) -> None:
    benchmark = require_tool("redis-benchmark")
    server = serve("--fsync", "never")
    done = subprocess.run(
        [
            *(benchmark, "-h", server.host, "-p", str(server.port)),
            *("-t", "ping,set,get,incr,mset", "-n", "2000", "-c", "4", "--csv"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    tests = {row.split(",")[0].strip('"') for row in done.stdout.splitlines()[1:]}
    assert tests == {"PING_INLINE", "PING_MBULK", "SET", "GET", "INCR", "MSET (10 keys)"}
    assert "Error" not in done.stdout + done.stderr
