"""A server whose store fails: the failure is seen, and a failed write is recovered from.

The store runs on :class:`tests.crash.faulty_fs.FaultyFileSystem` in this process, so a test can
fill the "disk" (``ENOSPC`` on every append), clear it again with ``heal()``, and watch what the
server logs and answers meanwhile. The reopen's timings are shrunk with a
:class:`~catlog.reopen.ReopenPolicy`, so a backoff takes tenths of a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import logging
import signal
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Final

import pytest

import catlog
from catlog import server as server_module
from catlog.options import StoreOptions
from catlog.reopen import ReopenPolicy
from catlog.server import Server
from catlog.serverconfig import ServerConfig
from tests.crash.faulty_fs import FaultyFileSystem

FAST: Final = ReopenPolicy(check_every=0.02, first_delay=0.1, max_delay=0.4, remind_every=3600)
"""The reopen's backoff in tenths of a second; one reminder an hour, so never in a test."""

WAIT: Final = 10.0
"""The bound on every wait for something the server does on its own timer."""


def resp(*parts: bytes) -> bytes:
    return b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)


class Client:
    """One RESP connection; ``call`` sends a command and returns its reply (b"" once closed)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, server: Server) -> Client:
        host, port = server.address
        return cls(*await asyncio.open_connection(host, port))

    async def call(self, *parts: bytes) -> bytes:
        self.writer.write(resp(*parts))
        return await asyncio.wait_for(self._reply(), WAIT)

    async def _reply(self) -> bytes:
        first = await self.reader.readline()
        if first.startswith(b"$") and first != b"$-1\r\n":
            return first + await self.reader.readexactly(int(first[1:]) + 2)
        return first

    def close(self) -> None:
        self.writer.close()


@contextlib.asynccontextmanager
async def running(
    store: catlog.Store, fs: FaultyFileSystem | None = None, reopen: ReopenPolicy = FAST
) -> AsyncIterator[Server]:
    """A server on ``store``; shut down and its (current) store closed afterwards."""
    server = Server(ServerConfig(port=0), store, fs=fs, reopen=reopen)
    await server.start()
    try:
        yield server
    finally:
        await server.shutdown()
        server.close_store()


async def eventually(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not check():
        assert time.monotonic() < deadline, f"not within {WAIT} s: {what}"
        await asyncio.sleep(0.02)


def logged(caplog: pytest.LogCaptureFixture, level: int, prefix: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "catlog.server" and r.levelno == level and r.getMessage().startswith(prefix)
    ]


def info_fields(reply: bytes) -> dict[str, str]:
    text = reply.split(b"\r\n", 1)[1].decode()
    return dict(line.split(":", 1) for line in text.split("\r\n") if ":" in line)


def fill(fs: FaultyFileSystem) -> None:
    """The disk is full from now on: every append fails with ENOSPC, the probe's too."""
    fs.fail("append", error=errno.ENOSPC, persistent=True)


@pytest.mark.spec("SRV-16", "PROTO-70")
def test_a_failed_write_is_logged_once_at_error_and_shown_by_info(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="catlog.server")
    fs = FaultyFileSystem()
    store = catlog.open(str(tmp_path / "data"), fs=fs)

    async def scenario() -> tuple[bytes, list[bytes], bytes, bytes]:
        async with running(store, fs) as server:
            client = await Client.connect(server)
            healthy = await client.call(b"INFO", b"persistence")
            assert await client.call(b"SET", b"a", b"1") == b"+OK\r\n"
            fill(fs)
            await client.call(b"SET", b"b", b"2")  # its fsync fails: error, connection closed
            client.close()
            client = await Client.connect(server)
            refused = [await client.call(b"SET", b"c%d" % i, b"3") for i in range(20)]
            read = await client.call(b"GET", b"a")
            failed = await client.call(b"INFO", b"persistence")
            await eventually(
                lambda: bool(logged(caplog, logging.WARNING, "[STORE REOPEN]")),
                "a reopen attempt (so the server has looked at its store many times)",
            )
            client.close()
            return healthy, refused, read, failed

    healthy, refused, read, failed = asyncio.run(scenario())
    ok = info_fields(healthy)
    assert (ok["aof_last_write_status"], ok["catlog_last_write_error"]) == ("ok", "")
    assert ok["catlog_write_recovery"] == "none"
    assert all(r.startswith(b"-ERR ") and b"refused" in r for r in refused), refused
    assert read == b"$1\r\n1\r\n", "reads go on while writes are refused"
    err = info_fields(failed)
    assert err["aof_last_write_status"] == "err"
    assert "No space left on device" in err["catlog_last_write_error"]
    assert err["catlog_write_recovery"] == "automatic"
    [line] = logged(caplog, logging.ERROR, "[STORE FAILED]")  # 21 refused writes, one line
    assert "No space left on device" in line
    assert "reopening it in 0.1 s" in line


