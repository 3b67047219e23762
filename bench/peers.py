"""The stores catlog is measured against, each opened behind the same three callables.

A workload's timed loop calls ``handle.put`` or ``handle.get`` and nothing else, so what it
measures is each store's own per-call cost. Where a store's native call already has the right
shape (``catlog.Store.put``, semidbm's ``__setitem__``, LMDB's ``Transaction.put``) the handle
holds that bound method itself and adds nothing; only SQLite needs a one-line closure to bind its
SQL, which costs a Python call (tens of nanoseconds) beside SQLite's microseconds.

Every peer is configured for the same promise as catlog under ``fsync="never"``: data handed to
the OS, nothing forced to disk until close. The settings that make that so are part of each
label, because a peer's number means nothing without them.
"""

from __future__ import annotations

import dbm
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import lmdb
import semidbm

import catlog

LMDB_MAP_SIZE: Final = 8 * 1024**3
"""Address space reserved for an LMDB environment: it must hold the whole store, and costs
nothing until pages are written (the file is sparse)."""


@dataclass(frozen=True, slots=True)
class Handle:
    """An open store, reduced to what the workloads call."""

    put: Callable[[bytes, bytes], object]
    get: Callable[[bytes], object]
    close: Callable[[], object]


@dataclass(frozen=True, slots=True)
class Peer:
    """A store and its settings.

    ``open(path, writing)`` opens (creating if needed) the store kept in directory ``path``.
    ``writing`` tells stores with transactions whether to open a write transaction (held until
    close) or a read one.
    """

    label: str
    open: Callable[[str, bool], Handle]


def open_catlog(path: str, fsync: catlog.FsyncPolicy = "never", *, hints: bool = False) -> Handle:
    store = catlog.open(path, fsync=fsync, hints=hints)
    return Handle(store.put, store.get, store.close)


def open_semidbm(path: str, *, verify_checksums: bool = False) -> Handle:
    db = semidbm.open(path, "c", verify_checksums=verify_checksums)
    return Handle(db.__setitem__, db.__getitem__, db.close)


def open_dbm(path: str) -> Handle:
    os.makedirs(path, exist_ok=True)
    db = dbm.open(os.path.join(path, "db"), "c")  # noqa: SIM115 - closed by Handle.close
    return Handle(db.__setitem__, db.__getitem__, db.close)


def dbm_backend(path: str) -> str:
    """Which module ``dbm.open`` chose for the store in ``path`` (it picks the first installed)."""
    return dbm.whichdb(os.path.join(path, "db")) or "unknown"


def open_sqlite(path: str, *, synchronous: str, one_transaction: bool) -> Handle:
    """SQLite in WAL mode, one table with the key as its primary key and no rowid.

    With ``one_transaction`` every put joins one transaction committed at close; without it
    each put is its own transaction, committed (and, under ``synchronous=FULL``, fsynced)
    before ``put`` returns.
    """
    os.makedirs(path, exist_ok=True)
    conn = sqlite3.connect(os.path.join(path, "db.sqlite"), isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID")
    if one_transaction:
        conn.execute("BEGIN")
    execute = conn.execute

    def put(key: bytes, value: bytes) -> None:
        execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (key, value))

    def get(key: bytes) -> object:
        row = execute("SELECT v FROM kv WHERE k = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def close() -> None:
        if conn.in_transaction:
            conn.execute("COMMIT")
        conn.close()

    return Handle(put, get, close)


def open_lmdb(path: str, *, writing: bool) -> Handle:
    """LMDB with ``sync=False`` (no fsync at commit) and one transaction held until close."""
    env = lmdb.open(path, map_size=LMDB_MAP_SIZE, sync=False)
    txn = env.begin(write=writing)

    def close() -> None:
        txn.commit()
        env.close()

    return Handle(txn.put, txn.get, close)


CATLOG: Final = Peer("catlog", lambda path, writing: open_catlog(path, hints=writing))
"""Stores it builds write hint files (ENG-30), so the reopen workload can time both paths."""
SEMIDBM: Final = Peer("semidbm", lambda path, _writing: open_semidbm(path))
SEMIDBM_VERIFIED: Final = Peer(
    "semidbm verify_checksums=True",
    lambda path, _writing: open_semidbm(path, verify_checksums=True),
)
SQLITE: Final = Peer(
    "sqlite3 WAL synchronous=OFF, one txn",
    lambda path, _writing: open_sqlite(path, synchronous="OFF", one_transaction=True),
)
DBM: Final = Peer("dbm", lambda path, _writing: open_dbm(path))
LMDB: Final = Peer(
    "lmdb sync=False, one txn", lambda path, writing: open_lmdb(path, writing=writing)
)
CATLOG_NO_HINTS: Final = Peer("catlog, no hints", lambda path, _writing: open_catlog(path))
"""The default open, as the pure-Python floor's comparison uses it."""

BY_NAME: Final = {
    peer.label: peer
    for peer in (CATLOG, CATLOG_NO_HINTS, SEMIDBM, SEMIDBM_VERIFIED, SQLITE, DBM, LMDB)
}
"""The stores a child can be asked to open, by the label the parent sends."""
