"""The network server: one TCP port, two protocols, group commit (spec/server.md SRV-1, SRV-3,
SRV-4, SRV-15 .. SRV-19, SRV-24, SRV-30).

This is an edge: it moves bytes between sockets and the sans-I/O cores (the two request readers in
:mod:`catlog.protocol`, the command layer in :mod:`catlog.commands`) and never parses anything
itself. It is built on asyncio's ``Protocol`` callbacks rather than streams: a server whose work
per request is a few microseconds spends most of its time in the loop, and the callback layer is
the thinnest one asyncio has (SRV-1).

The server is five modules, read in this order:

- :mod:`catlog.serverconfig`: the command line, the password's sources, and the config.
- this module: :func:`serve` opens the store, listens, and shuts down on a signal (SRV-3, SRV-4);
  :class:`Server` owns the listening socket, the connections and the store.
- :mod:`catlog.connection`: one connection's callbacks, from accept to close.
- :mod:`catlog.sessions`: a connection's protocol: what it reads, run against the store.
- :mod:`catlog.groupcommit`: how replies to writes wait for a shared fsync (SRV-5).

Who may connect, and what before AUTH, is decided in :mod:`catlog.auth`.

A store that fails (REC-10) is watched from a timer on the loop (SRV-16): the failure is logged
once, then reminded of, and after a failed write the store is reopened with a backoff (SRV-18):
probe the directory, close the failed store, open it again, and move every reference to the new
one, all in one callback on the loop, so that every command runs wholly against one store.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import platform
import posixpath
import resource
import signal
import sys
import time
from collections.abc import Callable
from typing import Final

from . import auth, commands
from . import store as store_module
from .connection import Connection
from .errors import CatlogError, OpenError
from .filecache import MIN_OPEN_FILES
from .fs import FileSystem, OsFileSystem
from .groupcommit import Committer, TicketingStore
from .keyspace import PURGE_STEP
from .multi import Watches
from .reopen import ReopenPolicy, Step, StoreWatch
from .serverconfig import (
    PASSWORD_VARIABLE,
    ServerConfig,
    StartError,
    raised_soft_limit,
    store_open_files,
    wanted_open_files,
)
from .store import Store

log = logging.getLogger("catlog.server")

COMPACTION_YIELD_MS: Final = 0.25
"""SRV-29: the store's background compactions give the event loop the interpreter after each
quarter millisecond of work (ENG-99)."""
OPS_SAMPLE_EVERY: Final = 0.1
"""Seconds between readings of the command count (PROTO-101), as Redis's serverCron."""
EXPIRE_EVERY: Final = 0.1
EXPIRE_AGAIN: Final = 0.01
"""ENG-62: the active expiry's step comes every 100 ms, or 10 ms after a step that found more."""

PROBE_NAME: Final = ".catlog-space-probe"
"""SRV-18: the file a reopen attempt writes and removes first. Opening a store and the tools
ignore it, like any file that is not a segment, a hint or a leftover they know."""


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
            new = old.open_again()
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
            max_open_files=store_open_files(config),
            compaction_yield_ms=COMPACTION_YIELD_MS,
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
        if config.protected_mode and config.password is None and not auth.is_loopback(host):
            log.warning(  # SRV-24
                "[PROTECTED MODE] no password is set: only clients on the loopback interface"
                " are served; set one with --requirepass-file or %s",
                PASSWORD_VARIABLE,
            )
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


def run(config: ServerConfig) -> int:
    """Blocking entry point for the CLI."""
    raise_open_file_limit(config)
    try:
        return asyncio.run(serve(config))
    except (CatlogError, OSError) as exc:  # SRV-15: a StartError says which resource failed
        print(f"catlog: {exc}", file=sys.stderr)
        return 1


def raise_open_file_limit(config: ServerConfig) -> None:
    """SRV-30: ask for the descriptors the connections and the store's files want, as far as
    the hard limit allows, and warn when what is left starves the store. Only the CLI's process
    calls this: a process limit is its owner's to change, never an embedded store's."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = raised_soft_limit(soft, hard, wanted_open_files(config))
    if target is not None:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (OSError, ValueError) as exc:
            log.warning("could not raise the open-file limit from %d to %d: %s", soft, target, exc)
        else:
            log.info(
                "raised the open-file limit (ulimit -n) from %d to %d for %d connections and the"
                " store's segment files",
                soft,
                target,
                config.max_connections,
            )
            soft = target
    budget = store_open_files(config, soft)
    if config.max_open_files is None and budget == MIN_OPEN_FILES:
        log.warning(
            "the open-file limit (ulimit -n) is %d: after %d connections no room is left for"
            " the store's segment files, so it keeps at most %d open and reads older segments"
            " slowly; raise the hard limit or lower --max-connections",
            soft,
            config.max_connections,
            budget,
        )
