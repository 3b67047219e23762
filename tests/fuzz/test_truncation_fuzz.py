"""Cut the newest segment anywhere, add any bytes: reopening always yields a prefix of the writes.

This is the crash model of spec/recovery.md section 1 in its simplest form: the newest segment
keeps some prefix of what was appended, followed by garbage. The test knows from FMT-4 and ENG-9
alone where every record lies, so it can say exactly which prefix must survive (REC-2), where the
cut must happen and what the quarantine file must hold (REC-4).

Hypothesis and function-scoped fixtures do not mix, so each example makes its own directory.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import catlog

HEADER_SIZE = 16
RECORD_HEADER_SIZE = 21
KEYS = [b"a", b"b", b"cc", b""]

Op = tuple[bytes, bytes | None]
"""``(key, value)`` puts; ``(key, None)`` deletes."""

ops_strategy = st.lists(
    st.tuples(st.sampled_from(KEYS), st.none() | st.binary(max_size=16)), max_size=40
)
segment_sizes = st.integers(min_value=128, max_value=512)


@dataclass(frozen=True)
class Placed:
    """Where the spec says one written record lies."""

    op: Op
    segment: int
    offset: int
    size: int

    @property
    def end(self) -> int:
        return self.offset + self.size


def segment_name(number: int) -> str:
    return f"segment-{number:05d}.log"


def apply(records: list[Placed]) -> dict[bytes, bytes]:
    """The mapping a sequence of records leaves (FMT-14)."""
    state: dict[bytes, bytes] = {}
    for record in records:
        key, value = record.op
        if value is None:
            del state[key]
        else:
            state[key] = value
    return state


def write_ops(directory: str, ops: list[Op], segment_size: int) -> list[Placed]:
    """Apply ``ops`` under ``fsync="never"`` and close; returns the records they wrote.

    A delete of a key with no value writes nothing (ENG-5), so it has no record.
    """
    placed: list[Placed] = []
    live: set[bytes] = set()
    number, end = 1, HEADER_SIZE
    with catlog.open(
        directory, fsync="never", segment_size=segment_size, clock=catlog.ManualClock()
    ) as store:
        for key, value in ops:
            if value is None:
                assert store.delete(key) == (key in live)
                if key not in live:
                    continue
                live.discard(key)
            else:
                store.put(key, value)
                live.add(key)
            size = RECORD_HEADER_SIZE + len(key) + len(value or b"")
            if end + size > segment_size and end > HEADER_SIZE:
                number, end = number + 1, HEADER_SIZE  # ENG-9
            placed.append(Placed((key, value), number, end, size))
            end += size
            assert store.stats().active_segment == segment_name(number)
    return placed


def snapshot(directory: str) -> dict[str, bytes]:
    return {name: Path(directory, name).read_bytes() for name in sorted(os.listdir(directory))}


def common_prefix(a: bytes, b: bytes) -> int:
    n = min(len(a), len(b))
    return next((i for i in range(n) if a[i] != b[i]), n)


@pytest.mark.spec("REC-2", "REC-4", "REC-5", "REC-13", "ENG-13")
@given(
    ops=ops_strategy,
    segment_size=segment_sizes,
    cut=st.floats(min_value=0, max_value=1),
    garbage=st.binary(max_size=64),
)
def test_cut_and_garbled_newest_segment_reopens_to_the_surviving_prefix(
    ops: list[Op], segment_size: int, cut: float, garbage: bytes
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = f"{tmp}/data"
        placed = write_ops(directory, ops, segment_size)
        newest = placed[-1].segment if placed else 1
        path = Path(directory, segment_name(newest))
        original = path.read_bytes()
        damaged = original[: round(cut * len(original))] + garbage
        path.write_bytes(damaged)

        # The writes that survive: every record in an older segment, and those of the newest
        # that lie wholly within the bytes the damage left as they were (with a whole header).
        intact = common_prefix(original, damaged)
        survivors = [
            r for r in placed if r.segment < newest or (intact >= HEADER_SIZE and r.end <= intact)
        ]
        ends = [r.end for r in survivors if r.segment == newest]
        damage_at = (ends[-1] if ends else HEADER_SIZE) if intact >= HEADER_SIZE else 0
        torn = damaged[damage_at:]

        with catlog.open(directory, fsync="never", segment_size=segment_size) as store:
            assert dict(store.items()) == apply(survivors)
            repairs = [(r.segment, r.offset, r.length) for r in store.stats().tail_repairs]
        quarantined = [name for name in os.listdir(directory) if ".torn-" in name]
        if torn:
            assert repairs == [(path.name, damage_at, len(torn))]
            assert quarantined == [f"{path.name}.torn-{damage_at}"]
            assert Path(directory, quarantined[0]).read_bytes() == torn
        else:
            assert quarantined == []
        assert path.read_bytes() == original[: max(damage_at, HEADER_SIZE)]

        before = snapshot(directory)
        with catlog.open(directory, fsync="never", segment_size=segment_size) as store:
            assert dict(store.items()) == apply(survivors)
            assert store.stats().tail_repairs == ()
        assert snapshot(directory) == before


@pytest.mark.spec("REC-2", "REC-4", "REC-8")
@given(ops=ops_strategy, segment_size=segment_sizes, cut=st.floats(min_value=0, max_value=1))
def test_writes_after_a_repair_extend_the_surviving_prefix(
    ops: list[Op], segment_size: int, cut: float
) -> None:
    """The repaired segment is appended to; what is written then survives the next reopen."""
    with tempfile.TemporaryDirectory() as tmp:
        directory = f"{tmp}/data"
        write_ops(directory, ops, segment_size)
        with catlog.open(directory, segment_size=segment_size) as store:
            newest = Path(directory, store.stats().active_segment)
        os.truncate(newest, round(cut * newest.stat().st_size))
        with catlog.open(directory, fsync="never", segment_size=segment_size) as store:
            survived = dict(store.items())
            for key in KEYS:
                store.put(key, b"after " + key)
            store.delete(KEYS[0])
        expected = {**survived, **{key: b"after " + key for key in KEYS}}
        del expected[KEYS[0]]
        with catlog.open(directory, segment_size=segment_size) as store:
            assert dict(store.items()) == expected
