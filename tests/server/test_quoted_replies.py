"""Every reply text the spec quotes is one the server sends (spec/protocol.md, "Quoted replies").

The quoted replies are found mechanically: every backquoted span of spec/protocol.md and
spec/server.md in one of the forms that section lists (on the RESP wire, ``+OK``; an error text
starting with its code, ``ERR syntax error``; a protocol error's text; a line-protocol reply).
:data:`PROBES` maps each one to requests that provoke it; the test runs them against a real server
and checks that the reply is the quoted text, with ``<...>`` and ``...`` standing for any text.
A quoted reply with no probe fails :func:`test_every_quoted_reply_has_a_probe`, so a clause that
quotes a new reply gets its check the day it is written; a probe whose text the spec no longer
quotes fails it too.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from catlog.protocol import detect
from tests.server.conftest import RunningServer, start_server

ROOT = Path(__file__).resolve().parents[2]
SPECS = ("spec/protocol.md", "spec/server.md")

ERROR_CODES = ("ERR", "NOPROTO", "NOAUTH", "WRONGPASS", "EXECABORT")
"""The RESP error codes the spec quotes replies in (spec/protocol.md, "Quoted replies")."""

QUOTED_REPLY = re.compile(
    r"[+-][A-Za-z<]"  # a reply as on the RESP wire
    rf"|(?:{'|'.join(ERROR_CODES)}) "  # a RESP error's text, from its code
    r"|Protocol error: "  # a RESP protocol error's text (sent after -ERR)
    r"|ERROR |VALUE |(?:OK|NOT_FOUND|PONG)\Z"  # a line-protocol reply; the status PONG
)
CLAUSE = re.compile(r"\*\*([A-Z]+-\d+)\*\*")


def quoted_replies() -> dict[str, list[str]]:
    """Each reply text quoted in the specs, with where it is quoted (``file clause``)."""
    found: dict[str, list[str]] = {}
    for name in SPECS:
        text = re.sub(r"```.*?```", "", (ROOT / name).read_text(), flags=re.DOTALL)
        for span in re.finditer(r"`([^`]+)`", text):
            quoted = re.sub(r"\s*\n\s*", " ", span.group(1))  # a span may wrap across lines
            if QUOTED_REPLY.match(quoted):
                clauses = CLAUSE.findall(text, 0, span.start())
                found.setdefault(quoted, []).append(f"{name} {clauses[-1] if clauses else ''}")
    return found


@dataclass(frozen=True)
class Probe:
    """Requests to send, each on a new connection; the reply to the last must hold the quote."""

    requests: tuple[bytes, ...]
    flags: tuple[str, ...] = ()


def resp(*words: bytes) -> bytes:
    return b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%b\r\n" % (len(w), w) for w in words)


def cmd(text: str) -> bytes:
    return resp(*(word.encode() for word in text.split()))


def one(request: bytes, *flags: str) -> Probe:
    return Probe((request,), flags)


LONG_KEY = b"k" * 65_537
"""One byte over the engine's key limit (ENG-24), so the store refuses it."""

NOT_SENT_BY_CATLOG = "quoted for contrast: not a reply catlog sends"

EXEC_X = one(cmd("EXEC x"))

PASSWORD = ("--requirepass", "q-secret")
"""A server with a password, for the replies of PROTO-103 .. PROTO-110."""

INTERNAL = "a defect's reply: tests/server/test_internal_errors.py makes a command raise to see it"

