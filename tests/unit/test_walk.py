"""Every hot walk of catlog/walk.py against the reference walk, on the same segments.

The rule of catlog/walk.py: each of its loops accepts exactly what ``decode_record`` accepts and
stops where :func:`catlog.walk.walk` stops, with the same damage. :func:`check_every_walk` states
what each loop must have done, derived from the reference walk's records alone, and checks all
six; the property feeds it generated segments of both versions (every record type, batches,
expiring PUTs, records that verify but break the format, torn and damaged tails), the
parametrized cases the boundaries that random segments rarely reach.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import pytest
from crc32c import crc32c
from hypothesis import given
from hypothesis import strategies as st

import catlog.walk
from catlog.codec import (
    BODY_HEADER,
    CRC_FIELD,
    EXPIRY_FIELD,
    MAX_KEY_SIZE,
    PACKED_LONG_TYPE,
    PACKED_SHORT_MAX_VALUE,
    PACKED_SHORT_SIZE,
    PACKED_SHORT_TYPE,
    PACKED_VERSION,
    RECORD_HEADER_SIZE,
    SEGMENT_HEADER_SIZE,
    Damage,
    Record,
    RecordType,
    decode_record,
    encode_batch,
    encode_member,
    encode_packed,
    encode_record,
    encode_segment_header,
)
from catlog.index import LARGE_VALUE, MAX_SLOTS, Expiring, apply_record, pack_location
from catlog.walk import (
    PAUSE_EVERY,
    LastRecords,
    ReplayResult,
    Walked,
    copy_packed,
    copy_plain,
    last_packed,
    last_plain,
    replay_packed,
    replay_plain,
    walk,
)

PUT, DELETE, EXPIRING, BATCH = (int(t) for t in RecordType)
NOW = 1_700_000_000_000
KEYS = [b"", b"a", b"b", b"bee", b"k" * 255, b"k" * 256]
EXPIRED_PREFIX = b"b"
"""The copy walks are told that keys starting with this have expired."""


@dataclass
class Copied:
    """A stand-in for compaction's Outputs: what a copy walk added and skipped."""

    added: list[tuple[bytes, int, int, bytes]] = field(default_factory=list)
    skipped: list[tuple[bytes, int]] = field(default_factory=list)

    def add(self, key: bytes, old: int, value_len: int, record: bytes) -> None:
        self.added.append((key, old, value_len, record))


def check_every_walk(data: bytes, *, packed: bool, slot: int, with_expiry: bool) -> None:
    """The replay, hint and copy walks of ``data``'s version against :func:`walk`."""
    start = SEGMENT_HEADER_SIZE
    reference = walk(data, start, packed=packed)
    with pytest.MonkeyPatch.context() as patch:
        decoded: list[int] = []

        def decode(data: bytes, offset: int, *, packed: bool = False) -> Record | Damage:
            decoded.append(offset)
            return decode_record(data, offset, packed=packed)

        patch.setattr(catlog.walk, "decode_record", decode)
        for check in (_check_replay, _check_last, _check_copy):
            decoded.clear()
            check(data, reference, packed=packed, slot=slot, with_expiry=with_expiry)
            assert decoded == _decoded(data, reference, packed=packed), check.__name__


def _decoded(data: bytes, reference: Walked, *, packed: bool) -> list[int]:
    """Where a hot walk calls ``decode_record``: at each record it does not take inline, then
    at the damage, if any, once in the loop (unless the header is cut short: the loop ends when
    it cannot unpack it) and once more to report it (module doc of catlog/walk.py)."""
    offsets = [r.offset for r in reference.records if not _inline(r, packed=packed)]
    damage = reference.damage
    if damage is not None:
        cut = len(data) - damage.offset < (PACKED_SHORT_SIZE if packed else RECORD_HEADER_SIZE)
        offsets += [damage.offset] * (1 if cut else 2)
    return offsets


def _inline(record: Record, *, packed: bool) -> bool:
    """Whether the hot walks take ``record`` without decoding it: a plain PUT or DELETE, or a
    packed PUT in the short form."""
    if packed:
        short = record.size == PACKED_SHORT_SIZE + len(record.key) + len(record.value)
        return record.type == PUT and short
    return record.type in (PUT, DELETE)


