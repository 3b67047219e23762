"""SCAN walks against a real server: any number at once, each keeping Redis's guarantee."""

from __future__ import annotations

import random

import pytest
import redis

from tests.server.conftest import Serve

WALKS = 100


@pytest.mark.spec("PROTO-42", "PROTO-43")
def test_a_hundred_interleaved_walks_each_return_every_stable_key(serve: Serve) -> None:
    server = serve()
    client = redis.Redis(host=server.host, port=server.port, socket_timeout=30)
    stable = {b"stable%d" % i for i in range(300)}
    client.mset(dict.fromkeys(stable, b"v"))
    churn = random.Random(14)
    cursors = [0] * WALKS
    seen: list[set[bytes]] = [set() for _ in range(WALKS)]
    done = [False] * WALKS
    with client.pipeline(transaction=False) as pipe:
        for _ in range(1000):
            live = [i for i in range(WALKS) if not done[i]]
            if not live:
                break
            for i in live:
                pipe.scan(cursors[i], count=churn.randint(1, 20))
            # Keys come and go between the calls; none of them is in `stable`.
            for _ in range(10):
                pipe.set(b"churn%d" % churn.randrange(500), b"v")
                pipe.delete(b"churn%d" % churn.randrange(500))
            replies = pipe.execute()
            for i, (cursor, page) in zip(live, replies[: len(live)], strict=True):
                seen[i].update(page)
                cursors[i] = int(cursor)
                done[i] = cursors[i] == 0
    assert all(done)
    for keys in seen:
        assert stable <= keys
        assert not {key for key in keys if not key.startswith((b"stable", b"churn"))}


@pytest.mark.spec("PROTO-100")
def test_scan_type_matches_redis_on_a_store_of_strings(serve: Serve) -> None:
    server = serve()
    client = redis.Redis(host=server.host, port=server.port, socket_timeout=30)
    client.mset({b"a": b"1", b"b": b"2"})
    assert sorted(client.scan_iter(_type="string")) == [b"a", b"b"]
    assert sorted(client.scan_iter(_type="STRING")) == [b"a", b"b"]
    assert list(client.scan_iter(_type="list")) == []
    assert list(client.scan_iter(_type="nosuchtype")) == []
