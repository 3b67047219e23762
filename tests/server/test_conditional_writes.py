"""Conditional writes judged on the newest state, a write still waiting for its fsync included.

PROTO-93: under ``--fsync always`` client A's ``SET lock a NX`` waits for its fsync before it is
acknowledged; a ``SET lock b NX`` from client B meanwhile must see A's write, or both clients
would be told they hold the lock (redis-py's Lock is built on SET NX PX). The store's fsync is
held here (tests/model/test_history.py's file system) to keep A's write in flight.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import catlog
from tests.model.test_history import HeldFsync
from tests.server.test_store_failure import WAIT, Client, resp, running


@pytest.mark.spec("PROTO-93", "SRV-5")
@pytest.mark.parametrize(
    ("first", "second", "answers", "final"),
    [
        ((b"SET", b"lock", b"a", b"NX", b"PX", b"60000"), (b"SET", b"lock", b"b", b"NX"),
         (b"+OK\r\n", b"$-1\r\n"), b"$1\r\na\r\n"),
        ((b"SET", b"lock", b"a"), (b"SET", b"lock", b"b", b"XX", b"GET"),
         (b"+OK\r\n", b"$1\r\na\r\n"), b"$1\r\nb\r\n"),
        ((b"SET", b"lock", b"a"), (b"SETNX", b"lock", b"b"), (b"+OK\r\n", b":0\r\n"),
         b"$1\r\na\r\n"),
        ((b"SET", b"lock", b"a", b"EX", b"100"), (b"EXPIRE", b"lock", b"50", b"NX"),
         (b"+OK\r\n", b":0\r\n"), b"$1\r\na\r\n"),
        ((b"SET", b"lock", b"a"), (b"INCR", b"lock"),
         (b"+OK\r\n", b"-ERR value is not an integer or out of range\r\n"), b"$1\r\na\r\n"),
    ],
    ids=["SET-NX", "SET-XX-GET", "SETNX", "EXPIRE-NX", "INCR"],
)  # fmt: skip
def test_a_conditional_write_sees_another_clients_write_in_flight(
    tmp_path: Path,
    first: tuple[bytes, ...],
    second: tuple[bytes, ...],
    answers: tuple[bytes, bytes],
    final: bytes,
) -> None:
    async def scenario() -> None:
        fs = HeldFsync()
        store = catlog.open(str(tmp_path / "data"), fs=fs, fsync="always")
        loop = asyncio.get_running_loop()
        async with running(store) as server:
            a, b = await Client.connect(server), await Client.connect(server)
            fs.holding = True
            a.writer.write(resp(*first))
            assert await loop.run_in_executor(None, fs.entered.wait, WAIT), "A's fsync began"
            b.writer.write(resp(*second))
            await asyncio.sleep(0.2)
            fs.release.set()
            assert await asyncio.wait_for(a.reader.readline(), WAIT) == answers[0]
            reply = await asyncio.wait_for(b.reader.readline(), WAIT)
            if answers[1].startswith(b"$1"):
                reply += await asyncio.wait_for(b.reader.readline(), WAIT)
            assert reply == answers[1]
            assert await b.call(b"GET", b"lock") == final
            a.close()
            b.close()

    asyncio.run(scenario())