def _before(slot: int) -> dict[bytes, int]:
    """Keys indexed before the segment, in another slot: a DELETE in it must remove them."""
    return {key: pack_location((slot + 1) % MAX_SLOTS, 16, 3) for key in KEYS[::2]}


def _replayed(reference: Walked, slot: int) -> tuple[dict[bytes, int], Expiring]:
    """The index and expiries replay must leave: the reference's records applied in order."""
    index = _before(slot)
    expiring: Expiring = {}
    for record in reference.records:
        apply_record(record, slot, index, expiring)
    return index, expiring


def _check_replay(
    data: bytes, reference: Walked, *, packed: bool, slot: int, with_expiry: bool
) -> None:
    replayed = _before(slot)
    replayed_expiring: Expiring = {}
    replay = replay_packed if packed else replay_plain
    result = replay(data, SEGMENT_HEADER_SIZE, slot, replayed, replayed_expiring)
    assert result == ReplayResult(reference.end, reference.damage)
    assert (replayed, replayed_expiring) == _replayed(reference, slot)


def _check_last(
    data: bytes, reference: Walked, *, packed: bool, slot: int, with_expiry: bool
) -> None:
    members = [m for record in reference.records for m in record.members or (record,)]
    last: LastRecords = {}
    for m in members:
        last[m.key] = (m.type, m.offset, m.value_len, m.expires_at_ms)
    found = (last_packed if packed else last_plain)(data, SEGMENT_HEADER_SIZE)
    assert found == (last if reference.damage is None else reference.damage)


def _check_copy(
    data: bytes, reference: Walked, *, packed: bool, slot: int, with_expiry: bool
) -> None:
    start = SEGMENT_HEADER_SIZE
    members = [m for record in reference.records for m in record.members or (record,)]
    index = _replayed(reference, slot)[0]
    expires = dict.fromkeys(index, NOW) if with_expiry else {}
    expected = Copied()
    for m in members:
        location = pack_location(slot, m.offset, m.value_len)
        if m.type == DELETE or index.get(m.key) != location:
            continue
        if expires and m.key.startswith(EXPIRED_PREFIX):
            expected.skipped.append((m.key, location))
        elif packed:
            expected.added.append(
                (m.key, location, m.value_len, data[m.offset : m.offset + m.size])
            )
        else:
            value = m.value
            if m.type == EXPIRING:
                value = EXPIRY_FIELD.pack(m.expires_at_ms) + value
            expected.added.append(
                (m.key, location, m.value_len, encode_packed(m.type, m.key, value))
            )
    copied = Copied()
    pauses: list[None] = []
    copy = copy_packed if packed else copy_plain
    answer = copy(
        data,
        start,
        slot,
        index=index,
        expires=expires,
        expired=lambda key: key.startswith(EXPIRED_PREFIX),
        copies=copied,
        pause=lambda: pauses.append(None),
    )
    assert answer == reference.damage
    assert copied == expected
    looked_at = len(reference.records) + (reference.damage is not None)
    assert len(pauses) == looked_at // PAUSE_EVERY


# ----------------------------------------------------------------------------- the segments


def _whole(body: bytes, *, mask: int = 0) -> bytes:
    """A record from everything after its crc field, crc computed (FMT-4, FMT-27)."""
    return CRC_FIELD.pack(crc32c(body) ^ mask) + body


def _plain(rtype: int, key: bytes, value: bytes, ts: int = NOW) -> bytes:
    """A plain record of any type with exactly this value field, crc computed."""
    return _whole(BODY_HEADER.pack(rtype, ts, len(key), len(value)) + key + value)


def _short(rtype: int, key: bytes, value: bytes) -> bytes:
    """A short-form packed record, whatever its lengths (FMT-27)."""
    head = struct.pack("<BBH", PACKED_SHORT_TYPE | rtype, len(key), len(value))
    return _whole(head + key + value)


