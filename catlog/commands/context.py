"""What every command runs against: the store, as the commands see it, and the server around
the sessions (the settings INFO, HELLO and CONFIG GET report, and the counters INFO shows).

Clauses: PROTO-46 (the Redis version reported), PROTO-48, PROTO-70, PROTO-92, PROTO-101.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Final, Protocol, runtime_checkable

from catlog.batch import BatchOp
from catlog.clock import Clock, SystemClock
from catlog.errors import StoreFailedError
from catlog.multi import EngineTransaction
from catlog.stats import StoreStats

REDIS_VERSION: Final = "7.2.0"
"""The Redis version whose behaviour catlog follows; HELLO and INFO report it (PROTO-46)."""


class KeyValueStore(Protocol):
    """What the commands need from a store; :class:`catlog.Store` is one."""

    def get(self, key: bytes) -> bytes | None: ...

    def get_many(self, keys: list[bytes]) -> list[bytes | None]: ...

    def put(self, key: bytes, value: bytes, *, expires_at_ms: int = ...) -> object: ...

    def delete(self, key: bytes) -> bool: ...

    def write_batch(self, ops: list[BatchOp]) -> object: ...

    def modify(
        self, key: bytes, change: Callable[[bytes | None], bytes | None]
    ) -> bytes | None: ...

    def expire_at(self, key: bytes, expires_at_ms: int) -> bool: ...

    def persist(self, key: bytes) -> bool: ...

    def expires_at(self, key: bytes) -> int | None: ...

    def now_ms(self) -> int: ...

    def compact_in_background(self) -> bool: ...

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[bytes]: ...

    def __contains__(self, key: object) -> bool: ...

    def transaction(self) -> AbstractContextManager[EngineTransaction]: ...


@runtime_checkable
class StatsSource(Protocol):
    """A store that can say how big it is on disk, for ``INFO persistence`` (PROTO-46)."""

    def stats(self) -> StoreStats: ...


@runtime_checkable
class FailureSource(Protocol):
    """A store that can say why it refuses writes, for ``INFO persistence`` (PROTO-70)."""

    @property
    def failure(self) -> StoreFailedError | None: ...


class SaveRecord:
    """PROTO-92: the wall-clock second of the last successful SAVE; 0: none since the start."""

    __slots__ = ("at",)

    def __init__(self) -> None:
        self.at = 0


class ServerCounters:
    """PROTO-101: what INFO's clients and stats sections count, kept by the server.

    ``instantaneous_ops_per_sec`` follows Redis's design: the server calls :meth:`sample`
    every 100 ms, which keeps the last 16 readings of the command count, and the rate is the
    count's growth across those readings (about 1.6 s) divided by the time they span.
    """

    __slots__ = ("_samples", "commands", "connected", "connections", "hits", "misses")

    SAMPLES: Final = 16

    def __init__(self) -> None:
        self.commands = 0
        """Commands read from RESP connections (PROTO-101)."""
        self.connected = 0
        self.connections = 0
        """Connections accepted since the start."""
        self.hits = 0
        self.misses = 0
        self._samples: collections.deque[tuple[float, int]] = collections.deque(maxlen=self.SAMPLES)

    def looked_up(self, found: bool) -> None:
        """PROTO-113: one key read by a command: a hit if it had a value, else a miss."""
        if found:
            self.hits += 1
        else:
            self.misses += 1

    def sample(self, now: float) -> None:
        self._samples.append((now, self.commands))

    def ops_per_sec(self) -> int:
        if len(self._samples) < 2:
            return 0
        (first, before), (last, after) = self._samples[0], self._samples[-1]
        return round((after - before) / (last - first)) if last > first else 0


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """What INFO, HELLO and CONFIG GET say about the server around the sessions."""

    tcp_port: int = 0
    process_id: int = 0
    os: str = ""
    fsync: str = "always"
    clock: Clock = field(default_factory=SystemClock)
    started: float = 0.0
    """The clock's monotonic reading when the server started, for uptime."""
    saves: SaveRecord = field(default_factory=SaveRecord)
    """PROTO-92: when SAVE last succeeded, for LASTSAVE."""
    counters: ServerCounters = field(default_factory=ServerCounters)
    idle_timeout: float = 0.0
    """CONFIG GET timeout (PROTO-48): seconds before an idle connection is closed; 0: never."""
    max_clients: int = 0


@runtime_checkable
class Syncable(Protocol):
    """A store that can make every write so far durable, for SAVE (PROTO-92)."""

    def sync(self) -> None: ...
