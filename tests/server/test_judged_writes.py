"""A DEL, EXPIRE or PERSIST that writes nothing answers only once what it was judged on is true.

ENG-51: under ``--fsync always`` such a command is judged on every write appended before it,
including another client's still waiting for its fsync. If its reply left at once, a client
could read ``:0`` for a DEL and then still GET the value, whose DELETE has not taken effect yet.
The store's fsync is held here (tests/model/test_history.py's file system), so the test can
look at the replies while one is in flight.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import catlog
from tests.model.test_history import HeldFsync
from tests.server.test_store_failure import WAIT, Client, resp, running


async def _no_reply_within(client: Client, seconds: float) -> bool:
    try:
        await asyncio.wait_for(client.reader.readline(), seconds)
    except TimeoutError:
        return True
    return False


@pytest.mark.spec("ENG-51", "SRV-5", "PROTO-37")
@pytest.mark.parametrize(
    ("first", "second", "answers"),
    [
        ((b"DEL", b"k"), (b"DEL", b"k"), (b":1\r\n", b":0\r\n")),
        ((b"DEL", b"k"), (b"EXPIRE", b"k", b"100"), (b":1\r\n", b":0\r\n")),
        ((b"DEL", b"k"), (b"PERSIST", b"k"), (b":1\r\n", b":0\r\n")),
    ],
    ids=["DEL-DEL", "DEL-EXPIRE", "DEL-PERSIST"],
)
def test_a_no_op_judged_on_a_write_in_flight_waits_for_its_fsync(
    tmp_path: Path,
    first: tuple[bytes, ...],
    second: tuple[bytes, ...],
    answers: tuple[bytes, bytes],
) -> None:
    async def scenario() -> None:
        fs = HeldFsync()
        store = catlog.open(str(tmp_path / "data"), fs=fs, fsync="always")
        store.put(b"k", b"v", ttl=3600)
        loop = asyncio.get_running_loop()
        async with running(store) as server:
            a, b = await Client.connect(server), await Client.connect(server)
            fs.holding = True
            a.writer.write(resp(*first))
            assert await loop.run_in_executor(None, fs.entered.wait, WAIT), "A's fsync began"
            b.writer.write(resp(*second))
            waited = await _no_reply_within(b, 0.3)
            fs.release.set()
            assert await asyncio.wait_for(a.reader.readline(), WAIT) == answers[0]
            if waited:
                assert await asyncio.wait_for(b.reader.readline(), WAIT) == answers[1]
            assert waited, "the no-op's reply left before the write it was judged on was durable"
            assert await b.call(b"GET", b"k") == b"$-1\r\n"
            a.close()
            b.close()

    asyncio.run(scenario())
