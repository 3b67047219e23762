"""A newest segment that ends in a torn tail: opening cuts it off, keeps it, and says so.

Each test writes a small store under ``fsync="always"``, closes it, then leaves the newest segment
the way a writer that died mid-append could have left it (spec/recovery.md, section 1). The
expectations come from the spec, not from the code: record offsets are computed from the layout
of FMT-4, and the expected contents are the dict the writes would leave.
"""

from __future__ import annotations

import logging
import os
import random
from dataclasses import dataclass
from pathlib import Path

import pytest

import catlog
from catlog.codec import RecordType, encode_record, encode_segment_header
from tests.crash.faulty_fs import FaultyFileSystem

HEADER_SIZE = 16
RECORD_HEADER_SIZE = 21
SEGMENT_1 = "segment-00001.log"
NOW_MS = 1_700_000_000_000

Op = tuple[bytes, bytes | None]
"""``(key, value)`` puts; ``(key, None)`` deletes."""

OPS: list[Op] = [
    (b"alpha", b"one"),
    (b"beta", b"two"),
    (b"alpha", None),
    (b"gamma", b"three, four, five"),
]


def record_size(key: bytes, value: bytes | None) -> int:
    return RECORD_HEADER_SIZE + len(key) + len(value or b"")


@dataclass(frozen=True)
class Written:
    """A store written by :func:`write_store`, with what the spec says its bytes and state are."""

    directory: str
    offsets: list[int]
    """The offset of each op's record in the segment it went to."""
    states: list[dict[bytes, bytes]]
    """``states[n]`` is the mapping the first ``n`` ops leave."""
    segment_sizes: dict[str, int]


def write_store(directory: str, ops: list[Op] = OPS, segment_size: int = 1 << 20) -> Written:
    states: list[dict[bytes, bytes]] = [{}]
    offsets: list[int] = []
    end = HEADER_SIZE
    with catlog.open(
        directory, fsync="always", segment_size=segment_size, clock=catlog.ManualClock(NOW_MS)
    ) as store:
        for key, value in ops:
            state = dict(states[-1])
            size = record_size(key, value)
            if end + size > segment_size and end > HEADER_SIZE:
                end = HEADER_SIZE  # ENG-9: this record starts the next segment
            offsets.append(end)
            end += size
            if value is None:
                assert store.delete(key), "the ops delete only live keys"
                del state[key]
            else:
                store.put(key, value)
                state[key] = value
            states.append(state)
    names = [name for name in os.listdir(directory) if not name.endswith(".hint")]  # ENG-30
    sizes = {name: os.path.getsize(os.path.join(directory, name)) for name in names}
    return Written(directory, offsets, states, sizes)


def snapshot(directory: str) -> dict[str, bytes]:
    """Every file of the directory, name to bytes: what REC-12/REC-13 say must not change."""
    return {name: Path(directory, name).read_bytes() for name in sorted(os.listdir(directory))}


def contents(directory: str) -> dict[bytes, bytes]:
    with catlog.open(directory) as store:
        return dict(store.items())


def check_repair(
    directory: str,
    caplog: pytest.LogCaptureFixture,
    *,
    segment: str,
    offset: int,
    cut: bytes,
    expected: dict[bytes, bytes],
    quarantine: str | None = None,
) -> None:
    """Reopen a damaged store and check everything REC-4 promises about the repair.

    Then check it holds: a second open changes nothing (REC-13), the kept bytes stay (REC-12),
    and the repaired segment takes writes that survive a reopen.
    """
    quarantine = quarantine or f"{segment}.torn-{offset}"
    caplog.clear()
    caplog.set_level(logging.WARNING, logger="catlog")
    with catlog.open(directory) as store:
        assert dict(store.items()) == expected
        repairs = store.stats().tail_repairs
    assert [(r.segment, r.offset, r.length, r.quarantine) for r in repairs] == [
        (segment, offset, len(cut), quarantine)
    ]
    assert Path(directory, quarantine).read_bytes() == cut
    segment_bytes = Path(directory, segment).read_bytes()
    assert len(segment_bytes) == max(offset, HEADER_SIZE), "the segment ends where damage began"
    logged = [r for r in caplog.records if r.name == "catlog"]
    assert [r.levelno for r in logged] == [logging.WARNING], logged
    message = logged[0].getMessage()
    assert segment in message
    assert f"@{offset}" in message
    assert f"{len(cut)} bytes" in message

    before = snapshot(directory)
    with catlog.open(directory) as store:
        assert dict(store.items()) == expected
        assert store.stats().tail_repairs == ()
    assert snapshot(directory) == before

    with catlog.open(directory) as store:
        store.put(b"after repair", b"written to the cut segment")
    with catlog.open(directory) as store:
        assert dict(store.items()) == {**expected, b"after repair": b"written to the cut segment"}
    assert Path(directory, quarantine).read_bytes() == cut


