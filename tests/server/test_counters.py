"""Counters through a real server: pipelined, concurrent, and through kill -9 (PROTO-87)."""

from __future__ import annotations

import random
import threading

import pytest
import redis

import catlog
from tests.server.conftest import Serve, kill_while_clients_run, send_and_read


@pytest.mark.spec("PROTO-87", "SRV-5")
@pytest.mark.parametrize("fsync", ["always", "never"])
def test_a_pipelined_set_then_incr_gives_two(serve: Serve, fsync: str) -> None:
    server = serve("--fsync", fsync)
    with server.connect() as sock:
        request = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\n1\r\n*2\r\n$4\r\nINCR\r\n$1\r\nk\r\n"
        assert send_and_read(sock, request, 2) == [b"+OK", b":2"]


@pytest.mark.spec("PROTO-87", "SRV-5", "SRV-28")
@pytest.mark.parametrize("fsync", ["always", "never"])
def test_concurrent_increments_lose_nothing(serve: Serve, fsync: str) -> None:
    """1,800 INCRs from 6 clients, each pipelining some, give 1,800 (under never, each
    pipeline's INCRs run together, SRV-28)."""
    server = serve("--fsync", fsync)

    def client() -> None:
        connection = redis.Redis(host=server.host, port=server.port, socket_timeout=30)
        try:
            for _ in range(30):
                with connection.pipeline(transaction=False) as pipe:
                    for _ in range(10):
                        pipe.incr("hits")
                    pipe.execute()
        finally:
            connection.close()

    threads = [threading.Thread(target=client) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    checker = redis.Redis(host=server.host, port=server.port)
    try:
        assert checker.get("hits") == b"1800"
    finally:
        checker.close()


@pytest.mark.spec("PROTO-87", "SRV-5")
@pytest.mark.parametrize("trial", range(2))
def test_every_acknowledged_increment_survives_kill_9(serve: Serve, trial: int) -> None:
    server = serve("--fsync", "always")
    acknowledged = [0] * 4

    def client(number: int, stop: threading.Event) -> None:
        connection = redis.Redis(host=server.host, port=server.port, socket_timeout=10)
        try:
            while not stop.is_set():
                connection.incr("shared")
                acknowledged[number] += 1
        except (redis.ConnectionError, redis.TimeoutError):
            pass
        finally:
            connection.close()

    kill_while_clients_run(server, client, 4, random.Random(trial).uniform(0.3, 1.0))
    assert sum(acknowledged) > 0, "some increment was acknowledged before the kill"
    with catlog.open(server.data_dir) as store:
        survived = int(store.get(b"shared") or b"0")
    assert sum(acknowledged) <= survived <= sum(acknowledged) + 4  # at most one in flight each
