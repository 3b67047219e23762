"""The server forgets expired keys while no client writes (ENG-62), and DBSIZE stays exact."""

from __future__ import annotations

import time

import pytest
import redis

from tests.server.conftest import Serve

KEYS = 3000
RECORD = 21 + len(b"k0000") + len(b"v") + 8
"""ENG-41's size of each expiring record: header, key, value and its expiry."""


def _dead_bytes(client: redis.Redis) -> int:
    return int(client.info("persistence")["catlog_dead_bytes"])


@pytest.mark.spec("ENG-62", "ENG-60", "ENG-63")
def test_the_server_forgets_expired_keys_without_a_write_and_counts_exactly(
    serve: Serve,
) -> None:
    server = serve("--fsync", "never")
    client = redis.Redis(host=server.host, port=server.port, socket_timeout=10)
    with client.pipeline(transaction=False) as pipe:
        for i in range(KEYS):
            pipe.set(b"k%04d" % i, b"v", px=200)
        pipe.execute()
    client.set(b"live", b"v")
    assert _dead_bytes(client) == 0
    time.sleep(0.3)  # every key has expired now; INFO persistence reads no count
    deadline = time.monotonic() + 20
    while _dead_bytes(client) < KEYS * RECORD and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _dead_bytes(client) == KEYS * RECORD, "the timer forgot every expired key"
    assert client.dbsize() == 1
