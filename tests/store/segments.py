"""Reading a test store's segment files back, record by record (spec/format.md)."""

from __future__ import annotations

from pathlib import Path

from catlog import codec
from catlog.segment import segment_name


def records(directory: str, number: int = 1) -> list[codec.Record]:
    """Every record of ``segment-<number>.log`` in ``directory``, which must hold no damage.

    A packed segment (FMT-26, a compaction's output) is decoded by its own layout (FMT-27).
    """
    with open(f"{directory}/segment-{number:05d}.log", "rb") as segment:
        data = segment.read()
    status, version = codec.decode_segment_header(data)
    assert status is codec.HeaderStatus.OK, status
    packed = version == codec.PACKED_VERSION
    found, damage = codec.iter_records(data, codec.SEGMENT_HEADER_SIZE, packed=packed)
    assert damage is None, damage
    return found


def is_packed(directory: str, number: int) -> bool:
    """FMT-26: whether ``segment-<number>.log`` has the packed segment's header."""
    with open(f"{directory}/segment-{number:05d}.log", "rb") as segment:
        header = segment.read(codec.SEGMENT_HEADER_SIZE)
    return header == codec.encode_segment_header(codec.PACKED_VERSION)


def key_of(number: int) -> bytes:
    """The key :func:`write_segments` puts in segment ``number``."""
    return b"key-%06d" % number


def value_of(number: int) -> bytes:
    return b"value-%06d" % number


def write_segments(directory: Path, count: int) -> None:
    """``count`` sealed segments of one PUT each, and an empty active segment after them."""
    directory.mkdir(parents=True, exist_ok=True)
    header = codec.encode_segment_header()
    for number in range(1, count + 1):
        record = codec.encode_record(codec.RecordType.PUT, 1, key_of(number), value_of(number))
        (directory / segment_name(number)).write_bytes(header + record)
    (directory / segment_name(count + 1)).write_bytes(header)
