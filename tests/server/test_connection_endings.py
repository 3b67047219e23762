"""Every way a connection can end gives back its descriptor and its slot (SRV-12, SRV-7 .. SRV-9).

Each case below ends one connection in one way, against a fresh server started with
``--max-connections 3``. Afterwards the server must hold no more open descriptors than it did
before the case (counted in ``/proc/<pid>/fd``, polled up to a deadline, since closing is
asynchronous), and must still serve: three health-check style connections (connect, close,
nothing sent) and then a real client, which a server that kept any of those slots would refuse
with ``-ERR max number of clients reached``.

The cases are a table, so a new way of ending gets one row. Servers run with ``--idle-timeout
0`` except in the idle cases, so that a leak cannot hide behind the idle timer.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Callable
from typing import Final

import pytest

from tests.server.conftest import RunningServer, Serve, send_and_read

MAX_CONNECTIONS = 3
FD_DEADLINE_S = 5.0
"""How long the server may take to close what a case left: far above the milliseconds it needs."""

pytestmark = pytest.mark.skipif(
    not os.path.isdir("/proc/self/fd"), reason="counting descriptors needs /proc"
)


def _open_fds(server: RunningServer) -> int:
    return len(os.listdir(f"/proc/{server.process.pid}/fd"))


def _barrier(server: RunningServer) -> None:
    """Return once the server has accepted every connection made before this call.

    The kernel queues connections for ``accept`` in order, so once a later connection has an
    answer (``+PONG``, or the refusal of SRV-8 when every slot is taken), every earlier one has
    its descriptor in the server: counting before that could miss a leak.
    """
    with server.connect() as probe:
        probe.sendall(b"*1\r\n$4\r\nPING\r\n")
        probe.settimeout(10)
        try:
            answer = probe.recv(100)
        except ConnectionResetError:  # refused, and our PING was unread when it closed
            answer = b"-ERR (reset)"
    assert answer.startswith((b"+PONG", b"-ERR")), answer


def _wait_for_fds(server: RunningServer, baseline: int, what: str) -> None:
    _barrier(server)
    deadline = time.monotonic() + FD_DEADLINE_S
    while (now := _open_fds(server)) > baseline:
        assert server.process.poll() is None, f"the server died: {server.output[-20:]}"
        if time.monotonic() > deadline:
            raise AssertionError(
                f"after {what}, the server holds {now} descriptors, {now - baseline} more than "
                f"its {baseline} before, {FD_DEADLINE_S:g} s later"
            )
        time.sleep(0.02)


def _read_to_end(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """Everything the server sends until it closes (or resets) the connection."""
    sock.settimeout(timeout)
    data = b""
    while True:
        try:
            chunk = sock.recv(1 << 20)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data


def _reset(sock: socket.socket) -> None:
    """Close with SO_LINGER 0: the kernel sends RST instead of FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _still_serves(server: RunningServer, baseline: int) -> None:
    """SRV-8: as many health checks as there are slots, then a real client on each protocol."""
    for _ in range(MAX_CONNECTIONS):
        server.connect().close()
    _wait_for_fds(server, baseline, f"{MAX_CONNECTIONS} connect-and-close health checks")
    with server.connect() as sock:
        assert send_and_read(sock, b"PUT alive yes\nGET alive\n", 2) == [b"OK", b"VALUE yes"]
    with server.connect() as sock:
        assert send_and_read(sock, b"*1\r\n$4\r\nPING\r\n", 1) == [b"+PONG"]


# ------------------------------------------------------------------------------ the endings

BIG = 200_000
"""Large enough that a pipeline of GETs of it fills every buffer between us and the server."""


def _close_before_any_byte(server: RunningServer) -> None:
    server.connect().close()


def _reset_before_any_byte(server: RunningServer) -> None:
    sock = server.connect()
    time.sleep(0.05)  # let the server accept it first, so the reset meets a served connection
    _reset(sock)


def _close_mid_line_request(server: RunningServer) -> None:
    with server.connect() as sock:
        sock.sendall(b"PUT half")


def _close_mid_resp_request(server: RunningServer) -> None:
    with server.connect() as sock:
        sock.sendall(b"*3\r\n$3\r\nSET\r\n$4\r\nhalf\r\n$10\r\nfive")


def _reset_mid_resp_request(server: RunningServer) -> None:
    sock = server.connect()
    sock.sendall(b"*3\r\n$3\r\nSET\r\n$4\r\nhalf\r\n$10\r\nfive")
    time.sleep(0.05)
    _reset(sock)


def _reset_after_a_request(server: RunningServer) -> None:
    sock = server.connect()
    assert send_and_read(sock, b"PUT k v\n", 1) == [b"OK"]
    _reset(sock)


def _close_after_requests(server: RunningServer) -> None:
    with server.connect() as sock:
        assert send_and_read(sock, b"*1\r\n$4\r\nPING\r\n", 1) == [b"+PONG"]


def _idle_before_any_byte(server: RunningServer) -> None:
    with server.connect() as sock:
        assert _read_to_end(sock) == b""  # SRV-9: the server closes it


def _idle_mid_request(server: RunningServer) -> None:
    with server.connect() as sock:
        sock.sendall(b"*2\r\n$3\r\nGET\r\n")
        assert _read_to_end(sock) == b""


def _quit(server: RunningServer) -> None:
    with server.connect() as sock:
        sock.sendall(b"*1\r\n$4\r\nQUIT\r\n")
        assert _read_to_end(sock) == b"+OK\r\n"


