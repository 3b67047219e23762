"""A key named twice in one multi-key command, under every fsync policy (PROTO-37 .. PROTO-40).

Redis 7 runs a multi-key command key by key, so: ``DEL k k`` deletes ``k`` once and counts it
once (the second lookup finds nothing); ``EXISTS k k`` counts it twice; ``MGET k k`` gives its
value twice; ``MSET k 1 k 2`` leaves ``2``. These are the cases where catlog can go wrong without
any single-key test noticing: under ``fsync=always`` a write takes effect only once its fsync
returns (ENG-21), so a command that judged each key on the store's effective state would see the
first ``DEL k`` not yet applied when it meets the second.

Every case runs against a real server under each policy, both with its set-up answered first and
pipelined in one send with its set-up (a later command then waits for the earlier writes, SRV-5).
The replies are compared byte for byte, and afterwards the data directory (read with ``catlog
dump --json``) must hold exactly one DELETE record for each key deleted: a repeated key writes once.
"""

from __future__ import annotations

import collections
import json
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

import pytest

from tests.server.conftest import RunningServer, Serve


def resp(*words: bytes) -> bytes:
    return b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%b\r\n" % (len(w), w) for w in words)


def _command(text: str) -> bytes:
    return resp(*(word.encode() for word in text.split()))


@dataclass(frozen=True)
class Case:
    name: str
    setup: tuple[str, ...]
    """Commands run first, each answered ``+OK``."""
    steps: tuple[tuple[str, bytes], ...]
    """Each command and the exact reply Redis 7 gives it."""
    deletes: dict[str, int]
    """How many DELETE records each key must have on disk after the case."""


NIL = b"$-1\r\n"


def bulk(text: str) -> bytes:
    return b"$%d\r\n%b\r\n" % (len(text), text.encode())


def array(*items: bytes) -> bytes:
    return b"*%d\r\n" % len(items) + b"".join(items)


CASES = (
    Case(
        "DEL of one key named three times",
        ("SET d 1",),
        (("DEL d d d", b":1\r\n"), ("EXISTS d", b":0\r\n"), ("GET d", NIL)),
        {"d": 1},
    ),
    Case(
        "DEL of repeated keys, some missing",
        ("SET a 1", "SET b 2"),
        (("DEL a b a c b", b":2\r\n"), ("MGET a b c", array(NIL, NIL, NIL))),
        {"a": 1, "b": 1, "c": 0},
    ),
    Case("DEL of a missing key twice", (), (("DEL none none", b":0\r\n"),), {"none": 0}),
    Case(
        "DEL repeated, then DEL again",
        ("SET y 1",),
        (("DEL y y", b":1\r\n"), ("DEL y y", b":0\r\n"), ("EXISTS y y", b":0\r\n")),
        {"y": 1},
    ),
    Case(
        "EXISTS counts a repeated key each time",
        ("SET e 1",),
        (("EXISTS e e e", b":3\r\n"), ("EXISTS e nope e nope", b":2\r\n")),
        {"e": 0},
    ),
    Case(
        "MGET answers a repeated key each time",
        ("SET m 1",),
        (("MGET m m nope m", array(bulk("1"), bulk("1"), NIL, bulk("1"))),),
        {"m": 0},
    ),
    Case(
        "MSET of one key twice keeps the later value",
        (),
        (
            ("MSET s 1 s 2", b"+OK\r\n"),
            ("GET s", bulk("2")),
            ("MGET s s", array(bulk("2"), bulk("2"))),
        ),
        {"s": 0},
    ),
    Case(
        "MSET with a key around another",
        ("SET u 0",),
        (("MSET u 1 v 1 u 3", b"+OK\r\n"), ("MGET u v", array(bulk("3"), bulk("1")))),
        {"u": 0},
    ),
    Case(
        "MSET of a key twice, then DEL of it twice",
        (),
        (("MSET x 1 x 2", b"+OK\r\n"), ("DEL x x", b":1\r\n"), ("EXISTS x x", b":0\r\n")),
        {"x": 1},
    ),
    Case(
        "DEL of a key that SET with options wrote",
        ("SET t 1 EX 1000",),
        (("DEL t t", b":1\r\n"), ("TTL t", b":-2\r\n")),
        {"t": 1},
    ),
)


def _exchange(sock: socket.socket, data: bytes, expected_length: int) -> bytes:
    sock.sendall(data)
    got = b""
    deadline = time.monotonic() + 10
    while len(got) < expected_length and time.monotonic() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
    return got


def _run_case(server: RunningServer, case: Case, prefix: str, pipelined: bool) -> list[str]:
    """Run one case on keys renamed with ``prefix``; returns what differed from Redis."""

    def named(text: str) -> bytes:
        words = text.split()
        renamed = [words[0]] + [w if w.isdigit() or w == "EX" else prefix + w for w in words[1:]]
        return _command(" ".join(renamed))

    setup = [(text, named(text), b"+OK\r\n") for text in case.setup]
    steps = [(text, named(text), reply) for text, reply in case.steps]
    problems: list[str] = []
    with server.connect() as sock:
        exchanges = [setup + steps] if pipelined else [[one] for one in setup + steps]
        for exchange in exchanges:
            sent = b"".join(command for _, command, _ in exchange)
            expected = b"".join(reply for _, _, reply in exchange)
            got = _exchange(sock, sent, len(expected))
            if got != expected:
                texts = " | ".join(text for text, _, _ in exchange)
                how = "pipelined" if pipelined else "one by one"
                problems.append(f"{case.name} ({how}): {texts}: got {got!r}, Redis: {expected!r}")
    return problems


def _deletes_on_disk(data_dir: str) -> collections.Counter[str]:
    dump = subprocess.run(
        [sys.executable, "-m", "catlog", "dump", "--json", data_dir],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    counts: collections.Counter[str] = collections.Counter()
    for line in dump.stdout.splitlines():
        record = json.loads(line)
        if record.get("type") == "DELETE":
            counts[bytes.fromhex(record["key_hex"]).decode()] += 1
    return counts


@pytest.mark.spec("PROTO-37", "PROTO-38", "PROTO-39", "PROTO-40", "PROTO-60")
@pytest.mark.parametrize("fsync", ["always", "interval", "never"])
def test_repeated_keys_in_multi_key_commands_behave_as_in_redis(serve: Serve, fsync: str) -> None:
    server = serve("--fsync", fsync, "--fsync-interval-ms", "50")
    problems: list[str] = []
    expected_deletes: dict[str, int] = {}
    for number, case in enumerate(CASES):
        for pipelined in (False, True):
            prefix = f"{number}{'p' if pipelined else 'r'}-"
            problems += _run_case(server, case, prefix, pipelined)
            expected_deletes.update({prefix + k: n for k, n in case.deletes.items()})
    assert server.stop() == 0
    written = _deletes_on_disk(server.data_dir)
    for key, count in sorted(expected_deletes.items()):
        if written[key] != count:
            problems.append(f"{key}: {written[key]} DELETE records on disk, expected {count}")
    assert problems == [], "\n".join(problems)
