"""Duplicate or swap whole valid records in older segments: catlog never returns a foreign value.

A record moved or copied whole keeps a valid crc, and the format has no sequence numbers (FMT-4),
so such damage cannot be detected; REC-14 states what is promised instead. The test checks that
promise: the store opens, or refuses with ``CorruptionError`` (a copy that overruns the segment's
end, say), and every value it returns was written for that key at some point, never another key's
value and never bytes nobody wrote.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

import catlog
from tests.fuzz.test_truncation_fuzz import KEYS, Op, Placed, segment_name, write_ops

ops_strategy = st.lists(
    st.tuples(st.sampled_from(KEYS), st.none() | st.binary(max_size=16)), min_size=2, max_size=40
)


def _rearrange(directory: str, placed: list[Placed], choice: st.DataObject) -> None:
    """Swap two records of one segment, or write a copy of one record over another."""
    newest = max(record.segment for record in placed)
    candidates = [record for record in placed if record.segment < newest] or placed
    first = choice.draw(st.sampled_from(candidates), label="first")
    same_segment = [r for r in placed if r.segment == first.segment and r is not first]
    if not same_segment:
        return
    second = choice.draw(st.sampled_from(same_segment), label="second")
    path = Path(directory, segment_name(first.segment))
    data = bytearray(path.read_bytes())
    a = bytes(data[first.offset : first.end])
    b = bytes(data[second.offset : second.end])
    if choice.draw(st.booleans(), label="swap"):
        low, high = sorted((first, second), key=lambda r: r.offset)
        lo, hi = (a, b) if low is first else (b, a)
        middle = bytes(data[low.end : high.offset])
        data[low.offset : high.end] = hi + middle + lo
        event("swapped two records")
    else:
        data[second.offset : second.offset + len(a)] = a
        event("copied a record over another")
    path.write_bytes(bytes(data))


@pytest.mark.spec("REC-14", "REC-6")
@given(ops=ops_strategy, segment_size=st.integers(96, 256), choice=st.data())
def test_moved_or_copied_records_never_yield_a_foreign_value(
    ops: list[Op], segment_size: int, choice: st.DataObject
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        placed = write_ops(directory, ops, segment_size)
        if len(placed) < 2:
            return
        _rearrange(directory, placed, choice)
        written: dict[bytes, set[bytes]] = {}
        for key, value in ops:
            if value is not None:
                written.setdefault(key, set()).add(value)
        refusal: catlog.CorruptionError | None = None
        try:
            store = catlog.open(directory)
        except catlog.CorruptionError as exc:
            refusal = exc
        if refusal is not None:
            assert os.path.basename(refusal.path).startswith("segment-")
            event("refused")
            return
        with store:
            for key in store:
                try:
                    value = store[key]
                except catlog.CorruptionError:
                    continue
                assert value in written.get(key, set()), (key, value)