def _long(rtype: int, key: bytes, value: bytes) -> bytes:
    """A long-form packed record, whatever its lengths (FMT-27)."""
    return _whole(struct.pack("<BII", PACKED_LONG_TYPE | rtype, len(key), len(value)) + key + value)


keys = st.sampled_from(KEYS)
short_keys = st.sampled_from(KEYS[:5])
"""Keys the short form can hold (FMT-27)."""
values = st.binary(max_size=12) | st.sampled_from(
    [PACKED_SHORT_MAX_VALUE, LARGE_VALUE, LARGE_VALUE + 1]
).map(bytes)
expiries = st.integers(0, 2**64 - 1)

plain_records = st.one_of(
    st.builds(lambda k, v: encode_record(PUT, NOW, k, v), keys, values),
    st.builds(lambda k: encode_record(DELETE, NOW, k), keys),
    st.builds(lambda k, v, at: encode_record(EXPIRING, NOW, k, v, at), keys, values, expiries),
    st.builds(
        lambda ms: encode_batch(NOW, ms),
        st.lists(
            st.builds(
                lambda t, k, v: encode_member(t, NOW, k, v, 7),
                st.sampled_from([PUT, DELETE, EXPIRING]),
                keys,
                st.binary(max_size=4),
            ),
            max_size=3,
        ),
    ),
)
plain_broken = st.one_of(
    # Records whose crc verifies but which break the format (REC-7).
    st.builds(lambda k, v: _plain(DELETE, k, v), keys, st.binary(min_size=1, max_size=3)),
    st.builds(lambda k, v: _plain(EXPIRING, k, v), keys, st.binary(max_size=7)),
    st.builds(lambda t, k: _plain(t, k, b"v"), st.sampled_from([0, 5, 0x41, 0x81]), keys),
    st.builds(lambda k: _plain(BATCH, k, b""), keys),
    st.builds(lambda: _plain(PUT, bytes(MAX_KEY_SIZE + 1), b"")),
)

packed_records = st.one_of(
    st.builds(lambda k, v: encode_packed(PUT, k, v), keys, values),
    st.builds(lambda k: encode_packed(DELETE, k, b""), keys),
    st.builds(
        lambda k, v, at: encode_packed(EXPIRING, k, EXPIRY_FIELD.pack(at) + v),
        keys,
        values,
        expiries,
    ),
)
packed_broken = st.one_of(
    # Records whose crc verifies but which break the format (REC-7, FMT-27, FMT-28).
    st.builds(lambda k: _short(PUT, k, bytes(LARGE_VALUE)), short_keys),
    st.builds(lambda k, v: _long(PUT, k, v), short_keys, st.binary(max_size=4)),
    st.builds(lambda k, v: encode_packed(DELETE, k, v), keys, st.binary(min_size=1, max_size=3)),
    st.builds(lambda k, v: encode_packed(EXPIRING, k, v), keys, st.binary(max_size=7)),
    st.builds(lambda t, k: _short(t, k, b"v"), st.sampled_from([0, 4, 0x0F, 0x11]), short_keys),
)


def _damaged(blob: bytes, data: st.DataObject) -> bytes:
    """``blob`` torn, with a byte changed, with a tail added, or as it is.

    With a record that breaks the format inserted (or not) before, every kind of damage is
    found: one at a time, since a walk stops at the first."""
    how = data.draw(st.sampled_from(["whole", "torn", "changed", "tail"]))
    if how == "torn" and len(blob) > SEGMENT_HEADER_SIZE:
        return blob[: data.draw(st.integers(SEGMENT_HEADER_SIZE, len(blob) - 1))]
    if how == "changed" and len(blob) > SEGMENT_HEADER_SIZE:
        changed = bytearray(blob)
        changed[data.draw(st.integers(SEGMENT_HEADER_SIZE, len(blob) - 1))] ^= data.draw(
            st.integers(1, 255)
        )
        return bytes(changed)
    if how == "tail":
        return blob + data.draw(st.binary(max_size=30) | st.sampled_from([bytes(20), bytes(9)]))
    return blob