PROBES: dict[str, Probe | str] = {
    # line protocol (PROTO-4 .. PROTO-15, PROTO-58)
    "OK": one(b"PUT q-ok v\n"),
    "VALUE <value>": one(b"PUT q-value 1\nGET q-value\n"),
    "NOT_FOUND": one(b"GET q-nothing\n"),
    "ERROR <message>": one(b"GET q\nFROB q\n"),
    "ERROR line too long (the limit is <N> bytes)": one(b"PUT " + b"x" * 1_048_577 + b"\n"),
    "ERROR PUTEX needs whole seconds from 1 to 1000000000000, not '...'": one(b"PUTEX q 0 v\n"),
    "ERROR the value holds CR or LF, which a line cannot carry; read it with RESP": Probe(
        (resp(b"SET", b"q-crlf", b"a\nb"), b"GET q-crlf\n")
    ),
    "ERROR <the engine's message>": one(b"PUT " + LONG_KEY + b" v\n"),
    # RESP wire forms (PROTO-18, PROTO-26, PROTO-59, SRV-8, SRV-11)
    "+OK": one(cmd("SET q-ok v")),
    "+PONG": one(b"PING\r\n"),
    "PONG": one(cmd("PING")),
    "+<text>\\r\\n": one(cmd("PING")),
    "-<CODE> <text>\\r\\n": one(cmd("FROB")),
    "-ERR <message>\\r\\n": one(b"*x\r\n"),
    "-ERR max number of clients reached": one(b"", "--max-connections", "0"),
    "+Background append only file rewriting started": one(cmd("BGREWRITEAOF")),
    "-ERR Background append only file rewriting already in progress": one(
        cmd("BGREWRITEAOF") * 5  # run in one read: the first compaction is still running
    ),
    # protocol errors (PROTO-18)
    "Protocol error: invalid multibulk length": one(b"*-0\r\n"),
    "Protocol error: expected '$', got 'x'": one(b"*1\r\nx"),
    "Protocol error: invalid bulk length": one(b"*1\r\n$-5\r\n"),
    "Protocol error: too big mbulk count string": one(b"*" + b"1" * 65_537),
    "Protocol error: too big bulk count string": one(b"*1\r\n$" + b"1" * 65_537),
    "Protocol error: too big inline request": one(b"PING" + b"x" * 65_537),
    "Protocol error: unbalanced quotes in request": one(b'PING "x\r\n'),
    "Protocol error: expected '\\r\\n' after a bulk string": one(b"*1\r\n$4\r\nPINGxx"),
    "Protocol error: too big request": one(
        b"*4\r\n$3\r\nSET\r\n$65536\r\n%b\r\n$67108864\r\n%b\r\n$65536\r\n"
        % (b"k" * 65_536, b"v" * 67_108_864)
    ),
    # commands (PROTO-29 .. PROTO-54)
    "ERR unknown command '<name>', with args beginning with: '<arg1>' '<arg2>' ": one(
        cmd("FROB a b")
    ),
    "ERR wrong number of arguments for '<name>' command": one(cmd("GET")),
    "ERR syntax error": one(cmd("SET q v FROB")),
    "ERR value is not an integer or out of range": one(cmd("EXPIRE q x")),
    "ERR unknown subcommand '<sub>'. Try <COMMAND> HELP.": one(cmd("CLIENT FROB")),
    "ERR invalid expire time in 'set' command": one(cmd("SET q v EX 0")),
    "ERR Unsupported option <option>": one(cmd("EXPIRE q 10 FROB")),
    "ERR NX and XX, GT or LT options at the same time are not compatible": one(
        cmd("EXPIRE q 10 NX XX")
    ),
    "ERR GT and LT options at the same time are not compatible": one(cmd("EXPIRE q 10 GT LT")),
    "ERR invalid expire time in '<command>' command": one(cmd("PEXPIRE q 9223372036854775807")),
    "ERR invalid cursor": one(cmd("SCAN 18446744073709551616")),
    "ERR DB index is out of range": one(cmd("SELECT 1")),
    "ERR value is out of range, value must between -2147483648 and 2147483647": one(
        cmd("SELECT 2147483648")
    ),
    "ERR Client names cannot contain spaces, newlines or special characters.": one(
        resp(b"CLIENT", b"SETNAME", b"a b")
    ),
    "ERR Unrecognized option '<attr>'": one(cmd("CLIENT SETINFO FROB x")),
    "ERR Protocol version is not an integer or out of range": one(cmd("HELLO x")),
    "NOPROTO unsupported protocol version": one(cmd("HELLO 4")),
    "NOPROTO sorry, this protocol version is not supported": NOT_SENT_BY_CATLOG
    + " (Redis 6.0's wording, PROTO-52)",
    "ERR Syntax error in HELLO option '<option>'": one(cmd("HELLO 3 FROB")),
    "WRONGPASS invalid username-password pair or user is disabled.": one(cmd("AUTH bob pw")),
    "ERR AUTH <password> called without any password configured for the default user. "
    "Are you sure your configuration is correct?": one(cmd("AUTH pw")),
    "ERR <the engine's message>": one(resp(b"SET", LONG_KEY, b"v")),
    "ERR increment or decrement would overflow": one(
        cmd("SET q-max 9223372036854775807") + cmd("INCR q-max")
    ),
    "ERR decrement would overflow": one(cmd("DECRBY q -9223372036854775808")),
    "ERR offset is out of range": one(cmd("SETRANGE q -1 x")),
    "ERR value is not a valid float": one(cmd("INCRBYFLOAT q abc")),
    "ERR increment would produce NaN or Infinity": one(cmd("INCRBYFLOAT q-inf inf")),
    "ERR no such key": one(cmd("RENAME q-none q-other")),
    "ERR source and destination objects are the same": one(cmd("COPY q q")),
    "ERR Command not allowed inside a transaction": one(cmd("MULTI") + cmd("SAVE")),
    "ERR wrong number of arguments for 'msetnx' command": one(cmd("MSETNX a 1 b")),
    "ERR invalid expire time in 'getex' command": one(
        cmd("SET q-getex v") + cmd("GETEX q-getex EX 0")
    ),
    "ERR string exceeds maximum allowed size (proto-max-bulk-len)": one(
        cmd("SETRANGE q 67108864 x")
    ),
    "ERR If you want both the length and indexes, please just use IDX.": one(
        cmd("LCS q-lcs1 q-lcs2 LEN IDX")
    ),
    "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len": one(
        cmd(f"MSET q-lcs1 {'x' * 1100} q-lcs2 {'y' * 1100}") + cmd("LCS q-lcs1 q-lcs2")
    ),
    # PROTO-114: a defect's reply, which no request provokes from outside
    "-ERR internal error in '<name>' command: <kind>": INTERNAL,
    "ERROR internal error in '<name>' command: <kind>": INTERNAL,
    # transactions (PROTO-80 .. PROTO-85)
    "+QUEUED": one(cmd("MULTI") + cmd("SET q v")),
    "-EXECABORT Transaction discarded because of previous errors.": one(
        cmd("MULTI") + cmd("FROB") + cmd("EXEC")
    ),
    "ERR MULTI calls can not be nested": one(cmd("MULTI") + cmd("MULTI")),
    "-EXECABORT Transaction discarded because of: wrong number of arguments for 'exec' command": EXEC_X,  # noqa: E501
    "ERR DISCARD without MULTI": one(cmd("DISCARD")),
    "ERR EXEC without MULTI": one(cmd("EXEC")),
    "ERR WATCH inside MULTI is not allowed": one(cmd("MULTI") + cmd("WATCH q")),
    # authentication (PROTO-103 .. PROTO-110)
    "NOAUTH Authentication required.": one(cmd("GET q"), *PASSWORD),
    "-EXECABORT Transaction discarded because of: NOAUTH Authentication required.": one(
        cmd("EXEC"), *PASSWORD
    ),
    "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO "
    "<proto> AUTH <user> <pass> option can be used to authenticate the client and select the "
    "RESP protocol version at the same time": one(cmd("HELLO 3"), *PASSWORD),
    "ERROR NOAUTH this server requires a password and the line protocol has no AUTH; connect "
    "with RESP and send AUTH": one(b"GET q\n", *PASSWORD),
}


