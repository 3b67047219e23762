"""catlog against the real Redis: the same random commands to both, every reply compared.

A hypothesis state machine sends each command to a catlog server and to a ``redis-server --save ''
--appendonly no`` on a free loopback port, on one of two connections per server (so WATCH sees
another connection's writes), and compares the replies as parsed RESP2 values. Only what must
differ is normalised: TTL, PTTL, EXPIRETIME and PEXPIRETIME may be a second apart, since the two
servers read their clocks at different moments. Commands whose replies are random or name the
server (RANDOMKEY, TIME, INFO, HELLO) are not sent; nor are relative expiries short enough to pass
between the two sends, nor absolute expiries in the past on SET (Redis keeps such a key until its
expiry cycle, catlog never stores it: spec/protocol.md, section 6). After every command, the two
servers' ``keyspace_hits`` and ``keyspace_misses`` must have grown alike (PROTO-113).

Skipped when ``redis-server`` is not installed, unless ``CATLOG_REQUIRE_REDIS`` is set (CI sets it).
The ``ci`` profile runs a bounded number of programs; ``nightly`` runs many more.
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
from collections.abc import Iterator
from typing import Final

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
    run_state_machine_as_test,
)

from catlog.protocol.resp import encode_command
from tests.server.conftest import start_server
from tests.server.redis_server import running_redis

Value = bytes | int | str | None | list["Value"] | tuple[str, str]
"""A parsed RESP2 reply: bulk bytes, an integer, ``("+", text)`` or ``("-", text)``, null, an
array."""


def read_reply(sock: socket.socket, buffer: bytearray) -> Value:
    """One RESP2 reply from ``sock``, keeping what follows it in ``buffer``."""

    def line() -> bytes:
        while b"\r\n" not in buffer:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            buffer.extend(chunk)
        end = buffer.index(b"\r\n")
        text = bytes(buffer[:end])
        del buffer[: end + 2]
        return text

    head = line()
    kind, rest = head[:1], head[1:]
    if kind in (b"+", b"-"):
        return (kind.decode(), rest.decode("utf-8", "surrogateescape"))
    if kind == b":":
        return int(rest)
    if kind == b"$":
        length = int(rest)
        if length < 0:
            return None
        while len(buffer) < length + 2:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            buffer.extend(chunk)
        data = bytes(buffer[:length])
        del buffer[: length + 2]
        return data
    if kind == b"*":
        count = int(rest)
        return None if count < 0 else [read_reply(sock, buffer) for _ in range(count)]
    raise AssertionError(f"not a RESP2 reply: {head!r}")


class Client:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buffer = bytearray()

    def call(self, words: list[bytes]) -> Value:
        self.sock.sendall(encode_command(*words))
        return read_reply(self.sock, self.buffer)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[int, int]]:
    """(catlog's port, Redis's port), both started once for the module."""
    with (
        running_redis("--databases", "1") as port,  # catlog has one database (PROTO-49)
        tempfile.TemporaryDirectory() as workdir,
    ):
        catlog = start_server(os.path.join(workdir, "catlog"), "--fsync", "never")
        try:
            yield catlog.port, port
        finally:
            catlog.stop()


KEYS: Final = [b"k", b"n", b"w", b"\x00bin\xff", b"a key"]
VALUES: Final = [
    *(b"", b"v", b"1", b"-7", b"10", b"abc", b"9223372036854775807", b"\xff\x00", b"007"),
    *(b"10.50", b"1e3", b"-0.1"),
]
FLOATS: Final = [
    *(b"0.1", b"-5", b"5.0e3", b"1e300", b"-1e300", b"0x10", b"0x.8p1", b"inf", b"-inf", b"abc"),
    *(b"1e-5000", b"3.0000000000000000001", b"1e4932", b"-1e-20", b" 1", b"1e", b"nan", b"0"),
]
NUMBERS: Final = [b"0", b"1", b"-1", b"3", b"100", b"x", b"1.5", b"9223372036854775807", b"01"]
SECONDS: Final = [b"-1", b"0", b"500", b"5000", b"x"]
FUTURE_S: Final = b"%d" % (time.time() + 100_000)
FUTURE_MS: Final = b"%d" % ((time.time() + 100_000) * 1000)

NAMES: Final = [
    "GET",
    "SET",
    "DEL",
    "EXISTS",
    "EXPIRE",
    "PEXPIRE",
    "EXPIREAT",
    "TTL",
    "PTTL",
    "MGET",
    "MSET",
    "INCR",
    "INCRBY",
    "DECR",
    "DECRBY",
    "APPEND",
    "STRLEN",
    "GETRANGE",
    "SUBSTR",
    "SETRANGE",
    "GETSET",
    "GETDEL",
    "GETEX",
    "SETNX",
    "SETEX",
    "PSETEX",
    "MSETNX",
    "UNLINK",
    "TYPE",
    "RENAME",
    "RENAMENX",
    "COPY",
    "TOUCH",
    "PERSIST",
    "MULTI",
    "EXEC",
    "DISCARD",
    "WATCH",
    "UNWATCH",
    "DBSIZE",
    "KEYS",
    "FLUSHDB",
    "EXPIRETIME",
    "PEXPIRETIME",
    "INCRBYFLOAT",
    "PING",
    "ECHO",
    "SELECT",
    "LCS",
    "FROB",
]
ONE_KEY: Final = frozenset(
    [
        "GET",
        "TTL",
        "PTTL",
        "INCR",
        "DECR",
        "STRLEN",
        "GETDEL",
        "TYPE",
        "PERSIST",
        "EXPIRETIME",
        "PEXPIRETIME",
        "ECHO",
    ]
)

keys = st.sampled_from(KEYS)
values = st.sampled_from(VALUES)
numbers = st.sampled_from(NUMBERS)


@st.composite
def set_options(draw: st.DrawFn) -> list[bytes]:
    options: list[bytes] = []
    for _ in range(draw(st.integers(0, 2))):
        choice = draw(st.sampled_from(["NX", "XX", "GET", "KEEPTTL", "EX", "PX", "EXAT", "PXAT"]))
        options.append(choice.encode())
        if choice == "EX":
            options.append(draw(st.sampled_from(SECONDS)))
        elif choice == "PX":
            options.append(draw(st.sampled_from([b"0", b"-5", b"500000", b"x"])))
        elif choice == "EXAT":
            options.append(FUTURE_S)
        elif choice == "PXAT":
            options.append(FUTURE_MS)
    return options


@st.composite
def commands(draw: st.DrawFn) -> list[bytes]:
    """One command, sometimes with a wrong number of arguments or an unknown name."""
    k = draw(keys)
    name = draw(st.sampled_from(NAMES))
    args: list[bytes]
    if name in ONE_KEY:
        args = [k]
    elif name == "SET":
        args = [k, draw(values), *draw(set_options())]
    elif name in ("DEL", "EXISTS", "MGET", "UNLINK", "TOUCH", "WATCH"):
        args = draw(st.lists(keys, min_size=1, max_size=3))
    elif name in ("EXPIRE", "PEXPIRE"):
        flags = draw(st.lists(st.sampled_from([b"NX", b"XX", b"GT", b"LT"]), max_size=2))
        amount = draw(st.sampled_from(SECONDS if name == "EXPIRE" else [b"-1", b"0", b"900000"]))
        args = [k, amount, *flags]
    elif name == "EXPIREAT":
        args = [k, draw(st.sampled_from([b"1", FUTURE_S, b"x"]))]
    elif name in ("MSET", "MSETNX"):
        pairs = draw(st.lists(st.tuples(keys, values), min_size=1, max_size=3))
        args = [word for pair in pairs for word in pair]
    elif name == "INCRBYFLOAT":
        args = [k, draw(st.sampled_from(FLOATS))]
    elif name in ("INCRBY", "DECRBY"):
        args = [k, draw(numbers)]
    elif name in ("APPEND", "GETSET", "SETNX"):
        args = [k, draw(values)]
    elif name in ("GETRANGE", "SUBSTR"):
        args = [k, draw(numbers), draw(numbers)]
    elif name == "SETRANGE":
        args = [k, draw(st.sampled_from([b"0", b"2", b"-1", b"x", b"20"])), draw(values)]
    elif name == "GETEX":
        option = draw(st.sampled_from([[], [b"PERSIST"], [b"EX", b"500"], [b"PX", b"0"]]))
        option = option or draw(st.sampled_from([[], [b"EXAT", FUTURE_S], [b"EXAT", b"1"]]))
        args = [k, *option]
    elif name in ("SETEX", "PSETEX"):
        args = [k, draw(st.sampled_from([b"0", b"-1", b"900000", b"x"])), draw(values)]
    elif name in ("RENAME", "RENAMENX"):
        args = [k, draw(keys)]
    elif name == "COPY":
        args = [k, draw(keys), *draw(st.sampled_from([[], [b"REPLACE"], [b"DB", b"0"]]))]
    elif name == "KEYS":
        args = [draw(st.sampled_from([b"*", b"k*", b"?"]))]
    elif name == "SELECT":
        args = [draw(st.sampled_from([b"0", b"1", b"-1", b"15", b"x", b"2147483648"]))]
    elif name == "LCS":
        options = draw(
            st.lists(
                st.sampled_from(
                    [
                        [b"LEN"],
                        [b"IDX"],
                        [b"WITHMATCHLEN"],
                        [b"MINMATCHLEN", b"2"],
                        [b"minmatchlen", b"-1"],
                        [b"MINMATCHLEN", b"x"],
                        [b"NOSUCH"],
                    ]
                ),
                max_size=3,
            )
        )
        args = [k, draw(keys), *(word for option in options for word in option)]
    elif name == "FROB":
        args = [k]
    else:  # MULTI, EXEC, DISCARD, UNWATCH, DBSIZE, FLUSHDB, PING
        args = []
    if draw(st.integers(0, 19)) == 0:  # now and then a wrong number of arguments
        shorter = bool(args) and draw(st.booleans())
        args = args[:-1] if shorter else [*args, b"extra"]
    return [draw(st.sampled_from([name, name.lower()])).encode(), *args]


TIMED: Final = frozenset((b"ttl", b"pttl", b"expiretime", b"pexpiretime"))
SORTED: Final = frozenset((b"keys",))


def normalise(command: list[bytes], reply: Value, other: Value) -> tuple[Value, Value]:
    """The two replies to ``command``, made comparable where they may honestly differ."""
    name = command[0].lower()
    if name in TIMED and isinstance(reply, int) and isinstance(other, int) and reply >= 0:
        slack = 1 if name in (b"ttl", b"expiretime") else 1000
        if abs(reply - other) <= slack:
            return reply, reply
    if name in SORTED and isinstance(reply, list) and isinstance(other, list):
        return sorted(reply, key=repr), sorted(other, key=repr)
    return reply, other


class SameAsRedis(RuleBasedStateMachine):
    """Two connections to each server; every command goes to both servers on the same one."""

    ports: tuple[int, int] = (0, 0)

    def __init__(self) -> None:
        super().__init__()
        catlog_port, redis_port = self.ports
        self.catlog = [Client(catlog_port), Client(catlog_port)]
        self.redis = [Client(redis_port), Client(redis_port)]
        self.queued: list[list[list[bytes]]] = [[], []]
        """The commands each connection queued since MULTI, to normalise EXEC's array."""
        self.in_multi = [False, False]
        self.watchers = (Client(catlog_port), Client(redis_port))
        """A third connection to each server, never in MULTI, that reads INFO stats."""
        self.lookups = self.lookups_now()
        """Each server's (hits, misses) after the last step, to compare what a step adds."""

    @initialize()
    def empty_both(self) -> None:
        for client in (self.catlog[0], self.redis[0]):
            assert client.call([b"FLUSHALL"]) == ("+", "OK")

    @rule(connection=st.integers(0, 1), command=commands())
    def send(self, connection: int, command: list[bytes]) -> None:
        ours = self.catlog[connection].call(command)
        theirs = self.redis[connection].call(command)
        name = command[0].lower()
        if name == b"exec" and isinstance(ours, list) and isinstance(theirs, list):
            queued = self.queued[connection]
            assert len(ours) == len(theirs) == len(queued), (command, ours, theirs)
            for inner, mine, real in zip(queued, ours, theirs, strict=True):
                left, right = normalise(inner, mine, real)
                assert left == right, (inner, "inside EXEC", mine, real)
        else:
            ours, theirs = normalise(command, ours, theirs)
            assert ours == theirs, (command, ours, theirs)
        if name == b"multi" and theirs == ("+", "OK"):
            self.in_multi[connection] = True
            self.queued[connection] = []
        elif self.in_multi[connection] and (
            name == b"exec" or (name == b"discard" and theirs == ("+", "OK"))
        ):
            # A refused EXEC ends the transaction too (EXECABORT); a DISCARD refused for its
            # arity does not, in Redis as in catlog.
            self.in_multi[connection] = False
        elif self.in_multi[connection] and theirs == ("+", "QUEUED"):
            self.queued[connection].append(command)
        lookups = self.lookups_now()
        added = [
            tuple(n - b for n, b in zip(now, before, strict=True))
            for now, before in zip(lookups, self.lookups, strict=True)
        ]
        assert added[0] == added[1], (command, "keyspace (hits, misses) added", *added)
        self.lookups = lookups

    @precondition(lambda self: not self.in_multi[0])
    @rule(
        count=st.integers(1, 7),
        match=st.sampled_from([[], [b"MATCH", b"k*"], [b"match", b"?"]]),
        kind=st.sampled_from([[], [b"TYPE", b"string"], [b"type", b"STRING"], [b"TYPE", b"list"]]),
    )
    def scan_walk(self, count: int, match: list[bytes], kind: list[bytes]) -> None:
        """A whole SCAN walk on each server returns the same keys; the cursors and the order
        differ by design (PROTO-42), so only the set is compared."""
        found: list[set[bytes]] = []
        for client in (self.catlog[0], self.redis[0]):
            cursor = b"0"
            keys_seen: set[bytes] = set()
            for _ in range(1000):
                reply = client.call([b"SCAN", cursor, b"COUNT", b"%d" % count, *match, *kind])
                assert isinstance(reply, list), reply
                cursor_reply, page = reply
                assert isinstance(cursor_reply, bytes)
                assert isinstance(page, list)
                keys_seen.update(key for key in page if isinstance(key, bytes))
                cursor = cursor_reply
                if cursor == b"0":
                    break
            assert cursor == b"0"
            found.append(keys_seen)
        assert found[0] == found[1]
        # A walk's TYPE lookups depend on how often each server visits a key (Redis may visit
        # one twice while its table grows), so the counters are compared from here on only.
        self.lookups = self.lookups_now()

    def lookups_now(self) -> tuple[tuple[int, int], tuple[int, int]]:
        return keyspace_lookups(self.watchers[0]), keyspace_lookups(self.watchers[1])

    @rule(counts=st.lists(st.sampled_from([b"*0", b"*-1", b"*-10", b"*-0"]), max_size=3))
    def empty_counts(self, counts: list[bytes]) -> None:
        """Counts of zero or below ask for nothing and the command after them is answered; a
        stray `*-0` is a protocol error that closes the connection, on both (PROTO-17)."""
        counts = [count for count in counts if count != b"*-0"]
        prefix = b"".join(count + b"\r\n" for count in counts)
        for client in (self.catlog[1], self.redis[1]):
            if self.in_multi[1]:
                return
            client.sock.sendall(prefix + encode_command(b"PING"))
            assert read_reply(client.sock, client.buffer) == ("+", "PONG")

    def teardown(self) -> None:
        for client in (*self.catlog, *self.redis, *self.watchers):
            client.close()


