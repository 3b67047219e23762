"""Bad input never stops the server or another client, and memory stays bounded (SRV-7 .. SRV-9)."""

from __future__ import annotations

import socket
import time

import pytest

from tests.server.conftest import RunningServer, Serve, send_and_read


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _read_all(sock: socket.socket) -> bytes:
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not chunk:
            break
        data += chunk
    return data


def _still_serves(server: RunningServer) -> None:
    with server.connect() as sock:
        assert send_and_read(sock, b"PUT alive yes\nGET alive\n", 2) == [b"OK", b"VALUE yes"]


@pytest.mark.spec("PROTO-18", "PROTO-21", "SRV-7")
@pytest.mark.parametrize(
    ("garbage", "reply"),
    [
        (b"*1\r\n$9223372036854775807\r\n", b"-ERR Protocol error: invalid bulk length\r\n"),
        (b"*-0\r\n", b"-ERR Protocol error: invalid multibulk length\r\n"),
        (b"*2\r\n$3\r\nGET\r\nX", b"-ERR Protocol error: expected '$', got 'X'\r\n"),
        (b"*\xff\xfe\r\n", b"-ERR Protocol error: invalid multibulk length\r\n"),
    ],
)
def test_broken_resp_gets_an_error_and_a_close(serve: Serve, garbage: bytes, reply: bytes) -> None:
    server = serve()
    with server.connect() as sock:
        sock.sendall(garbage)
        assert _read_all(sock) == reply
    _still_serves(server)


@pytest.mark.spec("SRV-7", "PROTO-11")
def test_binary_garbage_on_the_line_protocol_is_answered_and_survived(serve: Serve) -> None:
    server = serve()
    with server.connect() as sock:
        sock.sendall(b"GET k\n" + bytes(range(1, 256)) * 40 + b"\n")
        sock.shutdown(socket.SHUT_WR)
        assert _read_all(sock).startswith(b"NOT_FOUND\nERROR ")
    _still_serves(server)


@pytest.mark.spec("SRV-7")
def test_a_client_that_never_reads_its_replies_cannot_grow_the_server(serve: Serve) -> None:
    server = serve("--fsync", "never")
    with server.connect() as sock:
        assert send_and_read(sock, b"PUT big " + b"x" * 500_000 + b"\n", 1) == [b"OK"]
    before = _rss_kib(server.process.pid)
    hog = server.connect(timeout=2)
    hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    request = b"GET big\n" * 1000
    sent = 0
    deadline = time.monotonic() + 20
    hog.setblocking(False)
    while time.monotonic() < deadline and sent < 2000 * len(request):
        try:
            sent += hog.send(request)
        except BlockingIOError:
            time.sleep(0.05)
    _still_serves(server)
    grown_mib = (_rss_kib(server.process.pid) - before) / 1024
    hog.close()
    assert grown_mib < 200, f"the server grew by {grown_mib:.0f} MiB for one client"


@pytest.mark.spec("SRV-8")
def test_connections_beyond_the_limit_are_refused_with_redis_wording(serve: Serve) -> None:
    server = serve("--max-connections", "2")
    first, second = server.connect(), server.connect()
    try:
        assert send_and_read(first, b"GET k\n", 1) == [b"NOT_FOUND"]
        assert send_and_read(second, b"GET k\n", 1) == [b"NOT_FOUND"]
        with server.connect() as third:
            assert _read_all(third) == b"-ERR max number of clients reached\r\n"
    finally:
        first.close()
        second.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            _still_serves(server)
            break
        except AssertionError:
            time.sleep(0.1)
    else:
        raise AssertionError("a slot never came free")


@pytest.mark.spec("SRV-9")
def test_an_idle_connection_is_closed(serve: Serve) -> None:
    server = serve("--idle-timeout", "0.3")
    with server.connect(timeout=10) as sock:
        started = time.monotonic()
        assert _read_all(sock) == b""
        assert time.monotonic() - started < 9


@pytest.mark.spec("SRV-2", "PROTO-21", "PROTO-18")
def test_the_bulk_length_limit_is_a_flag(serve: Serve) -> None:
    server = serve("--max-bulk-length", "10")
    with server.connect() as sock:
        sock.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$11\r\n")
        assert _read_all(sock) == b"-ERR Protocol error: invalid bulk length\r\n"
    with server.connect() as sock:
        sock.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$10\r\n0123456789\r\n")
        assert sock.recv(100) == b"+OK\r\n"