def expected_reply(quoted: str, request: bytes) -> re.Pattern[bytes]:
    """The bytes the quote stands for, as a pattern: on the wire of the request's protocol."""
    text = quoted.removesuffix("\\r\\n")
    if request and detect(request.lstrip(b"\r\n"), end=True) == "line":
        wire = text + "\n"  # PROTO-10
    elif text[0] in "+-":
        wire = text + "\r\n"
    elif text.startswith("Protocol error: "):
        wire = "-ERR " + text + "\r\n"  # PROTO-18
    elif text.split(" ", 1)[0] in ERROR_CODES:
        wire = "-" + text + "\r\n"
    else:
        wire = "+" + text + "\r\n"  # a status
    pieces = re.split(r"(<[^>]*>|\.\.\.)", wire)
    pattern = "".join("[^\r\n]+" if i % 2 else re.escape(piece) for i, piece in enumerate(pieces))
    return re.compile(rb"(?:\A|\n)" + pattern.encode("latin-1"))


def _exchange(server: RunningServer, request: bytes, until: re.Pattern[bytes] | None) -> bytes:
    """Send ``request`` on a new connection; read until ``until`` is found (or one reply when
    it is None), the server closes, or 10 s pass."""
    with server.connect() as sock:
        if request:
            sock.sendall(request)
        got = b""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if until is not None and until.search(got):
                break
            if until is None and got.endswith(b"\n"):
                break
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            got += chunk
        return got


@pytest.fixture(scope="module")
def servers(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[tuple[str, ...], RunningServer]]:
    """One server per set of flags the probes ask for, started on first use."""
    started: dict[tuple[str, ...], RunningServer] = {}
    yield started
    for server in started.values():
        server.stop()


QUOTED = quoted_replies()


@pytest.mark.spec("PROTO-61")
def test_every_quoted_reply_has_a_probe() -> None:
    unprobed = {text: where for text, where in QUOTED.items() if text not in PROBES}
    unquoted = [text for text in PROBES if text not in QUOTED]
    assert (unprobed, unquoted) == ({}, [])


@pytest.mark.spec("PROTO-61", "PROTO-13", "PROTO-18", "PROTO-31", "SRV-8")
@pytest.mark.parametrize(
    "quoted", [text for text in QUOTED if not isinstance(PROBES.get(text), str)]
)
def test_the_server_sends_each_quoted_reply(
    quoted: str,
    servers: dict[tuple[str, ...], RunningServer],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    probe = PROBES.get(quoted)
    if probe is None:
        pytest.fail(f"no probe for {quoted!r}, quoted in {QUOTED[quoted]}")
    assert not isinstance(probe, str), "texts quoted for contrast are not parametrized"
    if probe.flags not in servers:
        directory = tmp_path_factory.mktemp("data")
        servers[probe.flags] = start_server(str(directory), "--idle-timeout", "0", *probe.flags)
    server = servers[probe.flags]
    *setup, last = probe.requests
    for request in setup:
        _exchange(server, request, None)
    wanted = expected_reply(quoted, last)
    got = _exchange(server, last, wanted)
    assert wanted.search(got), (
        f"quoted in {QUOTED[quoted]}: {quoted!r}; the server sent {got[:300]!r}"
    )
