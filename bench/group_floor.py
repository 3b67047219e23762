"""A CEILING, NOT A PRODUCT: the least a durable put with group commit can do with Python threads.

The group-commit benchmark runs these beside catlog in the same turns, to tell what the machine
and CPython allow 16 threads that each wait for their own write to be durable. Each put encodes
a record as the pure-Python floor does (a header ``struct.pack``, one ``crc32c``), queues it and
waits; a leader takes every queued record, writes them with one ``os.write`` and
``os.fdatasync``-s them with no lock held, so that others queue behind it. No index, no
segments, no checks, no error handling. Do not store anything with them.

- :class:`TextbookGroupCommit`: the textbook leader/follower scheme on one condition; a commit
  wakes every waiter, and the first to find no fsync in flight leads the next.
- :class:`MinimalGroupCommit`: catlog's scheme (ENG-29, ENG-45) in the least code: each waiter
  sleeps on a lock of its own and the covered ones wake each other in turn (a relay); the lead
  passes to the oldest uncovered waiter; a leader first waits, at most as long as the last
  fsync took, for the writers the last commit covered to come back.
"""

from __future__ import annotations

import collections
import os
import struct
import threading
import time

from crc32c import crc32c

_HEADER = struct.Struct("<IBQII")


def _record(key: bytes, value: bytes) -> bytes:
    body = key + value
    return _HEADER.pack(crc32c(body), 1, time.time_ns() // 1_000_000, len(key), len(value)) + body


class TextbookGroupCommit:
    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._ready = threading.Condition(threading.Lock())
        self._queued: list[bytes] = []
        self._appended = 0
        self._durable = 0
        self._syncing = False

    def put(self, key: bytes, value: bytes) -> None:
        record = _record(key, value)
        ready = self._ready
        with ready:
            self._queued.append(record)
            self._appended += 1
            mine = self._appended
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


class MinimalGroupCommit:
    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._state = threading.Condition(threading.Lock())
        self._queued: list[bytes] = []
        self._appended = 0
        self._durable = 0
        self._syncing = False
        self._sleepers: list[tuple[int, threading.Lock]] = []
        self._relay: collections.deque[threading.Lock] = collections.deque()
        self._baton: threading.Lock | None = None
        self._away = 0
        self._last_fsync = 0.0

    def put(self, key: bytes, value: bytes) -> None:
        record = _record(key, value)
        state = self._state
        sleeper: threading.Lock | None = None
        with state:
            self._queued.append(record)
            self._appended += 1
            mine = self._appended
            if self._away:
                self._away -= 1
                if not self._away:
                    state.notify()
            if self._syncing:
                sleeper = threading.Lock()
                sleeper.acquire()
                self._sleepers.append((mine, sleeper))
            else:
                self._syncing = True
        if sleeper is not None:
            sleeper.acquire()
            with state:
                if self._relay:
                    self._relay.popleft().release()
                if self._baton is not sleeper:
                    return
                self._baton = None
        with state:
            deadline = time.monotonic() + self._last_fsync
            while self._away and (left := deadline - time.monotonic()) > 0:
                state.wait(left)
            data = b"".join(self._queued)
            self._queued.clear()
            covered = self._appended
        began = time.monotonic()
        os.write(self._fd, data)
        os.fdatasync(self._fd)
        with state:
            self._last_fsync = time.monotonic() - began
            self._durable = covered
            woken = [lock for ticket, lock in self._sleepers if ticket <= covered]
            self._sleepers = [entry for entry in self._sleepers if entry[0] > covered]
            self._away = 1 + len(woken)
            self._relay.extend(woken)
            if self._relay:
                self._relay.popleft().release()
            if self._sleepers:
                _, self._baton = self._sleepers.pop(0)
                self._baton.release()
            else:
                self._syncing = False

    def close(self) -> None:
        os.close(self._fd)
