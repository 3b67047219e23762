"""Bounded compaction, the segment limit and write amplification (ENG-72 .. ENG-77).

Through the Store API, with ``max_segments`` (ENG-74) lowering the segment limit so that a store
reaches it in a few dozen segments; tests/store/test_rotation.py drives one to the real limit.
"""

from __future__ import annotations

import os

import pytest

import catlog
from catlog.codec import RECORD_HEADER_SIZE
from catlog.compaction import CompactionReport
from catlog.compactionplan import choose_inputs, crowded, default_max_bytes, due_by
from catlog.segment import parse_segment_name


def segments(directory: str) -> list[int]:
    return sorted(n for n in map(parse_segment_name, os.listdir(directory)) if n is not None)


def join_compaction(store: catlog.Store) -> None:
    """Wait for a background compaction: the step then ends where the trigger left it."""
    assert store.wait_for_compaction(timeout=30), "the background compaction did not finish"


def fill_until_refused(store: catlog.Store, i: int) -> int:
    """Write key ``i``, ``i + 1``, ... until ENG-74 refuses one; returns the keys written."""
    for n in range(i, i + 1000):
        try:
            store.put(b"%02d" % n, b"v" * 30)
        except catlog.CatlogError:
            return n
    raise AssertionError("the writes were never refused")


@pytest.mark.spec("ENG-72", "ENG-73", "ENG-39")
def test_a_bounded_compaction_takes_the_oldest_segments_and_drops_tombstones_safely(
    data_dir: str,
) -> None:
    """The key deleted in a later segment stays deleted after a reopen: its PUT's segment went
    first. A choice of the deadest segments alone (the delete's) would bring it back."""
    with catlog.open(data_dir, segment_size=256, fsync="never") as store:
        store.put(b"gone", b"g" * 50)
        for i in range(12):
            store.put(b"hot", b"%050d" % i)
        store.delete(b"gone")
        for i in range(12):
            store.put(b"hot", b"%050d" % (100 + i))
        before = segments(data_dir)
        report = store.compact(max_bytes=600)
        after = segments(data_dir)
        removed = sorted(set(before) - set(after))
        assert removed == before[: len(removed)], "ENG-72: the oldest segments"
        assert 1 <= report.segments_removed == len(removed) < len(before) - 1
        assert report.input_bytes <= 600
        assert store.get(b"gone") is None
        store.compact(max_bytes=300)  # now the delete's segment goes too, after the PUT's
    with catlog.open(data_dir, segment_size=256) as store:
        assert store.get(b"gone") is None
        assert store[b"hot"] == b"%050d" % 111


@pytest.mark.spec("ENG-73")
def test_the_inputs_stop_at_the_bound_the_slots_and_the_segments_not_worth_copying_yet() -> None:
    deadest_first = [(1016, 900), (1016, 800), (1016, 100), (1016, 50)]
    choose = choose_inputs
    assert choose(deadest_first, segment_size=1000, free_slots=99, max_bytes=10**6, worth=0.5) == 2
    assert choose(deadest_first, segment_size=1000, free_slots=99, max_bytes=2100) == 2
    assert choose(deadest_first, segment_size=1000, free_slots=99, max_bytes=10) == 1
    assert choose(deadest_first, segment_size=1000, free_slots=99, max_bytes=None, worth=0.9) == 4
    # G + 1 slots: 2 inputs need 2 * 3 + 1 + 1 = 8, 3 inputs 2 * 4 + 1 + 1 = 10
    assert choose(deadest_first, segment_size=1000, free_slots=9, max_bytes=None) == 2
    assert choose(deadest_first, segment_size=1000, free_slots=0, max_bytes=None) == 1
    assert choose([], segment_size=1000, free_slots=99, max_bytes=10) == 0
    assert default_max_bytes(64 * 1024) == 16 * 64 * 1024
    assert default_max_bytes(catlog.DEFAULT_SEGMENT_SIZE) == 256 * 1024 * 1024


