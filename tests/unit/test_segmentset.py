"""The segment set's invariant check, against a segment set built by hand in each broken state.

The model tests trust :meth:`SegmentSet.check` (through ``Store._check_invariants``) to catch a
store whose segments disagree, but the store never builds a broken segment set, so no call
through it shows that the check would refuse one, or with which reason. These tests build the set
on the simulated file system, as opening and rotation do, check that the sound state passes,
then break one rule at a time (through the set's own methods where a wrong call would break it,
by setting its fields where nothing else can) and compare the refusal's words whole, as
tests/unit/test_keyspace.py does for the keyspace.
"""

from __future__ import annotations

import pytest

from catlog.compactionplan import RESERVED_SLOTS
from catlog.errors import CatlogError
from catlog.filecache import FileCache
from catlog.index import MAX_SLOTS
from catlog.segment import ActiveSegment, Segment, segment_name
from catlog.segmentset import SegmentSet
from catlog.simfs import SimFileSystem

DIRECTORY = "/db"


def sealed(fs: SimFileSystem, number: int, slot: int) -> Segment:
    """A sealed segment as opening finds it: its header on disk, read-only."""
    ActiveSegment.create(fs, DIRECTORY, number, slot).file.close()
    return Segment(fs.open(f"{DIRECTORY}/{segment_name(number)}"), number, slot)


def opened(max_segments: int = 24) -> tuple[SimFileSystem, SegmentSet, ActiveSegment]:
    """Segments 1 and 3 sealed (compaction removed 2) and 5 active, in slots 0 to 2, as opening
    hands them over (ENG-74: each in the slot of its place), then one rotation: 6 active in
    slot 3. Sound before the rotation and after it."""
    fs = SimFileSystem()
    fs.makedirs(DIRECTORY)
    old = ActiveSegment.create(fs, DIRECTORY, 5, 2)
    segments = SegmentSet(
        DIRECTORY,
        FileCache(fs, 4),
        [sealed(fs, 1, 0), sealed(fs, 3, 1), old],
        max_segments,
        [0] * MAX_SLOTS,
    )
    segments.check(old)
    new = ActiveSegment.create(fs, DIRECTORY, 6, segments.new_slot())
    segments.seal(old, old.seal())
    segments.place(new)
    segments.check(new)
    assert [segment.number for segment in segments.order] == [1, 3, 5, 6]
    assert [segment.number for segment in segments.slots] == [1, 3, 5, 6]
    return fs, segments, new


def refused(segments: SegmentSet, active: Segment, reason: str) -> None:
    with pytest.raises(AssertionError) as caught:
        segments.check(active)
    assert str(caught.value) == reason


@pytest.mark.spec("FMT-13")
def test_a_segment_set_without_segments_is_refused() -> None:
    """A store always has its active segment: removing every segment, the active one with the
    others, leaves nothing to append to."""
    _, segments, active = opened()
    for segment in list(segments.order):
        segments.remove(segment)
    assert segments.order == []
    refused(segments, active, "a store has at least its active segment")


@pytest.mark.spec("FMT-13", "ENG-9")
def test_an_active_segment_that_is_not_the_newest_is_refused() -> None:
    """FMT-13: the newest segment is the one appended to. A rotation that placed segment 7
    but went on appending to 6, or a check handed a sealed segment as the active one, breaks
    it; so does a segment moved after the active one in the order."""
    fs, segments, active = opened()
    segments.place(ActiveSegment.create(fs, DIRECTORY, 7, segments.new_slot()))
    refused(segments, active, "the active segment is the newest")

    _, segments, active = opened()
    refused(segments, segments.order[-2], "the active segment is the newest")
    refused(segments, segments.order[0], "the active segment is the newest")

    _, segments, active = opened()
    order = segments.order
    order[-1], order[-2] = order[-2], order[-1]
    refused(segments, active, "the active segment is the newest")