_NIGHTLY = os.environ.get("HYPOTHESIS_PROFILE") == "nightly"


def keyspace_lookups(client: Client) -> tuple[int, int]:
    """The server's ``keyspace_hits`` and ``keyspace_misses`` from ``INFO stats``."""
    reply = client.call([b"INFO", b"stats"])
    assert isinstance(reply, bytes), reply
    fields = dict(line.split(":", 1) for line in reply.decode().splitlines() if ":" in line)
    return int(fields["keyspace_hits"]), int(fields["keyspace_misses"])


KEYSPACE_READS: Final[list[list[bytes]]] = [
    [b"SET", b"a", b"1"],
    [b"SET", b"t", b"v", b"EX", b"1000"],
    [b"GET", b"a"],
    [b"GET", b"nope"],
    [b"MGET", b"a", b"nope", b"a"],
    [b"EXISTS", b"a", b"nope", b"a"],
    [b"TYPE", b"a"],
    [b"TYPE", b"nope"],
    [b"STRLEN", b"a"],
    [b"STRLEN", b"nope"],
    [b"GETRANGE", b"a", b"0", b"-1"],
    [b"SUBSTR", b"nope", b"0", b"1"],
    [b"GETRANGE", b"a", b"x", b"1"],  # refused before the lookup
    [b"TTL", b"t"],
    [b"PTTL", b"nope"],
    [b"EXPIRETIME", b"a"],
    [b"PEXPIRETIME", b"nope"],
    [b"TOUCH", b"a", b"nope", b"t"],
    [b"GETEX", b"a"],
    [b"GETEX", b"nope", b"PERSIST"],
    [b"GETEX", b"a", b"EX", b"0"],  # refused after the lookup
    [b"GETEX", b"a", b"EX", b"1", b"PX", b"1"],  # refused before it
    [b"GETSET", b"a", b"2"],
    [b"GETSET", b"new", b"1"],
    [b"GETDEL", b"new"],
    [b"GETDEL", b"new"],
    [b"SET", b"a", b"3", b"GET"],
    [b"SET", b"b", b"3", b"NX", b"GET"],
    [b"SET", b"b", b"4", b"XX", b"GET"],
    [b"SET", b"a", b"4", b"EX", b"0", b"GET"],  # refused before the lookup
    [b"SET", b"a", b"5", b"XX"],
    [b"COPY", b"a", b"c"],
    [b"COPY", b"nope", b"c"],
    [b"COPY", b"a", b"c"],  # the destination has a value: the source was still read
    [b"COPY", b"a", b"a"],  # refused before the lookup
    # Writes look their key up too, in Redis with lookupKeyWrite, which counts nothing.
    [b"INCR", b"n"],
    [b"INCRBY", b"n", b"2"],
    [b"DECR", b"n"],
    [b"DECRBY", b"n", b"2"],
    [b"INCRBYFLOAT", b"f", b"1.5"],
    [b"APPEND", b"a", b"x"],
    [b"SETRANGE", b"a", b"1", b"y"],
    [b"SETNX", b"a", b"1"],
    [b"SETNX", b"s", b"1"],
    [b"MSETNX", b"x1", b"1", b"a", b"1"],
    [b"MSET", b"m1", b"1", b"m2", b"2"],
    [b"SETEX", b"e", b"100", b"v"],
    [b"RENAME", b"c", b"d"],
    [b"RENAMENX", b"d", b"a"],
    [b"EXPIRE", b"a", b"100"],
    [b"PERSIST", b"a"],
    [b"DEL", b"d", b"nope"],
    [b"UNLINK", b"m2"],
    [b"KEYS", b"*"],
    [b"DBSIZE"],
    [b"WATCH", b"a", b"nope"],
    [b"UNWATCH"],
    [b"MULTI"],
    [b"GET", b"a"],
    [b"EXISTS", b"nope", b"a"],
    [b"EXEC"],
    [b"SCAN", b"0", b"COUNT", b"1000"],
    [b"SCAN", b"0", b"COUNT", b"1000", b"TYPE", b"string"],
    [b"SCAN", b"0", b"COUNT", b"1000", b"MATCH", b"m*", b"TYPE", b"hash"],
    [b"FLUSHALL"],
    [b"GET", b"a"],
]
"""Every command catlog runs that names a key, with keys present and absent, arguments Redis
refuses before and after its lookup, writes, a transaction and SCAN's TYPE filter."""


