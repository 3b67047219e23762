"""Redis glob patterns (catlog/protocol/pattern.py): the cases of Redis's stringmatchlen."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from catlog.protocol.pattern import glob_match

CASES = [
    (b"h?llo", b"hello", True),
    (b"h?llo", b"hllo", False),
    (b"h*llo", b"hllo", True),
    (b"h*llo", b"heeeello", True),
    (b"h[ae]llo", b"hello", True),
    (b"h[ae]llo", b"hillo", False),
    (b"h[^e]llo", b"hallo", True),
    (b"h[^e]llo", b"hello", False),
    (b"h[a-b]llo", b"hbllo", True),
    (b"h[b-a]llo", b"hallo", True),  # a range's ends may come in either order
    (b"h[a-b]llo", b"hcllo", False),
    (b"\\*", b"*", True),
    (b"\\*", b"a", False),
    (b"[\\]]", b"]", True),
    (b"[", b"[", False),  # an open class at the end matches nothing
    (b"[abc", b"b", True),  # an open class runs to the end of the pattern
    (b"[]a]", b"a]", False),  # "[]" is an empty class
    (b"[^", b"x", True),
    (b"a\\", b"a\\", True),  # a lone backslash at the end is itself
    (b"*", b"", False),  # the empty key matches only the empty pattern...
    (b"", b"", True),
    (b"a*", b"a", True),
    (b"a**", b"a", True),
    (b"*a*b", b"xaxb", True),
    (b"*a*b", b"xaxbx", False),
    (b"\xff*", b"\xff\x00", True),
]


@pytest.mark.spec("PROTO-44")
@pytest.mark.parametrize(("pattern", "key", "matches"), CASES)
def test_redis_glob_cases(pattern: bytes, key: bytes, matches: bool) -> None:
    assert glob_match(pattern, key) is matches


@pytest.mark.spec("PROTO-44")
@given(st.binary(min_size=1, max_size=30), st.binary(max_size=30))
def test_an_escaped_key_matches_only_itself(key: bytes, other: bytes) -> None:
    escaped = b"".join(b"\\" + bytes([c]) for c in key)
    assert glob_match(escaped, key)
    assert glob_match(escaped, other) is (other == key)
    assert glob_match(b"*" + escaped + b"*", other + key + other)


@pytest.mark.spec("PROTO-44")
def test_many_stars_cost_polynomial_time_not_exponential() -> None:
    started = time.monotonic()
    assert not glob_match(b"*a" * 30 + b"b", b"a" * 200)
    assert time.monotonic() - started < 2


@pytest.mark.spec("PROTO-44")
def test_very_deep_patterns_stop_matching_instead_of_crashing() -> None:
    assert not glob_match(b"a*" * 400 + b"z", b"a" * 500)
    assert glob_match(b"a*" * 10 + b"z", b"a" * 20 + b"z")
