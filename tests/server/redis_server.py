"""A real ``redis-server`` for tests that compare catlog with Redis or move data into it.

Started on a free loopback port with nothing persisted (``--save ''``, ``--appendonly no``), and
skipped when ``redis-server`` is not installed, unless ``CATLOG_REQUIRE_REDIS`` is set (CI sets
it), so that a machine without Redis cannot pass these tests by skipping them unnoticed.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

STARTUP_SECONDS = 20


def require_redis_server() -> str:
    """The path of ``redis-server``; skip (or, with ``CATLOG_REQUIRE_REDIS``, fail) without it."""
    binary = shutil.which("redis-server")
    if binary is None:
        message = "redis-server is not installed (apt-get install redis-server)"
        if os.environ.get("CATLOG_REQUIRE_REDIS"):
            pytest.fail(message)
        pytest.skip(message)
    return binary


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def running_redis(*flags: str) -> Iterator[int]:
    """A ``redis-server`` on loopback for the ``with`` block; yields its port."""
    binary = require_redis_server()
    with tempfile.TemporaryDirectory() as workdir:
        port = free_port()
        redis = subprocess.Popen(
            [
                *(binary, "--port", str(port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--dir", workdir),
                *flags,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + STARTUP_SECONDS
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or redis.poll() is not None:
                        raise
                    time.sleep(0.05)
            yield port
        finally:
            redis.terminate()
            redis.wait(timeout=30)
