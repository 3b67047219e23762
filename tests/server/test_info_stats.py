"""INFO's monitoring fields are measured (PROTO-101), and redis-cli --stat reads real numbers."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time

import pytest
import redis

from tests.server.conftest import Serve, require_tool


def _info(client: redis.Redis, section: str) -> dict[str, str]:
    return {name: str(value) for name, value in client.info(section).items()}


@pytest.mark.spec("PROTO-101", "PROTO-46")
def test_info_counts_clients_commands_hits_and_misses(serve: Serve) -> None:
    server = serve("--fsync", "never")
    clients = [redis.Redis(host=server.host, port=server.port, socket_timeout=10) for _ in range(3)]
    for client in clients:
        assert client.ping()
    first = clients[0]
    assert _info(first, "clients")["connected_clients"] == "3"
    before = int(_info(first, "stats")["total_commands_processed"])
    assert first.get("absent") is None
    first.set("present", "1")
    assert first.get("present") == b"1"
    assert first.mget(["present", "absent"]) == [b"1", None]
    stats = _info(first, "stats")
    assert int(stats["total_commands_processed"]) == before + 5  # four commands, then INFO
    assert (stats["keyspace_hits"], stats["keyspace_misses"]) == ("2", "2")
    assert int(stats["total_connections_received"]) >= 3
    clients[2].close()
    for _ in range(100):  # the server sees the close a moment later
        if _info(first, "clients")["connected_clients"] == "2":
            break
        time.sleep(0.02)
    assert _info(first, "clients")["connected_clients"] == "2"
    memory = _info(first, "memory")
    assert int(memory["used_memory"]) > 1 << 20  # a Python process is bigger than 1 MiB
    assert (memory["maxmemory"], memory["maxmemory_policy"]) == ("0", "noeviction")
    assert _info(first, "replication")["role"] == "master"
    with first.pipeline(transaction=False) as pipe:
        for _ in range(3):
            for _ in range(500):
                pipe.ping()
            pipe.execute()
            time.sleep(0.15)  # let the sampler take readings between the bursts
    assert int(_info(first, "stats")["instantaneous_ops_per_sec"]) > 0


@pytest.mark.spec("PROTO-101")
def test_redis_cli_stat_prints_real_numbers(serve: Serve) -> None:
    cli = require_tool("redis-cli")
    server = serve("--fsync", "never")
    main, child = pty.openpty()  # redis-cli buffers its output unless it writes to a terminal
    process = subprocess.Popen(
        [cli, "-h", server.host, "-p", str(server.port), "--stat", "-i", "0.1"],
        stdout=child,
        stderr=child,
    )
    os.close(child)
    output = b""
    try:
        deadline = time.monotonic() + 10
        while output.count(b"\n") < 5 and time.monotonic() < deadline:
            if select.select([main], [], [], 0.5)[0]:
                output += os.read(main, 4096)
    finally:
        process.kill()
        process.wait()
        os.close(main)
    rows = [line.split() for line in output.decode().splitlines()[2:5]]
    assert len(rows) == 3, output
    for keys, mem, clients, blocked, requests, *_ in rows:
        assert keys.isdigit(), output
        assert blocked == "0", output
        assert mem[-1] in "KMG", output
        assert float(mem[:-1]) > 0, output
        assert int(clients) >= 1, output
        assert int(requests) >= 1, output
    assert b"-9223372036854775808" not in output
