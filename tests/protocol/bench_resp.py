"""Micro-benchmark of the RESP reader and reply encoder: ``python -m tests.protocol.bench_resp``.

Pipelined ``SET key:000000012345 <100 bytes>`` in batches of 16 (redis-benchmark -P 16 -d 100),
three ways: parsing only; parsing and encoding the replies; parsing, running against a store with
fsync="never" and encoding. Then the reader alone on pipelined GET in batches of 16, and on
``SET`` of a 1 MiB value arriving in 64 KiB reads. Prints commands per second and microseconds
per command (best of a few runs: the machine may be busy).

On the development machine (2 cores), the fast walk of catlog/protocol/resp.py took parsing
SET x16 from about 2.0 to 0.85-1.0 us per command, GET x16 from 1.3 to 0.65, and left the 1 MiB
value unchanged at about 1.4 ms (the join of its pieces).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable

import catlog
from catlog.commands import Session
from catlog.protocol import NEED_DATA, RespParser
from catlog.protocol.replies import OK, Reply, encode_many
from catlog.protocol.resp import encode_command

BATCH = encode_command(b"SET", b"key:000000012345", os.urandom(100)) * 16
GETS = encode_command(b"GET", b"key:000000012345") * 16
_LARGE = encode_command(b"SET", b"key:000000012345", os.urandom(1 << 20))
LARGE_PIECES = [_LARGE[i : i + 65536] for i in range(0, len(_LARGE), 65536)]
ROUNDS = 20_000
REPEATS = 3


def run(label: str, answer: Callable[[list[bytes]], Reply] | None) -> None:
    best = float("inf")
    for _ in range(REPEATS):
        parser = RespParser()
        done = 0
        started = time.perf_counter()
        for _ in range(ROUNDS):
            parser.receive_data(BATCH)
            replies: list[Reply] = []
            while True:
                command = parser.next_command()
                if command is NEED_DATA:
                    break
                assert isinstance(command, list), "the batch is well formed"
                if answer is not None:
                    replies.append(answer(command))
                done += 1
            encode_many(replies)
        best = min(best, (time.perf_counter() - started) / done)
    report(label, best)


def parse_only(label: str, reads: list[bytes], rounds: int) -> None:
    best = float("inf")
    for _ in range(REPEATS):
        done = 0
        started = time.perf_counter()
        for _ in range(rounds):
            parser = RespParser()
            for data in reads:
                parser.receive_data(data)
                while parser.next_command() is not NEED_DATA:
                    done += 1
        best = min(best, (time.perf_counter() - started) / done)
    report(label, best)


def report(label: str, seconds_per_command: float) -> None:
    rate = 1 / seconds_per_command
    print(f"{label:<40} {rate:>12,.0f} commands/s {seconds_per_command * 1e6:>10.2f} us/command")


def main() -> None:
    run("parse SET x16", None)
    run("parse + encode OK", lambda command: OK)
    with tempfile.TemporaryDirectory() as path, catlog.open(path, fsync="never") as store:
        session = Session(store)
        run("parse + SET (fsync=never) + encode", session.execute)
    parse_only("parse GET x16", [GETS] * 100, ROUNDS // 100)
    parse_only("parse SET of 1 MiB in 64 KiB reads", LARGE_PIECES, 300)


if __name__ == "__main__":
    main()
