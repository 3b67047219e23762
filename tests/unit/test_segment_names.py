"""Segment file names (FMT-1)."""

from __future__ import annotations

import pytest

from catlog.segment import parse_segment_name, segment_name


@pytest.mark.spec("FMT-1")
def test_names_are_zero_padded_to_five_digits_and_grow_beyond() -> None:
    assert segment_name(1) == "segment-00001.log"
    assert segment_name(99_999) == "segment-99999.log"
    assert segment_name(100_000) == "segment-100000.log"
    for number in (1, 42, 99_999, 100_000, 1_234_567):
        assert parse_segment_name(segment_name(number)) == number


@pytest.mark.spec("FMT-1")
@pytest.mark.parametrize(
    "name",
    [
        "segment-1.log",
        "segment-00000.log",
        "segment-000001.log",
        "segment-00001.log.tmp",
        "segment-00001.log.torn-16",
        "Segment-00001.log",
        "segment-0000a.log",
        "LOCK",
    ],
)
def test_other_names_are_not_segments(name: str) -> None:
    assert parse_segment_name(name) is None
