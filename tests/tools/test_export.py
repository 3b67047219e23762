"""``catlog export DIR``: the live keys as Redis's mass-insertion stream (TOOL-43 .. TOOL-45),
read back by a small RESP parser of the test's own and, where Redis is installed, piped into a
real ``redis-server`` with ``redis-cli --pipe``."""

from __future__ import annotations

import io
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import catlog
from catlog.cli import main
from catlog.tools.export import export, set_command
from tests.server.conftest import require_tool
from tests.server.redis_server import running_redis
from tests.tools.layout import NOW_MS, build, flip, segment, snapshot

HOUR_MS = 3_600_000


def parse_stream(stream: bytes) -> list[list[bytes]]:
    """Each RESP array of bulk strings in ``stream``, checking every length and CRLF."""
    commands: list[list[bytes]] = []
    at = 0
    while at < len(stream):
        assert stream[at : at + 1] == b"*", f"an array at {at}"
        end = stream.index(b"\r\n", at)
        count, at = int(stream[at + 1 : end]), end + 2
        words = []
        for _ in range(count):
            assert stream[at : at + 1] == b"$", f"a bulk string at {at}"
            end = stream.index(b"\r\n", at)
            length, at = int(stream[at + 1 : end]), end + 2
            words.append(stream[at : at + length])
            assert stream[at + length : at + length + 2] == b"\r\n", f"CRLF after the bulk at {at}"
            at += length + 2
        commands.append(words)
    return commands


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def write_awkward_store(directory: str) -> tuple[dict[bytes, bytes], dict[bytes, int]]:
    """Binary keys and values, expiring and expired keys, deletes and a batch; returns what is live
    now (values, and expiries of those that have one)."""
    later = now_ms() + HOUR_MS
    with catlog.open(directory, clock=catlog.ManualClock(NOW_MS), segment_size=256) as store:
        store.put(b"crlf\r\nkey", b"value\r\nwith\r\n")
        store.put(b"nul\x00key", b"\x00\x01\xff\x00")
        store.put(b"empty", b"")
        store.put(b"", b"the empty key")
        store.put(b"overwritten", b"old")
        store.put(b"overwritten", b"new")
        store.put(b"deleted", b"gone")
        store.delete(b"deleted")
        store.put(b"expiring", b"for an hour", expires_at_ms=later)
        store.put(b"expiring\r\n", b"\r\n", expires_at_ms=later + 1)
        store.put(b"expired", b"long ago", expires_at_ms=NOW_MS + 1000)  # 2023
        store.put(b"persisted", b"v", expires_at_ms=later)
        store.persist(b"persisted")
        with store.batch() as batch:
            batch.put(b"batched", b"member")
            batch.delete(b"empty-later")
        for i in range(20):
            store.put(b"filler-%d" % i, bytes(range(i, i + 30)))
    values = {
        b"crlf\r\nkey": b"value\r\nwith\r\n",
        b"nul\x00key": b"\x00\x01\xff\x00",
        b"empty": b"",
        b"": b"the empty key",
        b"overwritten": b"new",
        b"expiring": b"for an hour",
        b"expiring\r\n": b"\r\n",
        b"persisted": b"v",
        b"batched": b"member",
    }
    values.update({b"filler-%d" % i: bytes(range(i, i + 30)) for i in range(20)})
    return values, {b"expiring": later, b"expiring\r\n": later + 1}


@pytest.mark.spec("TOOL-43")
def test_a_key_becomes_one_resp_array_set_key_value_with_pxat_when_it_expires() -> None:
    assert set_command(b"k", b"v") == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"
    assert set_command(b"a\r\nb", b"") == b"*3\r\n$3\r\nSET\r\n$4\r\na\r\nb\r\n$0\r\n\r\n"
    assert set_command(b"k", b"\x00", 1_700_000_000_123) == (
        b"*5\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\n\x00\r\n$4\r\nPXAT\r\n$13\r\n1700000000123\r\n"
    )