@pytest.mark.spec("PROTO-113", "PROTO-101")
def test_keyspace_hits_and_misses_count_the_lookups_redis_counts(
    servers: tuple[int, int],
) -> None:
    catlog_port, redis_port = servers
    ours, theirs = Client(catlog_port), Client(redis_port)
    watchers = Client(catlog_port), Client(redis_port)  # never in MULTI: they read INFO
    try:
        for client in (ours, theirs):
            assert client.call([b"FLUSHALL"]) == ("+", "OK")
        before = keyspace_lookups(watchers[0]), keyspace_lookups(watchers[1])
        for command in KEYSPACE_READS:
            replies = ours.call(command), theirs.call(command)
            if command[0] not in (b"SCAN", b"KEYS"):  # their order differs by design
                assert replies[0] == replies[1], (command, *replies)
            after = keyspace_lookups(watchers[0]), keyspace_lookups(watchers[1])
            added = [(a[0] - b[0], a[1] - b[1]) for a, b in zip(after, before, strict=True)]
            assert added[0] == added[1], (command, "(hits, misses) added: catlog, Redis", *added)
            before = after
    finally:
        for client in (ours, theirs, *watchers):
            client.close()


@pytest.mark.spec(
    "PROTO-80",
    "PROTO-81",
    "PROTO-82",
    "PROTO-83",
    "PROTO-84",
    "PROTO-85",
    "PROTO-87",
    "PROTO-88",
    "PROTO-89",
    "PROTO-90",
    "PROTO-91",
    "PROTO-94",
    "PROTO-17",
    "PROTO-42",
    "PROTO-49",
    "PROTO-100",
    "PROTO-113",
)
def test_catlog_answers_every_command_as_redis_does(servers: tuple[int, int]) -> None:
    SameAsRedis.ports = servers
    run_state_machine_as_test(
        SameAsRedis,
        settings=settings(
            max_examples=2_000 if _NIGHTLY else 200,
            stateful_step_count=60 if _NIGHTLY else 40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )


LCS_OPTIONS: Final = st.lists(
    st.sampled_from(
        [
            [b"LEN"],
            [b"IDX"],
            [b"idx"],
            [b"WITHMATCHLEN"],
            [b"MINMATCHLEN", b"0"],
            [b"MINMATCHLEN", b"2"],
            [b"MINMATCHLEN", b"3"],
            [b"MINMATCHLEN", b"-4"],
            [b"MINMATCHLEN", b"x"],
            [b"MINMATCHLEN"],
            [b"ANY"],
        ]
    ),
    max_size=4,
)


@pytest.mark.spec("PROTO-115", "PROTO-113")
@settings(max_examples=1_000 if _NIGHTLY else 150, deadline=None)
@given(
    first=st.one_of(st.none(), st.binary(max_size=24).map(lambda s: bytes(b % 4 + 97 for b in s))),
    second=st.one_of(st.none(), st.binary(max_size=24).map(lambda s: bytes(b % 4 + 97 for b in s))),
    options=LCS_OPTIONS,
)
def test_lcs_answers_as_redis_does(
    servers: tuple[int, int], first: bytes | None, second: bytes | None, options: list[list[bytes]]
) -> None:
    """Strings over a four-letter alphabet, so that they share long runs and many ways to match;
    either key may be absent; every option, valid or not, in any order."""
    clients = Client(servers[0]), Client(servers[1])
    watchers = Client(servers[0]), Client(servers[1])
    try:
        replies = []
        for client, watcher in zip(clients, watchers, strict=True):
            client.call([b"DEL", b"l1", b"l2"])
            for key, value in ((b"l1", first), (b"l2", second)):
                if value is not None:
                    client.call([b"SET", key, value])
            before = keyspace_lookups(watcher)
            reply = client.call([b"LCS", b"l1", b"l2", *(w for option in options for w in option)])
            after = keyspace_lookups(watcher)
            replies.append((reply, (after[0] - before[0], after[1] - before[1])))
        assert replies[0] == replies[1], (first, second, options, *replies)
    finally:
        for client in (*clients, *watchers):
            client.close()


AMOUNTS: Final = [*NUMBERS, b"-9223372036854775808", b"9223372036854775806", b"-2", b" 1"]


@st.composite
def counters(draw: st.DrawFn) -> list[bytes]:
    """A counter (in any of three spellings, sometimes with a wrong number of arguments), or now
    and then a SET or GET that ends a run of them (SRV-28)."""
    name = draw(st.sampled_from(["INCR", "DECR", "INCRBY", "DECRBY", "SET", "GET"]))
    if name in ("SET", "GET") and draw(st.integers(0, 2)):
        name = draw(st.sampled_from(["INCR", "INCRBY"]))
    args = [draw(keys)]
    if name in ("INCRBY", "DECRBY"):
        args.append(draw(st.sampled_from(AMOUNTS)))
    elif name == "SET":
        args.append(draw(values))
    if draw(st.integers(0, 19)) == 0:
        args = args[:-1] if draw(st.booleans()) else [*args, b"1"]
    spelling = draw(st.sampled_from([name, name.lower(), name.capitalize()]))
    return [spelling.encode(), *args]


@pytest.mark.spec("SRV-28", "PROTO-87", "PROTO-54")
@settings(max_examples=1_000 if _NIGHTLY else 100, deadline=None)
@given(
    start=st.lists(st.tuples(keys, values), max_size=4),
    pipeline=st.lists(counters(), min_size=1, max_size=24),
)
def test_pipelined_counters_answer_as_redis_does(
    servers: tuple[int, int], start: list[tuple[bytes, bytes]], pipeline: list[list[bytes]]
) -> None:
    """The whole pipeline in one write, so that catlog runs its counters in a row together."""
    clients = Client(servers[0]), Client(servers[1])
    try:
        replies = []
        for client in clients:
            assert client.call([b"FLUSHALL"]) == ("+", "OK")
            for key, value in start:
                client.call([b"SET", key, value])
            client.sock.sendall(b"".join(encode_command(*command) for command in pipeline))
            replies.append([read_reply(client.sock, client.buffer) for _ in pipeline])
        assert replies[0] == replies[1], (start, pipeline)
    finally:
        for client in clients:
            client.close()
