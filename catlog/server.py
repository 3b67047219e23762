"""The network server: one TCP port, two protocols, group commit (spec/protocol.md, section Server).

This is an edge: it moves bytes between sockets and the sans-I/O cores (the two request readers in
:mod:`catlog.protocol`, the command layer in :mod:`catlog.commands`) and never parses anything
itself. It is built on asyncio's ``Protocol`` callbacks rather than streams: a server whose work
per request is a few microseconds spends most of its time in the loop, and the callback layer is
the thinnest one asyncio has (SRV-1).

Theory of operation
-------------------
Each connection picks its protocol from its first word (PROTO-1): ``*`` or any word but a
line-protocol command means RESP (with Redis inline commands, PROTO-86); ``PUT``, ``PUTEX``,
``GET`` or ``DELETE`` means the line protocol. Every read is fed to the connection's reader and
the commands it yields are run at once, in order, against the store, and their replies gathered
into one buffer that is written with one ``write`` call.

Durability under ``fsync="always"`` is the interesting part (SRV-5). A write command appends its
record with :meth:`~catlog.store.Store.put_nowait` and gets a *ticket*; its reply may not leave
before the fsync that covers the ticket. So a connection holds its gathered replies while it has a
write waiting, and asks the :class:`Committer` to make that ticket durable. The committer runs
``Store.wait_durable`` in one worker thread for the newest ticket any connection waits on, so one
fsync answers every connection that wrote meanwhile: group commit across clients, with no thread
per request. A command that reads state (GET after SET in the same pipeline) waits until the
connection's earlier writes have taken effect, so a client always reads its own writes; commands
that only write (SET without options, MSET, PUT) go on without waiting, so a pipeline of writes
shares one fsync.

Memory stays bounded (SRV-7): the readers bound what they buffer; when a client does not read its
replies and the transport's buffer passes its high-water mark, the connection stops reading until
the buffer drains, so a client that never reads cannot make the server hold more than one read's
worth of replies.

A store that fails (REC-10) is watched from a timer on the loop (SRV-16): the failure is logged
once, then reminded of, and after a failed write the store is reopened with a backoff (SRV-18):
probe the directory, close the failed store, open it again, and move every reference to the new
one, all in one callback on the loop, so that every command runs wholly against one store.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import dataclasses
import itertools
import logging
import os
import platform
import posixpath
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final, cast

from . import commands
from . import store as store_module
from .batch import BatchOp
from .errors import (
    CatlogError,
    InvalidTypeError,
    KeyTooLargeError,
    OpenError,
    StoreFailedError,
    ValueTooLargeError,
)
from .fs import FileSystem, OsFileSystem
from .keyspace import PURGE_STEP
from .multi import Watches
from .protocol import detect, line, replies, resp
from .protocol.events import NEED_DATA, NeedData
from .protocol.resp import RespParser, RespProtocolError
from .reopen import ReopenPolicy, Step, StoreWatch
from .store import FsyncPolicy, Store
from .transaction import Transaction

log = logging.getLogger("catlog.server")

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 4000
DEFAULT_DATA_DIR: Final = "./data"
DEFAULT_MAX_CONNECTIONS: Final = 1024
DEFAULT_IDLE_TIMEOUT: Final = 300.0
OPS_SAMPLE_EVERY: Final = 0.1
"""Seconds between readings of the command count (PROTO-101), as Redis's serverCron."""
EXPIRE_EVERY: Final = 0.1
EXPIRE_AGAIN: Final = 0.01
"""ENG-62: the active expiry's step comes every 100 ms, or 10 ms after a step that found more."""
WRITE_HIGH_WATER: Final = 1024 * 1024
"""SRV-7: stop reading from a client once this many reply bytes wait to be sent to it."""


DEFAULT_COMPACT_THRESHOLD: Final = 0.5


