"""What Redis's MULTI/EXEC/WATCH need beyond the commands themselves (spec/protocol.md, 5.3).

Two pieces, neither touching a socket:

* :class:`Watches`: which connections watch which keys (PROTO-84). Every command that changes a
  key *touches* it, as Redis's ``signalModifiedKey`` does; a touch marks every connection watching
  that key dirty, and a dirty connection's next EXEC runs nothing. One registry is shared by all
  the sessions of a server, so one client's write spoils another's transaction.
* :class:`TransactionView`: an engine transaction (ENG-54) seen through the interface the commands
  use (:class:`catlog.commands.KeyValueStore`), so the queued commands of an EXEC run unchanged
  and their writes become one batch (PROTO-85): no other client's command runs between them, and
  after a crash all of them are there or none.

The engine holds its write lock for the whole transaction, and the store's key listing takes that
lock too; so the view lists keys from a snapshot taken just before the transaction began, plus
the transaction's own writes (PROTO-85's note).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import Protocol

from .arguments import check_key, check_value, ttl_ms
from .batch import BatchOp
from .codec import MAX_EXPIRING_VALUE_SIZE


class Watcher(Protocol):
    """A connection that may watch keys: the registry sets ``dirty`` when one is touched."""

    dirty: bool


class Watches:
    """PROTO-84: the keys each connection watches, shared by every session of a server.

    All use is on the server's event loop (or one test's thread): no lock guards it.
    """

    __slots__ = ("_by_key",)

    def __init__(self) -> None:
        self._by_key: dict[bytes, set[Watcher]] = {}

    @property
    def active(self) -> bool:
        """Whether anybody watches anything: when not, a write need not touch its keys."""
        return bool(self._by_key)

    def watch(self, watcher: Watcher, key: bytes) -> None:
        self._by_key.setdefault(key, set()).add(watcher)

    def unwatch(self, watcher: Watcher, keys: Iterator[bytes]) -> None:
        for key in keys:
            watchers = self._by_key.get(key)
            if watchers is not None:
                watchers.discard(watcher)
                if not watchers:
                    del self._by_key[key]

    def touch(self, key: bytes) -> None:
        """PROTO-84: ``key`` was changed; whoever watches it is now dirty."""
        by_key = self._by_key
        if by_key:
            for watcher in by_key.get(key, ()):
                watcher.dirty = True


class EngineTransaction(Protocol):
    """What :class:`catlog.Transaction` offers (ENG-54); the view needs nothing more."""

    def get(self, key: bytes) -> bytes | None: ...

    def expires_at(self, key: bytes) -> int | None: ...

    def put(
        self,
        key: bytes,
        value: bytes,
        *,
        ttl: float | None = None,
        expires_at_ms: int | None = None,
    ) -> None: ...

    def delete(self, key: bytes) -> bool: ...


class TransactionView:
    """PROTO-85: the store as the commands of one EXEC see it: every read and write goes
    through the engine transaction ``tx``.

    ``keys`` is the store's key listing taken before ``tx`` began (empty when no queued command
    lists keys); ``now_ms`` is the store's clock, which takes no lock.
    """

    def __init__(self, tx: EngineTransaction, keys: list[bytes], now_ms: Callable[[], int]) -> None:
        self._tx = tx
        self._keys = keys
        self._written: dict[bytes, None] = {}
        self.now_ms = now_ms
        self.compact_requested = False
        """BGREWRITEAOF ran inside the EXEC: the compaction starts once the transaction ended,
        since starting it takes the lock the transaction holds."""

    def get(self, key: bytes) -> bytes | None:
        return self._tx.get(key)

    def get_many(self, keys: list[bytes]) -> list[bytes | None]:
        return [self._tx.get(key) for key in keys]

    def expires_at(self, key: bytes) -> int | None:
        return self._tx.expires_at(key)

    def put(
        self,
        key: bytes,
        value: bytes,
        *,
        ttl: float | None = None,
        expires_at_ms: int | None = None,
    ) -> None:
        self._tx.put(key, value, ttl=ttl, expires_at_ms=expires_at_ms or None)
        self._written[key] = None

    def delete(self, key: bytes) -> bool:
        self._written[key] = None
        return self._tx.delete(key)

    def modify(self, key: bytes, change: Callable[[bytes | None], bytes | None]) -> bytes | None:
        """ENG-80 within the transaction, whose lock already makes it one step."""
        old = self._tx.get(key)
        new = change(old)
        if new is not None:
            expires_at = None if old is None else self._tx.expires_at(key)
            self.put(key, new, expires_at_ms=expires_at)
        return new

    def write_batch(self, ops: list[BatchOp]) -> object:
        """ENG-37's all-or-nothing: every operation is checked before any is recorded."""
        checked: list[tuple[bytes, bytes | None, int]] = []
        for op in ops:
            kind, key, *rest = op
            if kind == "delete" and not rest:
                checked.append((check_key(key), None, 0))
                continue
            ttl = rest[1] if len(rest) == 2 else None
            if ttl is None:
                checked.append((check_key(key), check_value(rest[0]), 0))
            else:
                value = check_value(rest[0], MAX_EXPIRING_VALUE_SIZE)
                checked.append((check_key(key), value, self.now_ms() + ttl_ms(ttl)))
        for name, data, expires_at in checked:
            if data is None:
                self.delete(name)
            else:
                self.put(name, data, expires_at_ms=expires_at)
        return None

    def expire_at(self, key: bytes, expires_at_ms: int) -> bool:
        """ENG-35 within the transaction: a time already past deletes the key."""
        value = self._tx.get(key)
        if value is None:
            return False
        if expires_at_ms <= self.now_ms():
            return self.delete(key)
        self.put(key, value, expires_at_ms=expires_at_ms)
        return True

    def persist(self, key: bytes) -> bool:
        value = self._tx.get(key)
        if value is None or self._tx.expires_at(key) is None:
            return False
        self.put(key, value)
        return True

    def compact_in_background(self) -> bool:
        self.compact_requested = True
        return True

    def transaction(self) -> AbstractContextManager[EngineTransaction]:
        """A command that reads and writes as one step (INCR) joins the EXEC's transaction."""
        return nullcontext(self)

    def _live(self) -> list[bytes]:
        candidates = dict.fromkeys(self._keys)
        candidates.update(self._written)
        return [key for key in candidates if self._tx.get(key) is not None]

    def __len__(self) -> int:
        return len(self._live())

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._live())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, bytes) and self._tx.get(key) is not None