# Where to cut the last record (a 43-byte PUT of b"gamma"), measured from its start.
CUTS = {
    "inside the crc": 2,
    "inside the header": 10,
    "just after the header": RECORD_HEADER_SIZE,
    "inside the key": RECORD_HEADER_SIZE + 2,
    "inside the value": RECORD_HEADER_SIZE + 5 + 7,
    "one byte short": record_size(*OPS[-1]) - 1,
}


@pytest.mark.spec("REC-4", "REC-2", "REC-13", "REC-12")
@pytest.mark.parametrize("cut", CUTS.values(), ids=CUTS.keys())
def test_record_cut_short_is_cut_off_and_quarantined(
    data_dir: str, caplog: pytest.LogCaptureFixture, cut: int
) -> None:
    written = write_store(data_dir)
    last = written.offsets[-1]
    path = Path(data_dir, SEGMENT_1)
    whole = path.read_bytes()
    os.truncate(path, last + cut)
    check_repair(
        data_dir,
        caplog,
        segment=SEGMENT_1,
        offset=last,
        cut=whole[last : last + cut],
        expected=written.states[-2],
    )


@pytest.mark.spec("REC-4", "REC-2", "REC-13", "REC-12")
def test_zero_filled_tail_is_cut_off_and_quarantined(
    data_dir: str, caplog: pytest.LogCaptureFixture
) -> None:
    written = write_store(data_dir)
    end = written.segment_sizes[SEGMENT_1]
    zeros = bytes(record_size(b"delta", b"a value of some length"))
    with Path(data_dir, SEGMENT_1).open("ab") as file:
        file.write(zeros)
    check_repair(
        data_dir, caplog, segment=SEGMENT_1, offset=end, cut=zeros, expected=written.states[-1]
    )


@pytest.mark.spec("REC-4", "REC-2", "REC-13", "REC-12")
def test_garbage_tail_is_cut_off_and_quarantined(
    data_dir: str, caplog: pytest.LogCaptureFixture
) -> None:
    written = write_store(data_dir)
    end = written.segment_sizes[SEGMENT_1]
    garbage = random.Random(4).randbytes(57)
    with Path(data_dir, SEGMENT_1).open("ab") as file:
        file.write(garbage)
    check_repair(
        data_dir, caplog, segment=SEGMENT_1, offset=end, cut=garbage, expected=written.states[-1]
    )


@pytest.mark.spec("REC-4", "REC-2", "REC-13", "REC-12")
def test_last_record_with_bad_crc_is_cut_off_and_quarantined(
    data_dir: str, caplog: pytest.LogCaptureFixture
) -> None:
    written = write_store(data_dir)
    last = written.offsets[-1]
    path = Path(data_dir, SEGMENT_1)
    damaged = bytearray(path.read_bytes())
    damaged[last + 1] ^= 0x10
    path.write_bytes(damaged)
    check_repair(
        data_dir,
        caplog,
        segment=SEGMENT_1,
        offset=last,
        cut=bytes(damaged[last:]),
        expected=written.states[-2],
    )


