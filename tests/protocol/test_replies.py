"""Reply values and their RESP2/RESP3 bytes (catlog/protocol/replies.py)."""

from __future__ import annotations

import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from catlog.protocol.replies import (
    NULL_ARRAY,
    OK,
    Error,
    Map,
    Reply,
    RespSet,
    SimpleString,
    Verbatim,
    encode,
    encode_many,
)


@pytest.mark.spec("PROTO-26")
@pytest.mark.parametrize(
    ("reply", "resp2", "resp3"),
    [
        (b"abc", b"$3\r\nabc\r\n", b"$3\r\nabc\r\n"),
        (b"", b"$0\r\n\r\n", b"$0\r\n\r\n"),
        (42, b":42\r\n", b":42\r\n"),
        (-1, b":-1\r\n", b":-1\r\n"),
        (None, b"$-1\r\n", b"_\r\n"),
        (OK, b"+OK\r\n", b"+OK\r\n"),
        (SimpleString(b"PONG"), b"+PONG\r\n", b"+PONG\r\n"),
        (Error("ERR syntax error"), b"-ERR syntax error\r\n", b"-ERR syntax error\r\n"),
        ([b"a", 1, None], b"*3\r\n$1\r\na\r\n:1\r\n$-1\r\n", b"*3\r\n$1\r\na\r\n:1\r\n_\r\n"),
        ([], b"*0\r\n", b"*0\r\n"),
        (NULL_ARRAY, b"*-1\r\n", b"_\r\n"),
        (Map(((b"k", 1),)), b"*2\r\n$1\r\nk\r\n:1\r\n", b"%1\r\n$1\r\nk\r\n:1\r\n"),
        (RespSet((b"x",)), b"*1\r\n$1\r\nx\r\n", b"~1\r\n$1\r\nx\r\n"),
        (Verbatim(b"a:1"), b"$3\r\na:1\r\n", b"=7\r\ntxt:a:1\r\n"),
    ],
)
def test_each_reply_value_has_its_resp2_and_resp3_bytes(
    reply: Reply, resp2: bytes, resp3: bytes
) -> None:
    assert encode(reply, 2) == resp2
    assert encode(reply, 3) == resp3


@pytest.mark.spec("PROTO-28")
def test_cr_and_lf_cannot_break_out_of_a_line_framed_reply() -> None:
    assert encode(Error("ERR a\r\n+OK")) == b"-ERR a  +OK\r\n"
    assert encode(SimpleString(b"x\ny")) == b"+x y\r\n"


@pytest.mark.spec("PROTO-28")
def test_client_bytes_in_errors_come_back_unchanged() -> None:
    message = b"ERR \xff\xfe".decode("utf-8", "surrogateescape")
    assert encode(Error(message)) == b"-ERR \xff\xfe\r\n"


@pytest.mark.spec("PROTO-25")
def test_many_replies_become_one_write() -> None:
    assert encode_many([OK, b"v", None], 2) == b"+OK\r\n$1\r\nv\r\n$-1\r\n"


# ------------------------------------------------------------------- cross-check with redis-py

redis_parsers = pytest.importorskip("redis._parsers", reason="redis-py is not installed")

leaf = st.one_of(
    st.binary(max_size=20),
    st.integers(-(2**63), 2**63 - 1),
    st.none(),
    st.builds(SimpleString, st.binary(max_size=10).filter(lambda b: not set(b) & set(b"\r\n"))),
    st.builds(Verbatim, st.binary(max_size=20)),
)
replies: st.SearchStrategy[Reply] = st.recursive(
    leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.builds(Map, st.lists(st.tuples(st.binary(max_size=5), inner), max_size=3).map(tuple)),
    ),
    max_leaves=10,
)


def expected(reply: Reply, protocol: int) -> object:
    """What redis-py makes of a reply, decoding nothing."""
    if isinstance(reply, SimpleString):
        return reply.value
    if isinstance(reply, Verbatim):
        return reply.text
    if isinstance(reply, list):
        return [expected(item, protocol) for item in reply]
    if isinstance(reply, Map):
        if protocol == 2:
            return [expected(part, protocol) for pair in reply.pairs for part in pair]
        return {expected(k, protocol): expected(v, protocol) for k, v in reply.pairs}
    return reply


def redis_py_reads(data: bytes, protocol: int) -> object:
    parser_class = redis_parsers._RESP3Parser if protocol == 3 else redis_parsers._RESP2Parser
    encoder_module = pytest.importorskip("redis.connection")
    ours, theirs = socket.socketpair()
    try:
        ours.sendall(data)

        class Connection:
            _sock = theirs
            socket_timeout = 5.0
            encoder = encoder_module.Encoder("utf-8", "strict", decode_responses=False)

        parser = parser_class(socket_read_size=65536)
        parser.on_connect(Connection())
        return parser.read_response()
    finally:
        ours.close()
        theirs.close()


@pytest.mark.spec("PROTO-26")
@given(replies, st.sampled_from([2, 3]))
def test_redis_py_reads_our_replies_as_we_meant_them(reply: Reply, protocol: int) -> None:
    if isinstance(reply, Map) and protocol == 3:
        keys = [k for k, _ in reply.pairs]
        if len(set(keys)) != len(keys):
            return  # a dict cannot show duplicate keys
    assert redis_py_reads(encode(reply, protocol), protocol) == expected(reply, protocol)
