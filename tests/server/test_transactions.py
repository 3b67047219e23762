"""MULTI/EXEC through a real server with redis-py: all or nothing, through a kill -9 too."""

from __future__ import annotations

import asyncio
import random
import threading
from pathlib import Path

import pytest
import redis

import catlog
from catlog.server import Server
from catlog.serverconfig import ServerConfig
from tests.server.conftest import Serve, kill_while_clients_run
from tests.store.test_group_commit import DurabilityWitness


@pytest.mark.spec("PROTO-80", "PROTO-81", "PROTO-85")
@pytest.mark.parametrize("protocol", [2, 3])
def test_redis_py_default_pipeline_is_all_or_nothing(serve: Serve, protocol: int) -> None:
    """The issue's dangerous case: MULTI and EXEC were unknown, so the commands between them
    ran one by one while redis-py reported the transaction failed."""
    server = serve("--fsync", "always")
    client = redis.Redis(host=server.host, port=server.port, protocol=protocol)
    try:
        with client.pipeline() as pipe:
            pipe.set("session:1", "alice")
            pipe.expire("session:1", 3600)
            pipe.get("session:1")
            assert pipe.execute() == [True, True, b"alice"]
        with client.pipeline() as pipe:
            pipe.set("n", "x")
            pipe.expire("n", "not-a-number")  # type: ignore[arg-type]
            pipe.set("after", "1")
            results = pipe.execute(raise_on_error=False)
            assert results[0] is True
            assert results[2] is True
            assert isinstance(results[1], redis.ResponseError)
        assert client.mget("n", "after") == [b"x", b"1"]
    finally:
        client.close()


@pytest.mark.spec("PROTO-81")
@pytest.mark.parametrize("protocol", [2, 3])
def test_a_pipeline_that_fails_leaves_nothing_behind(serve: Serve, protocol: int) -> None:
    """The issue's case itself, which a server without MULTI fails: redis-py is told the
    transaction failed, and none of its commands may have run."""
    server = serve("--fsync", "always")
    client = redis.Redis(host=server.host, port=server.port, protocol=protocol)
    try:
        with client.pipeline() as pipe:
            pipe.set("half", "1")
            pipe.expire("half", 3600)
            pipe.execute_command("NOSUCH", "x")  # type: ignore[no-untyped-call]
            with pytest.raises(redis.ResponseError):
                pipe.execute()  # redis-py raises the queueing error, having read the EXECABORT
        assert client.exists("half") == 0, "a failed transaction ran none of its commands"
    finally:
        client.close()


@pytest.mark.spec("PROTO-84")
@pytest.mark.parametrize("protocol", [2, 3])
def test_watch_sees_another_connections_write(serve: Serve, protocol: int) -> None:
    server = serve("--fsync", "never")
    first = redis.Redis(host=server.host, port=server.port, protocol=protocol)
    other = redis.Redis(host=server.host, port=server.port, protocol=protocol)
    try:
        first.set("balance", "10")
        with first.pipeline() as pipe:
            pipe.watch("balance")  # type: ignore[no-untyped-call]
            assert pipe.get("balance") == b"10"
            other.set("balance", "0")
            pipe.multi()
            pipe.set("balance", "5")
            with pytest.raises(redis.WatchError):
                pipe.execute()
        assert first.get("balance") == b"0"
    finally:
        first.close()
        other.close()


@pytest.mark.spec("PROTO-84", "PROTO-85")
def test_optimistic_increments_from_six_clients_lose_nothing(serve: Serve) -> None:
    """Check-and-set with WATCH: every EXEC that succeeded counted once, none twice."""
    server = serve("--fsync", "always")
    succeeded = [0] * 6

    def client(number: int) -> None:
        connection = redis.Redis(host=server.host, port=server.port, socket_timeout=30)
        try:
            while succeeded[number] < 25:
                with connection.pipeline() as pipe:
                    try:
                        pipe.watch("counter")  # type: ignore[no-untyped-call]
                        value = int(pipe.get("counter") or b"0")
                        pipe.multi()
                        pipe.set("counter", value + 1)
                        pipe.execute()
                    except redis.WatchError:
                        continue
                    succeeded[number] += 1
        finally:
            connection.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    checker = redis.Redis(host=server.host, port=server.port)
    try:
        assert int(checker.get("counter") or 0) == sum(succeeded) == 150
    finally:
        checker.close()


TRANSACTION_SIZE = 40


@pytest.mark.spec("PROTO-85", "SRV-20", "REC-17")
@pytest.mark.parametrize("trial", range(2))
def test_a_transaction_is_whole_or_absent_after_kill_9(serve: Serve, trial: int) -> None:
    server = serve("--fsync", "always")
    acknowledged: list[list[int]] = [[] for _ in range(4)]

    def client(number: int, stop: threading.Event) -> None:
        connection = redis.Redis(host=server.host, port=server.port, socket_timeout=10)
        n = 0
        try:
            while not stop.is_set():
                with connection.pipeline() as pipe:
                    for i in range(TRANSACTION_SIZE):
                        pipe.set(b"t%d-%06d-%02d" % (number, n, i), b"x" * 200)
                    pipe.execute()
                acknowledged[number].append(n)
                n += 1
        except (redis.ConnectionError, redis.TimeoutError):
            pass
        finally:
            connection.close()

    kill_while_clients_run(server, client, 4, random.Random(trial).uniform(0.5, 1.5))
    assert any(acknowledged), "some transaction was acknowledged before the kill"
    with catlog.open(server.data_dir) as store:
        counts: dict[bytes, int] = {}
        for key in store:
            counts[key[:9]] = counts.get(key[:9], 0) + 1
        torn = {prefix: count for prefix, count in counts.items() if count != TRANSACTION_SIZE}
        assert torn == {}, "a transaction survived the crash in part"
        for number, done in enumerate(acknowledged):
            for n in done:
                assert b"t%d-%06d" % (number, n) in counts, "an acknowledged EXEC was lost"


@pytest.mark.spec("SRV-20")
def test_no_exec_reply_leaves_before_its_fsync(tmp_path: Path) -> None:
    """In process, on a file system that knows what each fsync covered."""

    async def scenario() -> list[bytes]:
        fs = DurabilityWitness()
        store = catlog.open(f"{tmp_path}/data", fs=fs, fsync="always")
        server = Server(ServerConfig(port=0, idle_timeout=0), store)
        host, port = await server.start()
        early: list[bytes] = []

        async def client(number: int) -> None:
            reader, writer = await asyncio.open_connection(host, port)
            for n in range(20):
                keys = [b"k%d-%d-%d" % (number, n, i) for i in range(3)]
                sets = b"".join(
                    b"*3\r\n$3\r\nSET\r\n$%d\r\n%b\r\n$1\r\nv\r\n" % (len(key), key) for key in keys
                )
                writer.write(b"*1\r\n$5\r\nMULTI\r\n" + sets + b"*1\r\n$4\r\nEXEC\r\n")
                expected = b"+OK\r\n" + b"+QUEUED\r\n" * 3 + b"*3\r\n" + b"+OK\r\n" * 3
                assert await reader.readexactly(len(expected)) == expected
                early.extend(key for key in keys if key not in fs.durable_bytes())
            writer.close()
            await writer.wait_closed()

        await asyncio.gather(*(client(i) for i in range(6)))
        await server.shutdown()
        store.close()
        return early

    assert asyncio.run(scenario()) == []
