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
from catlog.compactionplan import choose_inputs, default_max_bytes
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
        assert removed
        assert removed == started[: len(removed)]
        assert len(removed) * 256 <= default_max_bytes(256) < len(started) * 256
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
        assert store.compact(max_bytes=1).segments_removed == 0, "no sealed segment: nothing"


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
