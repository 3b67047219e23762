"""Group commit across clients: a reply to a write leaves only after the fsync that covers it
(spec/server.md SRV-5, SRV-6, SRV-18, SRV-20).

Durability under ``fsync="always"`` is the interesting part of the server (SRV-5). A write command
appends its record with :meth:`~catlog.store.Store.put_nowait` and gets a *ticket*; its reply may
not leave before the fsync that covers the ticket. So a connection holds its gathered replies
while it has a write waiting, and asks the :class:`Committer` to make that ticket durable. The
committer runs ``Store.wait_durable`` in one worker thread for the newest ticket any connection
waits on, so one fsync answers every connection that wrote meanwhile: group commit across
clients, with no thread per request. A command that reads state (GET after SET in the same
pipeline) waits until the connection's earlier writes have taken effect, so a client always reads
its own writes; commands that only write (SET without options, MSET, PUT) go on without waiting,
so a pipeline of writes shares one fsync.

The commands see the store through a :class:`TicketingStore`, whose writes append and return at
once; both it and the committer are moved to a new store, in one loop step, when a failed store is
reopened (SRV-18).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Iterator

from .batch import BatchOp
from .errors import CatlogError, StoreFailedError
from .store import Store
from .transaction import Transaction


class Committer:
    """Makes tickets durable for the event loop: one fsync at a time, shared by all waiters."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="catlog-commit")
        self._waiters: list[tuple[int, Callable[[BaseException | None], None]]] = []
        self._in_flight = False
        self._newest = 0

    def when_durable(self, ticket: int, callback: Callable[[BaseException | None], None]) -> None:
        """Call ``callback(None)`` once ``ticket`` is durable (or ``callback(error)``)."""
        self._waiters.append((ticket, callback))
        self._newest = max(self._newest, ticket)
        if not self._in_flight:
            self._start()

    def _start(self) -> None:
        self._in_flight = True
        target = self._newest
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._pool, self._store.wait_durable, target)
        future.add_done_callback(lambda done: self._finished(target, done))

    def _finished(self, target: int, done: asyncio.Future[None]) -> None:
        self._in_flight = False
        error = done.exception()
        ready = [(t, cb) for t, cb in self._waiters if t <= target or error is not None]
        self._waiters = [(t, cb) for t, cb in self._waiters if t > target and error is None]
        for _ticket, callback in ready:
            callback(error)
        if self._waiters:
            self._start()

    @property
    def idle(self) -> bool:
        """No fsync in flight and nobody waiting: the store may be swapped (SRV-18)."""
        return not self._in_flight and not self._waiters

    def retarget(self, store: Store) -> None:
        assert self.idle, "a ticket of the old store would be waited on in the new one"
        self._store = store
        self._newest = 0  # the new store numbers its tickets from 1 again

    def close(self) -> None:
        self._pool.shutdown(wait=True)


class TicketingStore:
    """The store as the command layer sees it, with writes that do not wait for their fsync.

    :mod:`catlog.commands` calls ``put`` and ``delete``; here they are
    :meth:`~catlog.store.Store.put_nowait` and :meth:`~catlog.store.Store.delete_nowait`, which
    append and return at once. The connection learns of a command's writes from the store's
    :attr:`~catlog.store.Store.last_ticket` and, under ``fsync="always"``, waits on it before it
    replies (SRV-5). ``put`` is the store's own bound method: the server benchmark showed a
    wrapper's frame on every SET.
    """

    __slots__ = (
        "compact_in_background",
        "expires_at",
        "get",
        "get_many",
        "now_ms",
        "owed",
        "put",
        "stats",
        "store",
    )

    def __init__(self, store: Store) -> None:
        self.owed = 0
        """ENG-51: the ticket a conditional write that wrote nothing was judged on; its reply
        waits for it, as a write's does. Set and cleared within one command, on the loop."""
        self.retarget(store)

    def retarget(self, store: Store) -> None:
        """SRV-18: serve from ``store`` from now on (a failed store was reopened)."""
        self.store = store
        self.get = store.get
        self.get_many = store.get_many
        self.put = store.put_nowait
        self.stats = store.stats
        self.expires_at = store.expires_at
        self.now_ms = store.now_ms
        self.compact_in_background = store.compact_in_background

    @property
    def failure(self) -> StoreFailedError | None:
        """PROTO-70: why the store refuses writes, for INFO."""
        return self.store.failure

    def delete(self, key: bytes) -> bool:
        return self._judged(self.store.delete_nowait(key))

    def write_batch(self, ops: list[BatchOp]) -> int:
        return self.store.write_batch_nowait(ops)

    def modify(self, key: bytes, change: Callable[[bytes | None], bytes | None]) -> bytes | None:
        """ENG-80, ENG-51: one that wrote nothing because of what ``change`` was shown (it
        returned ``None`` or raised) owes a wait for the writes it was shown."""
        try:
            written, ticket = self.store.modify_nowait(key, change)
        except CatlogError:
            raise  # the store's own refusal: nothing was judged
        except Exception:
            self.owed = self.store.last_ticket
            raise
        if written is None:
            self.owed = ticket
        return written

    def expire_at(self, key: bytes, expires_at_ms: int) -> bool:
        return self._judged(self.store.expire_at_nowait(key, expires_at_ms))

    def persist(self, key: bytes) -> bool:
        return self._judged(self.store.persist_nowait(key))

    def transaction(self) -> OwingTransaction:
        """PROTO-85, SRV-5: the engine's transaction, not waiting for its fsync: the connection
        waits on the batch's ticket as on any write's. One that wrote nothing may have read
        writes still waiting for their fsync, so its reply owes a wait for them (ENG-51)."""
        return OwingTransaction(self)

    def sync(self) -> None:
        """PROTO-92: SAVE makes every write so far durable."""
        self.store.sync()

    def _judged(self, outcome: tuple[bool, int]) -> bool:
        """ENG-51: one that wrote nothing owes a wait for the writes it was judged on."""
        wrote, ticket = outcome
        if not wrote:
            self.owed = ticket
        return wrote

    def __len__(self) -> int:
        return len(self.store)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.store)

    def __contains__(self, key: object) -> bool:
        return key in self.store


class OwingTransaction:
    """:meth:`TicketingStore.transaction`'s block: the engine's transaction, and on a clean exit
    without writes, the wait its reply owes (ENG-51). A class rather than a generator-based
    context manager, for the loop benchmark's INCR: contextlib's frames are on its path."""

    __slots__ = ("_tickets", "_tx")

    def __init__(self, tickets: TicketingStore) -> None:
        self._tickets = tickets
        self._tx = tickets.store.transaction(wait=False)

    def __enter__(self) -> Transaction:
        return self._tx.__enter__()

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        tx = self._tx
        tx.__exit__(kind, *rest)
        if kind is None and not tx.ticket:
            tickets = self._tickets
            tickets.owed = tickets.store.last_ticket