def _threshold(text: str) -> float | None:
    """SRV-10: ``--compact-threshold``: a share between 0 and 1 exclusive, or 0 for never."""
    value = float(text)
    if value == 0:
        return None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError("must be between 0 and 1 (0 turns it off)")
    return value


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Everything ``catlog serve`` takes on its command line (SRV-2)."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    data_dir: str = DEFAULT_DATA_DIR
    fsync: FsyncPolicy = "always"
    fsync_interval_ms: int = store_module.DEFAULT_FSYNC_INTERVAL_MS
    segment_size: int = store_module.DEFAULT_SEGMENT_SIZE
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    max_line_length: int = line.MAX_LINE_LENGTH
    max_bulk_length: int = resp.MAX_BULK_LENGTH
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    """Seconds a connection may stay silent before it is closed; 0 turns it off."""
    compact_threshold: float | None = DEFAULT_COMPACT_THRESHOLD
    """SRV-10: the dead share of the data that starts a compaction (ENG-41); None: never."""
    hints: bool = True
    """SRV-10: write each sealed segment's hint in the background (ENG-43)."""


class StartError(CatlogError):
    """SRV-15: the server could not start; the message says which resource failed, and why."""


PROBE_NAME: Final = ".catlog-space-probe"
"""SRV-18: the file a reopen attempt writes and removes first. Opening a store and the tools
ignore it, like any file that is not a segment, a hint or a leftover they know."""


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