@pytest.mark.spec("SRV-16")
def test_a_failure_of_the_background_flusher_is_logged_though_no_client_saw_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="catlog.server")
    fs = FaultyFileSystem()
    store = catlog.open(str(tmp_path / "data"), fs=fs, fsync="interval", fsync_interval_ms=20)

    async def scenario() -> tuple[bytes, bytes]:
        async with running(store, fs) as server:
            client = await Client.connect(server)
            fill(fs)
            acknowledged = await client.call(b"SET", b"a", b"1")  # buffered; the flusher fails
            await eventually(
                lambda: bool(logged(caplog, logging.ERROR, "[STORE FAILED]")),
                "an ERROR line about the flusher's failure",
            )
            info = await client.call(b"INFO", b"persistence")
            client.close()
            return acknowledged, info

    acknowledged, info = asyncio.run(scenario())
    assert acknowledged == b"+OK\r\n"
    assert info_fields(info)["aof_last_write_status"] == "err"


@pytest.mark.spec("SRV-16", "SRV-18")
def test_a_compaction_that_runs_out_of_space_is_logged_and_the_store_reopened(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The failure is the compactor's, in its own thread: no client command fails."""
    caplog.set_level(logging.INFO, logger="catlog")
    fs = FaultyFileSystem()
    store = catlog.open(str(tmp_path / "data"), fs=fs, segment_size=4096)

    async def scenario() -> tuple[bytes, bytes, list[bytes]]:
        async with running(store, fs) as server:
            client = await Client.connect(server)
            for i in range(200):  # 20 keys written 10 times: several segments, most bytes dead
                assert await client.call(b"SET", b"k%d" % (i % 20), b"%d" % i) == b"+OK\r\n"
            fs.fail("append", error=errno.ENOSPC)  # once: the compactor's first write
            started = await client.call(b"BGREWRITEAOF")
            await eventually(
                lambda: bool(logged(caplog, logging.WARNING, "[STORE REOPEN] " + store.path)),
                "the reopen after the compaction's failure",
            )
            written = await client.call(b"SET", b"after", b"1")
            values = [await client.call(b"GET", b"k%d" % i) for i in range(20)]
            client.close()
            return started, written, values

    started, written, values = asyncio.run(scenario())
    assert started == b"+Background append only file rewriting started\r\n"
    assert written == b"+OK\r\n"
    assert values == [b"$3\r\n%d\r\n" % (180 + i) for i in range(20)]
    [line] = logged(caplog, logging.ERROR, "[STORE FAILED]")
    assert "No space left on device" in line
    assert any(
        r.name == "catlog" and "background compaction failed" in r.getMessage()
        for r in caplog.records
    ), "the compactor met the failure, in its thread"


@pytest.mark.spec("SRV-16")
def test_while_writes_stay_refused_a_reminder_is_logged_at_most_every_period(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="catlog.server")
    fs = FaultyFileSystem()
    store = catlog.open(str(tmp_path / "data"), fs=fs)
    period = 0.1
    reminding = ReopenPolicy(check_every=0.01, first_delay=3600, remind_every=period)

    async def scenario() -> float:
        async with running(store, fs, reminding) as server:
            client = await Client.connect(server)
            fill(fs)
            await client.call(b"SET", b"a", b"1")
            client.close()
            started = time.monotonic()
            await eventually(
                lambda: len(logged(caplog, logging.ERROR, "[STORE FAILED] writes refused")) >= 2,
                "two reminders",
            )
            await asyncio.sleep(3 * period)
            return time.monotonic() - started

    elapsed = asyncio.run(scenario())
    reminders = logged(caplog, logging.ERROR, "[STORE FAILED] writes refused for ")
    assert 2 <= len(reminders) <= elapsed / period + 1, (elapsed, reminders)
    assert all("No space left on device" in line for line in reminders)


@pytest.mark.spec("SRV-18")
def test_after_a_failed_write_the_server_reopens_the_store_once_the_disk_has_space(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="catlog.server")
    fs = FaultyFileSystem()
    store = catlog.open(str(tmp_path / "data"), fs=fs)
    keys = [b"k%d" % i for i in range(10)]

    async def scenario() -> tuple[list[bytes], list[bytes], bytes, list[bytes], bytes]:
        async with running(store, fs) as server:
            client = await Client.connect(server)
            for key in keys:
                assert await client.call(b"SET", key, key + b"-v") == b"+OK\r\n"
            fill(fs)
            await client.call(b"SET", b"lost", b"x")
            client.close()
            client = await Client.connect(server)
            await eventually(
                lambda: len(logged(caplog, logging.WARNING, "[STORE REOPEN] attempt")) >= 2,
                "two attempts that the full disk fails",
            )
            during = [await client.call(b"GET", key) for key in keys]
            refused = [await client.call(b"SET", b"new", b"1")]
            fs.heal()
            deadline = time.monotonic() + WAIT
            while (reply := await client.call(b"SET", b"new", b"1")) != b"+OK\r\n":
                refused.append(reply)
                assert time.monotonic() < deadline, reply
                await asyncio.sleep(0.02)
            after = [await client.call(b"GET", key) for key in keys]
            info = await client.call(b"INFO", b"persistence")
            client.close()
            return during, refused, reply, after, info

    during, refused, written, after, info = asyncio.run(scenario())
    expected = [b"$%d\r\n%s-v\r\n" % (len(key) + 2, key) for key in keys]
    assert during == expected, "reads are answered from the failed store"
    assert all(r.startswith(b"-ERR ") and b"refused" in r for r in refused), refused
    assert written == b"+OK\r\n"
    assert after == expected, "what was acknowledged before the failure is intact"
    assert info_fields(info)["aof_last_write_status"] == "ok"
    attempts = logged(caplog, logging.WARNING, "[STORE REOPEN] attempt")
    assert all("cannot take writes yet" in line for line in attempts), attempts
    [success] = logged(caplog, logging.WARNING, "[STORE REOPEN] " + str(tmp_path / "data"))
    assert "writes accepted again" in success
    with catlog.open(str(tmp_path / "data")) as reopened:
        assert reopened.get(b"new") == b"1"
        assert [reopened.get(key) for key in keys] == [key + b"-v" for key in keys]


@pytest.mark.spec("SRV-18")
def test_when_opening_again_fails_the_attempts_go_on_until_it_opens(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The probe passes but the open fails (here: listing the directory): the old store is
    closed, every command is answered with an error, and the next attempt opens it."""
    caplog.set_level(logging.INFO, logger="catlog.server")
    fs = FaultyFileSystem()
    store = catlog.open(str(tmp_path / "data"), fs=fs)

    async def scenario() -> tuple[bytes, bytes, bytes]:
        async with running(store, fs) as server:
            client = await Client.connect(server)
            assert await client.call(b"SET", b"a", b"1") == b"+OK\r\n"
            fs.fail("append", error=errno.ENOSPC)  # once: the probe will pass
            fs.fail("listdir", error=errno.EIO)  # once: the first open fails
            await client.call(b"SET", b"b", b"2")
            client.close()
            client = await Client.connect(server)
            await eventually(
                lambda: bool(logged(caplog, logging.WARNING, "[STORE REOPEN] attempt 1 failed")),
                "the failed open",
            )
            between = await client.call(b"GET", b"a")
            info = await client.call(b"INFO", b"persistence")
            assert info_fields(info)["aof_last_write_status"] == "err", info
            await eventually(
                lambda: bool(logged(caplog, logging.WARNING, "[STORE REOPEN] " + store.path)),
                "the reopen",
            )
            written = await client.call(b"SET", b"c", b"3")
            read = await client.call(b"GET", b"a")
            client.close()
            return between, written, read

    between, written, read = asyncio.run(scenario())
    assert between.startswith(b"-ERR "), between
    assert (written, read) == (b"+OK\r\n", b"$1\r\n1\r\n")
    [failed] = logged(caplog, logging.WARNING, "[STORE REOPEN] attempt 1 failed")
    assert "opening " in failed
    assert "Input/output error" in failed


@pytest.mark.spec("SRV-18", "ENG-116")
def test_the_reopened_store_has_every_setting_of_the_failed_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The server may be handed a store opened with any settings (an embedder's, a test's): the
    reopen must not fall back to a default for any of them, its clock and file system included.
    The key's expiry is read on the store's clock, which a reopen on the system clock would
    find long past."""
    caplog.set_level(logging.INFO, logger="catlog.server")
    fs = FaultyFileSystem()
    clock = catlog.ManualClock(1_700_000_000_000)
    store = catlog.open(
        str(tmp_path / "data"),
        fs=fs,
        clock=clock,
        segment_size=4096,
        hints=True,
        compact_threshold=0.3,
        compact_max_bytes=123_456,
        max_segments=40,
        max_open_files=17,
        compaction_yield_ms=0.5,
    )
    names = [field.name for field in dataclasses.fields(StoreOptions)]
    before = {name: getattr(store, name) for name in names}

    async def scenario() -> tuple[catlog.Store, bytes]:
        async with running(store, fs) as server:
            client = await Client.connect(server)
            assert await client.call(b"SET", b"k", b"v", b"EX", b"100") == b"+OK\r\n"
            fs.fail("append", error=errno.ENOSPC)  # once: the probe will pass
            await client.call(b"SET", b"lost", b"x")
            client.close()
            await eventually(
                lambda: bool(logged(caplog, logging.WARNING, "[STORE REOPEN] " + store.path)),
                "the reopen",
            )
            client = await Client.connect(server)
            ttl = await client.call(b"TTL", b"k")
            appends = fs.calls["append"]
            assert await client.call(b"SET", b"after", b"y") == b"+OK\r\n"
            assert fs.calls["append"] > appends, "the reopened store writes through the same fs"
            client.close()
            return server.store, ttl

    reopened, ttl = asyncio.run(scenario())
    assert reopened is not store
    assert {name: getattr(reopened, name) for name in names} == before
    assert ttl == b":100\r\n", "the reopened store reads the same clock"


@pytest.mark.spec("SRV-19", "PROTO-70")
def test_after_a_failed_fsync_writes_stay_refused_until_a_restart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="catlog.server")
    fs = FaultyFileSystem()
    store = catlog.open(str(tmp_path / "data"), fs=fs)

    async def scenario() -> tuple[bytes, bytes, bytes]:
        async with running(store, fs) as server:
            client = await Client.connect(server)
            assert await client.call(b"SET", b"a", b"1") == b"+OK\r\n"
            fs.fail("sync", error=errno.EIO)  # once: the disk seems fine afterwards
            await client.call(b"SET", b"b", b"2")
            client.close()
            fs.heal()
            client = await Client.connect(server)
            await eventually(
                lambda: bool(logged(caplog, logging.ERROR, "[STORE FAILED]")), "the ERROR line"
            )
            await asyncio.sleep(5 * FAST.max_delay)  # several times the longest backoff
            refused = await client.call(b"SET", b"c", b"3")
            read = await client.call(b"GET", b"a")
            info = await client.call(b"INFO", b"persistence")
            client.close()
            return refused, read, info

    refused, read, info = asyncio.run(scenario())
    assert refused.startswith(b"-ERR "), refused
    assert b"refused" in refused
    assert read == b"$1\r\n1\r\n"
    fields = info_fields(info)
    assert (fields["aof_last_write_status"], fields["catlog_write_recovery"]) == ("err", "restart")
    [line] = logged(caplog, logging.ERROR, "[STORE FAILED]")
    assert "until the server is restarted" in line
    assert not logged(caplog, logging.WARNING, "[STORE REOPEN]")


@pytest.mark.spec("SRV-17")
def test_sigterm_with_a_failed_store_exits_one_and_never_says_data_synced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="catlog.server")
    fs = FaultyFileSystem()
    config = ServerConfig(
        port=0, data_dir=str(tmp_path / "data"), fsync="interval", fsync_interval_ms=20
    )
    replies: list[bytes] = []

    def client(host: str, port: int) -> None:
        with socket.create_connection((host, port), timeout=WAIT) as sock:
            sock.sendall(b"PUT a 1\n")
            replies.append(sock.recv(100))
            fill(fs)
            sock.sendall(b"PUT b 2\n")  # acknowledged; the flusher then fails
            replies.append(sock.recv(100))
        deadline = time.monotonic() + WAIT
        while not logged(caplog, logging.ERROR, "[STORE FAILED]") and time.monotonic() < deadline:
            time.sleep(0.02)
        signal.raise_signal(signal.SIGTERM)

    def ready(host: str, port: int) -> None:
        threading.Thread(target=client, args=(host, port), daemon=True).start()

    previous = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    try:
        status = asyncio.run(server_module.serve(config, ready=ready, fs=fs, reopen=FAST))
    finally:
        signal.signal(signal.SIGTERM, previous[0])
        signal.signal(signal.SIGINT, previous[1])
    assert replies == [b"OK\n", b"OK\n"]
    assert status == 1
    [line] = logged(caplog, logging.ERROR, "[SHUTDOWN] could not sync the data: ")
    assert "writes acknowledged since the last successful sync may be lost" in line
    assert not logged(caplog, logging.INFO, "[SHUTDOWN] data synced")


