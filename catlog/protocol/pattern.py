"""Redis glob-style patterns, for SCAN ... MATCH and KEYS (spec/protocol.md, PROTO-44).

:func:`glob_match` is Redis's ``stringmatchlen`` (util.c) with ``nocase`` off, carried over
step by step so that every pattern means here what it means to Redis, corner cases included:

* ``*`` matches any run of bytes, ``?`` any one byte;
* ``[abc]``, ``[a-z]`` (ends in either order), ``[^...]`` negated; ``\\`` escapes inside;
  a class left open runs to the end of the pattern; ``[]`` matches nothing;
* ``\\x`` matches ``x``; a lone ``\\`` at the end matches a backslash;
* the empty key matches only the empty pattern (SCAN and KEYS treat the pattern ``*`` as
  "everything" before asking, so it does reach the empty key).

Like Redis, the search gives up on a ``*`` once the rest of the pattern failed from every later
position, so the work is bounded by pattern length times key length, not exponential.
"""

from __future__ import annotations

from typing import Final

_STAR: Final = 42
_QUESTION: Final = 63
_OPEN: Final = 91
_CLOSE: Final = 93
_BACKSLASH: Final = 92
_CARET: Final = 94
_DASH: Final = 45
_MAX_NESTING: Final = 200
"""Redis gives up (no match) beyond 1000 nested stars; Python's default recursion limit of 1000
frames makes catlog give up at 200 (PROTO-44 notes the difference)."""


def glob_match(pattern: bytes, key: bytes) -> bool:
    """Whether ``key`` matches the Redis glob ``pattern``."""
    return _Matcher(pattern, key).match(0, 0, 0)


class _Matcher:
    """One pattern against one key; ``skip_longer`` is Redis's shared give-up flag."""

    __slots__ = ("key", "pattern", "skip_longer")

    def __init__(self, pattern: bytes, key: bytes) -> None:
        self.pattern = pattern
        self.key = key
        self.skip_longer = False

    def match(self, pi: int, si: int, nesting: int) -> bool:
        return _match(self, pi, si, nesting)


def _match(m: _Matcher, pi: int, si: int, nesting: int) -> bool:
    p = m.pattern
    s = m.key
    if nesting > _MAX_NESTING:
        return False
    plen = len(p)
    slen = len(s)
    while pi < plen and si < slen:
        c = p[pi]
        if c == _STAR:
            while pi + 1 < plen and p[pi + 1] == _STAR:
                pi += 1
            if pi + 1 == plen:
                return True
            while si < slen:
                if _match(m, pi + 1, si, nesting + 1):
                    return True
                if m.skip_longer:
                    return False
                si += 1
            m.skip_longer = True
            return False
        if c == _QUESTION:
            si += 1
        elif c == _OPEN:
            pi += 1
            negate = pi < plen and p[pi] == _CARET
            if negate:
                pi += 1
            matched = False
            byte = s[si]
            while True:
                if pi < plen and p[pi] == _BACKSLASH and plen - pi >= 2:
                    pi += 1
                    if p[pi] == byte:
                        matched = True
                elif pi < plen and p[pi] == _CLOSE:
                    break
                elif pi >= plen:
                    pi -= 1  # an open class ends with the pattern
                    break
                elif plen - pi >= 3 and p[pi + 1] == _DASH:
                    low, high = sorted((p[pi], p[pi + 2]))
                    pi += 2
                    if low <= byte <= high:
                        matched = True
                elif p[pi] == byte:
                    matched = True
                pi += 1
            if negate:
                matched = not matched
            if not matched:
                return False
            si += 1
        else:
            if c == _BACKSLASH and plen - pi >= 2:
                pi += 1
                c = p[pi]
            if c != s[si]:
                return False
            si += 1
        pi += 1
        if si == slen:
            while pi < plen and p[pi] == _STAR:
                pi += 1
            break
    return pi == plen and si == slen
