"""``catlog.open``'s arguments at the edges of what ENG-25 accepts, and the words of each
refusal: a caller reads the message to learn which argument was wrong and what it may be."""

from __future__ import annotations

import os
import re

import pytest

import catlog


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_open_files": 0}, "max_open_files must be at least 1, or None for the default"),
        ({"compaction_yield_ms": 1000.5}, "compaction_yield_ms must be a number from 0.01 to 1000"),
        ({"compaction_yield_ms": 0.001}, "compaction_yield_ms must be a number from 0.01 to 1000"),
        ({"compact_max_bytes": 0}, "compact_max_bytes must be a positive int or None"),
        ({"compact_max_bytes": 2.0}, "compact_max_bytes must be a positive int or None"),
        ({"max_segments": 31}, "max_segments must be between 32 and 32768"),
        ({"max_segments": 32_769}, "max_segments must be between 32 and 32768"),
    ],
)
@pytest.mark.spec("ENG-25", "ENG-65", "ENG-73", "ENG-74", "ENG-99")
def test_an_argument_out_of_range_is_refused_saying_what_it_may_be(
    data_dir: str, options: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        catlog.open(data_dir, **options)  # type: ignore[arg-type]
    assert not os.path.exists(data_dir), "refused before anything is touched"


@pytest.mark.spec("ENG-25", "ENG-65", "ENG-73", "ENG-74", "ENG-99")
def test_the_bounds_themselves_are_accepted(data_dir: str) -> None:
    for options in (
        {"max_open_files": 1},
        {"compaction_yield_ms": 1000},
        {"compaction_yield_ms": 0.01},
        {"compact_max_bytes": 1},
        {"max_segments": 32},
        {"max_segments": 32_768},
    ):
        with catlog.open(data_dir, **options) as store:
            store.put(b"k", b"v")
            assert store[b"k"] == b"v"
