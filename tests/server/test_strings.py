"""The string commands through redis-py, as caches and sessions call them (PROTO-88 .. PROTO-90)."""

from __future__ import annotations

import pytest
import redis

from tests.server.conftest import Serve


@pytest.mark.spec("PROTO-88", "PROTO-89", "PROTO-90", "SRV-5")
@pytest.mark.parametrize("protocol", [2, 3])
def test_redis_py_string_commands(serve: Serve, protocol: int) -> None:
    server = serve("--fsync", "always")
    client = redis.Redis(host=server.host, port=server.port, protocol=protocol)
    try:
        assert client.setex("cache:page", 300, b"<html>") is True
        assert 290 <= client.ttl("cache:page") <= 300
        assert client.setnx("lock", "me") is True
        assert client.setnx("lock", "you") is False
        assert client.getset("lock", "you") == b"me"
        assert client.getdel("lock") == b"you"
        assert client.exists("lock") == 0
        assert client.append("log", "a") == 1
        assert client.append("log", "bc") == 3
        assert client.strlen("log") == 3
        assert client.getrange("log", 1, -1) == b"bc"
        assert client.setrange("log", 5, "z") == 6
        assert client.get("log") == b"abc\x00\x00z"
        assert client.getex("log", ex=100) == b"abc\x00\x00z"
        assert 90 <= client.ttl("log") <= 100
        assert client.getex("log", persist=True) == b"abc\x00\x00z"
        assert client.ttl("log") == -1
        assert client.msetnx({"x": 1, "y": 2}) is True
        assert client.msetnx({"y": 3, "z": 4}) is False
        assert client.mget("x", "y", "z") == [b"1", b"2", None]
        assert client.psetex("p", 100_000, "v") is True
        assert client.incr("x") == 2
        assert client.decrby("x", 5) == -3
    finally:
        client.close()


@pytest.mark.spec("PROTO-91", "PROTO-92", "SRV-5")
def test_redis_py_key_and_server_commands(serve: Serve) -> None:
    server = serve("--fsync", "always")
    client = redis.Redis(host=server.host, port=server.port)
    try:
        client.mset({"a": 1, "b": 2})
        assert client.type("a") == b"string"
        assert client.type("missing") == b"none"
        assert client.rename("a", "c") is True
        assert client.renamenx("c", "b") is False
        assert client.copy("c", "d") is True
        assert client.touch("c", "d", "x") == 2
        assert client.randomkey() in (b"b", b"c", b"d")
        assert client.unlink("d") == 1
        seconds, microseconds = client.time()
        assert seconds > 1_600_000_000
        assert 0 <= microseconds < 1_000_000
        assert client.save() is True
        assert client.lastsave()
        assert client.flushdb() is True
        assert client.dbsize() == 0
        client.set("z", 1)
        assert client.flushall(asynchronous=True) is True
        assert client.dbsize() == 0
    finally:
        client.close()
