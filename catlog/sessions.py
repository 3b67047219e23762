"""A connection's protocol: its request reader, and the loop that runs what it reads (spec/server.md
SRV-5, SRV-7, SRV-11, SRV-28; spec/protocol.md PROTO-80, PROTO-104, PROTO-110).

No sockets here: :class:`LineSession` and :class:`RespSession` are fed the bytes a connection
read (through their ``reader``) and, in ``drive``, run the requests against the store, appending
reply bytes to a list. They stop where a reply must wait for this connection's writes to be durable
(SRV-5), or once enough replies are gathered for the connection to send them first (SRV-7). The
RESP loop has the server's fast path for plain SET, GET and the counters (SRV-11, SRV-28), which a
connection inside MULTI, or one that has not authenticated (PROTO-104), never takes.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Final, cast

from . import auth, commands
from .commands import strings
from .errors import CatlogError, InvalidTypeError, KeyTooLargeError, ValueTooLargeError
from .groupcommit import TicketingStore
from .multi import Watches
from .protocol import line, replies, resp
from .protocol.events import NEED_DATA, NeedData
from .protocol.replies import Error
from .protocol.resp import RespParser, RespProtocolError

Change = Callable[[bytes | None], bytes | None]
"""ENG-80: what a counter does to its key's value."""

