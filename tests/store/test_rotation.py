"""Segment rotation and the key index's reads (ENG-9 .. ENG-11)."""

from __future__ import annotations

import os

import pytest

import catlog
from catlog.codec import (
    RECORD_HEADER_SIZE,
    SEGMENT_HEADER_SIZE,
    RecordType,
    encode_record,
    encode_segment_header,
)
from catlog.fs import OsFileSystem
from catlog.index import MAX_SLOTS
from catlog.segment import ActiveSegment, Segment, segment_name
from catlog.simfs import SimFileSystem
from tests.store.recording_fs import RecordingFileSystem


def _segment_sizes(data_dir: str) -> list[int]:
    names = sorted(n for n in os.listdir(data_dir) if n.endswith(".log"))
    return [os.path.getsize(f"{data_dir}/{n}") for n in names]


@pytest.mark.spec("ENG-9")
def test_segments_rotate_before_they_would_pass_the_size_limit(data_dir: str) -> None:
    record = RECORD_HEADER_SIZE + 2 + 20
    with catlog.open(data_dir, segment_size=SEGMENT_HEADER_SIZE + 3 * record) as store:
        for i in range(10):
            store.put(b"%02d" % i, b"v" * 20)
    assert _segment_sizes(data_dir) == [SEGMENT_HEADER_SIZE + 3 * record] * 3 + [
        SEGMENT_HEADER_SIZE + record
    ]


@pytest.mark.spec("ENG-9", "FMT-21")
def test_expiring_puts_also_fill_a_segment_exactly_before_it_rotates(data_dir: str) -> None:
    record = RECORD_HEADER_SIZE + 2 + 8 + 20  # an expiring PUT's value field starts with 8 bytes
    with catlog.open(data_dir, segment_size=SEGMENT_HEADER_SIZE + 3 * record) as store:
        for i in range(4):
            store.put(b"%02d" % i, b"v" * 20, ttl=60)
    assert _segment_sizes(data_dir) == [
        SEGMENT_HEADER_SIZE + 3 * record,
        SEGMENT_HEADER_SIZE + record,
    ]


@pytest.mark.spec("ENG-9")
def test_a_record_larger_than_a_segment_goes_alone_into_a_fresh_one(data_dir: str) -> None:
    with catlog.open(data_dir, segment_size=100) as store:
        store.put(b"small", b"x")
        store.put(b"big", b"y" * 500)
        store.put(b"after", b"z")
        assert store[b"big"] == b"y" * 500
    sizes = _segment_sizes(data_dir)
    assert sizes == [16 + 21 + 6, 16 + 21 + 3 + 500, 16 + 21 + 6]
    with catlog.open(data_dir) as store:
        assert store[b"big"] == b"y" * 500
        assert store[b"small"] == b"x"


@pytest.mark.spec("ENG-10", "REC-9")
@pytest.mark.parametrize("policy", ["always", "interval", "never"])
def test_rotation_makes_the_old_segment_durable_before_the_new_one_exists(
    data_dir: str, policy: catlog.FsyncPolicy
) -> None:
    fs = RecordingFileSystem()
    with catlog.open(data_dir, fs=fs, fsync=policy, segment_size=64) as store:
        store.put(b"a", b"x" * 30)
        start = len(fs.calls)
        store.put(b"b", b"x" * 30)
        rotation = fs.calls[start:]
    old, new = segment_name(1), segment_name(2)
    before = rotation[: rotation.index(("open+create", new))]
    writes = [c for c in before if c[0] != "pread" and ".hint" not in c[1]]
    assert writes[-1] == ("sync", old), "only reading it for its hint (ENG-30) comes between"
    assert rotation[rotation.index(("open+create", new)) :][:4] == [
        ("open+create", new),
        ("append", new),
        ("sync", new),
        ("sync_dir", "data"),
    ]


@pytest.mark.spec("ENG-11")
def test_a_get_is_one_read_and_a_large_value_two(data_dir: str) -> None:
    fs = RecordingFileSystem()
    with catlog.open(data_dir, fs=fs, segment_size=1000) as store:
        for i in range(30):
            store.put(b"k%d" % i, b"v%d" % i)
        store.put(b"large", b"L" * 70_000)
        fs.calls.clear()
        assert store[b"k3"] == b"v3"
        assert fs.ops("pread") == [segment_name(1)]
        fs.calls.clear()
        assert store[b"large"] == b"L" * 70_000
        assert len(fs.ops("pread")) == 2


@pytest.mark.spec("ENG-9", "ENG-11")
def test_a_sealed_segment_keeps_its_file_number_and_slot(data_dir: str) -> None:
    """Rotation puts the sealed view in the old segment's slot: reads find it by that slot."""
    fs = OsFileSystem()
    fs.makedirs(data_dir)
    active = ActiveSegment.create(fs, data_dir, 7, slot=3)
    try:
        active.append(b"record")
        active.flush()
        sealed = active.seal()
        assert type(sealed) is Segment
        assert (sealed.file, sealed.number, sealed.slot) == (active.file, 7, 3)
        assert sealed.size() == SEGMENT_HEADER_SIZE + len(b"record")
    finally:
        active.file.close()


@pytest.mark.spec("ENG-11", "ENG-9", "ENG-74", "ENG-75")
def test_at_most_32768_segments_are_open_at_once() -> None:
    """The index packs a segment's slot into 15 bits (catlog/index.py): 32,768 slots, no more.

    A directory with one more is refused at open, before anything is read; one of exactly that
    many opens, the rotation that would need one more is refused, saying to compact, and
    compacting it works.
    """
    fs = SimFileSystem()
    fs.makedirs("/db")
    last = encode_segment_header() + encode_record(RecordType.PUT, 0, b"k", b"v")
    for number in range(1, MAX_SLOTS + 2):
        file = fs.open(f"/db/{segment_name(number)}", writable=True, create=True)
        file.append(last if number == MAX_SLOTS else encode_segment_header())
        file.close()
    with pytest.raises(catlog.CatlogError) as caught:
        catlog.open("/db", fs=fs)
    assert str(caught.value) == "/db holds 32769 segments; at most 32768"
    fs.remove(f"/db/{segment_name(MAX_SLOTS + 1)}")
    with catlog.open("/db", fs=fs, segment_size=64) as store:
        assert store.stats().segments == MAX_SLOTS
        with pytest.raises(catlog.CatlogError) as caught:
            store.put(b"x", b"y" * 40)
        assert "compact the store" in str(caught.value)  # ENG-74: says what to do
        assert store[b"k"] == b"v"
        store.compact()  # ENG-75: no slot to spare: the empty segments go first, then the rest
        assert store.stats().segments <= 3
        store.put(b"x", b"y" * 40)
        assert store[b"k"] == b"v"
