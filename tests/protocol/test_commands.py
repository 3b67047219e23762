"""The command layer (catlog/commands/) against a real store in a temporary directory."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import catlog
from catlog import ManualClock
from catlog.commands import (
    COMMANDS,
    KeyValueStore,
    ServerCounters,
    ServerInfo,
    Session,
    execute_line,
)
from catlog.multi import EngineTransaction
from catlog.protocol import line
from catlog.protocol.replies import (
    NULL_ARRAY,
    OK,
    Error,
    Map,
    Reply,
    SimpleString,
    Verbatim,
    encode,
)


@pytest.fixture
def db(data_dir: str) -> Iterator[catlog.Store]:
    with catlog.open(data_dir, fsync="never") as opened:
        yield opened


@pytest.fixture
def session(db: catlog.Store) -> Session:
    return Session(db, client_id=7, server=ServerInfo(tcp_port=4000, process_id=99))


def run(session: Session, *words: bytes | str) -> Reply:
    return session.execute([w.encode() if isinstance(w, str) else w for w in words])


def err(message: str) -> Error:
    return Error(message)


# ----------------------------------------------------------------------------- dispatch


@pytest.mark.spec("PROTO-29")
def test_command_names_are_case_insensitive(session: Session) -> None:
    assert run(session, "set", "k", "v") == OK
    assert run(session, "GeT", "k") == b"v"


@pytest.mark.spec("PROTO-29")
def test_an_unknown_command_gets_redis_7_wording_byte_for_byte(session: Session) -> None:
    assert run(session, "xyz", "a", "b") == err(
        "ERR unknown command 'xyz', with args beginning with: 'a' 'b' "
    )
    assert run(session, "nope") == err("ERR unknown command 'nope', with args beginning with: ")
    long_args = run(session, "x", "a" * 100, "b" * 100, "c")
    assert long_args == err(
        "ERR unknown command 'x', with args beginning with: "
        # C's "'%.*s' " with precision 128 minus the 103 bytes written so far; then it stops.
        f"'{'a' * 100}' '{'b' * 25}' "
    )
    assert (
        encode(run(session, "a\r\nb"))
        == b"-ERR unknown command 'a  b', with args beginning with: \r\n"
    )


@pytest.mark.spec("PROTO-30")
@pytest.mark.parametrize(
    ("words", "name"),
    [
        (["GET"], "get"),
        (["GET", "a", "b"], "get"),
        (["SET", "k"], "set"),
        (["MSET", "a"], "mset"),
        (["MSET", "a", "b", "c"], "mset"),
        (["PING", "a", "b"], "ping"),
        (["ECHO"], "echo"),
        (["DBSIZE", "x"], "dbsize"),
        (["CONFIG", "GET"], "config|get"),
        (["DEL"], "del"),
    ],
)
def test_wrong_arity_gets_redis_wording(session: Session, words: list[str], name: str) -> None:
    assert run(session, *words) == err(f"ERR wrong number of arguments for '{name}' command")


@pytest.mark.spec("PROTO-54")
def test_a_key_the_store_refuses_is_an_error_and_the_session_goes_on(session: Session) -> None:
    reply = run(session, "SET", b"k" * (catlog.MAX_KEY_SIZE + 1), "v")
    assert isinstance(reply, Error)
    assert reply.message.startswith("ERR key of 65537 bytes exceeds the limit")
    assert run(session, "PING") == run(session, "PING")


# ----------------------------------------------------------------------------- keys


@pytest.mark.spec("PROTO-34", "PROTO-35")
def test_set_then_get_binary_safe(session: Session) -> None:
    assert run(session, "GET", "k") is None
    assert run(session, "SET", b"\x00k\r\n", b"\xff\r\nv") == OK
    assert run(session, "GET", b"\x00k\r\n") == b"\xff\r\nv"


@pytest.mark.spec("PROTO-35", "PROTO-31")
def test_set_nx_and_xx(session: Session) -> None:
    assert run(session, "SET", "k", "1", "XX") is None
    assert run(session, "GET", "k") is None
    assert run(session, "SET", "k", "1", "NX") == OK
    assert run(session, "SET", "k", "2", "nx") is None
    assert run(session, "GET", "k") == b"1"
    assert run(session, "SET", "k", "3", "XX") == OK
    assert run(session, "GET", "k") == b"3"
    assert run(session, "SET", "k", "4", "NX", "XX") == err("ERR syntax error")
    assert run(session, "SET", "k", "4", "BOGUS") == err("ERR syntax error")


@pytest.mark.spec("PROTO-35")
def test_set_get_returns_the_old_value(session: Session) -> None:
    assert run(session, "SET", "k", "1", "GET") is None
    assert run(session, "SET", "k", "2", "GET") == b"1"
    assert run(session, "SET", "k", "3", "NX", "GET") == b"2"
    assert run(session, "GET", "k") == b"2"
    assert run(session, "SET", "k", "4", "KEEPTTL") == OK
    assert run(session, "GET", "k") == b"4"


NOW_MS = 1_700_000_000_000


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(now_ms=NOW_MS)


@pytest.fixture
def timed(data_dir: str, clock: ManualClock) -> Iterator[Session]:
    """A session on a store whose clock the test moves (ENG-24)."""
    with catlog.open(data_dir, fsync="never", clock=clock) as opened:
        yield Session(opened)


@pytest.mark.spec("PROTO-36", "PROTO-56")
@pytest.mark.parametrize(
    ("option", "amount", "expires_at"),
    [
        ("EX", "10", NOW_MS + 10_000),
        ("ex", "10", NOW_MS + 10_000),
        ("PX", "1500", NOW_MS + 1500),
        ("EXAT", str(NOW_MS // 1000 + 20), NOW_MS + 20_000),
        ("PXAT", str(NOW_MS + 7), NOW_MS + 7),
    ],
)
def test_set_with_an_expiry_option_sets_it(
    timed: Session, clock: ManualClock, option: str, amount: str, expires_at: int
) -> None:
    assert run(timed, "SET", "k", "v", option, amount) == OK
    assert run(timed, "PEXPIRETIME", "k") == expires_at
    assert run(timed, "PTTL", "k") == expires_at - NOW_MS
    clock.advance((expires_at - NOW_MS) / 1000)
    assert run(timed, "GET", "k") == b"v"
    clock.advance(0.001)
    assert run(timed, "GET", "k") is None
    assert run(timed, "TTL", "k") == -2


@pytest.mark.spec("PROTO-36", "PROTO-31")
def test_set_expiry_errors_are_redis_7_s(timed: Session) -> None:
    invalid = err("ERR invalid expire time in 'set' command")
    assert run(timed, "SET", "k", "v", "EX", "ten") == err(
        "ERR value is not an integer or out of range"
    )
    assert run(timed, "SET", "k", "v", "EX", "0") == invalid
    assert run(timed, "SET", "k", "v", "PX", "-5") == invalid
    assert run(timed, "SET", "k", "v", "EX", str((2**63 - 1) // 1000 + 1)) == invalid
    assert run(timed, "SET", "k", "v", "PX", str(2**63 - 1)) == invalid, "overflows past now"
    assert run(timed, "SET", "k", "v", "EX") == err("ERR syntax error")
    assert run(timed, "SET", "k", "v", "EX", "1", "PX", "1") == err("ERR syntax error")
    assert run(timed, "SET", "k", "v", "KEEPTTL", "EX", "1") == err("ERR syntax error")
    assert run(timed, "SET", "k", "v", "EX", "1", "KEEPTTL") == err("ERR syntax error")
    assert run(timed, "GET", "k") is None


@pytest.mark.spec("PROTO-35", "PROTO-36")
def test_set_clears_an_expiry_unless_keepttl(timed: Session) -> None:
    run(timed, "SET", "k", "1", "EX", "100")
    assert run(timed, "SET", "k", "2", "KEEPTTL") == OK
    assert run(timed, "TTL", "k") == 100
    assert run(timed, "SET", "k", "3", "GET") == b"2"
    assert run(timed, "TTL", "k") == -1
    assert run(timed, "SET", "new", "x", "KEEPTTL") == OK
    assert run(timed, "TTL", "new") == -1
    assert run(timed, "SET", "k", "4", "XX", "PX", "2500") == OK
    assert run(timed, "PTTL", "k") == 2500
    assert run(timed, "SET", "k", "5", "NX", "EX", "9") is None
    assert run(timed, "PTTL", "k") == 2500
    assert run(timed, "SET", "k", "6", "PXAT", str(NOW_MS - 1)) == OK, "stored, already expired"
    assert run(timed, "GET", "k") is None


@pytest.mark.spec("PROTO-55")
def test_expire_and_its_options_follow_redis_7(timed: Session, clock: ManualClock) -> None:
    assert run(timed, "EXPIRE", "missing", "10") == 0
    run(timed, "SET", "k", "v")
    assert run(timed, "EXPIRE", "k", "10", "XX") == 0, "XX: no expiry yet"
    assert run(timed, "EXPIRE", "k", "10", "GT") == 0, "GT: no expiry counts as infinite"
    assert run(timed, "EXPIRE", "k", "10", "NX") == 1
    assert run(timed, "EXPIRE", "k", "20", "NX") == 0
    assert run(timed, "TTL", "k") == 10
    assert run(timed, "EXPIRE", "k", "5", "GT") == 0
    assert run(timed, "EXPIRE", "k", "30", "gt") == 1
    assert run(timed, "EXPIRE", "k", "40", "LT") == 0
    assert run(timed, "PEXPIRE", "k", "1500", "LT", "XX") == 1
    assert run(timed, "PTTL", "k") == 1500
    assert run(timed, "EXPIREAT", "k", str(NOW_MS // 1000 + 50)) == 1
    assert run(timed, "EXPIRETIME", "k") == NOW_MS // 1000 + 50
    assert run(timed, "PEXPIREAT", "k", str(NOW_MS + 60_000)) == 1
    assert run(timed, "PEXPIRETIME", "k") == NOW_MS + 60_000
    run(timed, "SET", "plain", "p")
    assert run(timed, "EXPIRE", "plain", "10", "LT") == 1, "LT: no expiry counts as infinite"
    clock.advance(10.4)
    assert run(timed, "TTL", "plain") == -2


@pytest.mark.spec("PROTO-55")
def test_an_expire_in_the_past_deletes_the_key(timed: Session) -> None:
    run(timed, "MSET", "a", "1", "b", "2", "c", "3")
    assert run(timed, "EXPIRE", "a", "0") == 1
    assert run(timed, "PEXPIRE", "b", "-100") == 1
    assert run(timed, "EXPIREAT", "c", "1") == 1
    assert run(timed, "DBSIZE") == 0


@pytest.mark.spec("PROTO-55", "PROTO-31")
def test_expire_errors_are_redis_7_s(timed: Session) -> None:
    run(timed, "SET", "k", "v")
    assert run(timed, "EXPIRE", "k", "10", "BOGUS") == err("ERR Unsupported option BOGUS")
    assert run(timed, "EXPIRE", "k", "10", "NX", "XX") == err(
        "ERR NX and XX, GT or LT options at the same time are not compatible"
    )
    assert run(timed, "EXPIRE", "k", "10", "NX", "GT") == err(
        "ERR NX and XX, GT or LT options at the same time are not compatible"
    )
    assert run(timed, "EXPIRE", "k", "10", "GT", "LT") == err(
        "ERR GT and LT options at the same time are not compatible"
    )
    assert run(timed, "EXPIRE", "k", "x") == err("ERR value is not an integer or out of range")
    assert run(timed, "EXPIRE", "k", str(2**62)) == err(
        "ERR invalid expire time in 'expire' command"
    )
    assert run(timed, "PEXPIRE", "k", str(2**63 - 1)) == err(
        "ERR invalid expire time in 'pexpire' command"
    )
    assert run(timed, "EXPIRE", "k") == err("ERR wrong number of arguments for 'expire' command")
    assert run(timed, "TTL", "k") == -1


@pytest.mark.spec("PROTO-56", "PROTO-57")
def test_ttl_rounds_like_redis_and_persist_removes_an_expiry(
    timed: Session, clock: ManualClock
) -> None:
    assert run(timed, "TTL", "missing") == run(timed, "PTTL", "missing") == -2
    assert run(timed, "EXPIRETIME", "missing") == -2
    run(timed, "SET", "k", "v", "PX", "2500")
    assert run(timed, "TTL", "k") == 3, "2.5 s rounds half up"
    clock.advance(1.001)
    assert run(timed, "TTL", "k") == 1, "1.499 s rounds down"
    assert run(timed, "PERSIST", "k") == 1
    assert run(timed, "PERSIST", "k") == 0
    assert run(timed, "PERSIST", "missing") == 0
    assert run(timed, "TTL", "k") == run(timed, "PTTL", "k") == run(timed, "EXPIRETIME", "k") == -1
    clock.advance(100)
    assert run(timed, "GET", "k") == b"v"


@pytest.mark.spec("PROTO-40", "ENG-37")
def test_mset_is_one_batch(timed: Session, data_dir: str) -> None:
    assert run(timed, "MSET", "a", "1", "b", "2") == OK
    store = timed.store
    assert isinstance(store, catlog.Store)
    store.flush()
    with open(f"{data_dir}/segment-00001.log", "rb") as segment:
        records, _ = catlog.codec.iter_records(segment.read(), 16)
    assert [r.type.name for r in records] == ["BATCH"]
    big = b"x" * (40 * 1024 * 1024)
    refused = run(timed, "MSET", "c", big, "d", big)
    assert isinstance(refused, Error)
    assert refused.message.startswith("ERR batch of more than")
    assert run(timed, "EXISTS", "c", "d") == 0


@pytest.mark.spec("PROTO-58")
def test_putex_over_the_line_protocol(data_dir: str, clock: ManualClock) -> None:
    with catlog.open(data_dir, fsync="never", clock=clock) as store:
        request = line.parse_line(b"PUTEX tmp 60 a value with spaces")
        assert request == line.PutEx(b"tmp", 60_000, b"a value with spaces")
        assert execute_line(store, request) == line.OK
        assert store.expires_at(b"tmp") == NOW_MS + 60_000
        clock.advance(60.001)
        assert execute_line(store, line.Get(b"tmp")) == line.NOT_FOUND
    assert line.parse_line(b"PUTEX tmp 5 ") == line.PutEx(b"tmp", 5000, b"")
    usage = line.LineError("usage: PUTEX <key> <seconds> <value>")
    assert line.parse_line(b"PUTEX tmp 5") == usage
    assert line.parse_line(b"PUTEX tmp") == usage
    for bad in (b"0", b"-5", b"1.5", b"x", b"1000000000001"):
        event = line.parse_line(b"PUTEX k " + bad + b" v")
        assert isinstance(event, line.LineError)
        assert event.message.startswith("PUTEX needs whole seconds from 1 to 1000000000000")


@pytest.mark.spec("PROTO-37", "PROTO-38")
def test_del_and_exists_count_like_redis(session: Session) -> None:
    run(session, "MSET", "a", "1", "b", "2")
    assert run(session, "EXISTS", "a", "a", "b", "c") == 3
    assert run(session, "DEL", "a", "a", "c") == 1
    assert run(session, "EXISTS", "a") == 0


@pytest.mark.spec("PROTO-39", "PROTO-40", "PROTO-41")
def test_mset_mget_dbsize(session: Session) -> None:
    assert run(session, "DBSIZE") == 0
    assert run(session, "MSET", "a", "1", "b", "2", "a", "3") == OK
    assert run(session, "MGET", "a", "b", "c") == [b"3", b"2", None]
    assert run(session, "DBSIZE") == 2


# ----------------------------------------------------------------------------- SCAN


def scan_all(session: Session, *options: str) -> list[bytes]:
    seen: list[bytes] = []
    cursor = b"0"
    for _ in range(10_000):
        reply = run(session, "SCAN", cursor, *options)
        assert isinstance(reply, list)
        next_cursor, page = reply
        assert isinstance(next_cursor, bytes)
        assert isinstance(page, list)
        cursor = next_cursor
        seen += [key for key in page if isinstance(key, bytes)]
        if cursor == b"0":
            return seen
    raise AssertionError("SCAN never finished")


@pytest.mark.spec("PROTO-42")
@pytest.mark.parametrize("count", ["1", "3", "10", "1000"])
def test_a_full_scan_returns_every_key_once(session: Session, count: str) -> None:
    keys = [b"key:%d" % i for i in range(57)]
    for key in keys:
        run(session, "SET", key, "v")
    assert sorted(scan_all(session, "COUNT", count)) == sorted(keys)


@pytest.mark.spec("PROTO-42", "PROTO-44")
def test_scan_match_filters_with_redis_globs(session: Session) -> None:
    for key in ["user:1", "user:2", "order:1", "", "user:10"]:
        run(session, "SET", key, "v")
    assert sorted(scan_all(session, "MATCH", "user:?", "COUNT", "2")) == [b"user:1", b"user:2"]
    assert len(scan_all(session, "MATCH", "*")) == 5
    assert sorted(scan_all(session, "MATCH", "*:1*")) == [b"order:1", b"user:1", b"user:10"]


@pytest.mark.spec("PROTO-42")
@settings(max_examples=30)
@given(st.data())
def test_keys_present_for_the_whole_scan_are_returned_despite_writes(
    data: st.DataObject,
) -> None:
    store: KeyValueStore = DictStore({b"k%d" % i: b"v" for i in range(40)})
    session = Session(store)
    stable = {b"k%d" % i for i in range(0, 40, 2)}
    seen: set[bytes] = set()
    cursor = b"0"
    while True:
        reply = session.execute([b"SCAN", cursor, b"COUNT", b"%d" % data.draw(st.integers(1, 9))])
        assert isinstance(reply, list)
        cursor_reply, page = reply
        assert isinstance(cursor_reply, bytes)
        assert isinstance(page, list)
        seen |= {key for key in page if isinstance(key, bytes)}
        for key in data.draw(st.lists(st.sampled_from(sorted(set(store) - stable) or [b"x"]))):
            store.delete(key)
        store.put(b"new%d" % data.draw(st.integers(0, 100)), b"v")
        cursor = cursor_reply
        if cursor == b"0":
            break
    assert stable <= seen


@pytest.mark.spec("PROTO-43")
def test_a_cursor_is_a_place_in_the_walk_that_any_session_can_resume(db: catlog.Store) -> None:
    for i in range(20):
        db.put(b"k%d" % i, b"v")
    first, second = Session(db), Session(db)
    reply = run(first, "SCAN", "0", "COUNT", "5")
    assert isinstance(reply, list)
    cursor = reply[0]
    assert isinstance(cursor, bytes)
    assert cursor != b"0"
    assert run(second, "SCAN", cursor, "COUNT", "5") == run(first, "SCAN", cursor, "COUNT", "5")
    assert run(first, "SCAN", b"%d" % ((1 << 64) - 1)) == [b"0", []]


@pytest.mark.spec("PROTO-43", "PROTO-31", "PROTO-100")
def test_bad_cursors_are_invalid(db: catlog.Store) -> None:
    for i in range(20):
        db.put(b"k%d" % i, b"v")
    session = Session(db)
    assert run(session, "SCAN", "abc") == err("ERR invalid cursor")
    assert run(session, "SCAN", "-1") == err("ERR invalid cursor")
    assert run(session, "SCAN", b"%d" % (1 << 64)) == err("ERR invalid cursor")
    assert run(session, "SCAN", "0", "COUNT", "0") == err("ERR syntax error")
    assert run(session, "SCAN", "0", "COUNT", "x") == err(
        "ERR value is not an integer or out of range"
    )
    assert run(session, "SCAN", "0", "TYPE") == err("ERR syntax error")
    assert run(session, "SCAN", "0", "MATCH") == err("ERR syntax error")


@pytest.mark.spec("PROTO-45")
def test_keys_with_a_pattern(session: Session) -> None:
    run(session, "MSET", "a1", "x", "a2", "x", "b1", "x")
    matched = run(session, "KEYS", "a*")
    assert isinstance(matched, list)
    assert sorted(key for key in matched if isinstance(key, bytes)) == [b"a1", b"a2"]
    everything = run(session, "KEYS", "*")
    assert isinstance(everything, list)
    assert len(everything) == 3


# ----------------------------------------------------------------------------- connection


@pytest.mark.spec("PROTO-32", "PROTO-33")
def test_ping_and_echo(session: Session) -> None:
    assert encode(run(session, "PING")) == b"+PONG\r\n"
    assert run(session, "PING", "hi") == b"hi"
    assert run(session, "ECHO", b"\x00x") == b"\x00x"


@pytest.mark.spec("PROTO-49")
def test_select_0_only(session: Session) -> None:
    assert run(session, "SELECT", "0") == OK
    assert run(session, "SELECT", "1") == err("ERR DB index is out of range")
    assert run(session, "SELECT", "-1") == err("ERR DB index is out of range")
    assert run(session, "SELECT", "x") == err("ERR value is not an integer or out of range")
    assert run(session, "SELECT", "2147483647") == err("ERR DB index is out of range")
    wider = err("ERR value is out of range, value must between -2147483648 and 2147483647")
    assert run(session, "SELECT", "2147483648") == wider
    assert run(session, "SELECT", "-2147483649") == wider
    assert run(session, "SELECT", "9223372036854775808") == err(
        "ERR value is not an integer or out of range"
    )


@pytest.mark.spec("PROTO-50", "PROTO-31")
def test_client_setname_getname_setinfo_id(session: Session) -> None:
    assert run(session, "CLIENT", "GETNAME") is None
    assert run(session, "CLIENT", "SETNAME", "worker-1") == OK
    assert run(session, "CLIENT", "GETNAME") == b"worker-1"
    assert run(session, "CLIENT", "SETNAME", "a b") == err(
        "ERR Client names cannot contain spaces, newlines or special characters."
    )
    assert run(session, "CLIENT", "SETINFO", "LIB-NAME", "redis-py") == OK
    assert run(session, "CLIENT", "SETINFO", "lib-ver", "8.1.0") == OK
    assert run(session, "CLIENT", "SETINFO", "color", "red") == err(
        "ERR Unrecognized option 'color'"
    )
    assert run(session, "CLIENT", "ID") == 7
    assert run(session, "CLIENT", "KILL") == err("ERR unknown subcommand 'KILL'. Try CLIENT HELP.")
    assert isinstance(run(session, "CLIENT", "HELP"), list)


@pytest.mark.spec("PROTO-51")
def test_quit_answers_ok_and_asks_to_close(session: Session) -> None:
    assert not session.closing
    assert run(session, "QUIT") == OK
    assert session.closing


def hello_map(reply: Reply) -> dict[bytes, Reply]:
    assert isinstance(reply, Map)
    return {key: value for key, value in reply.pairs if isinstance(key, bytes)}


@pytest.mark.spec("PROTO-52", "PROTO-27")
def test_hello_negotiates_the_protocol(session: Session) -> None:
    assert session.protocol == 2
    two = run(session, "HELLO")
    assert hello_map(two)[b"proto"] == 2
    assert encode(two, session.protocol).startswith(b"*14\r\n$6\r\nserver\r\n")
    three = run(session, "HELLO", "3")
    assert session.protocol == 3
    fields = hello_map(three)
    assert fields[b"proto"] == 3
    assert fields[b"id"] == 7
    assert set(fields) == {b"server", b"version", b"proto", b"id", b"mode", b"role", b"modules"}
    assert encode(three, session.protocol).startswith(b"%7\r\n")
    assert encode(run(session, "GET", "missing"), session.protocol) == b"_\r\n"
    assert hello_map(run(session, "HELLO"))[b"proto"] == 3  # no version: unchanged
    assert hello_map(run(session, "HELLO", "2"))[b"proto"] == 2
    assert session.protocol == 2


@pytest.mark.spec("PROTO-52")
def test_hello_errors(session: Session) -> None:
    assert run(session, "HELLO", "4") == err("NOPROTO unsupported protocol version")
    assert encode(run(session, "HELLO", "1")) == b"-NOPROTO unsupported protocol version\r\n"
    assert run(session, "HELLO", "three") == err(
        "ERR Protocol version is not an integer or out of range"
    )
    assert run(session, "HELLO", "3", "FLY") == err("ERR Syntax error in HELLO option 'FLY'")
    assert session.protocol == 2
    assert hello_map(run(session, "HELLO", "3", "AUTH", "default", "x", "SETNAME", "n"))
    assert session.name == b"n"
    assert run(session, "HELLO", "3", "AUTH", "bob", "x") == err(
        "WRONGPASS invalid username-password pair or user is disabled."
    )


@pytest.mark.spec("PROTO-53")
def test_auth_without_passwords(session: Session) -> None:
    assert run(session, "AUTH", "default", "anything") == OK
    assert run(session, "AUTH", "bob", "x") == err(
        "WRONGPASS invalid username-password pair or user is disabled."
    )
    reply = run(session, "AUTH", "secret")
    assert isinstance(reply, Error)
    assert reply.message.startswith("ERR AUTH <password> called")


# ----------------------------------------------------------------------------- server


def parse_info(reply: Reply) -> dict[str, dict[str, str]]:
    """The way redis-py and redis-cli read INFO: '# Section' headers, 'key:value' lines."""
    assert isinstance(reply, Verbatim)
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for text in reply.text.decode().split("\r\n"):
        if text.startswith("# "):
            current = sections.setdefault(text[2:], {})
        elif text:
            key, _, value = text.partition(":")
            current[key] = value
    return sections


@pytest.mark.spec("PROTO-46")
def test_info_sections_parse_as_key_value_lines(db: catlog.Store) -> None:
    clock = ManualClock()
    session = Session(db, server=ServerInfo(tcp_port=4000, clock=clock, started=0.0))
    clock.advance(90_000)
    run(session, "MSET", "a", "1", "b", "2")
    run(session, "SET", "c", "3", "EX", "100")
    info = parse_info(run(session, "INFO"))
    assert set(info) == {
        "Server",
        "Clients",
        "Memory",
        "Persistence",
        "Stats",
        "Replication",
        "Keyspace",
    }
    assert info["Server"]["redis_version"].startswith("7.")
    assert info["Server"]["tcp_port"] == "4000"
    assert info["Server"]["uptime_in_days"] == "1"
    assert info["Keyspace"]["db0"] == "keys=3,expires=1,avg_ttl=0"
    assert info["Persistence"]["loading"] == "0"
    assert set(parse_info(run(session, "INFO", "keyspace"))) == {"Keyspace"}
    assert set(parse_info(run(session, "info", "SERVER", "persistence"))) == {
        "Server",
        "Persistence",
    }
    assert parse_info(run(session, "INFO", "nosuch")) == {}
    assert encode(run(session, "INFO", "keyspace"), 2).startswith(b"$")
    assert encode(run(session, "INFO", "keyspace"), 3).startswith(b"=")


@pytest.mark.spec("PROTO-47")
def test_command_minimal(session: Session) -> None:
    count = run(session, "COMMAND", "COUNT")
    assert count == len({id(c) for c in COMMANDS.values()})
    everything = run(session, "COMMAND")
    assert isinstance(everything, list)
    assert len(everything) == count
    info = run(session, "COMMAND", "INFO", "get", "nosuch")
    assert isinstance(info, list)
    assert info[1] is NULL_ARRAY
    assert isinstance(info[0], list)
    assert info[0][:2] == [b"get", 2]
    assert run(session, "COMMAND", "DOCS") == Map(())
    assert encode(run(session, "COMMAND", "DOCS"), 2) == b"*0\r\n"
    assert encode(everything, 3)  # every value in it can be encoded


@pytest.mark.spec("PROTO-48")
def test_config_get_answers_what_redis_benchmark_asks(db: catlog.Store) -> None:
    session = Session(db, server=ServerInfo(fsync="interval"))
    assert run(session, "CONFIG", "GET", "save") == Map(((b"save", b""),))
    assert run(session, "CONFIG", "GET", "appendonly") == Map(((b"appendonly", b"yes"),))
    assert run(session, "CONFIG", "GET", "APPEND*") == Map(
        ((b"appendonly", b"yes"), (b"appendfsync", b"everysec"))
    )
    assert encode(run(session, "CONFIG", "GET", "save"), 2) == b"*2\r\n$4\r\nsave\r\n$0\r\n\r\n"
    assert run(session, "CONFIG", "GET", "nosuch") == Map(())
    assert run(session, "CONFIG", "SET", "save", "") == err(
        "ERR unknown subcommand 'SET'. Try CONFIG HELP."
    )


# ----------------------------------------------------------------------------- line protocol


@pytest.mark.spec("PROTO-7", "PROTO-8", "PROTO-9")
def test_line_requests_against_the_store(db: catlog.Store) -> None:
    assert execute_line(db, line.Put(b"name", b"Bob")) is line.OK
    assert execute_line(db, line.Get(b"name")) == line.Value(b"Bob")
    assert execute_line(db, line.Delete(b"name")) is line.OK
    assert execute_line(db, line.Get(b"name")) is line.NOT_FOUND
    assert execute_line(db, line.Delete(b"name")) is line.OK


@pytest.mark.spec("PROTO-15", "PROTO-11")
def test_line_errors_and_store_refusals_become_error_replies(db: catlog.Store) -> None:
    assert execute_line(db, line.LineError("usage: GET <key>")) == line.ErrorReply(
        "usage: GET <key>"
    )
    reply = execute_line(db, line.Put(b"k" * (catlog.MAX_KEY_SIZE + 1), b"v"))
    assert isinstance(reply, line.ErrorReply)
    assert "exceeds the limit" in reply.message


class DictStore:
    """A store made of a dict, for properties that need many quick runs."""

    def __init__(self, data: dict[bytes, bytes]) -> None:
        self.data = data

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def get_many(self, keys: list[bytes]) -> list[bytes | None]:
        return [self.data.get(key) for key in keys]

    def put(self, key: bytes, value: bytes, *, expires_at_ms: int = 0) -> None:
        self.data[key] = value

    def delete(self, key: bytes) -> bool:
        return self.data.pop(key, None) is not None

    def write_batch(self, ops: list[catlog.BatchOp]) -> None:
        raise NotImplementedError("the properties here do not write batches")

    def expire_at(self, key: bytes, expires_at_ms: int) -> bool:
        raise NotImplementedError("nor expire keys")

    def persist(self, key: bytes) -> bool:
        return False

    def expires_at(self, key: bytes) -> int | None:
        if key not in self.data:
            raise KeyError(key)
        return None

    def now_ms(self) -> int:
        return 0

    def compact_in_background(self) -> bool:
        return False

    def transaction(self) -> AbstractContextManager[EngineTransaction]:
        raise NotImplementedError("nor run transactions")

    def modify(self, key: bytes, change: Callable[[bytes | None], bytes | None]) -> bytes | None:
        raise NotImplementedError("nor modify values")

    def __len__(self) -> int:
        return len(self.data)

    def __iter__(self) -> Iterator[bytes]:
        return iter(list(self.data))

    def __contains__(self, key: object) -> bool:
        return key in self.data


@pytest.mark.spec("PROTO-59", "ENG-42", "PROTO-46")
def test_bgrewriteaof_compacts_in_the_background_once_at_a_time(
    db: catlog.Store, session: Session
) -> None:
    for i in range(50):
        run(session, "SET", "k", str(i))
    copying, release = threading.Event(), threading.Event()

    def held(_done: int, _total: int) -> None:  # a compact() held mid-copy, in another thread
        copying.set()
        release.wait(timeout=30)

    foreground = threading.Thread(target=db.compact, args=(held,))
    foreground.start()
    try:
        assert copying.wait(timeout=30)
        assert db.stats().compacting
        persistence = parse_info(run(session, "INFO", "persistence"))["Persistence"]
        assert persistence["aof_rewrite_in_progress"] == "1"
        assert run(session, "BGREWRITEAOF") == err(
            "ERR Background append only file rewriting already in progress"
        )
    finally:
        release.set()
        foreground.join(timeout=30)
    for i in range(50, 100):
        run(session, "SET", "k", str(i))
    assert db.stats().dead_bytes >= 49 * 24
    assert run(session, "BGREWRITEAOF") == SimpleString(
        b"Background append only file rewriting started"
    )
    assert db.wait_for_compaction(timeout=30)
    persistence = parse_info(run(session, "INFO", "persistence"))["Persistence"]
    assert persistence["aof_rewrite_in_progress"] == "0"
    assert int(persistence["catlog_dead_bytes"]) == 0
    assert run(session, "GET", "k") == b"99"


@pytest.mark.spec("PROTO-42", "ENG-34", "PROTO-38", "PROTO-39", "PROTO-41")
def test_expired_keys_are_invisible_to_scan_keys_exists_mget_and_dbsize(
    timed: Session, clock: ManualClock
) -> None:
    run(timed, "MSET", "stays", "1", "goes", "2")
    run(timed, "PEXPIRE", "goes", "100")
    clock.advance(0.2)
    reply = run(timed, "SCAN", "0", "COUNT", "1")
    seen: list[Reply] = []
    while True:
        assert isinstance(reply, list)
        cursor, page = reply
        assert isinstance(cursor, bytes)
        assert isinstance(page, list)
        seen += page
        if cursor == b"0":
            break
        reply = run(timed, "SCAN", cursor, "COUNT", "1")
    assert seen == [b"stays"]
    assert run(timed, "SCAN", "0") == [b"0", [b"stays"]]
    assert run(timed, "KEYS", "*") == [b"stays"]
    assert run(timed, "EXISTS", "stays", "goes") == 1
    assert run(timed, "MGET", "stays", "goes") == [b"1", None]
    assert run(timed, "DBSIZE") == 1


@pytest.mark.spec("PROTO-48")
def test_config_get_answers_honest_values_and_nothing_for_unknown_names(db: catlog.Store) -> None:
    session = Session(db, server=ServerInfo(idle_timeout=30.0, max_clients=7, fsync="interval"))
    assert run(session, "CONFIG", "GET", "maxmemory*", "timeout", "appendfsync") == Map(
        (
            (b"maxmemory", b"0"),
            (b"maxmemory-policy", b"noeviction"),
            (b"timeout", b"30"),
            (b"appendfsync", b"everysec"),
        )
    )
    assert run(session, "CONFIG", "GET", "MAXCLIENTS") == Map(((b"maxclients", b"7"),))
    assert run(session, "CONFIG", "GET", "nosuch", "lua-time-limit") == Map(())


@pytest.mark.spec("PROTO-46", "PROTO-101")
def test_info_has_seven_sections_and_nothing_for_unknown_ones(db: catlog.Store) -> None:
    session = Session(db)
    text = run(session, "INFO")
    assert isinstance(text, Verbatim)
    headers = [line for line in text.text.split(b"\r\n") if line.startswith(b"#")]
    assert headers == [
        b"# Server",
        b"# Clients",
        b"# Memory",
        b"# Persistence",
        b"# Stats",
        b"# Replication",
        b"# Keyspace",
    ]
    assert run(session, "INFO", "cpu", "commandstats") == Verbatim(b"")


@pytest.mark.spec("PROTO-101")
def test_ops_per_sec_is_the_growth_across_the_kept_readings() -> None:
    counters = ServerCounters()
    assert counters.ops_per_sec() == 0
    for tick in range(40):  # 100 commands per 100 ms reading: 1000 a second
        counters.commands += 100
        counters.sample(tick / 10)
    assert counters.ops_per_sec() == 1000
    for tick in range(40, 56):  # idle: 16 readings later the rate is 0
        counters.sample(tick / 10)
    assert counters.ops_per_sec() == 0
