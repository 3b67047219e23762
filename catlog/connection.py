"""One client connection: asyncio's callbacks, the choice of protocol, and when replies leave
(spec/server.md SRV-5, SRV-7, SRV-8, SRV-9, SRV-12, SRV-23; spec/protocol.md PROTO-1, PROTO-14).

Theory of operation
-------------------
A connection is first checked against the limits of who may connect: the number of connections
(SRV-8) and protected mode (SRV-23). Then it picks its protocol from its first word (PROTO-1):
``*`` or any word but a line-protocol command means RESP (with Redis inline commands, PROTO-86);
``PUT``, ``PUTEX``, ``GET`` or ``DELETE`` means the line protocol. Every read is fed to the
session's reader (:mod:`catlog.sessions`) and the commands it yields are run at once, in order,
against the store, and their replies gathered into one buffer that is written with one ``write``
call. While the connection has a write waiting for its fsync, the replies wait with it
(:mod:`catlog.groupcommit`, SRV-5).

Memory stays bounded (SRV-7): the readers bound what they buffer; when a client does not read its
replies and the transport's buffer passes its high-water mark, the connection stops reading until
the buffer drains, so a client that never reads cannot make the server hold more than one read's
worth of replies.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Final, cast

from . import auth
from .protocol import detect
from .sessions import LineSession, Request, RespSession

if TYPE_CHECKING:
    from .server import Server

log = logging.getLogger("catlog.server")  # SRV-3 names this logger for the connection lines

WRITE_HIGH_WATER: Final = 1024 * 1024
"""SRV-7: stop reading from a client once this many reply bytes wait to be sent to it."""


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
        config = self._server.config
        if len(self._server.connections) >= config.max_connections:
            log.warning("[CONN REFUSED] %s: max connections reached", self._peer)
            transport.write(b"-ERR max number of clients reached\r\n")
            transport.close()
            return
        host = str(peer[0]) if isinstance(peer, tuple) else None
        if not auth.admits_peer(host, protected=config.protected_mode, password=config.password):
            log.warning("[CONN REFUSED] %s: protected mode", self._peer)  # SRV-23
            transport.write(auth.DENIED)
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
                password=server.config.password,
            )
        else:
            session = LineSession(
                store,
                server.config.max_line_length,
                server.watches,
                refused=auth.line_refusal(server.config.password),
            )
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
