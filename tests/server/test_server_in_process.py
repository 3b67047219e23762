"""The server's edges run in this process: a failing fsync, a client that stops reading, shutdown.

The other server tests start ``python -m catlog`` as a child, which is the real thing; these run
:class:`catlog.server.Server` on this process's event loop instead, so that a store on a failing
file system can be handed to it and its state looked at between one read and the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Final

import pytest

import catlog
import catlog.store
from catlog import server as server_module
from catlog.server import Server
from catlog.serverconfig import ServerConfig
from tests.crash.faulty_fs import FaultyFileSystem

VALUE_SIZE = 1024 * 1024


def resp(*parts: bytes) -> bytes:
    return b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)


ANY_PORT: Final = ServerConfig(port=0)


@contextlib.asynccontextmanager
async def running(store: catlog.Store, config: ServerConfig = ANY_PORT) -> AsyncIterator[Server]:
    """A server for ``store`` (on a free loopback port by default); shut down (not the store)."""
    server = Server(config, store)
    await server.start()
    try:
        yield server
    finally:
        await server.shutdown()


async def connect(server: Server) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = server.address
    return await asyncio.open_connection(host, port, limit=4 * VALUE_SIZE)


async def read_to_eof(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.read(), timeout=30)


@pytest.mark.spec("SRV-5", "REC-10")
def test_a_failed_fsync_replaces_the_held_reply_with_an_error_and_closes(tmp_path: Path) -> None:
    fs = FaultyFileSystem()
    store = catlog.open(str(tmp_path / "data"), fs=fs)

    async def scenario() -> bytes:
        async with running(store) as server:
            fs.fail("sync", persistent=True)
            reader, writer = await connect(server)
            writer.write(resp(b"SET", b"k", b"v") + resp(b"GET", b"k"))
            received = await read_to_eof(reader)
            writer.close()
            return received

    received = asyncio.run(scenario())
    assert received.startswith(b"-ERR write not durable: "), received
    assert received.count(b"\r\n") == 1, "the SET's +OK and the GET's reply are never sent"
    with pytest.raises(catlog.StoreFailedError):
        store.put(b"other", b"v")
    with contextlib.suppress(catlog.CatlogError, OSError):
        store.close()


@pytest.mark.spec("SRV-5", "PROTO-14")
def test_a_line_client_whose_fsync_fails_is_told_so_in_its_own_protocol(tmp_path: Path) -> None:
    fs = FaultyFileSystem()
    store = catlog.open(str(tmp_path / "data"), fs=fs)

    async def scenario() -> bytes:
        async with running(store) as server:
            fs.fail("sync", persistent=True)
            reader, writer = await connect(server)
            writer.write(b"PUT k v\nGET k\n")
            received = await read_to_eof(reader)
            writer.close()
            return received

    received = asyncio.run(scenario())
    assert received.startswith(b"ERROR write not durable: "), received
    assert received.count(b"\n") == 1
    with contextlib.suppress(catlog.CatlogError, OSError):
        store.close()


@pytest.mark.spec("SRV-7")
def test_a_client_that_stops_reading_stops_its_requests_until_it_reads_again(
    tmp_path: Path,
) -> None:
    """64 GETs of 1 MiB, then a SET: the SET runs only once the client reads the replies."""
    count = 64
    with catlog.open(str(tmp_path / "data"), fsync="never") as store:
        store.put(b"big", b"x" * VALUE_SIZE)

        async def scenario() -> tuple[bytes | None, bytes, bytes | None]:
            async with running(store) as server:
                reader, writer = await connect(server)
                writer.write(resp(b"GET", b"big") * count + resp(b"SET", b"after", b"1"))
                await writer.drain()
                await asyncio.sleep(0.5)  # far longer than running 65 commands takes
                before = store.get(b"after")
                expected = (b"$%d\r\n" % VALUE_SIZE + b"x" * VALUE_SIZE + b"\r\n") * count
                replies = await asyncio.wait_for(reader.readexactly(len(expected) + 5), 30)
                assert replies[: len(expected)] == expected
                writer.close()
                return before, replies[len(expected) :], store.get(b"after")

        before, last_reply, after = asyncio.run(scenario())
    assert before is None, "the server ran the SET while 63 MiB of replies were unread"
    assert last_reply == b"+OK\r\n"
    assert after == b"1"


@pytest.mark.spec("SRV-4")
def test_shutdown_sends_the_replies_due_and_closes_every_connection(tmp_path: Path) -> None:
    with catlog.open(str(tmp_path / "data")) as store:

        async def scenario() -> tuple[bytes, bytes]:
            server = Server(ServerConfig(port=0), store)
            await server.start()
            line_reader, line_writer = await connect(server)
            resp_reader, resp_writer = await connect(server)
            line_writer.write(b"PUT a 1\n")
            resp_writer.write(resp(b"SET", b"b", b"2"))
            await asyncio.sleep(0.2)  # let both requests arrive before the stop
            server.request_stop()
            await server.wait_stopped()
            await server.shutdown()
            received = await read_to_eof(line_reader), await read_to_eof(resp_reader)
            line_writer.close()
            resp_writer.close()
            return received

        assert asyncio.run(scenario()) == (b"OK\n", b"+OK\r\n")
        assert store.get(b"a") == b"1"
        assert store.get(b"b") == b"2"


@pytest.mark.spec("SRV-8")
def test_a_connection_beyond_the_limit_is_refused_and_the_others_go_on(tmp_path: Path) -> None:
    with catlog.open(str(tmp_path / "data")) as store:

        async def scenario() -> tuple[bytes, bytes]:
            async with running(store, ServerConfig(port=0, max_connections=1)) as server:
                reader, writer = await connect(server)
                writer.write(b"PUT a 1\n")
                assert await reader.readline() == b"OK\n"
                refused_reader, refused_writer = await connect(server)
                refused = await read_to_eof(refused_reader)
                refused_writer.close()
                writer.write(b"GET a\n")
                still = await reader.readline()
                writer.close()
                return refused, still

        assert asyncio.run(scenario()) == (b"-ERR max number of clients reached\r\n", b"VALUE 1\n")


@pytest.mark.spec("SRV-9")
def test_a_silent_connection_is_closed_after_the_idle_timeout(tmp_path: Path) -> None:
    with catlog.open(str(tmp_path / "data")) as store:

        async def scenario() -> tuple[bytes, int]:
            async with running(store, ServerConfig(port=0, idle_timeout=0.2)) as server:
                reader, writer = await connect(server)
                writer.write(b"PUT a 1\n")
                received = await read_to_eof(reader)
                writer.close()
                await asyncio.sleep(0.05)  # connection_lost runs on the next loop turn
                return received, len(server.connections)

        assert asyncio.run(scenario()) == (b"OK\n", 0)


@pytest.mark.spec("SRV-3", "SRV-4")
def test_serve_announces_its_address_and_stops_cleanly_on_sigterm(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = str(tmp_path / "data")
    seen: list[tuple[str, int]] = []
    replies: list[bytes] = []

    def client(host: str, port: int) -> None:
        with socket.create_connection((host, port), timeout=10) as sock:
            sock.sendall(b"PUT k v\n")
            replies.append(sock.recv(100))
        signal.raise_signal(signal.SIGTERM)  # the handler serve() installed stops it

    def ready(host: str, port: int) -> None:
        """Called on the loop, so it must not block; serve() has installed its signal handlers
        by now (tests/server/test_signals.py), so the client's SIGTERM stops the server."""
        seen.append((host, port))
        threading.Thread(target=client, args=(host, port), daemon=True).start()

    previous = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    try:
        asyncio.run(server_module.serve(ServerConfig(port=0, data_dir=data_dir), ready=ready))
    finally:
        signal.signal(signal.SIGTERM, previous[0])
        signal.signal(signal.SIGINT, previous[1])
    [(host, port)] = seen
    assert replies == [b"OK\n"]
    assert f"[LISTENING] {host}:{port}\n" in capsys.readouterr().out
    with catlog.open(data_dir) as store:
        assert store.get(b"k") == b"v"