@pytest.mark.spec("ENG-73", "ENG-41")
def test_the_trigger_compacts_a_bounded_run_of_the_oldest_segments(data_dir: str) -> None:
    """A store of 30 segments of live records, then overwrites until compaction is due: the
    compaction takes the oldest segment (all live: copying the ones after it can wait), not
    every sealed one as a full compaction would."""
    with catlog.open(data_dir, segment_size=256, fsync="never", compact_threshold=0.2) as store:
        for i in range(120):
            store.put(b"cold %03d" % i, b"c" * 30)
        assert store.stats().segments > 25
        started = None
        for i in range(400):
            before = segments(data_dir)
            store.put(b"hot", b"%030d" % i)
            if store.stats().compacting or not set(before) <= set(segments(data_dir)):
                started = before
                break
        assert started is not None, "the overwrites made a compaction due"
        join_compaction(store)
        removed = sorted(set(started) - set(segments(data_dir)))
        assert removed == started[:1], "the oldest alone: those after it are all live"
        assert default_max_bytes(256) < len(started) * 256
        for i in range(120):
            assert store[b"cold %03d" % i] == b"c" * 30


@pytest.mark.spec("ENG-74", "ENG-25")
def test_writes_stop_short_of_the_segment_limit_saying_to_compact_and_compaction_frees_them(
    data_dir: str,
) -> None:
    with catlog.open(data_dir, segment_size=64, max_segments=32, fsync="never") as store:
        for i in range(16):
            store.put(b"k", b"%040d" % i)  # 62 bytes: a segment each
        assert store.stats().segments == 16
        with pytest.raises(catlog.CatlogError) as caught:
            store.put(b"k", b"%040d" % 16)
        message = str(caught.value)
        assert message == (
            f"{store.path}: 16 segments are open, the most writes may fill (max_segments=32"
            " less 16 kept for compaction); compact the store (Store.compact() or catlog"
            " compact) or use a larger segment_size"
        )
        assert store.failure is None
        assert store[b"k"] == b"%040d" % 15
        store.compact()  # in rounds (ENG-75), the later ones in numbers the first skipped
        assert store.stats().segments <= 3
        store.put(b"k", b"%040d" % 16)
        assert store[b"k"] == b"%040d" % 16


