"""Flip any bit or zero any range of any segment: catlog reports it or repairs it, never lies.

The h11 rule for fuzzing, applied to a store: any damage either opens to exactly what the spec
says survives, or raises ``CorruptionError`` naming the file and the record it hit; no other
exception, and never a wrong value. Because the test places every record itself (FMT-4, ENG-9),
it can say which of the two must happen and at which offset (REC-4, REC-6, REC-3), and which
gets must fail when the damage comes while the store is open (ENG-12).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

import catlog
from tests.fuzz.test_truncation_fuzz import (
    KEYS,
    Op,
    Placed,
    apply,
    segment_name,
    segment_sizes,
    snapshot,
    write_ops,
)

ops_strategy = st.lists(
    st.tuples(st.sampled_from(KEYS), st.none() | st.binary(max_size=16)), min_size=1, max_size=40
)


@dataclass(frozen=True)
class Damage:
    segment: int
    start: int
    """The first byte that changed."""
    stop: int
    """One past the last byte that changed."""


@st.composite
def damage_in(draw: st.DrawFn, sizes: dict[int, int]) -> tuple[int, int, bytes | None]:
    """A segment, a position in it, and either ``None`` (flip one bit there) or zeros to write."""
    number = draw(st.sampled_from(sorted(sizes)))
    position = draw(st.integers(min_value=0, max_value=sizes[number] - 1))
    if draw(st.booleans()):
        return number, position, None
    length = draw(st.integers(min_value=1, max_value=64))
    return number, position, bytes(min(length, sizes[number] - position))


def damage(directory: str, where: tuple[int, int, bytes | None]) -> Damage | None:
    """Apply the damage in place; returns which bytes really changed (zeros may change none)."""
    number, position, zeros = where
    path = Path(directory, segment_name(number))
    before = path.read_bytes()
    after = bytearray(before)
    if zeros is None:
        after[position] ^= 1 << (position % 8)
    else:
        after[position : position + len(zeros)] = zeros
    changed = [i for i in range(len(before)) if before[i] != after[i]]
    if not changed:
        return None
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, bytes(after[changed[0] : changed[-1] + 1]), changed[0])
    finally:
        os.close(fd)
    return Damage(number, changed[0], changed[-1] + 1)


def hit_record(placed: list[Placed], hit: Damage) -> Placed | None:
    """The record holding the first changed byte; ``None`` when the damage starts in a header."""
    return next(
        (r for r in placed if r.segment == hit.segment and r.offset <= hit.start < r.end), None
    )


def segment_sizes_of(directory: str) -> dict[int, int]:
    return {
        int(name[8:13]): os.path.getsize(Path(directory, name))
        for name in os.listdir(directory)
        if name.startswith("segment-") and name.endswith(".log")
    }


def open_or_error(directory: str) -> catlog.Store | catlog.CorruptionError:
    """Open, or the CorruptionError open raised; any other exception fails the test."""
    try:
        return catlog.open(directory)
    except catlog.CorruptionError as error:
        return error


@pytest.mark.spec("REC-6", "REC-4", "REC-5", "REC-3", "REC-2", "ENG-12")
@given(ops=ops_strategy, segment_size=segment_sizes, data=st.data())
def test_damage_at_rest_is_reported_exactly_or_cut_as_a_torn_tail(
    ops: list[Op], segment_size: int, data: st.DataObject
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = f"{tmp}/data"
        placed = write_ops(directory, ops, segment_size)
        sizes = segment_sizes_of(directory)
        newest = max(sizes)
        hit = damage(directory, data.draw(damage_in(sizes), label="damage"))
        if hit is None:
            event("damage changed no byte")
            with catlog.open(directory) as store:
                assert dict(store.items()) == apply(placed)
            return

        record = hit_record(placed, hit)
        offset = 0 if record is None else record.offset
        before_hit = [r for r in placed if r.segment < hit.segment or r.end <= offset]
        untouched_after = [
            r for r in placed if r.segment == hit.segment and r.offset >= max(hit.stop, offset + 1)
        ]
        must_raise = hit.segment != newest or bool(untouched_after)
        event("corruption" if must_raise else "torn tail")

        before = snapshot(directory)
        opened = open_or_error(directory)
        if isinstance(opened, catlog.CorruptionError):
            assert must_raise, f"{opened} is a torn tail, not corruption"
            assert opened.path.endswith("/" + segment_name(hit.segment))
            assert opened.offset == offset
            assert snapshot(directory) == before
            return
        with opened as store:
            assert not must_raise, "damage that is not at the tail of the newest segment"
            assert dict(store.items()) == apply(before_hit)
            (repair,) = store.stats().tail_repairs
            assert (repair.segment, repair.offset) == (segment_name(newest), offset)


@pytest.mark.spec("ENG-12", "REC-3")
@given(ops=ops_strategy, segment_size=segment_sizes, data=st.data())
def test_get_after_damage_under_an_open_store_returns_the_value_or_raises(
    ops: list[Op], segment_size: int, data: st.DataObject
) -> None:
    """Only a get whose own record was hit may fail, and it fails; every other get is right."""
    with tempfile.TemporaryDirectory() as tmp:
        directory = f"{tmp}/data"
        placed = write_ops(directory, ops, segment_size)
        newest_record = {r.op[0]: r for r in placed}
        expected = apply(placed)
        with catlog.open(directory, fsync="never", segment_size=segment_size) as store:
            hit = damage(directory, data.draw(damage_in(segment_sizes_of(directory))))
            for key in KEYS:
                record = newest_record.get(key)
                was_hit = (
                    hit is not None
                    and record is not None
                    and record.segment == hit.segment
                    and hit.start < record.end
                    and record.offset < hit.stop
                )
                if key in expected and was_hit:
                    event("a live record was hit")
                    assert record is not None
                    with pytest.raises(catlog.CorruptionError) as caught:
                        store.get(key)
                    assert caught.value.path.endswith("/" + segment_name(record.segment))
                    assert caught.value.offset == record.offset
                else:
                    assert store.get(key) == expected.get(key)
