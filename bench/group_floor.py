"""A CEILING, NOT A PRODUCT: the least a durable put with group commit can do with Python threads.

The group-commit benchmark runs this beside catlog in the same turns, to tell what the machine
and CPython allow 16 threads that each wait for their own write to be durable. Each put encodes
a record as the pure-Python floor does (a header ``struct.pack``, one ``crc32c``), queues it and
waits; the first waiter to find no fsync in flight leads: it takes every queued record, writes
them with one ``os.write``, ``os.fdatasync``-s with the lock released (so others queue behind
it), and wakes every waiter. That is the textbook leader/follower group commit in twenty lines:
no index, no segments, no checks, no error handling. Do not store anything with it.
"""

from __future__ import annotations

import os
import struct
import threading
import time

from crc32c import crc32c

_HEADER = struct.Struct("<IBQII")


class MinimalGroupCommit:
    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._ready = threading.Condition(threading.Lock())
        self._queued: list[bytes] = []
        self._appended = 0
        self._durable = 0
        self._syncing = False
        self._index: dict[bytes, int] = {}

    def put(self, key: bytes, value: bytes) -> None:
        body = key + value
        record = _HEADER.pack(crc32c(body), 1, time.time_ns() // 1_000_000, len(key), len(value))
        ready = self._ready
        with ready:
            self._queued.append(record + body)
            self._appended += 1
            mine = self._appended
            self._index[key] = mine
            while self._durable < mine:
                if self._syncing:
                    ready.wait()
                    continue
                self._syncing = True
                data = b"".join(self._queued)
                self._queued.clear()
                covered = self._appended
                ready.release()
                try:
                    os.write(self._fd, data)
                    os.fdatasync(self._fd)
                finally:
                    ready.acquire()
                self._durable = covered
                self._syncing = False
                ready.notify_all()

    def close(self) -> None:
        os.close(self._fd)
