"""Transactions: reads and writes of several keys as one step, written as one batch (ENG-54).

A read-modify-write such as an increment must read the newest value and write the new one with no
other write between them, and must see writes still waiting for their fsync (ENG-51): a pipelined
``SET k 1`` then ``INCR k`` gives 2. A :class:`Transaction` gives that by holding the store's write
lock for its whole block; its writes gather here, reads of a key it wrote see its own write, and
when the block ends they are appended as one batch (ENG-37), so after a crash all of them are
there or none. It is what the server's ``MULTI``/``EXEC`` and its read-modify-write commands are
built on (but for ``INCR`` and kin, which change one key with the lighter
:meth:`catlog.Store.modify`, ENG-80), and it serves an embedded user the same way::

    with store.transaction() as tx:
        tx.put(b"hits", b"%d" % (int(tx.get(b"hits") or b"0") + 1))
"""

from __future__ import annotations

from .arguments import check_expiry, check_key, check_value, ttl_ms
from .batch import Write
from .codec import MAX_EXPIRING_VALUE_SIZE
from .updates import abort, begin, commit, newest_value
from .writer import Writer


class Transaction:
    """ENG-54: a transaction's view of the store; made by :meth:`catlog.Store.transaction`."""

    __slots__ = ("_open", "_wait", "_writer", "_writes", "_written", "ticket")

    def __init__(self, writer: Writer, *, wait: bool) -> None:
        self._writer = writer
        self._wait = wait
        self._writes: list[Write] = []
        self._written: dict[bytes, tuple[bytes | None, int]] = {}
        """The newest write of each key this transaction wrote: its value (``None`` for a
        delete) and its expiry (0 for none)."""
        self._open = False
        self.ticket = 0
        """The ticket of the batch the transaction appended, 0 if it wrote nothing (ENG-28)."""

    def __enter__(self) -> Transaction:
        begin(self._writer)
        self._open = True
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        self._open = False
        if exc_type is not None:
            abort(self._writer)
            return
        self.ticket = commit(self._writer, self._writes)
        if self.ticket and self._wait:
            self._writer.wait_durable(self.ticket)

    def _newest(self, key: bytes) -> tuple[bytes, int] | None:
        if not self._open:
            raise RuntimeError("a transaction is used only inside its with block")
        key = check_key(key)
        if key in self._written:
            value, expires_at = self._written[key]
            if value is None or (expires_at and self._writer.now_ms() > expires_at):
                return None
            return value, expires_at
        return newest_value(self._writer, key)

    def get(self, key: bytes) -> bytes | None:
        """The key's value as every write before this one, and this transaction's own, leave it."""
        newest = self._newest(key)
        return None if newest is None else newest[0]

    def expires_at(self, key: bytes) -> int | None:
        """When the key expires (ms since the epoch), ``None`` if never; ``KeyError`` if it has
        no value (ENG-35)."""
        newest = self._newest(key)
        if newest is None:
            raise KeyError(key)
        return newest[1] or None

    def put(
        self,
        key: bytes,
        value: bytes,
        *,
        ttl: float | None = None,
        expires_at_ms: int | None = None,
    ) -> None:
        """Write ``value`` (expiring as :meth:`catlog.Store.put` would) when the block ends."""
        self._newest(key)  # checks the key, and that the block is open
        if ttl is not None:
            if expires_at_ms is not None:
                raise ValueError("give ttl or expires_at_ms, not both")
            expires_at_ms = self._writer.now_ms() + ttl_ms(ttl)
        elif expires_at_ms is not None:
            check_expiry(expires_at_ms)
        at = expires_at_ms or 0
        value = check_value(value, MAX_EXPIRING_VALUE_SIZE) if at else check_value(value)
        self._record(check_key(key), value, at)

    def delete(self, key: bytes) -> bool:
        """Delete the key when the block ends; whether it has a value now (nothing written if
        not, ENG-5)."""
        if self._newest(key) is None:
            return False
        self._record(check_key(key), None, 0)
        return True

    def _record(self, key: bytes, value: bytes | None, expires_at: int) -> None:
        self._writes.append((key, value, expires_at))
        self._written[key] = (value, expires_at)
