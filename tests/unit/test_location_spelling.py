"""A location's bits are spelled in catlog/index.py, and elsewhere only where marked.

:func:`catlog.index.pack_location` and :func:`~catlog.index.unpack_location` are where a reader
learns the layout of a location. A hot loop may write them out inline, because a call per
record or per put shows in its benchmark; each such place carries the comment ``inline
pack_location`` or ``inline unpack_location`` (saying which benchmark needs it) on the lines
just before it, so that a change to the layout finds every copy with one grep. This test holds
the code to that: a shift by ``SLOT_SHIFT`` or ``LEN_BITS`` anywhere else fails it.
"""

from __future__ import annotations

import re
from pathlib import Path

import catlog

PACKAGE = Path(catlog.__file__).parent
SHIFT = re.compile(r"(<<|>>) *(SLOT_SHIFT|LEN_BITS)\b")
MARK = re.compile(r"# inline (un)?pack_location\b")
REACH = 6
"""How many lines before a spelling its mark may stand (a multi-line expression)."""


def unmarked_spellings(source: str) -> list[int]:
    """The line numbers of shifts by the location's bit counts with no mark shortly above."""
    lines = source.splitlines()
    found = []
    for number, text in enumerate(lines, start=1):
        if SHIFT.search(text.split("#")[0]):
            above = lines[max(0, number - 1 - REACH) : number]
            if not any(MARK.search(line) for line in above):
                found.append(number)
    return found


def test_locations_are_spelled_only_in_the_index_or_where_marked() -> None:
    unmarked = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "index.py" and path.parent == PACKAGE:
            continue
        relative = path.relative_to(PACKAGE.parent)
        source = path.read_text(encoding="utf-8")
        unmarked += [f"{relative}:{line}" for line in unmarked_spellings(source)]
    assert not unmarked, (
        "a location's bits written out by hand: call catlog.index.pack_location or"
        " unpack_location, or mark a hot loop's copy '# inline pack_location: <benchmark>'\n"
        + "\n".join(unmarked)
    )


def test_the_check_finds_an_unmarked_spelling_and_accepts_a_marked_one() -> None:
    unmarked = "x = 1\nlocation = (slot << SLOT_SHIFT) | (offset << LEN_BITS)\n"
    assert unmarked_spellings(unmarked) == [2]
    marked = "# inline pack_location: the fill benchmark\nlocation = slot << SLOT_SHIFT\n"
    assert unmarked_spellings(marked) == []
    far = "# inline pack_location: too far\n" + "x = 1\n" * REACH + "y = s >> SLOT_SHIFT\n"
    assert unmarked_spellings(far) == [REACH + 2]
