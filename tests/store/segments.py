"""Reading a test store's segment files back, record by record (spec/format.md)."""

from __future__ import annotations

from catlog import codec


def records(directory: str, number: int = 1) -> list[codec.Record]:
    """Every record of ``segment-<number>.log`` in ``directory``, which must hold no damage."""
    with open(f"{directory}/segment-{number:05d}.log", "rb") as segment:
        found, damage = codec.iter_records(segment.read(), codec.SEGMENT_HEADER_SIZE)
    assert damage is None, damage
    return found