Request = line.LineRequest | line.LineError | list[bytes] | RespProtocolError
"""A request as a reader gives it: a line-protocol event or a RESP command (or its error)."""

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
        self,
        store: TicketingStore,
        max_line_length: int,
        watches: Watches | None = None,
        *,
        refused: str | None = None,
    ) -> None:
        self._store = store
        self.reader = line.LineParser(max_line_length=max_line_length)
        self._watches = watches
        self._refused = refused
        """PROTO-110: why this connection is closed before any request runs, or None."""

    def drive(self, out: list[bytes], ticket: int, held: Request | None) -> Progress:
        """Run requests into ``out`` until input runs out or one must wait for ``ticket``."""
        if self._refused is not None:
            out.append(self.error_reply(self._refused))
            return ticket, None, True, False
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
        password: auth.Password | None = None,
    ) -> None:
        self._store = store
        self.reader = RespParser(max_bulk_length=max_bulk_length)
        self._session = commands.Session(
            store,
            client_id=client_id,
            server=info,
            watches=watches,
            scan_order=scan_order,
            password=password,
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
        Plain ``INCR``, ``DECR``, ``INCRBY`` and ``DECRBY`` in a row are gathered likewise and
        run as one ``modify_many_nowait`` (SRV-28, ENG-90) under ``never`` and ``interval``;
        under ``always`` a plain ``INCR key`` goes alone to
        :func:`catlog.commands.strings.increment` (ENG-80), after the writes it must wait for.
        Every other command, and every other spelling of these, takes the command layer;
        both ways give the same bytes (tests/server/test_fast_path.py). Inside MULTI every
        command takes the command layer, which queues it (PROTO-80), and so does every command
        of a connection that has not authenticated, which refuses it (PROTO-104).
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
        gate = session.gate
        layered = session.queue is not None or not gate.authenticated
        counters = session.server.counters
        group: list[tuple[bytes, bytes]] = []
        """SRV-11: the run of plain SETs read and not appended yet."""
        counts: list[tuple[bytes, Change]] = []
        """SRV-28: the run of plain counters (INCR and kin) read and not run yet."""
        names: list[bytes] = []
        """Their command names, for a PROTO-114 reply."""
        while True:
            # A list iterator, so that commands left when the loop returns stay in it, in order.
            self._pending = pending
            for command in pending:
                counters.commands += 1
                words = len(command)
                if words == 3 and command[0] in _SET_NAMES and not layered:
                    if counts:
                        self._count(counts, names, out)
                        counts, names = [], []
                    group.append((command[1], command[2]))
                    continue
                if not tracks and not layered:
                    # SRV-28: the server benchmark's pipelined INCRs, gathered as SETs are.
                    if words == 2 and command[0] in _STEPS:
                        change: Change | None = _STEPS[command[0]]
                    elif words == 3 and command[0] in _BY_NAMES:
                        change = _change_by(command)
                    else:
                        change = None
                    if change is not None:
                        if group:
                            self._append_group(group, out)
                            group = []
                        counts.append((command[1], change))
                        names.append(command[0])
                        continue
                if counts:
                    self._count(counts, names, out)
                    counts, names = [], []
                if group:
                    written = self._append_group(group, out)
                    if tracks and written:
                        ticket = written
                    group = []
                if ticket and not _only_writes(command):
                    counters.commands -= 1  # counted again when it runs
                    return ticket, command, False, False  # SRV-5: reads wait for own writes
                if words == 2 and command[0] in _GET_NAMES and not layered:
                    try:
                        value = get(command[1])
                    except CatlogError as exc:
                        reply = replies.error_bytes(f"ERR {exc}")
                    except Exception as exc:
                        reply = _internal_error("get", exc)  # PROTO-114, as the layer does
                    else:
                        if value is None:
                            counters.misses += 1
                            reply = _NULL3 if session.protocol == 3 else _NULL2
                        else:
                            counters.hits += 1
                            reply = b"$%d\r\n%b\r\n" % (len(value), value)
                elif words == 2 and command[0] in _INCR_NAMES and not layered:
                    before = real.last_ticket
                    reply = self._incr(command[1])
                    if tracks and (real.last_ticket != before or tickets.owed):
                        ticket = max(ticket, real.last_ticket, tickets.owed)  # ENG-51
                        tickets.owed = 0
                else:
                    before = real.last_ticket
                    reply = encode(execute(command), session.protocol)
                    layered = session.queue is not None or not gate.authenticated
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
            if counts:
                self._count(counts, names, out)
                counts, names = [], []
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
            except Exception as exc:
                out.append(_internal_error("set", exc) * len(group))  # PROTO-114
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
            except Exception as exc:
                out.append(_internal_error("set", exc))  # PROTO-114
            else:
                out.append(_OK)
                watches.touch(key)
        return written

    def _count(
        self, counts: list[tuple[bytes, Change]], names: list[bytes], out: list[bytes]
    ) -> None:
        """SRV-28: run a run of plain counters with one ``modify_many_nowait`` (ENG-90) and
        answer each as the command layer would have answered it run alone."""
        try:
            outcomes, _ = self._store.store.modify_many_nowait(counts)
        except CatlogError as exc:
            out.append(replies.error_bytes(f"ERR {exc}") * len(counts))  # PROTO-54
            return
        except Exception as exc:
            for number, name in enumerate(names):  # PROTO-114: logged once, for the run
                out.append(_internal_error(name.lower().decode(), exc, logged=number > 0))
            return
        touch = self._watches.touch if self._watches.active else None  # PROTO-84
        for outcome, (key, _), name in zip(outcomes, counts, names, strict=True):
            if type(outcome) is bytes:
                out.append(b":%b\r\n" % outcome)
                if touch is not None:
                    touch(key)
            elif isinstance(outcome, CatlogError):
                out.append(replies.error_bytes(f"ERR {outcome}"))  # PROTO-54
            else:
                assert isinstance(outcome, Exception), "a counter's change always writes"
                refused = strings.refusal(outcome)
                if refused is not None:
                    out.append(replies.encode(refused))
                else:
                    out.append(_internal_error(name.lower().decode(), outcome))  # PROTO-114

    def _incr(self, key: bytes) -> bytes:
        """PROTO-87: a plain ``INCR key``, answered as the command layer would (the server
        benchmark's INCR spent a fifth of its time in the layer's lookup, call and encoding)."""
        try:
            new = strings.increment(self._store, key, 1)
        except CatlogError as exc:
            return replies.error_bytes(f"ERR {exc}")  # PROTO-54, as the layer does
        except Exception as exc:
            return _internal_error("incr", exc)  # PROTO-114
        if type(new) is int:
            self._watches.touch(key)
            return b":%d\r\n" % new
        return replies.encode(new)

    def close(self) -> None:
        """The connection ended: its WATCHes go with it (PROTO-84)."""
        self._session.close()

    @staticmethod
    def error_reply(message: str) -> bytes:
        return replies.error_bytes("ERR " + message)


_SET_NAMES: Final = frozenset((b"SET", b"set"))
_GET_NAMES: Final = frozenset((b"GET", b"get"))
_INCR_NAMES: Final = frozenset((b"INCR", b"incr"))
_STEPS: Final[dict[bytes, Change]] = {
    name: strings.change_by(amount)
    for name, amount in ((b"INCR", 1), (b"incr", 1), (b"DECR", -1), (b"decr", -1))
}
"""SRV-28: the plain ``INCR key`` and ``DECR key`` in the usual spellings, and their changes."""
_BY_NAMES: Final = frozenset((b"INCRBY", b"incrby", b"DECRBY", b"decrby"))
_OK: Final = replies.encode(replies.OK)
_NULL2: Final = replies.encode(None, 2)
_NULL3: Final = replies.encode(None, 3)


def _internal_error(name: str, exc: Exception, *, logged: bool = False) -> bytes:
    return replies.error_bytes("ERR " + commands.internal_error(name, exc, logged=logged))


def _change_by(command: list[bytes]) -> Change | None:
    """SRV-28: the change of a plain ``INCRBY`` or ``DECRBY``, or ``None`` if its amount is
    refused, which the command layer then answers."""
    amount = strings.counter_amount(command)
    return None if isinstance(amount, Error) else strings.change_by(amount)


def _only_writes(command: list[bytes]) -> bool:
    """SRV-5: a plain SET or an MSET reads nothing, so it need not wait for earlier writes."""
    name = command[0].upper()
    return (name == b"SET" and len(command) == 3) or name == b"MSET"
