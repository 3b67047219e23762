"""Acknowledged means durable: kill -9 under concurrent clients, and group commit in-process."""

from __future__ import annotations

import asyncio
import os
import random
import re
import threading
import time

import pytest
import redis

import catlog
from catlog.server import Server
from catlog.serverconfig import ServerConfig
from tests.server.conftest import Serve, kill_while_clients_run
from tests.store.test_group_commit import DurabilityWitness


@pytest.mark.spec("SRV-5", "REC-8", "REC-2")
@pytest.mark.parametrize("trial", range(3))
def test_every_acknowledged_write_survives_kill_9(serve: Serve, trial: int) -> None:
    server = serve("--fsync", "always")
    acknowledged: list[set[bytes]] = [set() for _ in range(6)]

    def client(number: int, stop: threading.Event) -> None:
        connection = redis.Redis(host=server.host, port=server.port, socket_timeout=10)
        n = 0
        try:
            while not stop.is_set():
                key = b"c%d-%06d" % (number, n)
                connection.set(key, key * 3)
                acknowledged[number].add(key)
                n += 1
        except (redis.ConnectionError, redis.TimeoutError):
            pass
        finally:
            connection.close()

    kill_while_clients_run(server, client, 6, random.Random(trial).uniform(0.3, 1.2))
    written = set().union(*acknowledged)
    assert written, "the clients wrote something before the kill"
    with catlog.open(server.data_dir) as store:
        missing = [key for key in written if store.get(key) != key * 3]
        assert missing == []
        for number in range(6):
            present = sorted(k for k in store if k.startswith(b"c%d-" % number))
            assert len(present) <= len(acknowledged[number]) + 1


@pytest.mark.spec("SRV-5", "ENG-29")
def test_no_reply_to_a_write_leaves_before_its_fsync(tmp_path: object) -> None:
    """The server runs in this process on a file system that knows what each fsync covered."""

    async def scenario() -> list[bytes]:
        fs = DurabilityWitness()
        store = catlog.open(f"{tmp_path}/data", fs=fs, fsync="always")
        server = Server(ServerConfig(port=0, idle_timeout=0), store)
        host, port = await server.start()
        early: list[bytes] = []

        async def client(number: int) -> None:
            reader, writer = await asyncio.open_connection(host, port)
            for n in range(30):
                keys = [b"k%d-%d-%d" % (number, n, i) for i in range(4)]
                writer.write(b"".join(b"PUT %s v\n" % key for key in keys))
                for key in keys:
                    assert await reader.readline() == b"OK\n"
                    if key not in fs.durable_bytes():
                        early.append(key)
            writer.close()
            await writer.wait_closed()

        await asyncio.gather(*(client(i) for i in range(8)))
        await server.shutdown()
        store.close()
        return early

    assert asyncio.run(scenario()) == []


@pytest.mark.spec("SRV-10", "ENG-41", "ENG-39")
def test_the_server_compacts_in_the_background_and_goes_on_answering(serve: Serve) -> None:
    server = serve("--fsync", "never", "--segment-size", "4096", "--compact-threshold", "0.5")
    client = redis.Redis(host=server.host, port=server.port, protocol=2)
    try:
        expected: dict[bytes, bytes] = {}
        deadline = time.monotonic() + 60
        round_ = 0
        while not any("compacted" in line for line in server.output):
            assert time.monotonic() < deadline, f"no compaction logged: {server.output[-5:]}"
            for i in range(50):
                key, value = b"k%d" % i, b"v%d-%d" % (round_, i) * 4
                client.set(key, value)
                expected[key] = value
            round_ += 1
        assert {k: client.get(k) for k in expected} == expected
    finally:
        client.close()
    assert server.stop() == 0
    line = next(line for line in server.output if "compacted" in line)
    assert re.search(r"compacted \d+ segments into \d+, reclaiming \d+ bytes in [\d.]+ s", line)
    with catlog.open(server.data_dir) as store:
        assert dict(store.items()) == expected


@pytest.mark.spec("SRV-10", "ENG-43")
@pytest.mark.parametrize("hints", [True, False])
def test_the_server_writes_hints_for_sealed_segments_unless_told_not_to(
    serve: Serve, hints: bool
) -> None:
    flags = ["--fsync", "never", "--segment-size", "4096", "--compact-threshold", "0"]
    server = serve(*flags, *([] if hints else ["--no-hints"]))
    client = redis.Redis(host=server.host, port=server.port, protocol=2)
    try:
        for i in range(300):
            client.set(f"k{i}", "v" * 50)
    finally:
        client.close()
    assert server.stop() == 0
    names = os.listdir(server.data_dir)
    sealed = [n for n in names if n.endswith(".log")][:-1]
    assert len(sealed) >= 3
    hinted = [n for n in names if n.endswith(".hint")]
    assert len(hinted) == (len(sealed) if hints else 0)