@pytest.mark.spec("REC-4", "REC-2")
def test_torn_delete_brings_the_old_value_back(
    data_dir: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A DELETE that did not reach the disk whole never happened, so the key keeps its value."""
    written = write_store(data_dir, OPS[:3])
    assert written.states[-1] == {b"beta": b"two"}
    path = Path(data_dir, SEGMENT_1)
    whole = path.read_bytes()
    last = written.offsets[-1]
    os.truncate(path, len(whole) - 1)
    check_repair(
        data_dir,
        caplog,
        segment=SEGMENT_1,
        offset=last,
        cut=whole[last:-1],
        expected={b"alpha": b"one", b"beta": b"two"},
    )


def rotated_store(directory: str) -> Written:
    """A store whose four records fill two segments, so a third can be added by hand."""
    written = write_store(directory, segment_size=HEADER_SIZE + 2 * record_size(*OPS[-1]))
    assert sorted(written.segment_sizes) == ["LOCK", SEGMENT_1, "segment-00002.log"]
    return written


@pytest.mark.spec("REC-5", "REC-13")
def test_empty_newest_segment_is_given_its_header(data_dir: str) -> None:
    """The crash came between creating the file and writing its header: nothing was lost."""
    written = rotated_store(data_dir)
    Path(data_dir, "segment-00003.log").touch()
    with catlog.open(data_dir) as store:
        assert dict(store.items()) == written.states[-1]
        assert store.stats().active_segment == "segment-00003.log"
        store.put(b"epsilon", b"goes to the new segment")
    assert not [name for name in os.listdir(data_dir) if ".torn-" in name]
    new = Path(data_dir, "segment-00003.log").read_bytes()
    assert new[:HEADER_SIZE] == Path(data_dir, SEGMENT_1).read_bytes()[:HEADER_SIZE]
    assert len(new) == HEADER_SIZE + record_size(b"epsilon", b"goes to the new segment")
    before = snapshot(data_dir)
    assert contents(data_dir) == {**written.states[-1], b"epsilon": b"goes to the new segment"}
    assert snapshot(data_dir) == before


@pytest.mark.spec("REC-5", "REC-4", "REC-13", "REC-12")
@pytest.mark.parametrize("length", [1, 7, 15])
def test_partial_segment_header_is_cut_off_and_written_anew(
    data_dir: str, caplog: pytest.LogCaptureFixture, length: int
) -> None:
    written = rotated_store(data_dir)
    partial = Path(data_dir, SEGMENT_1).read_bytes()[:length]
    Path(data_dir, "segment-00003.log").write_bytes(partial)
    check_repair(
        data_dir,
        caplog,
        segment="segment-00003.log",
        offset=0,
        cut=partial,
        expected=written.states[-1],
    )
    assert (
        Path(data_dir, "segment-00003.log").read_bytes()[:HEADER_SIZE]
        == (Path(data_dir, SEGMENT_1).read_bytes()[:HEADER_SIZE])
    )


@pytest.mark.spec("REC-5", "REC-4")
def test_garbage_newest_segment_without_a_valid_record_is_cut_at_zero(
    data_dir: str, caplog: pytest.LogCaptureFixture
) -> None:
    written = rotated_store(data_dir)
    garbage = random.Random(5).randbytes(80)
    Path(data_dir, "segment-00003.log").write_bytes(garbage)
    check_repair(
        data_dir,
        caplog,
        segment="segment-00003.log",
        offset=0,
        cut=garbage,
        expected=written.states[-1],
    )


@pytest.mark.spec("REC-4", "REC-12")
def test_second_torn_tail_at_the_same_offset_gets_a_numbered_quarantine(
    data_dir: str, caplog: pytest.LogCaptureFixture
) -> None:
    written = write_store(data_dir)
    end = written.segment_sizes[SEGMENT_1]
    first, second = b"first torn tail", b"second, longer torn tail"
    with Path(data_dir, SEGMENT_1).open("ab") as file:
        file.write(first)
    assert contents(data_dir) == written.states[-1]
    with Path(data_dir, SEGMENT_1).open("ab") as file:
        file.write(second)
    check_repair(
        data_dir,
        caplog,
        segment=SEGMENT_1,
        offset=end,
        cut=second,
        expected=written.states[-1],
        quarantine=f"{SEGMENT_1}.torn-{end}.2",
    )
    assert Path(data_dir, f"{SEGMENT_1}.torn-{end}").read_bytes() == first


@pytest.mark.spec("REC-12")
def test_quarantine_files_are_never_replayed(data_dir: str) -> None:
    """A quarantine file holding whole, valid records must still not be read as a segment."""
    written = write_store(data_dir)
    segment = Path(data_dir, SEGMENT_1).read_bytes()
    Path(data_dir, f"{SEGMENT_1}.torn-16").write_bytes(segment)
    Path(data_dir, "segment-00009.log.torn-0").write_bytes(segment)
    before = snapshot(data_dir)
    with catlog.open(data_dir) as store:
        assert dict(store.items()) == written.states[-1]
        assert store.stats().segments == 1
    assert snapshot(data_dir) == before


@pytest.mark.spec("REC-4", "REC-9")
def test_cut_bytes_are_durable_in_quarantine_before_the_segment_is_truncated(
    data_dir: str,
) -> None:
    """If the cut happened first, a crash between the two steps would lose the torn bytes."""
    written = write_store(data_dir)
    end = written.segment_sizes[SEGMENT_1]
    with Path(data_dir, SEGMENT_1).open("ab") as file:
        file.write(b"torn")
    fs = FaultyFileSystem()
    catlog.open(data_dir, fs=fs).close()
    segment = f"{data_dir}/{SEGMENT_1}"
    quarantine = f"{segment}.torn-{end}"
    trace = fs.trace
    steps = [
        trace.index(("open", quarantine)),
        trace.index(("append", quarantine)),
        trace.index(("sync", quarantine)),
        trace.index(("sync_dir", data_dir)),
        trace.index(("truncate", segment)),
    ]
    assert steps == sorted(steps), trace
    assert ("sync", segment) in trace[steps[-1] :], "the truncation is made durable"


def _write_newest_segment(data_dir: str, body: bytes) -> None:
    os.makedirs(data_dir)
    Path(data_dir, SEGMENT_1).write_bytes(encode_segment_header() + body)


@pytest.mark.spec("REC-4", "REC-6")
def test_a_valid_record_one_byte_after_the_damage_makes_it_corruption(data_dir: str) -> None:
    first = encode_record(RecordType.PUT, NOW_MS, b"a", b"1")
    _write_newest_segment(
        data_dir, first + b"\x01" + encode_record(RecordType.PUT, NOW_MS, b"b", b"2")
    )
    with pytest.raises(catlog.CorruptionError) as caught:
        catlog.open(data_dir)
    assert caught.value.offset == HEADER_SIZE + len(first)
    assert f"follows at offset {HEADER_SIZE + len(first) + 1}" in caught.value.reason


@pytest.mark.spec("REC-4")
def test_a_record_that_would_start_one_byte_before_the_damage_does_not_follow_it(
    data_dir: str,
) -> None:
    """Only offsets after the damage count: here a valid record starts one byte before it.

    The last byte of the good record is also the first byte of a whole record whose other bytes
    are the damage; replay stops one byte into that record, which no valid record follows.
    """
    overlapping = encode_record(RecordType.PUT, NOW_MS, b"r", b"value")
    good = encode_record(RecordType.PUT, NOW_MS, b"a", b"xy" + overlapping[:1])
    _write_newest_segment(data_dir, good + overlapping[1:])
    with catlog.open(data_dir) as store:
        [repair] = store.stats().tail_repairs
        assert (repair.offset, repair.length) == (HEADER_SIZE + len(good), len(overlapping) - 1)
        assert dict(store.items()) == {b"a": b"xy" + overlapping[:1]}
