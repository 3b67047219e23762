"""Micro-benchmark of the RESP reader and reply encoder: ``python -m tests.protocol.bench_resp``.

Pipelined ``SET key:000000012345 <100 bytes>`` in batches of 16 (redis-benchmark -P 16 -d 100),
three ways: parsing only; parsing and encoding the replies; parsing, running against a store with
fsync="never" and encoding. Prints commands per second.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable

import catlog
from catlog.commands import Session
from catlog.protocol import NEED_DATA, RespParser
from catlog.protocol.replies import OK, Reply, encode_many
from catlog.protocol.resp import encode_command

BATCH = encode_command(b"SET", b"key:000000012345", b"x" * 100) * 16
ROUNDS = 20_000


def run(label: str, answer: Callable[[list[bytes]], Reply] | None) -> None:
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
    rate = done / (time.perf_counter() - started)
    print(f"{label:<40} {rate:>12,.0f} commands/s")


def main() -> None:
    run("parse", None)
    run("parse + encode OK", lambda command: OK)
    with tempfile.TemporaryDirectory() as path, catlog.open(path, fsync="never") as store:
        session = Session(store)
        run("parse + SET (fsync=never) + encode", session.execute)


if __name__ == "__main__":
    main()