@pytest.mark.spec("REC-3", "ENG-13", "FMT-17", "ENG-39", "FMT-22", "FMT-21", "FMT-27")
@given(st.booleans(), st.data())
def test_every_walk_accepts_what_decode_record_accepts_and_stops_where_it_stops(
    packed: bool, data: st.DataObject
) -> None:
    records = data.draw(st.lists(packed_records if packed else plain_records, max_size=40))
    broken = data.draw(st.none() | (packed_broken if packed else plain_broken))
    if broken is not None:
        records.insert(data.draw(st.integers(0, len(records))), broken)
    header = encode_segment_header(PACKED_VERSION if packed else 1)
    blob = _damaged(header + b"".join(records), data)
    slot = data.draw(st.sampled_from([0, 1, 5, MAX_SLOTS - 1]))
    check_every_walk(blob, packed=packed, slot=slot, with_expiry=data.draw(st.booleans()))


# -------------------------------------------------------------------------------- boundaries

PLAIN = encode_segment_header()
PACKED = encode_segment_header(PACKED_VERSION)
MANY = [encode_record(PUT, NOW, b"k%d" % (i % 7), b"v") for i in range(2 * PAUSE_EVERY + 3)]
MANY_PACKED = [encode_packed(PUT, b"k%d" % (i % 7), b"v") for i in range(2 * PAUSE_EVERY + 3)]
SIMPLE = encode_record(PUT, NOW, b"a", b"1") + encode_record(DELETE, NOW, b"b")
SIMPLE_PACKED = encode_packed(PUT, b"a", b"1") + encode_packed(DELETE, b"b", b"")

