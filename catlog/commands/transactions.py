"""MULTI, EXEC, DISCARD, WATCH and UNWATCH; the queueing itself is :meth:`Session.execute`'s.

Clauses: PROTO-80 .. PROTO-85.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Final

from catlog.errors import CatlogError
from catlog.multi import TransactionView
from catlog.protocol.replies import NULL_ARRAY, OK, Error, Reply, SimpleString

from .arguments import _store_error

if TYPE_CHECKING:
    from . import Session


QUEUED: Final = SimpleString(b"QUEUED")
EXEC_ABORT: Final = Error("EXECABORT Transaction discarded because of previous errors.")

_RUN_INSIDE_MULTI: Final = frozenset(("multi", "exec", "discard", "watch", "quit"))
"""PROTO-80: what runs at once inside MULTI rather than being queued (Redis's processCommand)."""

_LISTS_KEYS: Final = frozenset((b"keys", b"scan", b"dbsize", b"randomkey", b"flushdb", b"flushall"))
"""PROTO-85: commands that list the keyspace, for which EXEC takes the key listing first."""


def _multi(session: Session, args: list[bytes]) -> Reply:
    """PROTO-80"""
    if session.queue is not None:
        return Error("ERR MULTI calls can not be nested")
    session.queue = []
    return OK


def _discard(session: Session, args: list[bytes]) -> Reply:
    """PROTO-82"""
    if session.queue is None:
        return Error("ERR DISCARD without MULTI")
    session.queue = None
    session.queue_failed = False
    session.unwatch()
    return OK


def _exec(session: Session, args: list[bytes]) -> Reply:
    """PROTO-81, PROTO-83, PROTO-85: run the queue as one engine transaction."""
    queue = session.queue
    if queue is None:
        return Error("ERR EXEC without MULTI")
    failed = session.queue_failed
    session.queue = None
    session.queue_failed = False
    store = session.store
    if failed:
        session.unwatch()
        return EXEC_ABORT
    now = store.now_ms()
    expired = any(at is not None and now > at for at in session.watched.values())
    if session.dirty or expired:
        session.unwatch()
        return NULL_ARRAY
    session.unwatch()
    # The listing takes the lock the transaction will hold, so it comes first (multi.py).
    keys = list(store) if any(command[0].lower() in _LISTS_KEYS for command in queue) else []
    try:
        with store.transaction() as tx:
            view = TransactionView(tx, keys, store.now_ms)
            session.store = view
            try:
                results = [session.execute(command) for command in queue]
            finally:
                session.store = store
    except CatlogError as exc:
        return _store_error(exc)  # PROTO-85: the batch was not written: none of it happened
    if view.compact_requested:
        with contextlib.suppress(CatlogError):
            store.compact_in_background()
    return results


def _watch(session: Session, args: list[bytes]) -> Reply:
    """PROTO-83, PROTO-84"""
    if session.queue is not None:
        return Error("ERR WATCH inside MULTI is not allowed")
    if session.dirty:
        return OK  # EXEC will fail whatever else is watched
    # Read as a transaction does: after every write appended before it, which the server
    # makes this reply, and so the client's next read, wait for (SRV-20).
    with session.store.transaction() as tx:
        for key in args[1:]:
            if key not in session.watched:
                try:
                    session.watched[key] = tx.expires_at(key)
                except KeyError:
                    session.watched[key] = None
                session.watches.watch(session, key)
    return OK


def _unwatch(session: Session, args: list[bytes]) -> Reply:
    """PROTO-84"""
    session.unwatch()
    return OK