@pytest.mark.spec("ENG-25", "ENG-73", "ENG-74")
def test_bad_bounds_and_limits_are_refused(data_dir: str) -> None:
    for bad in ({"max_segments": 31}, {"max_segments": 32_769}, {"compact_max_bytes": 0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            catlog.open(data_dir, **bad)  # type: ignore[arg-type]
    assert not os.path.exists(data_dir)
    with catlog.open(data_dir) as store:
        for bad_bytes in (0, -1, 1.0, True):
            with pytest.raises(ValueError, match=r"^max_bytes must be a positive int or None$"):
                store.compact(max_bytes=bad_bytes)  # type: ignore[arg-type]
        nothing = CompactionReport(0, 0, 0, 0, 0, 0.0)
        assert store.compact(max_bytes=1) == nothing, "no sealed segment: zeros"


@pytest.mark.spec("ENG-75", "ENG-40")
def test_a_full_compaction_short_of_slots_runs_in_rounds(data_dir: str) -> None:
    """16 segments of live records and 16 free slots: taking them all at once would need 32."""
    with catlog.open(data_dir, segment_size=256, max_segments=32, fsync="never") as store:
        i = 0
        while store.stats().segments < 16:
            store.put(b"%02d" % i, b"v" * 30)
            i += 1
        i = fill_until_refused(store, i)
        assert store.stats().segments == 16
        report = store.compact()
        assert report.segments_removed == 16
        assert report.records_copied == i
        assert store.stats().segments < 16
        for n in range(i):
            assert store[b"%02d" % n] == b"v" * 30
        store.put(b"more", b"room")


@pytest.mark.spec("ENG-75")
def test_with_no_slot_free_compaction_first_removes_the_oldest_dead_segments(
    data_dir: str,
) -> None:
    with catlog.open(data_dir, segment_size=64, max_segments=64, fsync="never") as store:
        for i in range(40):
            store.put(b"k", b"%040d" % i)
    with catlog.open(data_dir, segment_size=64, max_segments=40) as store:
        assert store.stats().segments == 40
        store.compact()
        assert store.stats().segments <= 3
        assert store[b"k"] == b"%040d" % 39


@pytest.mark.spec("ENG-75")
def test_with_no_slot_free_and_a_live_record_in_the_oldest_compaction_says_so(
    data_dir: str,
) -> None:
    with catlog.open(data_dir, segment_size=64, max_segments=64, fsync="never") as store:
        store.put(b"cold", b"%040d" % 0)
        for i in range(39):
            store.put(b"k", b"%040d" % i)
    with catlog.open(data_dir, segment_size=64, max_segments=40) as store:
        with pytest.raises(catlog.CompactionError) as caught:
            store.compact()
        assert caught.value.path == f"{data_dir}/segment-00001.log", "the oldest, holding cold"
        assert (
            "all 40 segment slots are in use and the oldest segment holds live records:"
            " there is no slot for an output"
        ) in str(caught.value)
        assert store[b"cold"] == b"%040d" % 0
        assert store.stats().segments == 40


@pytest.mark.spec("ENG-75", "ENG-39")
def test_with_no_slot_free_compaction_never_removes_the_active_segment(data_dir: str) -> None:
    """Every record is dead, the active segment's tombstone too: the first round removes the
    sealed segments but not the active one, where writes go; the next round, with slots free,
    seals it and removes it as any input (ENG-39), and the next write lands in the new one."""
    with catlog.open(data_dir, segment_size=64, max_segments=64, fsync="never") as store:
        for i in range(39):
            store.put(b"k", b"%040d" % i)
        store.delete(b"k")
    with catlog.open(data_dir, segment_size=64, max_segments=40) as store:
        assert store.stats().segments == 40
        report = store.compact()
        assert report.segments_removed == 40
        store.put(b"after", b"1")
    with catlog.open(data_dir, segment_size=64) as store:
        assert dict(store.items()) == {b"after": b"1"}


@pytest.mark.spec("ENG-76")
def test_many_segments_start_a_compaction_before_the_dead_bytes_would(data_dir: str) -> None:
    """Four keys overwritten in turn: at 12 segments (three quarters of 32 - 16) the dead bytes
    are under 0.95 of the disk, yet a compaction starts, and the writes never reach the limit."""
    with catlog.open(
        data_dir, segment_size=256, max_segments=32, fsync="never", compact_threshold=0.95
    ) as store:
        most = 0
        compacted = 0
        for i in range(300):
            before = store.stats()
            oldest = segments(data_dir)[0]
            store.put(b"k%d" % (i % 4), b"%040d" % i)
            join_compaction(store)
            if segments(data_dir)[0] != oldest:
                compacted += 1
                assert before.dead_bytes < 0.95 * before.disk_bytes, "not the dead bytes' doing"
            most = max(most, store.stats().segments)
        assert compacted, "compactions started"
        assert most <= 13
        for i in range(296, 300):
            assert store[b"k%d" % (i % 4)] == b"%040d" % i


@pytest.mark.spec("ENG-77", "ENG-26")
def test_write_amplification_is_compaction_bytes_over_client_bytes(data_dir: str) -> None:
    with catlog.open(data_dir, segment_size=256, fsync="never") as store:
        stats = store.stats()
        assert (stats.client_bytes, stats.compaction_bytes, stats.write_amplification) == (0, 0, 0)
        written = 0
        for i in range(40):
            key, value = b"k%d" % (i % 10), b"%020d" % i
            store.put(key, value)
            written += RECORD_HEADER_SIZE + len(key) + len(value)
        assert store.stats().client_bytes == written
        report = store.compact()
        stats = store.stats()
        assert stats.client_bytes == written
        assert stats.compaction_bytes == report.output_bytes > 0
        assert stats.write_amplification == report.output_bytes / written
    with catlog.open(data_dir, segment_size=256, fsync="never") as store:
        store.put(b"k", b"v")
        assert store.stats().client_bytes == RECORD_HEADER_SIZE + 2, "counted since open"
        assert store.stats().compaction_bytes == 0


@pytest.mark.spec("ENG-95", "ENG-75", "ENG-57")
def test_a_compaction_whose_outputs_run_out_of_slots_fails_alone_naming_its_output(
    data_dir: str,
) -> None:
    """30 segments of 256 bytes reopened with 64-byte segments and 32 slots: the one input
    ENG-75 lets the compaction take fills more outputs than the two free slots can hold."""
    with catlog.open(data_dir, segment_size=256, fsync="never") as store:
        for i in range(120):
            store.put(b"k%03d" % i, b"v" * 30)
        expected = dict(store.items())
    assert len(segments(data_dir)) == 30
    with catlog.open(data_dir, segment_size=64, max_segments=32, fsync="never") as store:
        with pytest.raises(catlog.CompactionError) as caught:
            store.compact()
        message = str(caught.value)
        assert caught.value.path.startswith(f"{data_dir}/segment-")
        assert parse_segment_name(os.path.basename(caught.value.path)) is not None
        assert message.startswith(f"{caught.value.path}: ")
        assert f"{data_dir}: all 32 segment slots are in use" in message
        assert store.failure is None, "the store goes on"
        assert not any(name.endswith(".compacting") for name in os.listdir(data_dir))
        assert segments(data_dir)[:30] == list(range(1, 31)), "no input was removed"
        store.put(b"later", b"w")
        expected[b"later"] = b"w"
        assert dict(store.items()) == expected
    with catlog.open(data_dir, segment_size=256) as store:
        store.compact()
        assert dict(store.items()) == expected


@pytest.mark.spec("ENG-95", "ENG-75", "ENG-57")
def test_the_slot_of_an_output_installed_before_the_slots_ran_out_stays_taken(
    data_dir: str,
) -> None:
    """Two records a segment, reopened with 64-byte segments and 32 slots: the compaction
    installs its first output, then finds no slot for the second (ENG-95). The first output's
    slot is still in use: once a round has removed the emptied oldest segment, one slot is
    free, too few for another round, which must refuse rather than hand out the installed
    output's slot again (its records would then be read from the next output)."""
    with catlog.open(data_dir, segment_size=256, fsync="never") as store:
        for i in range(60):
            store.put(b"k%03d" % i, b"v" * 90)
        expected = dict(store.items())
    assert len(segments(data_dir)) == 30
    with catlog.open(data_dir, segment_size=64, max_segments=32, fsync="never") as store:
        with pytest.raises(catlog.CompactionError, match="all 32 segment slots are in use"):
            store.compact()
        store.delete(b"k001")  # the oldest segment's record that was not copied
        del expected[b"k001"]
        with pytest.raises(catlog.CompactionError, match="the oldest segment holds live records"):
            store.compact()  # its first round removes segment 1; the next has one slot free
        assert segments(data_dir)[:2] == [2, 3], "the emptied oldest segment was removed"
        assert dict(store.items()) == expected
    with catlog.open(data_dir, segment_size=256) as store:
        assert dict(store.items()) == expected


@pytest.mark.spec("ENG-73", "ENG-41")
def test_a_tombstone_adds_to_its_segments_dead_bytes_rather_than_replacing_them(
    data_dir: str,
) -> None:
    """The middle segment holds three overwritten records and a tombstone (of a key in the
    first): its dead fraction is above the store's, so a compaction bounded to the first two
    takes both. Had the tombstone's bytes replaced the segment's count, it would look mostly
    live and be left for later."""
    with catlog.open(data_dir, fsync="never", segment_size=256) as store:
        for i in range(4):
            store.put(b"a%d" % i, b"v" * 30)  # 53 bytes: four to a segment
        for i in range(4):
            store.put(b"b0", b"%030d" % i)
        store.delete(b"a0")  # its tombstone, 23 bytes, in the middle segment too
        for i in range(4):
            store.put(b"c%d" % i, b"v" * 30)  # the active segment: never an input
        assert store.stats().segments == 3
        report = store.compact(max_bytes=2 * 256)
        assert report.segments_removed == 2, "the middle segment is mostly dead: worth copying"
        assert dict(store.items()) == {
            **{b"a%d" % i: b"v" * 30 for i in range(1, 4)},
            b"b0": b"%030d" % 3,
            **{b"c%d" % i: b"v" * 30 for i in range(4)},
        }


@pytest.mark.spec("ENG-75", "ENG-40", "ENG-41")
def test_a_round_with_no_slot_free_reports_what_it_removed_and_forgets_its_dead_bytes(
    data_dir: str,
) -> None:
    """20 dead segments, one holding a live record, 19 more: with no slot free the round
    removes the 20 oldest, copies and writes nothing, and takes exactly their records (62
    bytes each) off ENG-41's estimate; the dead segments after the live one stay counted."""
    with catlog.open(data_dir, segment_size=64, max_segments=64, fsync="never") as store:
        for i in range(40):
            store.put(b"k" if i != 20 else b"l", b"%040d" % i)  # 62 bytes: a segment each
    clock = catlog.ManualClock()
    with catlog.open(
        data_dir, segment_size=64, max_segments=40, compact_threshold=0.99, clock=clock
    ) as store:
        before = store.stats()
        assert before.segments == 40
        assert before.dead_bytes == 38 * 62
        clock.advance(5)  # the report's seconds are the round's own
        report = store.compact(max_bytes=10**6)
        assert report == CompactionReport(
            input_bytes=20 * (16 + 62),
            output_bytes=0,
            records_copied=0,
            segments_removed=20,
            segments_written=0,
            seconds=0.0,
        )
        assert segments(data_dir) == list(range(21, 41))
        assert store.stats().dead_bytes == 18 * 62
        assert (store[b"k"], store[b"l"]) == (b"%040d" % 39, b"%040d" % 20)


@pytest.mark.spec("ENG-73", "ENG-75")
def test_the_inputs_stop_at_exactly_the_bound_and_exactly_the_free_slots() -> None:
    """Two segments of 1,000 bytes: their 2,000 bytes are within a bound of 2,000, not of
    1,999; they need ``G + 1 = 2 * 2 + 1 + 1 = 6`` slots, which 6 free slots hold and 5 do not."""
    two = [(1000, 0), (1000, 0)]
    assert choose_inputs(two, segment_size=1000, free_slots=99, max_bytes=2000) == 2
    assert choose_inputs(two, segment_size=1000, free_slots=99, max_bytes=1999) == 1
    assert choose_inputs(two, segment_size=1000, free_slots=6, max_bytes=None) == 2
    assert choose_inputs(two, segment_size=1000, free_slots=5, max_bytes=None) == 1


@pytest.mark.spec("ENG-73")
def test_a_segment_exactly_as_dead_as_the_store_is_worth_copying_and_the_first_always_is() -> None:
    """A segment's dead fraction is over its bytes less its 16-byte header: 500 dead bytes of
    1,016 are exactly half, not below a store's half, so the segment is taken. Segments all
    below the store's fraction leave the oldest alone taken, however many there are."""
    half = [(1016, 1000), (1016, 500)]
    assert choose_inputs(half, segment_size=1000, free_slots=99, max_bytes=10**6, worth=0.5) == 2
    assert choose_inputs(half, segment_size=1000, free_slots=99, max_bytes=10**6, worth=0.51) == 1
    live = [(1016, 0), (1016, 0), (1016, 0)]
    assert choose_inputs(live, segment_size=1000, free_slots=99, max_bytes=10**6, worth=0.5) == 1


@pytest.mark.spec("ENG-73", "ENG-41")
def test_a_dead_fraction_past_one_is_compared_as_it_is() -> None:
    """ENG-41 counts a packed record with a 21-byte header, so a segment of packed records can
    hold more dead bytes than bytes, and a store's estimate can pass its disk bytes (deletes of
    copied keys do). A segment deader than such a store is still worth copying."""
    deadest = [(1016, 2000), (1016, 1800)]
    assert choose_inputs(deadest, segment_size=1000, free_slots=99, max_bytes=10**6, worth=1.5) == 2
    assert choose_inputs(deadest, segment_size=1000, free_slots=99, max_bytes=10**6, worth=1.9) == 1


@pytest.mark.spec("ENG-76")
def test_a_store_is_crowded_from_three_quarters_of_the_slots_writes_may_take() -> None:
    """At least three quarters of ``max_segments - 16``: 12 of 16, 13 of 17 (12.75), 14 of 18
    (13.5), 180 of 240, 24,564 of the default's 32,752."""
    expected = {32: 12, 33: 13, 34: 14, 35: 15, 36: 15, 256: 180, 32_768: 24_564}
    assert {n: crowded(n) for n in expected} == expected
    assert due_by(256, 1 << 30, 0.5, 256, in_use=13, max_segments=33)
    assert not due_by(256, 1 << 30, 0.5, 256, in_use=12, max_segments=33)


@pytest.mark.spec("ENG-73", "ENG-41")
def test_a_bounded_compaction_leaves_the_live_segments_after_a_dead_one_for_later(
    data_dir: str,
) -> None:
    """Four overwrites of one key fill the first segment, live records the next three: a bound
    of three segments takes the first only (its fraction is above the store's, theirs below)."""
    with catlog.open(data_dir, segment_size=256, fsync="never") as store:
        for i in range(4):
            store.put(b"k", b"%030d" % i)  # 52 bytes: four to a segment
        for i in range(12):
            store.put(b"live %02d" % i, b"%025d" % i)  # 53 bytes: four to a segment
        store.put(b"k", b"last")
        assert segments(data_dir) == [1, 2, 3, 4]
        report = store.compact(max_bytes=3 * 256)
        assert report.segments_removed == 1
        assert segments(data_dir)[0] == 2


@pytest.mark.spec("ENG-75", "ENG-41")
def test_a_round_with_no_slot_free_that_removes_every_dead_record_leaves_no_dead_bytes(
    data_dir: str,
) -> None:
    """One key written 40 times, a segment each: its 39 sealed records are the estimate's 39 *
    62 bytes, and the round that removes their segments takes the estimate to exactly 0."""
    with catlog.open(data_dir, segment_size=64, max_segments=64, fsync="never") as store:
        for i in range(40):
            store.put(b"k", b"%040d" % i)
    with catlog.open(
        data_dir, segment_size=64, max_segments=40, compact_threshold=0.99, fsync="never"
    ) as store:
        assert store.stats().dead_bytes == 39 * 62
        report = store.compact(max_bytes=10**6)
        assert (report.segments_removed, report.records_copied) == (39, 0)
        assert store.stats().dead_bytes == 0


@pytest.mark.spec("ENG-39", "ENG-73")
def test_a_bounded_compaction_of_the_one_sealed_segment_numbers_its_output_right_above_it(
    data_dir: str,
) -> None:
    """A compaction of five segments leaves one output, 6, and the active segment 17 (G = 11
    numbers skipped). A bounded compaction of segment 6 alone then needs G = 3 of the unused
    numbers between them: its output is 7, above its input, with no seal of 17."""
    with catlog.open(data_dir, segment_size=256, fsync="never") as store:
        for i in range(20):
            store.put(b"k%d" % (i % 2), b"%030d" % i)
        assert segments(data_dir) == [1, 2, 3, 4, 5]
        store.compact()
        assert segments(data_dir) == [6, 17]
        store.put(b"k0", b"new")
        report = store.compact(max_bytes=10**6)
        assert (report.segments_removed, report.segments_written) == (1, 1)
        assert segments(data_dir) == [7, 17]
    with catlog.open(data_dir) as store:
        assert dict(store.items()) == {b"k0": b"new", b"k1": b"%030d" % 19}


@pytest.mark.spec("ENG-39", "ENG-73")
def test_a_bounded_compaction_seals_the_active_segment_when_fewer_than_g_numbers_are_unused(
    data_dir: str,
) -> None:
    """One segment compacted to output 2, the active segment 5 (G = 3): a bounded compaction of
    2 needs G = 3 unused numbers, and only 3 and 4 are, so it seals 5 as ENG-39's step 1 says
    and its output is 6, the active segment 9."""
    with catlog.open(data_dir, segment_size=256, fsync="never") as store:
        for i in range(4):
            store.put(b"k%d" % (i % 2), b"%030d" % i)
        store.compact()
        assert segments(data_dir) == [2, 5]
        report = store.compact(max_bytes=10**6)
        assert (report.segments_removed, report.segments_written) == (1, 1)
        assert segments(data_dir) == [5, 6, 9]
    with catlog.open(data_dir) as store:
        assert dict(store.items()) == {b"k0": b"%030d" % 2, b"k1": b"%030d" % 3}


@pytest.mark.spec("ENG-75", "ENG-41")
def test_a_round_with_no_slot_free_takes_off_the_estimate_what_open_counted_for_its_inputs(
    data_dir: str,
) -> None:
    """Ten packed segments (an earlier compaction's outputs) whose records were then
    overwritten, behind 30 more: the estimate open computes counts their records as they lie
    (30 bytes each), and the round that removes them, with no slot free, takes exactly that
    off, leaving what a fresh open computes."""
    with catlog.open(data_dir, segment_size=64, max_segments=64, fsync="never") as store:
        for i in range(10):
            store.put(b"p%d" % i, b"%020d" % i)  # 43 bytes: a segment each
        store.compact()
        assert segments(data_dir) == [*range(11, 21), 32]
        for i in range(10):
            store.put(b"p%d" % i, b"%020d" % i)
        n = 0
        while store.stats().segments < 40:
            store.put(b"q", b"%040d" % n)
            n += 1
    with catlog.open(data_dir, segment_size=64, max_segments=40, compact_threshold=0.99) as store:
        assert store.stats().dead_bytes == 10 * 30 + (n - 1) * 62
        report = store.compact(max_bytes=10**6)
        assert (report.segments_removed, report.records_copied) == (10, 0)
        assert store.stats().dead_bytes == (n - 1) * 62
    with catlog.open(data_dir, compact_threshold=0.99) as store:
        assert store.stats().dead_bytes == (n - 1) * 62


@pytest.mark.spec("ENG-100", "ENG-73")
def test_a_bounded_compaction_reports_its_progress_over_its_own_inputs(data_dir: str) -> None:
    """The first two of five segments, 228 bytes each: a call after each, out of 456."""
    with catlog.open(data_dir, segment_size=256, fsync="never") as store:
        for i in range(20):
            store.put(b"k%d" % (i % 2), b"%030d" % i)
        calls: list[tuple[int, int]] = []
        report = store.compact(lambda done, total: calls.append((done, total)), max_bytes=500)
        assert report.input_bytes == 2 * 228
        assert calls == [(228, 456), (456, 456)]


@pytest.mark.spec("ENG-100", "ENG-75", "ENG-40")
def test_a_compaction_in_rounds_reports_its_progress_and_its_sums_over_every_round(
    data_dir: str,
) -> None:
    """16 segments of live records with 16 slots free: the rounds' calls go on counting from
    where the last round's ended, up to the bytes of the 16 segments, the total of each call;
    the report sums the rounds, its seconds too (the clock moves a second at each call)."""
    clock = catlog.ManualClock()
    with catlog.open(
        data_dir, segment_size=256, max_segments=32, fsync="never", clock=clock
    ) as store:
        i = 0
        while store.stats().segments < 16:
            store.put(b"%02d" % i, b"v" * 30)
            i += 1
        i = fill_until_refused(store, i)
        whole = store.stats().disk_bytes
        calls: list[tuple[int, int]] = []

        def progress(done: int, total: int) -> None:
            calls.append((done, total))
            clock.advance(1.0)

        clock.advance(5.0)  # the report's seconds are the run's own
        report = store.compact(progress)
        assert len(calls) == 16, "one after each input, over all the rounds"
        dones = [done for done, _ in calls]
        assert dones == sorted(dones)
        assert calls[-1] == (whole, whole)
        assert {total for _, total in calls} == {whole}
        *sealed, _ = segments(data_dir)
        lengths = [os.path.getsize(f"{data_dir}/segment-{n:05d}.log") for n in sealed]
        outputs = [length for length in lengths if length > 16]  # a later round sealed one empty
        sizes = sum(outputs)
        assert report == CompactionReport(
            input_bytes=whole,
            output_bytes=sizes,
            records_copied=i,
            segments_removed=16,
            segments_written=len(outputs),
            seconds=16.0,
        )
