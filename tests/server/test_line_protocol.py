"""The original design's line protocol over a real socket (spec/protocol.md, spec/server.md)."""

from __future__ import annotations

import subprocess
import time

import pytest

from tests.server.conftest import RunningServer, Serve, require_tool, send_and_read


def _nc(server: RunningServer, text: str) -> str:
    """``echo TEXT | nc HOST PORT``, exactly as the README and the original design show it."""
    nc = require_tool("nc")
    done = subprocess.run(
        [nc, "-N", server.host, str(server.port)],
        input=text + "\n",
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout


@pytest.mark.spec("PROTO-14", "SRV-2", "SRV-3")
def test_the_seed_example_works_with_netcat(serve: Serve) -> None:
    server = serve()
    assert _nc(server, "PUT name Bob") == "OK\n"
    assert _nc(server, "GET name") == "VALUE Bob\n"
    assert _nc(server, "DELETE name") == "OK\n"
    assert _nc(server, "GET name") == "NOT_FOUND\n"
    assert server.stop() == 0
    assert any(line.startswith("[CONN] 127.0.0.1:") for line in server.output)
    assert any(line.startswith("[CONN CLOSED] 127.0.0.1:") for line in server.output)


@pytest.mark.spec("PROTO-11", "SRV-5", "SRV-6")
@pytest.mark.parametrize("fsync", ["always", "never"])
def test_lines_in_one_packet_are_answered_in_order(serve: Serve, fsync: str) -> None:
    server = serve("--fsync", fsync)
    with server.connect() as sock:
        lines = send_and_read(
            sock,
            b"PUT a 1\r\nGET a\nPUT b two words\nGET b\nDELETE a\nGET a\nNOPE\nGET b\n",
            8,
        )
    assert lines == [
        b"OK",
        b"VALUE 1",
        b"OK",
        b"VALUE two words",
        b"OK",
        b"NOT_FOUND",
        lines[6],
        b"VALUE two words",
    ]
    assert lines[6].startswith(b"ERROR ")


@pytest.mark.spec("PROTO-12", "SRV-7")
def test_an_endless_line_gets_an_error_and_the_connection_goes_on(serve: Serve) -> None:
    server = serve("--max-line-length", "1024")
    with server.connect() as sock:
        sock.sendall(b"PUT k " + b"x" * 5000)
        time.sleep(0.2)
        sock.sendall(b"y" * 5000 + b"\nPUT k v\nGET k\n")
        lines = send_and_read(sock, b"", 3)
    assert lines[0].startswith(b"ERROR line too long")
    assert lines[1:] == [b"OK", b"VALUE v"]


@pytest.mark.spec("SRV-4", "REC-8")
def test_sigterm_finishes_syncs_and_exits_zero(serve: Serve, tmp_path: object) -> None:
    server = serve("--fsync", "never")
    with server.connect() as sock:
        assert send_and_read(sock, b"PUT k v\n", 1) == [b"OK"]
    assert server.stop() == 0
    assert any("[SHUTDOWN]" in line for line in server.output)
    again = serve(data_dir=server.data_dir)
    with again.connect() as sock:
        assert send_and_read(sock, b"GET k\n", 1) == [b"VALUE v"]