@pytest.mark.spec("FMT-13")
def test_segments_out_of_number_order_or_numbered_twice_are_refused() -> None:
    """FMT-13: the order is the segments' numbers, each once. A compaction output placed
    under a number a segment already has, and two sealed segments swapped, are refused; so is
    one output numbered as the active segment."""
    fs, segments, active = opened()
    segments.place(sealed(fs, 3, segments.new_slot(compaction=True)))
    assert [segment.number for segment in segments.order] == [1, 3, 3, 5, 6]
    refused(segments, active, "segments in number order, once each")

    _, segments, active = opened()
    order = segments.order
    order[0], order[1] = order[1], order[0]
    refused(segments, active, "segments in number order, once each")

    fs, segments, active = opened()
    segments.order.insert(3, Segment(fs.open(f"{DIRECTORY}/{segment_name(6)}"), 6, 4))
    refused(segments, active, "segments in number order, once each")


@pytest.mark.spec("ENG-74", "ENG-55")
def test_an_active_segment_whose_slot_holds_another_segment_is_refused() -> None:
    """Reads find a segment by the slot in its location (ENG-74): the active segment's slot
    must hold it. A slot handed out while its segment is still in use (the active one's
    released, then given to a compaction output, numbered 4 between 3 and 5) breaks that, as
    ENG-55 forbids for the segments the index points into."""
    fs, segments, active = opened()
    segments.release(active.slot)
    output = sealed(fs, 4, segments.new_slot(compaction=True))
    assert output.slot == active.slot
    segments.place(output)
    assert segments.order[-1] is active
    refused(segments, active, "the active one's slot")


@pytest.mark.spec("ENG-74")
def test_more_segments_open_than_max_segments_are_refused() -> None:
    """ENG-74: at most ``max_segments`` segments open, compaction's outputs held but not yet
    placed among them. Every slot in use is sound; one more, held past what ``new_slot`` would
    hand out, is not. A slot released does not count."""
    _, segments, active = opened(max_segments=20)
    for _ in range(20 - 4):
        segments.hold(segments.new_slot(compaction=True), active)
    assert segments.in_use() == 20
    segments.check(active)
    segments.hold(len(segments.slots), active)
    assert segments.in_use() == 21
    refused(segments, active, "ENG-74: within the limit")
    segments.release(len(segments.slots) - 1)
    segments.check(active)


@pytest.mark.spec("ENG-74")
def test_a_slot_the_index_cannot_name_is_refused() -> None:
    """ENG-74, FMT-12: a location names its slot in 15 bits, so a segment set of
    ``MAX_SLOTS`` slots is sound and one of more is not, however many of them are free: a
    slot past the last while a freed one waits is the one ``new_slot`` must not hand out."""
    fs = SimFileSystem()
    fs.makedirs(DIRECTORY)
    file = sealed(fs, 1, 0).file
    active = ActiveSegment.create(fs, DIRECTORY, MAX_SLOTS, MAX_SLOTS - 1)
    every = [Segment(file, slot + 1, slot) for slot in range(MAX_SLOTS - 1)]
    segments = SegmentSet(DIRECTORY, FileCache(fs, 4), [*every, active], MAX_SLOTS, [0] * MAX_SLOTS)
    segments.check(active)
    segments.remove(every[0])
    segments.hold(MAX_SLOTS, active)
    assert (len(segments.slots), segments.in_use()) == (MAX_SLOTS + 1, MAX_SLOTS)
    refused(segments, active, "ENG-74: slots the index can name")


@pytest.mark.spec("ENG-74")
def test_a_new_slot_for_writes_leaves_the_reserved_slots_to_compaction() -> None:
    """ENG-74: a rotation for writes stops ``RESERVED_SLOTS`` short of ``max_segments``, and
    that is what ``new_slot`` does unless told the slot is compaction's."""
    _, segments, active = opened(max_segments=4 + RESERVED_SLOTS)
    assert segments.in_use() == 4
    with pytest.raises(CatlogError) as caught:
        segments.new_slot()
    assert str(caught.value).startswith(
        f"/db: 4 segments are open, the most writes may fill (max_segments={4 + RESERVED_SLOTS}"
    )
    assert segments.new_slot(compaction=True) == 4
    segments.check(active)
