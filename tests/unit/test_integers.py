"""The decimal integers commands take and INCR reads (PROTO-31): ``parse_int`` against the
rule written out the long way, on the spellings that sit at its edges and on random bytes."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from catlog.commands import parse_int

_DECIMAL = re.compile(rb"0|-?[1-9][0-9]*")


def reference(data: bytes) -> int | None:
    """PROTO-31: an optional ``-``, then digits without a leading zero (0 alone), in 64 bits."""
    if _DECIMAL.fullmatch(data) is None:
        return None
    value = int(data)
    return value if -(2**63) <= value < 2**63 else None


EDGES = [
    *(b"", b"0", b"00", b"-0", b"-", b"1", b"01", b"-01", b"+1", b" 1", b"1 ", b"1_0", b"0x1"),
    *(b"\xd9\xa1", b"\xb2", b"9" * 18, b"9" * 19, b"1" + b"0" * 18, b"9223372036854775807"),
    *(b"9223372036854775808", b"-9223372036854775808", b"-9223372036854775809", b"9" * 20),
]


@pytest.mark.spec("PROTO-31")
@pytest.mark.parametrize("data", EDGES)
def test_the_edges_of_the_rule(data: bytes) -> None:
    assert parse_int(data) == reference(data)


@pytest.mark.spec("PROTO-31")
@given(
    st.one_of(
        st.binary(max_size=22),
        st.text(alphabet="0123456789-+ ", max_size=22).map(str.encode),
        st.integers(-(2**65), 2**65).map(lambda n: b"%d" % n),
    )
)
def test_parse_int_follows_the_rule(data: bytes) -> None:
    assert parse_int(data) == reference(data)
