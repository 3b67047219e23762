"""Who may connect, over real sockets: the password (SRV-21), AUTH and HELLO against a real Redis
(PROTO-103 .. PROTO-108), the line protocol's refusal (PROTO-110) and protected mode (SRV-23).

The differential tests send the same pipelined requests to ``catlog serve --requirepass`` and to
``redis-server --requirepass`` (the installed Redis, 7.0 or later) and compare the parsed replies.
Only what names the server is normalised: HELLO's ``server``, ``version`` and ``id``, and HELLO's
NOAUTH text, which Redis 7.0 words without the ``<proto>`` that 7.2, catlog's model, has.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest

from catlog.auth import DENIED, HELLO_NOAUTH, LINE_REFUSED
from catlog.protocol.resp import encode_command
from tests.server.conftest import RunningServer, Serve, start_server
from tests.server.redis_server import running_redis
from tests.server.test_redis_differential import Value, read_reply

SECRET: Final = "s3cret-Pa55"

HELLO_NOAUTH_70: Final = HELLO_NOAUTH.message.replace("HELLO <proto> AUTH", "HELLO AUTH")
"""Redis 7.0's wording of HELLO's NOAUTH (PROTO-107's note)."""


def pipeline(port: int, commands: list[list[str]], host: str = "127.0.0.1") -> list[Value]:
    """Send every command in one write and read one reply each (fewer if the server closes)."""
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(b"".join(encode_command(*(w.encode() for w in c)) for c in commands))
        buffer = bytearray()
        replies: list[Value] = []
        for _ in commands:
            try:
                replies.append(read_reply(sock, buffer))
            except ConnectionError:
                break
        return replies


def normalised(reply: Value) -> Value:
    if reply == ("-", HELLO_NOAUTH_70):
        return ("-", HELLO_NOAUTH.message)
    if isinstance(reply, list) and reply[:1] == [b"server"]:
        fields = dict(zip(reply[::2], reply[1::2], strict=True))
        fields.update({b"server": b"", b"version": b"", b"id": 0})
        return [item for pair in fields.items() for item in pair]
    if isinstance(reply, list):
        return [normalised(item) for item in reply]
    return reply


@pytest.fixture(scope="module")
def with_password() -> Iterator[tuple[int, int]]:
    """(catlog's port, Redis's port), both requiring ``SECRET``."""
    with (
        tempfile.TemporaryDirectory() as workdir,
        running_redis("--databases", "1", "--requirepass", SECRET) as redis_port,
    ):
        catlog = start_server(
            os.path.join(workdir, "catlog"), "--fsync", "never", "--requirepass", SECRET
        )
        try:
            yield catlog.port, redis_port
        finally:
            catlog.stop()


@pytest.fixture(scope="module")
def without_password() -> Iterator[tuple[int, int]]:
    with (
        tempfile.TemporaryDirectory() as workdir,
        running_redis("--databases", "1") as redis_port,
    ):
        catlog = start_server(os.path.join(workdir, "catlog"), "--fsync", "never")
        try:
            yield catlog.port, redis_port
        finally:
            catlog.stop()


UNAUTHENTICATED: Final = [
    ["SET", "k", "v"],  # the server's fast path (SRV-11) must not skip the check
    ["GET", "k"],
    ["get", "k"],
    ["MSET", "a", "1"],
    ["GET"],
    ["FROB", "a"],
    ["PING"],
    ["MULTI"],
    ["EXEC"],
    ["EXEC", "x"],
    ["DISCARD"],
    ["WATCH", "k"],
    ["CONFIG", "GET", "port"],
    ["DBSIZE"],
    ["AUTH", "wrong"],
    ["AUTH", "default", "wrong"],
    ["AUTH", "Default", SECRET],
    ["AUTH", "bob", SECRET],
    ["AUTH", "a", "b", "c"],
    ["AUTH"],
    ["HELLO"],
    ["HELLO", "3"],
    ["HELLO", "2", "SETNAME", "n"],
    ["HELLO", "3", "AUTH", "default", "wrong"],
    ["HELLO", "4", "AUTH", "default", SECRET],
    ["HELLO", "2", "AUTH", "default"],
    ["HELLO", "x"],
    ["CLIENT", "GETNAME"],
    ["GET", "k"],
    ["QUIT"],
]

AUTHENTICATED: Final = [
    ["AUTH", SECRET],
    ["SET", "k", "v"],
    ["GET", "k"],
    ["MULTI"],
    ["AUTH", "wrong"],
    ["HELLO", "2", "AUTH", "default", "wrong"],
    ["AUTH", "default", SECRET],
    ["GET", "k"],
    ["EXEC"],
    ["AUTH", "wrong"],
    ["GET", "k"],
    ["AUTH", "default", SECRET],
    ["HELLO", "2", "AUTH", "default", SECRET],
    ["DEL", "k"],
    ["QUIT"],
]

THROUGH_HELLO: Final = [
    ["HELLO", "2", "AUTH", "default", SECRET, "SETNAME", "n"],
    ["CLIENT", "GETNAME"],
    ["SET", "k", "v"],
    ["GET", "k"],
    ["DEL", "k"],
]

NO_PASSWORD: Final = [
    ["AUTH", "pw"],
    ["AUTH", "default", "anything"],
    ["AUTH", "bob", "anything"],
    ["AUTH", "a", "b", "c"],
    ["HELLO", "2", "AUTH", "default", "anything"],
    ["HELLO", "2", "AUTH", "bob", "anything"],
    ["CONFIG", "GET", "requirepass"],
    ["GET", "k"],
]


@pytest.mark.spec("PROTO-103", "PROTO-104", "PROTO-105", "PROTO-106", "PROTO-107", "PROTO-109")
@pytest.mark.parametrize(
    "commands",
    [UNAUTHENTICATED, AUTHENTICATED, THROUGH_HELLO],
    ids=["unauthenticated", "authenticated", "through-hello"],
)
def test_catlog_answers_auth_as_redis(
    with_password: tuple[int, int], commands: list[list[str]]
) -> None:
    catlog_port, redis_port = with_password
    ours = [normalised(r) for r in pipeline(catlog_port, commands)]
    theirs = [normalised(r) for r in pipeline(redis_port, commands)]
    assert len(theirs) == len(commands)
    assert list(zip(commands, ours, strict=True)) == list(zip(commands, theirs, strict=True))


@pytest.mark.spec("PROTO-108")
def test_auth_queued_in_multi_answers_in_execs_array_as_in_redis(
    with_password: tuple[int, int],
) -> None:
    catlog_port, redis_port = with_password
    ours = pipeline(catlog_port, AUTHENTICATED)
    assert normalised(ours) == normalised(pipeline(redis_port, AUTHENTICATED))
    wrongpass = ("-", "WRONGPASS invalid username-password pair or user is disabled.")
    assert ours[AUTHENTICATED.index(["EXEC"])] == [wrongpass, wrongpass, ("+", "OK"), b"v"]


@pytest.mark.spec("PROTO-53", "PROTO-105", "PROTO-111")
def test_without_a_password_catlog_answers_auth_as_redis(
    without_password: tuple[int, int],
) -> None:
    catlog_port, redis_port = without_password
    ours = [normalised(r) for r in pipeline(catlog_port, NO_PASSWORD)]
    assert ours == [normalised(r) for r in pipeline(redis_port, NO_PASSWORD)]


@pytest.mark.spec("PROTO-110")
def test_the_line_protocol_is_refused_when_a_password_is_set(
    with_password: tuple[int, int],
) -> None:
    catlog_port, _ = with_password
    for request in (b"PUT k v\nGET k\n", b"GET k\n", b"DELETE k\n", b"GET", b"PUT k v"):
        with socket.create_connection(("127.0.0.1", catlog_port), timeout=10) as sock:
            sock.sendall(request)
            if not request.endswith(b"\n"):
                sock.shutdown(socket.SHUT_WR)  # the end of input decides the protocol (PROTO-1)
            got = b""
            while chunk := sock.recv(65536):  # the server closes after its one line
                got += chunk
        assert got == b"ERROR " + LINE_REFUSED.encode() + b"\n"
    assert pipeline(catlog_port, [["AUTH", SECRET], ["GET", "k"]]) == [("+", "OK"), None]


@pytest.mark.spec("PROTO-110")
def test_the_line_protocol_is_served_without_a_password(serve: Serve) -> None:
    server = serve("--fsync", "never")
    with server.connect() as sock:
        sock.sendall(b"PUT k v\nGET k\n")
        got = b""
        while got.count(b"\n") < 2:
            got += sock.recv(65536)
    assert got == b"OK\nVALUE v\n"


# ----------------------------------------------------------------------- the password's sources


def run_serve(tmp_path: Path, *flags: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run ``catlog serve`` expecting it to refuse to start; (status, what it wrote)."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "catlog",
            "serve",
            "--port",
            "0",
            "--data-dir",
            str(tmp_path),
            *flags,
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )
    return done.returncode, done.stdout + done.stderr


@pytest.mark.spec("SRV-21", "SRV-25")
def test_a_password_given_twice_or_empty_stops_the_server(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    cases = [
        (("--requirepass", SECRET), {"CATLOG_REQUIREPASS": SECRET}, "given more than once"),
        (("--requirepass-file", str(empty)), {}, "is empty"),
        (("--requirepass-file", str(tmp_path / "none")), {}, "cannot read the password file"),
    ]
    for flags, env, message in cases:
        status, output = run_serve(tmp_path / "data", *flags, env=env)
        assert status == 1, output
        assert output.startswith("catlog: "), output
        assert message in output, output
        assert "[LISTENING]" not in output
        assert SECRET not in output


@pytest.mark.spec("SRV-21", "SRV-25")
def test_the_password_may_come_from_a_file_or_the_environment(
    serve: Serve, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "password"
    path.write_text(SECRET + "\n")
    from_file = serve("--fsync", "never", "--requirepass-file", str(path))
    monkeypatch.setenv("CATLOG_REQUIREPASS", SECRET)
    from_env = serve("--fsync", "never")
    for server in (from_file, from_env):
        replies = pipeline(
            server.port,
            [["GET", "k"], ["AUTH", SECRET + "\n"], ["AUTH", SECRET], ["INFO"], ["GET", "k"]],
        )
        assert replies[:3] == [
            ("-", "NOAUTH Authentication required."),
            ("-", "WRONGPASS invalid username-password pair or user is disabled."),
            ("+", "OK"),
        ]
        assert isinstance(replies[3], bytes)
        assert SECRET.encode() not in replies[3]
        assert replies[4] is None
        server.stop()
        assert not any(SECRET in line for line in server.output)


# ----------------------------------------------------------------------- protected mode


def non_loopback_address() -> str:
    """An IPv4 address of this machine that is not loopback, or skip: the source address the
    machine would use toward a private network (a UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 9))
            address = str(probe.getsockname()[0])
        except OSError:
            address = ""
    if not address or address.startswith("127.") or address == "0.0.0.0":
        pytest.skip("this machine has no non-loopback IPv4 address")
    try:
        with socket.create_server((address, 0)):
            pass
    except OSError:
        pytest.skip(f"cannot listen on {address}")
    return address


def exchange(host: str, port: int, request: bytes) -> bytes:
    """Send ``request`` and read until the server closes or 10 s pass."""
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(request)
        got = b""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            got += chunk
        return got


def wait_for_line(server: RunningServer, text: str) -> bool:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if any(text in line for line in server.output):
            return True
        time.sleep(0.02)
    return False


@pytest.mark.spec("SRV-23", "PROTO-112", "SRV-24")
def test_protected_mode_refuses_a_peer_off_loopback(serve: Serve) -> None:
    address = non_loopback_address()
    server = serve("--fsync", "never", "--host", "0.0.0.0", "--idle-timeout", "5")
    assert any("[PROTECTED MODE]" in line for line in server.output)  # SRV-24: before LISTENING
    for request in (encode_command(b"SET", b"k", b"v"), b"PUT k v\n", b""):
        assert exchange(address, server.port, request) == DENIED
    assert wait_for_line(server, f"[CONN REFUSED] {address}:")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"PUT k v\n")
        assert sock.recv(100) == b"OK\n"


@pytest.mark.spec("SRV-23", "SRV-24")
@pytest.mark.parametrize(
    "flags", [("--protected-mode", "no"), ("--requirepass", SECRET)], ids=["off", "password"]
)
def test_a_password_or_protected_mode_off_serves_a_peer_off_loopback(
    serve: Serve, flags: tuple[str, ...]
) -> None:
    address = non_loopback_address()
    server = serve("--fsync", "never", "--host", "0.0.0.0", *flags)
    assert not any("[PROTECTED MODE]" in line for line in server.output)
    replies = pipeline(server.port, [["AUTH", SECRET], ["GET", "k"]], host=address)
    if "--requirepass" in flags:
        assert replies == [("+", "OK"), None]
    else:
        assert replies[1] is None


@pytest.mark.spec("SRV-24")
def test_no_protected_mode_warning_on_loopback(serve: Serve) -> None:
    server = serve("--fsync", "never")
    assert not any("[PROTECTED MODE]" in line for line in server.output)