@pytest.mark.spec("SRV-15")
def test_run_exits_one_when_the_port_is_taken_and_says_it_cannot_listen(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = str(tmp_path / "data")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert server_module.run(ServerConfig(port=port, data_dir=data_dir)) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith(f"catlog: cannot listen on 127.0.0.1:{port}: "), captured.err
    assert "[LISTENING]" not in captured.out
    with catlog.open(data_dir):  # the store it opened first was closed again
        pass


@pytest.mark.spec("SRV-15")
def test_run_exits_one_when_the_data_directory_is_a_file_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "data"
    data_dir.write_bytes(b"not a directory")
    assert server_module.run(ServerConfig(port=0, data_dir=str(data_dir))) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith(f"catlog: cannot open data directory {data_dir}: ")
    assert "is a file, not a directory" in captured.err  # the engine's words (ENG-49), once
    assert captured.err.count("cannot open") == 1, captured.err
    assert "[LISTENING]" not in captured.out


@pytest.mark.spec("ENG-20")
def test_run_exits_one_when_another_store_holds_the_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = str(tmp_path / "data")
    with catlog.open(data_dir):
        assert server_module.run(ServerConfig(port=0, data_dir=data_dir)) == 1
    assert capsys.readouterr().err.startswith("catlog: ")


@pytest.mark.spec("PROTO-46")
def test_info_persistence_over_the_network_gives_the_stores_segment_and_byte_counts(
    tmp_path: Path,
) -> None:
    with catlog.open(str(tmp_path / "data")) as store:

        async def scenario() -> bytes:
            async with running(store) as server:
                reader, writer = await connect(server)
                writer.write(resp(b"INFO", b"persistence"))
                header = await reader.readline()
                body = await reader.readexactly(int(header[1:]) + 2)
                writer.close()
                return body

        info = asyncio.run(scenario())
    assert b"catlog_fsync:always\r\n" in info
    assert b"catlog_segments:1\r\n" in info
    assert b"catlog_disk_bytes:" in info


@pytest.mark.spec("SRV-29", "ENG-99")
def test_the_server_opens_its_store_with_short_compaction_turns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[catlog.Store] = []
    real_open = catlog.store.open

    def recording_open(path: str, **kwargs: object) -> catlog.Store:
        store = real_open(path, **kwargs)  # type: ignore[arg-type]
        opened.append(store)
        return store

    monkeypatch.setattr(catlog.store, "open", recording_open)

    def ready(host: str, port: int) -> None:
        signal.raise_signal(signal.SIGTERM)  # the handler serve() installed stops it

    previous = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    try:
        config = ServerConfig(port=0, data_dir=str(tmp_path / "data"))
        asyncio.run(server_module.serve(config, ready=ready))
    finally:
        signal.signal(signal.SIGTERM, previous[0])
        signal.signal(signal.SIGINT, previous[1])
    [store] = opened
    assert store.compaction_yield_ms == 0.25
    with catlog.open(str(tmp_path / "other")) as embedded:
        assert embedded.compaction_yield_ms == 1.0, "the engine's own default"