@pytest.mark.spec("TOOL-43", "TOOL-44", "TOOL-45", "FMT-14", "ENG-34")
def test_export_writes_every_live_key_once_in_key_order_and_changes_no_file(
    data_dir: str, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    values, expiries = write_awkward_store(data_dir)
    before = snapshot(data_dir)
    assert main(["export", data_dir]) == 0
    captured = capsysbinary.readouterr()
    assert captured.err == b""
    commands = parse_stream(captured.out)
    keys = [words[1] for words in commands]
    assert keys == sorted(values), "each live key once, in byte order; expired and deleted absent"
    for words in commands:
        key = words[1]
        if key in expiries:
            assert words == [b"SET", key, values[key], b"PXAT", b"%d" % expiries[key]]
        else:
            assert words == [b"SET", key, values[key]]
    assert snapshot(data_dir) == before


@pytest.mark.spec("TOOL-44", "TOOL-39")
def test_export_of_a_damaged_store_writes_nothing_and_exits_1(
    data_dir: str, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    build(data_dir)
    flip(Path(data_dir, segment(2)), 30)
    assert main(["export", data_dir]) == 1
    captured = capsysbinary.readouterr()
    assert captured.out == b""
    assert b"segment-00002.log@16" in captured.err


@pytest.mark.spec("TOOL-44")
def test_export_passes_over_a_torn_tail_as_opening_the_store_cuts_it(data_dir: str) -> None:
    expected = build(data_dir)
    with open(Path(data_dir, segment(3)), "ab") as newest:
        newest.write(b"\x01\x02\x03torn")
    out = io.BytesIO()
    assert export(data_dir, fs=catlog.OsFileSystem(), now_ms=NOW_MS, out=out) == 0
    assert {words[1]: words[2] for words in parse_stream(out.getvalue())} == expected


@pytest.mark.spec("TOOL-45", "TOOL-36")
def test_export_reads_a_directory_a_store_has_open(data_dir: str) -> None:
    with catlog.open(data_dir) as store:
        store.put(b"live", b"while open")
        out = io.BytesIO()
        assert export(data_dir, fs=catlog.OsFileSystem(), now_ms=now_ms(), out=out) == 0
    assert parse_stream(out.getvalue()) == [[b"SET", b"live", b"while open"]]


def redis_call(port: int, *words: bytes) -> bytes:
    """One command on a fresh connection; the raw reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(_command(words))
        reply = b""
        while not _complete(reply):
            chunk = sock.recv(65536)
            assert chunk, "redis closed the connection"
            reply += chunk
        return reply


def _command(words: tuple[bytes, ...]) -> bytes:
    return b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w) for w in words)


def _complete(reply: bytes) -> bool:
    if not reply.endswith(b"\r\n"):
        return False
    if reply[:1] != b"$":
        return True
    length = int(reply[1 : reply.index(b"\r\n")])
    return length < 0 or len(reply) >= reply.index(b"\r\n") + 2 + length + 2


def bulk(reply: bytes) -> bytes | None:
    head, _, rest = reply.partition(b"\r\n")
    length = int(head[1:])
    return None if length < 0 else rest[:length]


@pytest.mark.spec("TOOL-43", "TOOL-45")
def test_export_piped_into_redis_cli_moves_every_key_value_and_expiry_into_redis(
    data_dir: str, tmp_path: Path
) -> None:
    values, expiries = write_awkward_store(data_dir)
    redis_cli = require_tool("redis-cli")
    with running_redis() as port:
        exporter = subprocess.Popen(
            [sys.executable, "-m", "catlog", "export", data_dir],
            stdout=subprocess.PIPE,
        )
        piped = subprocess.run(
            [redis_cli, "-p", str(port), "--pipe"],
            stdin=exporter.stdout,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert exporter.wait(timeout=60) == 0
        assert piped.returncode == 0, piped.stdout + piped.stderr
        assert f"errors: 0, replies: {len(values)}" in piped.stdout, piped.stdout
        assert redis_call(port, b"DBSIZE") == b":%d\r\n" % len(values)
        for key, value in values.items():
            assert bulk(redis_call(port, b"GET", key)) == value, key
            pttl = int(redis_call(port, b"PTTL", key)[1:-2])
            if key in expiries:
                expected = expiries[key] - now_ms()
                assert expected - 5000 <= pttl <= expected + 1000, (key, pttl, expected)
            else:
                assert pttl == -1, key