class Server:
    """A running server: a listening socket, its connections, the store and the committer.

    ``store`` changes when a failed store is reopened (SRV-18); ``fs`` is the file system it
    was opened with, for the reopen and the probe before it. Every field is read and written on
    the event loop's thread only, which is what makes the swap atomic to the commands; the one
    other thread, the committer's, is handed a store only while none is being swapped.
    """

    def __init__(
        self,
        config: ServerConfig,
        store: Store,
        *,
        fs: FileSystem | None = None,
        reopen: ReopenPolicy | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self._fs = fs
        self._watch = StoreWatch(reopen if reopen is not None else ReopenPolicy())
        self.committer = Committer(store)
        self.tickets = TicketingStore(store)
        """The store as every connection's commands see it: one, so a reopen moves it once."""
        self.connections: set[Connection] = set()
        self.clients = 0
        self.watches = Watches()
        self.scan_order = commands.ScanOrder()
        """PROTO-42: the keys in walk order, one list for every walk of every client."""
        """PROTO-84: the keys WATCHed on any connection; every connection's writes touch it."""
        self.info = commands.ServerInfo(
            tcp_port=config.port,
            process_id=os.getpid(),
            os=platform.platform(),
            fsync=config.fsync,
            started=time.monotonic(),
            idle_timeout=config.idle_timeout,
            max_clients=config.max_connections,
        )
        self._sampler: asyncio.TimerHandle | None = None
        self._expirer: asyncio.TimerHandle | None = None
        self._listener: asyncio.Server | None = None
        self._stopped = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        self._lost: CatlogError | OSError | None = None
        """SRV-18: the failed store was closed and opening it again failed with this."""

    @property
    def address(self) -> tuple[str, int]:
        assert self._listener is not None, "start() first"
        host, port = self._listener.sockets[0].getsockname()[:2]
        return str(host), int(port)

    async def start(self) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        host, port = self.config.host, self.config.port
        try:
            self._listener = await loop.create_server(
                lambda: Connection(self), host, port, reuse_address=True
            )
        except OSError as exc:
            raise StartError(f"cannot listen on {host}:{port}: {exc}") from exc
        self.info = dataclasses.replace(self.info, tcp_port=self.address[1])
        self._timer = loop.call_later(self._watch.policy.check_every, self._watch_store)
        self._sample()
        self._expirer = loop.call_later(EXPIRE_EVERY, self._expire)
        return self.address

    def _sample(self) -> None:
        """PROTO-101: a reading of the command count every 100 ms, for instantaneous_ops_per_sec."""
        self.info.counters.sample(time.monotonic())
        self._sampler = asyncio.get_running_loop().call_later(OPS_SAMPLE_EVERY, self._sample)

    def _expire(self) -> None:
        """ENG-62: one bounded step of active expiry, so expired keys are forgotten while no
        client writes; the step holds the store's lock, and so the loop, for about 2 ms."""
        try:
            forgotten = self.store.purge_expired(PURGE_STEP)
        except CatlogError:  # closed under us, or lost (SRV-18): the next step tries again
            forgotten = 0
        delay = EXPIRE_AGAIN if forgotten >= PURGE_STEP else EXPIRE_EVERY
        self._expirer = asyncio.get_running_loop().call_later(delay, self._expire)

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    def request_stop(self) -> None:
        self._stopped.set()

    async def shutdown(self) -> None:
        """SRV-4: stop accepting, let connections finish what they started, then close."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._sampler is not None:
            self._sampler.cancel()
            self._sampler = None
        if self._expirer is not None:
            self._expirer.cancel()
            self._expirer = None
        if self._listener is not None:
            self._listener.close()
        for connection in list(self.connections):
            connection.finish()
        for _ in range(500):
            if not self.connections:
                break
            await asyncio.sleep(0.01)
        for connection in list(self.connections):
            connection.abort()
        if self._listener is not None:
            # Only now: from Python 3.12 on, wait_closed also waits for every connection.
            await self._listener.wait_closed()
        self.committer.close()

    def close_store(self) -> CatlogError | OSError | None:
        """SRV-17: close the store; returns why writes it acknowledged may not be durable."""
        if self._lost is not None:
            return self._lost
        try:
            self.store.close()
        except (CatlogError, OSError) as exc:
            return exc
        return None

    # ------------------------------------------------------------- a failed store (SRV-16..19)

    def _watch_store(self) -> None:
        """SRV-16: the timer's step: one look at the store, and the steps the watch asks for."""
        watch = self._watch
        self._timer = asyncio.get_running_loop().call_later(
            watch.policy.check_every, self._watch_store
        )
        now = time.monotonic()
        steps = watch.look(now, self.store.failure, idle=self.committer.idle)
        failure = watch.failure
        for step in steps:
            assert failure is not None, "steps are taken only about a failure"
            if step is Step.REPORT:
                if watch.reopens:
                    plan = f"reopening it in {watch.delay:g} s"
                else:
                    plan = "an fsync failed, so writes stay refused until the server is restarted"
                log.error("[STORE FAILED] %s; %s", failure, plan)
            elif step is Step.REMIND:
                refused = now - watch.failed_at
                log.error("[STORE FAILED] writes refused for %d s: %s", refused, failure)
            else:
                self._attempt_reopen(now)

    def _attempt_reopen(self, now: float) -> None:
        """SRV-18: probe, close the failed store, open the directory again, swap."""
        watch = self._watch
        old = self.store
        try:
            self._probe(old.path)
        except OSError as exc:
            self._attempt_failed(now, f"{old.path} cannot take writes yet ({exc})")
            return
        if not old.closed:
            with contextlib.suppress(CatlogError, OSError):  # it refuses: that is why we are here
                old.close()
        try:
            new = store_module.open(
                old.path,
                fsync=old.fsync,
                fsync_interval_ms=old.fsync_interval_ms,
                segment_size=old.segment_size,
                compact_threshold=old.compact_threshold,
                hints=old.hints,
                fs=self._fs,
            )
        except (CatlogError, OSError) as exc:
            self._lost = exc
            self._attempt_failed(now, f"opening {old.path} again: {exc}")
            return
        self._adopt(old, new)
        self._lost = None
        attempts = f"{watch.attempts} attempt{'s' if watch.attempts > 1 else ''}"
        watch.reopened(now)
        log.warning(
            "[STORE REOPEN] %s reopened after %s; writes accepted again", old.path, attempts
        )

    def _attempt_failed(self, now: float, reason: str) -> None:
        watch = self._watch
        watch.attempt_failed(now)
        log.warning(
            "[STORE REOPEN] attempt %d failed: %s; next in %g s",
            watch.attempts,
            reason,
            watch.delay,
        )

    def _probe(self, directory: str) -> None:
        """SRV-18: raise OSError unless the directory takes (and fsyncs) a little data again."""
        fs = self._fs if self._fs is not None else OsFileSystem()
        path = posixpath.join(directory, PROBE_NAME)
        probe = fs.open(path, writable=True, create=True)
        try:
            try:
                probe.append(bytes(self._watch.policy.probe_bytes))
                probe.sync()
            finally:
                probe.close()
        finally:
            fs.remove(path)

    def _adopt(self, old: Store, new: Store) -> None:
        """SRV-18: every reference to the failed store moves to the new one, in one loop step."""
        self.store = new
        self.committer.retarget(new)
        self.tickets.retarget(new)


Request = line.LineRequest | line.LineError | list[bytes] | RespProtocolError
"""A request as a reader gives it: a line-protocol event or a RESP command (or its error)."""


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

    def expire_at(self, key: bytes, expires_at_ms: int) -> bool:
        return self._judged(self.store.expire_at_nowait(key, expires_at_ms))

    def persist(self, key: bytes) -> bool:
        return self._judged(self.store.persist_nowait(key))

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """PROTO-85, SRV-5: the engine's transaction, not waiting for its fsync: the connection
        waits on the batch's ticket as on any write's. One that wrote nothing may have read
        writes still waiting for their fsync, so its reply owes a wait for them (ENG-51)."""
        store = self.store
        with store.transaction(wait=False) as tx:
            yield tx
        if not tx.ticket:
            self.owed = store.last_ticket

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


Progress = tuple[int, "Request | None", bool, bool]
"""What a session's ``drive`` leaves: the newest ticket to wait on, a request held back until
that ticket has taken effect, whether the connection ends after the replies, and whether it
stopped only because :data:`REPLY_BATCH` bytes of replies were waiting (so there is more to run
once they are sent)."""

REPLY_BATCH: Final = 256 * 1024
"""SRV-7: a connection sends its replies once this many bytes of them are gathered, before it
runs more requests, so a pipeline of GETs of large values cannot build a huge reply in memory."""


class LineSession:
    """The line protocol on one connection: its reader, and its requests run on the store."""

    def __init__(
        self, store: TicketingStore, max_line_length: int, watches: Watches | None = None
    ) -> None:
        self._store = store
        self.reader = line.LineParser(max_line_length=max_line_length)
        self._watches = watches

    def drive(self, out: list[bytes], ticket: int, held: Request | None) -> Progress:
        """Run requests into ``out`` until input runs out or one must wait for ``ticket``."""
        store = self._store
        real = store.store
        tracks = real.fsync == "always"
        gathered = 0
        while gathered < REPLY_BATCH:
            if held is not None:
                request: Request | NeedData = held
                held = None
            else:
                request = self.reader.next_event()
                if request is NEED_DATA:
                    return ticket, None, False, False
            assert not isinstance(request, list | RespProtocolError | NeedData), "line events"
            if ticket and not isinstance(request, line.WRITES):
                return ticket, request, False, False  # SRV-5: reads wait for this client's writes
            before = real.last_ticket
            reply = line.encode_reply(commands.execute_line(store, request, self._watches))
            out.append(reply)
            gathered += len(reply)
            if tracks and (real.last_ticket != before or store.owed):
                ticket = max(ticket, real.last_ticket, store.owed)
                store.owed = 0
        return ticket, None, False, True

    @staticmethod
    def error_reply(message: str) -> bytes:
        return line.encode_reply(line.ErrorReply(message))


class RespSession:
    """RESP on one connection: its reader, and its commands run by :class:`commands.Session`."""

    def __init__(
        self,
        store: TicketingStore,
        info: commands.ServerInfo,
        client_id: int,
        max_bulk_length: int = resp.MAX_BULK_LENGTH,
        *,
        watches: Watches | None = None,
        scan_order: commands.ScanOrder | None = None,
    ) -> None:
        self._store = store
        self.reader = RespParser(max_bulk_length=max_bulk_length)
        self._session = commands.Session(
            store, client_id=client_id, server=info, watches=watches, scan_order=scan_order
        )
        self._watches = self._session.watches
        self._pending: Iterator[list[bytes]] = iter(())
        """Commands taken from the reader and not run yet, oldest first."""

    def drive(self, out: list[bytes], ticket: int, held: Request | None) -> Progress:
        """Run commands into ``out`` until input runs out or one must wait for ``ticket``.

        The hot loop of the server: under ``redis-benchmark -P 16`` it runs sixteen times per
        read. A plain ``SET key value`` or ``GET key`` in the usual spellings goes straight to
        the store with its reply bytes made here: the benchmark showed the command layer's
        lookup, arity check, call and reply encoding costing a sixth of a pipelined SET beyond
        its parse and append. Plain SETs in a row are gathered and appended as one group
        (SRV-11) just before the next other command runs, or when the read's commands run out.
        Every other command, and every other spelling of these two, takes the command layer;
        both ways give the same bytes (tests/server/test_fast_path.py). Inside MULTI every
        command takes the command layer, which queues it (PROTO-80).
        """
        tickets = self._store
        real = tickets.store
        tracks = real.fsync == "always"
        get = real.get
        session = self._session
        execute = session.execute
        encode = replies.encode
        pending = self._pending
        if held is not None:
            pending = itertools.chain([cast(list[bytes], held)], pending)  # only commands wait
        gathered = 0
        queuing = session.queue is not None
        counters = session.server.counters
        group: list[tuple[bytes, bytes]] = []
        """SRV-11: the run of plain SETs read and not appended yet."""
        while True:
            # A list iterator, so that commands left when the loop returns stay in it, in order.
            self._pending = pending
            for command in pending:
                counters.commands += 1
                words = len(command)
                if words == 3 and command[0] in _SET_NAMES and not queuing:
                    group.append((command[1], command[2]))
                    continue
                if group:
                    written = self._append_group(group, out)
                    if tracks and written:
                        ticket = written
                    group = []
                if ticket and not _only_writes(command):
                    counters.commands -= 1  # counted again when it runs
                    return ticket, command, False, False  # SRV-5: reads wait for own writes
                if words == 2 and command[0] in _GET_NAMES and not queuing:
                    try:
                        value = get(command[1])
                    except CatlogError as exc:
                        reply = replies.error_bytes(f"ERR {exc}")
                    else:
                        if value is None:
                            counters.misses += 1
                            reply = _NULL3 if session.protocol == 3 else _NULL2
                        else:
                            counters.hits += 1
                            reply = b"$%d\r\n%b\r\n" % (len(value), value)
                else:
                    before = real.last_ticket
                    reply = encode(execute(command), session.protocol)
                    queuing = session.queue is not None
                    if tracks and (real.last_ticket != before or tickets.owed):
                        ticket = max(ticket, real.last_ticket, tickets.owed)  # ENG-51
                        tickets.owed = 0
                    if session.closing:
                        out.append(reply)
                        return ticket, None, True, False
                out.append(reply)
                gathered += len(reply)
                if gathered >= REPLY_BATCH:
                    return ticket, None, False, True
            if group:
                written = self._append_group(group, out)
                if tracks and written:
                    ticket = written
                group = []
            event = self.reader.next_commands()
            if event is NEED_DATA:
                return ticket, None, False, False
            if isinstance(event, RespProtocolError):
                out.append(event.reply)
                return ticket, None, True, False
            pending = iter(event)

    def _append_group(self, group: list[tuple[bytes, bytes]], out: list[bytes]) -> int:
        """SRV-11: append a run of plain SETs and answer each; returns the last ticket, or 0 if
        none was appended. A lone SET, and a group that one pair spoils, go one at a time, so
        each SET meets its own error."""
        store = self._store.store
        watches = self._watches
        if len(group) > 1:
            try:
                written = store.put_many_nowait(group)
            except (InvalidTypeError, KeyTooLargeError, ValueTooLargeError):
                pass
            except CatlogError as exc:
                out.append(replies.error_bytes(f"ERR {exc}") * len(group))  # PROTO-54
                return 0
            else:
                out.append(_OK * len(group))
                if watches.active:  # PROTO-84
                    for key, _ in group:
                        watches.touch(key)
                return written
        written = 0
        put = store.put_nowait
        for key, value in group:
            try:
                written = put(key, value)
            except CatlogError as exc:
                out.append(replies.error_bytes(f"ERR {exc}"))  # PROTO-54, as the layer does
            else:
                out.append(_OK)
                watches.touch(key)
        return written

    def close(self) -> None:
        """The connection ended: its WATCHes go with it (PROTO-84)."""
        self._session.close()

    @staticmethod
    def error_reply(message: str) -> bytes:
        return replies.error_bytes("ERR " + message)


_SET_NAMES: Final = frozenset((b"SET", b"set"))
_GET_NAMES: Final = frozenset((b"GET", b"get"))
_OK: Final = replies.encode(replies.OK)
_NULL2: Final = replies.encode(None, 2)
_NULL3: Final = replies.encode(None, 3)


def _only_writes(command: list[bytes]) -> bool:
    """SRV-5: a plain SET or an MSET reads nothing, so it need not wait for earlier writes."""
    name = command[0].upper()
    return (name == b"SET" and len(command) == 3) or name == b"MSET"


class Connection(asyncio.Protocol):
    """One client connection; see the module docstring for the flow."""

    def __init__(self, server: Server) -> None:
        self._server = server
        self._transport: asyncio.Transport | None = None
        self._peer = "?"
        self._session: LineSession | RespSession | None = None
        self._out: list[bytes] = []
        self._ticket = 0
        """The newest write of this connection that may not have taken effect yet."""
        self._held: Request | None = None
        """A request read but not yet run, because it waits for this connection's writes."""
        self._blocked = False
        self._paused = False
        self._closing = False
        self._eof = False
        self._idle: asyncio.TimerHandle | None = None
        self._heard_at = 0.0
        self._first = b""
        """PROTO-1: the start of a first word too short yet to choose the protocol."""

    # ----------------------------------------------------------------- asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport, though uvloop's do not subclass asyncio.Transport.
        self._transport = cast(asyncio.Transport, transport)
        transport = self._transport
        peer = transport.get_extra_info("peername")
        self._peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        if len(self._server.connections) >= self._server.config.max_connections:
            log.warning("[CONN REFUSED] %s: max connections reached", self._peer)
            transport.write(b"-ERR max number of clients reached\r\n")
            transport.close()
            return
        self._server.connections.add(self)
        counters = self._server.info.counters
        counters.connected = len(self._server.connections)
        counters.connections += 1
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        log.info("[CONN] %s", self._peer)
        self._touch()

    def connection_lost(self, exc: Exception | None) -> None:
        if isinstance(self._session, RespSession):
            self._session.close()
        if self in self._server.connections:
            self._server.connections.discard(self)
            self._server.info.counters.connected = len(self._server.connections)
            log.info("[CONN CLOSED] %s", self._peer)
        if self._idle is not None:
            self._idle.cancel()

    def data_received(self, data: bytes) -> None:
        self._touch()
        session = self._session
        if session is None:
            # PROTO-1: the first word decides. Empty lines before it ask for nothing in either
            # protocol, so they are dropped, and at most a word's bytes wait here.
            data = (self._first + data).lstrip(b"\r\n")
            kind = detect(data) if data else None
            if kind is None:
                self._first = data
                return
            self._first = b""
            session = self._start_session(kind)
        session.reader.receive_data(data)
        self._run()

    def _start_session(self, kind: str) -> LineSession | RespSession:
        server = self._server
        store = server.tickets
        session: LineSession | RespSession
        if kind == "resp":
            server.clients += 1
            session = RespSession(
                store,
                server.info,
                server.clients,
                server.config.max_bulk_length,
                watches=server.watches,
                scan_order=server.scan_order,
            )
        else:
            session = LineSession(store, server.config.max_line_length, server.watches)
        self._session = session
        return session

    def eof_received(self) -> bool:
        """PROTO-14: a client that half-closes still gets every reply before the server closes.

        SRV-12: one that closes before its first byte has chosen no protocol and is owed nothing,
        so it is closed now; left to the idle timer, health checks would hold every slot.
        """
        self._eof = True
        if self._session is None:
            if not self._first:
                return False  # asyncio closes the transport
            first, self._first = self._first, b""  # PROTO-1: the word so far decides
            self._start_session(detect(first, end=True) or "line").reader.receive_data(first)
        if isinstance(self._session, LineSession):
            self._session.reader.receive_data(b"")
        self._run()
        return True

    def pause_writing(self) -> None:
        """SRV-7: the client is not reading its replies; stop reading and running its requests."""
        self._paused = True
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        self._paused = False
        if self._transport is not None and not self._closing:
            self._transport.resume_reading()
            self._run()

    # ----------------------------------------------------------------- the work

    def _run(self) -> None:
        """Run the requests that have arrived, in order, until one must wait for durability,
        the client stops reading (SRV-7), or nothing is left."""
        session = self._session
        while session is not None and self._transport is not None and not self._blocked:
            more = False
            if not self._closing and not self._paused:
                held, self._held = self._held, None
                self._ticket, self._held, close, more = session.drive(self._out, self._ticket, held)
                if close:
                    self._closing = True
            if self._ticket:
                self._hold_until_durable()
                return
            self._send()
            if not more:
                return

    def _hold_until_durable(self) -> None:
        """SRV-5: no reply leaves before the fsync that covers this connection's writes."""
        self._blocked = True
        ticket = self._ticket

        def resume(error: BaseException | None) -> None:
            self._blocked = False
            if self._ticket == ticket:
                self._ticket = 0
            if error is not None:
                self._fail(error)
            self._run()

        self._server.committer.when_durable(ticket, resume)

    def _fail(self, error: BaseException) -> None:
        """SRV-5: the fsync failed, so the held replies are not true; say so and close."""
        assert self._session is not None, "only sessions that ran requests wait"
        self._out = [self._session.error_reply(f"write not durable: {error}")]
        self._held = None
        self._closing = True

    def _send(self) -> None:
        transport = self._transport
        if transport is None:
            return
        if self._out:
            transport.write(b"".join(self._out))
            self._out.clear()
        if (self._eof or self._closing) and not self._blocked and not transport.is_closing():
            transport.close()

    def _touch(self) -> None:
        """SRV-9: note that the client spoke. The timer is armed once and re-armed when it fires
        early, rather than replaced on every read: cancelling and scheduling a timer costs about
        2 us, which under ``redis-benchmark -P 16`` was 3% of the server's time."""
        self._heard_at = time.monotonic()  # the clock of asyncio's loop.time()
        if self._idle is None and self._server.config.idle_timeout > 0:
            self._idle = asyncio.get_running_loop().call_later(
                self._server.config.idle_timeout, self._idle_out
            )

    def _idle_out(self) -> None:
        timeout = self._server.config.idle_timeout
        silent = time.monotonic() - self._heard_at
        if silent < timeout:
            self._idle = asyncio.get_running_loop().call_later(timeout - silent, self._idle_out)
            return
        self._idle = None
        log.info("[CONN IDLE] %s: closed after %gs", self._peer, timeout)
        self.abort()

    def finish(self) -> None:
        """SRV-4: read nothing more; close once the replies already due have been sent."""
        self._closing = True
        if self._transport is None:
            return
        self._transport.pause_reading()
        if not self._blocked:
            self._send()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()


async def serve(
    config: ServerConfig,
    *,
    ready: Callable[[str, int], None] | None = None,
    fs: FileSystem | None = None,
    reopen: ReopenPolicy | None = None,
) -> int:
    """Open the store, listen, and run until SIGTERM or SIGINT; then shut down (SRV-4).

    Returns the exit status: 1 when the store could not be synced at the end (SRV-17). ``fs``
    and ``reopen`` let tests run the server on a failing file system with a short backoff.
    """
    try:
        store = store_module.open(
            config.data_dir,
            fsync=config.fsync,
            fsync_interval_ms=config.fsync_interval_ms,
            segment_size=config.segment_size,
            compact_threshold=config.compact_threshold,
            hints="background" if config.hints else False,
            fs=fs,
        )
    except (CatlogError, OSError) as exc:
        reason = str(exc)
        if isinstance(exc, OpenError):  # ENG-49 names the directory already: once is enough
            reason = reason.removeprefix(f"cannot open {exc.path}: ")
        raise StartError(f"cannot open data directory {config.data_dir}: {reason}") from exc
    server = Server(config, store, fs=fs, reopen=reopen)
    try:
        loop = asyncio.get_running_loop()
        # SRV-3, SRV-4: before [LISTENING], since a supervisor may signal the moment it reads it.
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, server.request_stop)
        host, port = await server.start()
        print(f"[LISTENING] {host}:{port}", flush=True)
        if ready is not None:
            ready(host, port)
        await server.wait_stopped()
        log.info("[SHUTDOWN] stopping: no new connections, finishing requests in flight")
        await server.shutdown()
    finally:
        lost = server.close_store()
    if lost is not None:
        log.error(
            "[SHUTDOWN] could not sync the data: %s; writes acknowledged since the last successful"
            " sync may be lost",
            lost,
        )
        return 1
    log.info("[SHUTDOWN] data synced and closed")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """SRV-2: the flags of ``catlog serve``, each with its default."""
    parser.add_argument(
        "--host", default=DEFAULT_HOST, help="address to bind (default %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="TCP port, 0 for any (default %(default)s)"
    )
    parser.add_argument(
        "--data-dir", default=DEFAULT_DATA_DIR, help="data directory (default %(default)s)"
    )
    parser.add_argument(
        "--fsync",
        choices=store_module.FSYNC_POLICIES,
        default="always",
        help="durability policy, see spec/engine.md (default %(default)s)",
    )
    parser.add_argument(
        "--fsync-interval-ms",
        type=int,
        default=store_module.DEFAULT_FSYNC_INTERVAL_MS,
        help="background fsync period under --fsync interval (default %(default)s)",
    )
    parser.add_argument(
        "--segment-size",
        type=int,
        default=store_module.DEFAULT_SEGMENT_SIZE,
        help="bytes per segment file before rotation (default %(default)s)",
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=DEFAULT_MAX_CONNECTIONS,
        help="connections served at once (default %(default)s)",
    )
    parser.add_argument(
        "--max-line-length",
        type=int,
        default=line.MAX_LINE_LENGTH,
        help="longest line-protocol request, bytes (default %(default)s)",
    )
    parser.add_argument(
        "--max-bulk-length",
        type=int,
        default=resp.MAX_BULK_LENGTH,
        help="longest RESP argument, bytes (default %(default)s)",
    )
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=DEFAULT_IDLE_TIMEOUT,
        help="close a connection silent this many seconds; 0 never (default %(default)s)",
    )
    parser.add_argument(
        "--compact-threshold",
        type=_threshold,
        default=DEFAULT_COMPACT_THRESHOLD,
        help="compact in the background once this share of the data is dead; 0 never "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--no-hints",
        dest="hints",
        action="store_false",
        help="do not write hint files for sealed segments (restarts then scan every segment)",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="logging threshold (default %(default)s)",
    )


def config_from(args: argparse.Namespace) -> ServerConfig:
    return ServerConfig(
        host=args.host,
        port=args.port,
        data_dir=args.data_dir,
        fsync=args.fsync,
        fsync_interval_ms=args.fsync_interval_ms,
        segment_size=args.segment_size,
        max_connections=args.max_connections,
        max_line_length=args.max_line_length,
        max_bulk_length=args.max_bulk_length,
        idle_timeout=args.idle_timeout,
        compact_threshold=args.compact_threshold,
        hints=args.hints,
    )


def run(config: ServerConfig) -> int:
    """Blocking entry point for the CLI."""
    try:
        return asyncio.run(serve(config))
    except (CatlogError, OSError) as exc:  # SRV-15: a StartError says which resource failed
        print(f"catlog: {exc}", file=sys.stderr)
        return 1
