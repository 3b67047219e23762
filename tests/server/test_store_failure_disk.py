"""A real server on a real, small, full file system: a tmpfs of a few MiB.

These are the end-to-end versions of tests/server/test_store_failure.py: no simulated faults,
the kernel's own ``ENOSPC``. Mounting needs root (or a user namespace); where it is not allowed,
as on many CI machines, the tests skip.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest

from tests.server.conftest import RunningServer, Serve

TMPFS_SIZE: Final = "4m"
WAIT: Final = 30.0
"""The bound on waiting for the server's reopen: its backoff is 1, 2, 4, 8 s (SRV-18)."""


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(mount)],
            check=False,
            capture_output=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot mount a tmpfs here: {exc}")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False, capture_output=True, timeout=30)


def fill(directory: Path) -> Path:
    """Write a file until the file system is full; returns it, for freeing the space again."""
    filler = directory / "filler"
    chunk = b"\0" * 65536
    with filler.open("wb", buffering=0) as out:
        with contextlib.suppress(OSError):
            while True:
                out.write(chunk)
        with contextlib.suppress(OSError):
            while True:
                out.write(b"\0" * 512)
    return filler


def resp(*parts: bytes) -> bytes:
    return b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)


def call(server: RunningServer, *parts: bytes) -> bytes:
    """One command on a fresh connection (a failed fsync closes the connection: SRV-5)."""
    with server.connect() as sock:
        sock.sendall(resp(*parts))
        reply = b""
        while not _complete(reply):
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
        return reply


def _complete(reply: bytes) -> bool:
    if not reply.endswith(b"\r\n"):
        return False
    if reply.startswith(b"$") and reply != b"$-1\r\n":
        return len(reply) >= reply.index(b"\r\n") + 2 + int(reply[1 : reply.index(b"\r\n")]) + 2
    return True


@pytest.mark.spec("SRV-16", "SRV-18")
def test_a_full_disk_refuses_writes_and_they_come_back_once_space_is_freed(
    tmpfs: Path, serve: Serve
) -> None:
    server = serve("--fsync", "always", data_dir=str(tmpfs / "data"))
    keys = [b"k%d" % i for i in range(10)]
    for key in keys:
        assert call(server, b"SET", key, key * 100) == b"+OK\r\n"
    filler = fill(tmpfs)
    value = b"v" * 4096
    for i in range(1000):
        reply = call(server, b"SET", b"fill%d" % i, value)
        if reply != b"+OK\r\n":
            break
    assert reply.startswith(b"-ERR "), "the full disk never refused a write"
    assert call(server, b"GET", b"k3") == b"$200\r\n" + b"k3" * 100 + b"\r\n", "reads go on"
    filler.unlink()
    deadline = time.monotonic() + WAIT
    while (reply := call(server, b"SET", b"after", b"1")) != b"+OK\r\n":
        assert reply.startswith(b"-ERR "), reply
        assert time.monotonic() < deadline, f"writes did not come back within {WAIT} s"
        time.sleep(0.1)
    assert [call(server, b"GET", key) for key in keys] == [
        b"$%d\r\n%s\r\n" % (len(key) * 100, key * 100) for key in keys
    ]
    assert server.stop() == 0
    assert any(line.startswith("ERROR catlog.server: [STORE FAILED] ") for line in server.output)
    assert any("reopened after" in line for line in server.output), server.output


@pytest.mark.spec("SRV-17")
def test_sigterm_on_a_full_disk_under_interval_exits_non_zero_without_saying_synced(
    tmpfs: Path, serve: Serve
) -> None:
    server = serve(
        "--fsync", "interval", "--fsync-interval-ms", "100", data_dir=str(tmpfs / "data")
    )
    fill(tmpfs)
    acknowledged = 0
    for i in range(50):
        if call(server, b"SET", b"k%d" % i, b"x" * 100) == b"+OK\r\n":
            acknowledged += 1
    assert acknowledged, "no SET was acknowledged"
    time.sleep(1.0)  # ten flusher periods: it has tried, and failed, to write them
    status = server.stop()
    assert status == 1, server.output
    assert not any("data synced" in line for line in server.output), server.output
    assert any(
        line.startswith("ERROR catlog.server: [SHUTDOWN] could not sync the data: ")
        for line in server.output
    ), server.output


def test_the_tmpfs_is_really_full(tmpfs: Path) -> None:
    """The premise of the tests above: after fill() one more byte does not fit."""
    fill(tmpfs)
    fd = os.open(tmpfs / "more", os.O_WRONLY | os.O_CREAT)
    try:
        with pytest.raises(OSError, match="No space left") as caught:
            os.write(fd, b"\0" * 8192)
    finally:
        os.close(fd)
    assert caught.value.errno == errno.ENOSPC