@pytest.mark.spec("ENG-57", "SRV-16", "PROTO-102")
def test_a_compaction_whose_output_runs_out_of_space_leaves_the_server_writing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Only the compaction fails (ENG-57): no [STORE FAILED], no reopen, writes go on."""
    caplog.set_level(logging.INFO, logger="catlog")
    fs = FaultyFileSystem()
    store = catlog.open(str(tmp_path / "data"), fs=fs, segment_size=4096)

    async def scenario() -> tuple[bytes, bytes, bytes]:
        async with running(store, fs) as server:
            client = await Client.connect(server)
            for i in range(200):
                assert await client.call(b"SET", b"k%d" % (i % 20), b"%d" % i) == b"+OK\r\n"
            fs.fail("rename", error=errno.ENOSPC, thread="catlog-compact")  # an output's
            started = await client.call(b"BGREWRITEAOF")
            await eventually(
                lambda: any(
                    "background compaction failed" in r.getMessage() for r in caplog.records
                ),
                "the compaction's failure, logged",
            )
            assert store.stats().compaction_error is not None
            written = await client.call(b"SET", b"after", b"1")
            info = await client.call(b"INFO", b"persistence")
            client.close()
            return started, written, info

    started, written, info = asyncio.run(scenario())
    fields = info_fields(info)
    assert fields["aof_last_bgrewrite_status"] == "err", "PROTO-102"
    assert "No space left on device" in fields["catlog_last_compaction_error"]
    assert fields["aof_last_write_status"] == "ok", "the store itself did not fail"
    assert started == b"+Background append only file rewriting started\r\n"
    assert written == b"+OK\r\n"
    assert not logged(caplog, logging.ERROR, "[STORE FAILED]")
    assert not logged(caplog, logging.WARNING, "[STORE REOPEN]")
