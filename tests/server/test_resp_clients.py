"""Real Redis clients against catlog: redis-py (RESP3 and RESP2), redis-cli, redis-benchmark."""

from __future__ import annotations

import subprocess

import pytest
import redis

from tests.server.conftest import Serve, require_tool


@pytest.mark.spec("PROTO-1", "PROTO-27", "SRV-5")
@pytest.mark.parametrize("protocol", [None, 3, 2])
def test_redis_py_works_with_its_defaults_and_with_resp2(
    serve: Serve, protocol: int | None
) -> None:
    server = serve()
    if protocol is None:
        client = redis.Redis(host=server.host, port=server.port)
    else:
        client = redis.Redis(host=server.host, port=server.port, protocol=protocol)
    try:
        assert client.ping() is True
        assert client.set("name", "Bob") is True
        assert client.get("name") == b"Bob"
        assert client.set("name", "Alice", nx=True) is None
        assert client.mset({"a": "1", "b": b"\x00\xff binary"}) is True
        assert client.mget("a", "b", "missing") == [b"1", b"\x00\xff binary", None]
        assert client.exists("a", "a", "missing") == 2
        assert client.dbsize() == 3
        assert sorted(client.scan_iter(match="?")) == [b"a", b"b"]
        assert client.delete("a", "missing") == 1
        info = client.info("server")
        assert isinstance(info, dict)
        assert info["redis_version"]
        with client.pipeline(transaction=False) as pipe:
            pipe.set("p", "1")
            pipe.get("p")
            pipe.delete("p")
            pipe.get("p")
            assert pipe.execute() == [True, b"1", 1, None]
    finally:
        client.close()


@pytest.mark.spec("PROTO-36", "PROTO-55", "PROTO-56", "PROTO-57", "PROTO-40", "SRV-5")
@pytest.mark.parametrize("fsync", ["always", "never"])
def test_redis_py_expiry_commands_and_an_atomic_mset(serve: Serve, fsync: str) -> None:
    """Through a real server on the system clock: only long ttls, so nothing expires mid-test."""
    server = serve("--fsync", fsync)
    client = redis.Redis(host=server.host, port=server.port)
    try:
        assert client.set("s", "v", ex=1000) is True
        assert 990 <= client.ttl("s") <= 1000
        assert client.set("gone", "v", px=1) is True
        assert client.expire("s", 5000, gt=True) is True
        assert 4990_000 <= client.pttl("s") <= 5000_000
        assert client.persist("s") is True
        assert client.ttl("s") == -1
        assert client.expire("missing", 10) is False
        assert client.mset({"m1": "1", "m2": "2"}) is True
        assert client.pexpire("m1", -1) is True, "a time in the past deletes the key"
        assert client.exists("m1", "m2") == 1
        assert client.ttl("missing") == -2
    finally:
        client.close()


@pytest.mark.spec("PROTO-1", "SRV-2")
def test_redis_cli_talks_to_catlog(serve: Serve) -> None:
    cli = require_tool("redis-cli")
    server = serve()

    def run(*args: str) -> str:
        done = subprocess.run(
            [cli, "-h", server.host, "-p", str(server.port), *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return done.stdout.strip()

    assert run("PING") == "PONG"
    assert run("SET", "greeting", "hello world") == "OK"
    assert run("GET", "greeting") == "hello world"
    assert run("DBSIZE") == "1"
    assert run("DEL", "greeting") == "1"
    assert run("GET", "greeting") == ""
    assert "unknown command" in run("NOSUCHCOMMAND", "x")


@pytest.mark.spec("SRV-5", "ENG-29")
@pytest.mark.parametrize("fsync", ["always", "never"])
def test_redis_benchmark_runs_set_and_get(serve: Serve, fsync: str) -> None:
    benchmark = require_tool("redis-benchmark")
    server = serve("--fsync", fsync)
    done = subprocess.run(
        [
            benchmark,
            "-h",
            server.host,
            "-p",
            str(server.port),
            "-t",
            "set,get",
            "-n",
            "2000",
            "-c",
            "8",
            "-P",
            "4",
            "-r",
            "500",
            "-d",
            "16",
            "--csv",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    tests = {row.split(",")[0].strip('"') for row in done.stdout.splitlines()[1:]}
    assert tests == {"SET", "GET"}
    client = redis.Redis(host=server.host, port=server.port)
    try:
        assert 0 < client.dbsize() <= 500
    finally:
        client.close()
