"""The compaction the trigger starts (ENG-41, ENG-76): the rotation that makes it due chooses
its inputs (ENG-39, ENG-73), and the compaction then carries out that choice.

The background compaction is held in its thread with
:func:`catlog.testing.parked_background_compactions`, so that the store can be changed between
the choice and the copy, and what the copy then does compared with what was chosen.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

import catlog
import catlog.testing
from catlog.segment import parse_segment_name, segment_name


def segments(directory: str) -> list[int]:
    return sorted(n for n in map(parse_segment_name, os.listdir(directory)) if n is not None)


@pytest.fixture
def crowded_store(data_dir: str) -> Iterator[catlog.Store]:
    """36 slots, so that ENG-76 makes a compaction due when the 15th segment is sealed (15 of
    the 20 writes may take): then 36 - 15 - 1 = 20 slots are free for its rotation and outputs.
    The threshold is out of reach, so ENG-76 alone starts it."""
    with catlog.open(
        data_dir, segment_size=256, max_segments=36, fsync="never", compact_threshold=0.999
    ) as store:
        yield store


def write_until_due(store: catlog.Store, first: int = 0) -> int:
    """Overwrite four keys in turn (63-byte records, three to a 205-byte segment) until a
    compaction starts; returns the next ``i``."""
    for i in range(first, first + 500):
        store.put(b"k%d" % (i % 4), b"%040d" % i)
        if store.stats().compacting:
            return i + 1
    raise AssertionError("no compaction became due")


@pytest.mark.spec("ENG-76", "ENG-75", "ENG-73", "ENG-39")
def test_the_trigger_takes_as_many_dead_segments_as_its_free_slots_allow(
    crowded_store: catlog.Store, data_dir: str
) -> None:
    """The 15 segments are dead but for the last two. 20 free slots hold ``G + 1`` for 11
    inputs of 205 bytes (``G = 2 * ceil(2255 / 256) + 1 = 19``), not for 12 (``G = 21``): the
    compaction removes segments 1 to 11, writes nothing, and the rotation that chose them
    numbered the new active segment 15 + 19 + 1."""
    with catlog.testing.parked_background_compactions(crowded_store):
        write_until_due(crowded_store)
        assert segments(data_dir) == [*range(1, 16), 35]
    assert crowded_store.wait_for_compaction(timeout=30)
    assert segments(data_dir) == [12, 13, 14, 15, 35]
    assert crowded_store.stats().compaction_error is None


@pytest.mark.spec("ENG-39", "ENG-73", "ENG-76")
def test_the_trigger_s_compaction_copies_what_its_rotation_chose_into_the_numbers_it_skipped(
    crowded_store: catlog.Store, data_dir: str
) -> None:
    """A live key in the first segment, then the same writes: the rotation that makes the
    compaction due chooses segments 1 to 11 and skips 19 numbers for their outputs. Before the
    compaction runs, writes fill a 16th segment, so that 19 slots are left: a choice made now
    would take fewer inputs (9) and seal the new active segment again for its own gap. The
    compaction takes the rotation's inputs, copies the live key to segment 16 and rotates no
    more."""
    crowded_store.put(b"cold", b"c" * 40)
    with catlog.testing.parked_background_compactions(crowded_store):
        i = write_until_due(crowded_store)
        for n in range(i, i + 3):
            crowded_store.put(b"k%d" % (n % 4), b"%040d" % n)
        assert crowded_store.stats().segments == 17
        chosen = segments(data_dir)
    assert crowded_store.wait_for_compaction(timeout=30)
    assert chosen == [*range(1, 16), 35, 36]
    assert segments(data_dir) == [12, 13, 14, 15, 16, 35, 36]
    assert crowded_store[b"cold"] == b"c" * 40


@pytest.mark.spec("ENG-76", "ENG-39", "ENG-34")
def test_the_trigger_s_compaction_keeps_expiries_and_drops_what_expired(data_dir: str) -> None:
    """Two keys with expiries in the first segment, one expired by the time the rotation
    chooses the inputs: the compaction copies the other with its expiry, and the live key."""
    clock = catlog.ManualClock(now_ms=1_700_000_000_000)
    with catlog.open(
        data_dir,
        segment_size=256,
        max_segments=36,
        fsync="never",
        compact_threshold=0.999,
        clock=clock,
    ) as store:
        store.put(b"expiring", b"e" * 30, ttl=1.0)
        store.put(b"later", b"l" * 30, ttl=1000.0)
        store.put(b"cold", b"c" * 30)
        clock.advance(2.0)
        with catlog.testing.parked_background_compactions(store):
            write_until_due(store)
        assert store.wait_for_compaction(timeout=30)
        assert store.stats().compaction_error is None
        assert segments(data_dir)[0] > 1, "the first segment was an input"
        assert store.get(b"expiring") is None
        assert (store[b"cold"], store[b"later"]) == (b"c" * 30, b"l" * 30)
        assert store.expires_at(b"later") == 1_700_000_000_000 + 1_000_000
        assert (store.stats().keys, store.stats().expiring_keys) == (6, 1)


@pytest.mark.spec("ENG-39", "ENG-75")
def test_a_round_after_one_that_wrote_nothing_puts_its_outputs_right_above_the_run_s_segments(
    crowded_store: catlog.Store, data_dir: str
) -> None:
    """As above with no live key in the first segments: the first round takes the dead 1 to 11,
    seals 35 (the 19 numbers below it are below the run's segments) and writes nothing, so 35,
    the newest segment the run began with, is the newest sealed one. The second round takes 12
    to 15 and 35 with ``G = 11``; 19 numbers lie unused above 35, so its output is 36, with no
    seal of the active segment 55."""
    with catlog.testing.parked_background_compactions(crowded_store):
        write_until_due(crowded_store)
        assert segments(data_dir) == [*range(1, 16), 35]
        report = crowded_store.compact()
        assert (report.segments_removed, report.segments_written) == (16, 1)
        assert segments(data_dir) == [36, 55]
        expected = dict(crowded_store.items())
    assert crowded_store.wait_for_compaction(timeout=30)
    assert dict(crowded_store.items()) == expected


@pytest.mark.spec("ENG-73", "ENG-39")
def test_a_bounded_compact_call_before_the_trigger_s_compaction_runs_keeps_its_own_bound(
    crowded_store: catlog.Store, data_dir: str
) -> None:
    """The rotation chose segments 1 to 11 (2,257 bytes) for the trigger's compaction, which
    has not started yet: ``compact(max_bytes=b)`` meanwhile, ``b`` the first segment's size,
    takes that segment alone, its own choice within its own bound, not the trigger's; the
    trigger's compaction then finds that another ran first and chooses anew."""
    crowded_store.put(b"cold", b"c" * 40)
    with catlog.testing.parked_background_compactions(crowded_store):
        write_until_due(crowded_store)
        before = segments(data_dir)
        bound = os.path.getsize(os.path.join(data_dir, segment_name(before[0])))
        report = crowded_store.compact(max_bytes=bound)
        assert report.input_bytes <= bound, "ENG-73: the caller's bound holds"
        assert (report.segments_removed, before[0] in segments(data_dir)) == (1, False)
        expected = dict(crowded_store.items())
    assert crowded_store.wait_for_compaction(timeout=30)
    assert crowded_store.stats().compaction_error is None
    assert dict(crowded_store.items()) == expected
    assert crowded_store[b"cold"] == b"c" * 40


@pytest.mark.spec("ENG-39", "ENG-73", "ENG-72", "ENG-75", "ENG-40")
def test_a_compact_call_before_the_trigger_s_compaction_runs_takes_every_segment(
    crowded_store: catlog.Store, data_dir: str
) -> None:
    """The rotation chose segments 1 to 11 for the trigger's compaction, which has not started
    yet: a ``compact()`` called meanwhile is a full one all the same (ENG-39), removing every
    segment; the trigger's compaction then finds its inputs gone and chooses anew. 20 free slots
    do not hold all 16 segments' ``G + 1``, so the call runs in rounds (ENG-75); its first does
    not take the active segment 35, and 19 numbers lie unused below it, but they are below a
    segment the run began with: it seals 35 instead, so that its outputs are not inputs of its
    second round, and the run removes exactly the 16 segments there were."""
    crowded_store.put(b"cold", b"c" * 40)
    with catlog.testing.parked_background_compactions(crowded_store):
        write_until_due(crowded_store)
        before = segments(data_dir)
        assert len(before) == 16
        report = crowded_store.compact()
        after = segments(data_dir)
        assert not set(before) & set(after), "every segment there was is gone"
        assert report.segments_removed == len(before), "ENG-75: those that existed, no more"
        assert len(after) == report.segments_written + 1, "ENG-75: no output was an input"
        assert min(after) > max(before), "ENG-75: the outputs are above the run's segments"
        expected = dict(crowded_store.items())
    assert crowded_store.wait_for_compaction(timeout=30)
    assert crowded_store.stats().compaction_error is None
    assert dict(crowded_store.items()) == expected