def _protocol_error(server: RunningServer) -> None:
    with server.connect() as sock:
        sock.sendall(b"*1\r\n$x\r\n")
        assert _read_to_end(sock).startswith(b"-ERR Protocol error")


def _fill_with_big_value(server: RunningServer) -> bytes:
    with server.connect() as sock:
        command = b"*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$%d\r\n%b\r\n" % (BIG, b"x" * BIG)
        assert send_and_read(sock, command, 1) == [b"+OK"]
    return b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n"


def _send_until_blocked(sock: socket.socket, request: bytes) -> bool:
    """Pipeline ``request`` without reading replies until the server stops reading (SRV-7);
    False if it never did within 10 MB of requests."""
    sock.settimeout(0.5)
    chunk = request * (10_000_000 // len(request) // 400)
    try:
        for _ in range(400):
            sock.sendall(chunk)
    except TimeoutError:
        return True
    return False


def _never_reads_then_closes(server: RunningServer) -> None:
    get = _fill_with_big_value(server)
    sock = server.connect()
    assert _send_until_blocked(sock, get), "the server stops reading a client that reads nothing"
    sock.close()


def _never_reads_then_resets(server: RunningServer) -> None:
    get = _fill_with_big_value(server)
    sock = server.connect()
    _send_until_blocked(sock, get)
    _reset(sock)


def _half_close_after_a_request(server: RunningServer) -> None:
    """PROTO-14: the replies to everything sent before the half-close arrive, then the close."""
    with server.connect() as sock:
        sock.sendall(b"PUT h 1\nGET h\n")
        sock.shutdown(socket.SHUT_WR)
        assert _read_to_end(sock) == b"OK\nVALUE 1\n"
    with server.connect() as sock:
        sock.sendall(b"*2\r\n$3\r\nGET\r\n$1\r\nh\r\n*1\r\n$4\r\nPING\r\n")
        sock.shutdown(socket.SHUT_WR)
        assert _read_to_end(sock) == b"$1\r\n1\r\n+PONG\r\n"


def _half_close_after_a_large_pipeline(server: RunningServer) -> None:
    """PROTO-14, SRV-7: a pipeline whose replies pass the batch and the high-water mark, then
    a half-close: every reply still arrives, in full."""
    get = _fill_with_big_value(server)
    count = 40  # 8 MB of replies: past REPLY_BATCH and the 1 MiB high-water mark
    with server.connect() as sock:
        sock.sendall(get * count)
        sock.shutdown(socket.SHUT_WR)
        data = _read_to_end(sock, timeout=30)
    one = b"$%d\r\n%b\r\n" % (BIG, b"x" * BIG)
    assert len(data) == count * len(one), f"{len(data) // len(one)} of {count} replies arrived"
    assert data == one * count


def _refused_beyond_max_connections(server: RunningServer) -> None:
    held = [server.connect() for _ in range(MAX_CONNECTIONS)]
    try:
        for sock in held:
            assert send_and_read(sock, b"*1\r\n$4\r\nPING\r\n", 1) == [b"+PONG"]
        with server.connect() as extra:
            assert _read_to_end(extra) == b"-ERR max number of clients reached\r\n"
    finally:
        for sock in held:
            sock.close()


IDLE = ("--idle-timeout", "0.3")
NOT_IDLE = ("--idle-timeout", "0")

ENDINGS: dict[str, tuple[Callable[[RunningServer], None], tuple[str, ...]]] = {
    "close before any byte": (_close_before_any_byte, NOT_IDLE),
    "reset before any byte": (_reset_before_any_byte, NOT_IDLE),
    "close mid line request": (_close_mid_line_request, NOT_IDLE),
    "close mid RESP request": (_close_mid_resp_request, NOT_IDLE),
    "reset mid RESP request": (_reset_mid_resp_request, NOT_IDLE),
    "reset after a request": (_reset_after_a_request, NOT_IDLE),
    "close after requests": (_close_after_requests, NOT_IDLE),
    "idle before any byte": (_idle_before_any_byte, IDLE),
    "idle mid request": (_idle_mid_request, IDLE),
    "QUIT": (_quit, NOT_IDLE),
    "RESP protocol error": (_protocol_error, NOT_IDLE),
    "never reads, then closes": (_never_reads_then_closes, NOT_IDLE),
    "never reads, then resets": (_never_reads_then_resets, NOT_IDLE),
    "half-close after a request": (_half_close_after_a_request, NOT_IDLE),
    "half-close after a large pipeline": (_half_close_after_a_large_pipeline, NOT_IDLE),
    "refused beyond --max-connections": (_refused_beyond_max_connections, NOT_IDLE),
}


REPEATS: Final = 20 if os.environ.get("HYPOTHESIS_PROFILE") == "nightly" else 1
"""Each ending once in the default run; twenty times over on one server in ``nox -s nightly``,
where a descriptor leaked now and then would add up."""


@pytest.mark.spec("SRV-12", "SRV-8", "SRV-7", "SRV-9", "PROTO-14")
@pytest.mark.parametrize("ending", list(ENDINGS))
def test_a_connection_that_ends_gives_back_its_descriptor_and_slot(
    serve: Serve, ending: str
) -> None:
    run, flags = ENDINGS[ending]
    server = serve("--max-connections", str(MAX_CONNECTIONS), "--fsync", "never", *flags)
    baseline = _open_fds(server)
    for _ in range(REPEATS):
        run(server)
        _wait_for_fds(server, baseline, ending)
        _still_serves(server, baseline)
    assert server.stop() == 0