BOUNDARIES: dict[str, tuple[bool, bytes]] = {
    "empty": (False, PLAIN),
    "empty packed": (True, PACKED),
    "values about LARGE_VALUE": (
        False,
        PLAIN
        + b"".join(
            encode_record(PUT, NOW, b"v%d" % n, bytes(n))
            for n in (LARGE_VALUE - 1, LARGE_VALUE, LARGE_VALUE + 1)
        )
        + encode_record(EXPIRING, NOW, b"bx", bytes(LARGE_VALUE - 8), 5),
    ),
    "short form up to its longest value": (
        True,
        PACKED
        + encode_packed(PUT, b"a", bytes(PACKED_SHORT_MAX_VALUE))
        + encode_packed(PUT, b"bb", bytes(PACKED_SHORT_MAX_VALUE + 1)),
    ),
    "short form one byte past its longest value": (
        True,
        PACKED + SIMPLE_PACKED + _short(PUT, b"a", bytes(PACKED_SHORT_MAX_VALUE + 1)),
    ),
    "long form a short one could hold": (True, PACKED + SIMPLE_PACKED + _long(PUT, b"a", b"1")),
    "the longest key and one byte more": (
        False,
        PLAIN
        + encode_record(PUT, NOW, bytes(MAX_KEY_SIZE), b"")
        + _plain(PUT, bytes(MAX_KEY_SIZE + 1), b""),
    ),
    "a delete of the longest key and one byte more": (
        False,
        PLAIN
        + encode_record(DELETE, NOW, bytes(MAX_KEY_SIZE))
        + _plain(DELETE, bytes(MAX_KEY_SIZE + 1), b""),
    ),
    "a delete with a value": (False, PLAIN + SIMPLE + _plain(DELETE, b"a", b"x")),
    "a put of another type": (False, PLAIN + SIMPLE + _plain(5, b"a", b"x")),
    "a packed put of another type": (True, PACKED + SIMPLE_PACKED + _short(4, b"a", b"x")),
    "a plain record in a packed segment": (True, PACKED + SIMPLE_PACKED + SIMPLE),
    "a bad crc": (False, PLAIN + SIMPLE + encode_record(PUT, NOW, b"a", b"2")[:-1] + b"3"),
    "a bad packed crc": (True, PACKED + SIMPLE_PACKED + encode_packed(PUT, b"a", b"2")[:-1] + b"3"),
    "a record past the end": (False, PLAIN + SIMPLE + encode_record(PUT, NOW, b"a", b"22")[:-1]),
    "a packed record past the end": (
        True,
        PACKED + SIMPLE_PACKED + encode_packed(PUT, b"a", b"22")[:-1],
    ),
    "a batch and an expiring put": (
        False,
        PLAIN
        + encode_batch(
            NOW, [encode_member(PUT, NOW, b"bm", b"1"), encode_member(DELETE, NOW, b"a")]
        )
        + encode_record(EXPIRING, NOW, b"be", b"2", 9)
        + encode_record(EXPIRING, NOW, b"e", b"3", 9),
    ),
    "packed expiring puts and deletes": (
        True,
        PACKED
        + encode_packed(EXPIRING, b"be", EXPIRY_FIELD.pack(9) + b"2")
        + encode_packed(EXPIRING, b"e", EXPIRY_FIELD.pack(9) + bytes(LARGE_VALUE))
        + encode_packed(DELETE, b"a", b"")
        + encode_packed(PUT, b"k" * 256, b"long key"),
    ),
    "pauses": (False, PLAIN + b"".join(MANY)),
    "one record short of a pause": (False, PLAIN + b"".join(MANY[: PAUSE_EVERY - 1])),
    "one packed record short of a pause": (True, PACKED + b"".join(MANY_PACKED[: PAUSE_EVERY - 1])),
    "live puts of expired keys": (
        False,
        PLAIN
        + encode_record(PUT, NOW, b"bee", b"1")
        + encode_batch(NOW, [encode_member(DELETE, NOW, b"a"), encode_member(PUT, NOW, b"b", b"2")])
        + encode_record(PUT, NOW, b"a", b"3"),
    ),
    "live packed puts of expired keys": (
        True,
        PACKED
        + encode_packed(PUT, b"bee", b"1")
        + encode_packed(PUT, b"b", bytes(LARGE_VALUE))
        + encode_packed(PUT, b"a", b"3"),
    ),
    "pauses packed": (True, PACKED + b"".join(MANY_PACKED)),
    "pauses then damage": (False, PLAIN + b"".join(MANY[: 2 * PAUSE_EVERY - 1]) + b"\x01"),
    "pauses then packed damage": (
        True,
        PACKED + b"".join(MANY_PACKED[: 2 * PAUSE_EVERY - 1]) + b"\x01",
    ),
}
BOUNDARIES.update(
    {
        f"a header cut to {n} bytes": (
            False,
            PLAIN + SIMPLE + encode_record(PUT, NOW, b"a", b"")[:n],
        )
        for n in (1, RECORD_HEADER_SIZE - 1, RECORD_HEADER_SIZE)
    }
)
BOUNDARIES.update(
    {
        f"a packed header cut to {n} bytes": (
            True,
            PACKED + SIMPLE_PACKED + encode_packed(PUT, b"a", b"1")[:n],
        )
        for n in (1, 7, 8)
    }
)


@pytest.mark.spec("REC-3", "ENG-13", "FMT-17", "ENG-39", "FMT-9", "FMT-27")
@pytest.mark.parametrize("with_expiry", [False, True])
@pytest.mark.parametrize("name", list(BOUNDARIES))
def test_every_walk_agrees_with_decode_record_at_the_boundaries(
    name: str, with_expiry: bool
) -> None:
    packed, data = BOUNDARIES[name]
    check_every_walk(data, packed=packed, slot=3, with_expiry=with_expiry)


WHOLE: frozenset[str] = frozenset(
    {
        "empty",
        "empty packed",
        "values about LARGE_VALUE",
        "short form up to its longest value",
        "a batch and an expiring put",
        "packed expiring puts and deletes",
        "pauses",
        "pauses packed",
        "one record short of a pause",
        "one packed record short of a pause",
        "live puts of expired keys",
        "live packed puts of expired keys",
    }
)
"""The cases with no damage; in every other one, the last record is damage."""


def test_the_boundaries_are_what_their_names_say() -> None:
    for name, (packed, data) in BOUNDARIES.items():
        damage = walk(data, SEGMENT_HEADER_SIZE, packed=packed).damage
        assert (damage is None) == (name in WHOLE), name
