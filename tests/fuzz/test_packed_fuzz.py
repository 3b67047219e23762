"""Flip any bit or zero any range of a compacted store's packed segments: reported, never a lie.

The packed twin of test_corruption_fuzz.py. After a compaction every record lies in a packed
segment (FMT-26), written whole, so no damage to one is a torn tail (REC-19): opening must raise
``CorruptionError`` naming the file and the record the first changed byte hit (offset 0 for the
header) and change no file; a get under an open store must fail exactly for the keys whose own
record was hit, and name it (ENG-12).
"""

from __future__ import annotations

import os
import tempfile

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

import catlog
from catlog.codec import SEGMENT_HEADER_SIZE
from tests.fuzz.test_corruption_fuzz import (
    Damage,
    damage,
    damage_in,
    ops_strategy,
    segment_sizes_of,
)
from tests.fuzz.test_truncation_fuzz import Op, segment_name, snapshot
from tests.store.segments import records

Where = dict[bytes, tuple[int, int, int]]
"""Each live key's packed record: ``(segment number, offset, end)``."""


def compacted(directory: str, ops: list[Op]) -> tuple[dict[bytes, bytes], Where]:
    """Write ``ops``, compact them into packed outputs of at most 256 bytes, and close.

    The active segment left after the compaction holds no record, and it is removed, as by hand,
    so that every segment is packed and the newest one too: REC-19's harder case.
    """
    with catlog.open(directory, fsync="never", segment_size=256) as store:
        for key, value in ops:
            if value is None:
                store.pop(key, None)
            else:
                store[key] = value
        store.compact()
        expected = dict(store.items())
        active = store.stats().active_segment
    os.remove(f"{directory}/{active}")
    where = {
        r.key: (number, r.offset, r.offset + r.size)
        for number in segment_sizes_of(directory)
        for r in records(directory, number)
    }
    assert set(where) == set(expected)
    return expected, where


def first_hit(where: Where, hit: Damage) -> int:
    """The offset of the record holding the first changed byte; 0 when it is in the header."""
    return next(
        (
            start
            for number, start, end in where.values()
            if number == hit.segment and start <= hit.start < end
        ),
        0,
    )


ops_with_a_put = ops_strategy.filter(lambda ops: any(value is not None for _, value in ops))


@pytest.mark.spec("REC-19", "REC-6", "REC-3", "FMT-26")
@given(ops=ops_with_a_put, data=st.data())
def test_damage_to_a_packed_segment_is_reported_at_the_record_it_hit(
    ops: list[Op], data: st.DataObject
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = f"{tmp}/data"
        expected, where = compacted(directory, ops)
        if not where:
            event("every key was deleted: nothing to damage")
            return
        hit = damage(directory, data.draw(damage_in(segment_sizes_of(directory)), label="damage"))
        if hit is None:
            event("damage changed no byte")
            with catlog.open(directory) as store:
                assert dict(store.items()) == expected
            return
        intact = [
            (number, start)
            for number, start, end in where.values()
            if number != hit.segment or end <= hit.start or start >= hit.stop
        ]
        newest = max(segment_sizes_of(directory))
        if (
            hit.start < SEGMENT_HEADER_SIZE
            and hit.segment == newest
            and not any(number == newest for number, _ in intact)
        ):
            event("the newest header and every record after it hit: a torn tail (REC-19, REC-5)")
            with catlog.open(directory) as store:
                (repair,) = store.stats().tail_repairs
                assert (repair.segment, repair.offset) == (segment_name(newest), 0)
                assert set(store) == {k for k, (n, *_) in where.items() if n != newest}
            return
        before = snapshot(directory)
        with pytest.raises(catlog.CorruptionError) as caught:
            catlog.open(directory)
        assert caught.value.path.endswith("/" + segment_name(hit.segment))
        assert caught.value.offset == first_hit(where, hit)
        assert snapshot(directory) == before


@pytest.mark.spec("ENG-12", "REC-19")
@given(ops=ops_with_a_put, data=st.data())
def test_get_after_damage_to_a_packed_segment_returns_the_value_or_raises(
    ops: list[Op], data: st.DataObject
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = f"{tmp}/data"
        expected, where = compacted(directory, ops)
        if not where:
            return
        with catlog.open(directory, fsync="never") as store:
            hit = damage(directory, data.draw(damage_in(segment_sizes_of(directory))))
            for key, value in expected.items():
                number, start, end = where[key]
                if (
                    hit is not None
                    and number == hit.segment
                    and hit.start < end
                    and start < hit.stop
                ):
                    event("a packed record was hit")
                    with pytest.raises(catlog.CorruptionError) as caught:
                        store.get(key)
                    assert caught.value.path.endswith("/" + segment_name(number))
                    assert caught.value.offset == start
                else:
                    assert store.get(key) == value
