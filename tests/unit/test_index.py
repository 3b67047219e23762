"""The key index's location packing and the replay loop (catlog/index.py)."""

from __future__ import annotations

from array import array

import pytest
from crc32c import crc32c
from hypothesis import given
from hypothesis import strategies as st

from catlog import codec
from catlog.codec import (
    MAX_KEY_SIZE,
    MAX_VALUE_SIZE,
    Damage,
    DamageKind,
    RecordType,
    encode_batch,
    encode_member,
    encode_record,
)
from catlog.index import (
    LARGE_VALUE,
    MAX_SEGMENT_SIZE,
    MAX_SLOTS,
    older_segment,
    pack_location,
    pack_locations,
    unpack_location,
)
from catlog.walk import ReplayResult, replay_plain


@pytest.mark.spec("ENG-11", "FMT-12")
@given(st.integers(0, MAX_SLOTS - 1), st.integers(0, MAX_SEGMENT_SIZE - 1), st.integers(0, 2**26))
def test_locations_pack_into_an_int_below_2_to_the_60(slot: int, offset: int, vlen: int) -> None:
    location = pack_location(slot, offset, vlen)
    assert location < 2**60
    assert unpack_location(location) == (slot, offset, min(vlen, LARGE_VALUE))


ops = st.lists(
    st.tuples(st.sampled_from([b"a", b"b", b"c", b""]), st.none() | st.binary(max_size=20)),
    max_size=30,
)


@pytest.mark.spec("ENG-13", "FMT-14")
@given(ops)
def test_replay_leaves_each_key_at_its_newest_record(
    writes: list[tuple[bytes, bytes | None]],
) -> None:
    data = b""
    model: dict[bytes, int] = {}
    for key, value in writes:
        if value is None:
            data += encode_record(RecordType.DELETE, 0, key)
            model.pop(key, None)
        else:
            model[key] = len(data)
            data += encode_record(RecordType.PUT, 0, key, value)
    index: dict[bytes, int] = {}
    result = replay_plain(data, 0, 3, index, {})
    assert result.damage is None
    assert result.end == len(data)
    assert {k: unpack_location(v)[:2] for k, v in index.items()} == {
        k: (3, off) for k, off in model.items()
    }


def _mixed_record(i: int, value: bytes, kind: int) -> bytes:
    """A PUT, an expiring PUT, or a batch of an expiring PUT and a DELETE (FMT-21, FMT-22)."""
    key = b"k%d" % i
    if kind == 0:
        return encode_record(RecordType.PUT, 1, key, value)
    if kind == 1:
        return encode_record(RecordType.PUT_EXPIRING, 1, key, value, 10 + i)
    return encode_batch(
        1, [encode_member(RecordType.PUT_EXPIRING, 1, key, value, 5), encode_member(2, 1, b"x")]
    )


@pytest.mark.spec("REC-3", "FMT-22", "FMT-21")
@given(
    st.lists(st.tuples(st.binary(max_size=40), st.integers(0, 2)), max_size=5),
    st.binary(max_size=60),
    st.data(),
)
def test_replay_stops_exactly_where_the_reference_decoder_finds_damage(
    values: list[tuple[bytes, int]], tail: bytes, data: st.DataObject
) -> None:
    """The replay loop inlines decode_record's checks; both must agree on every input."""
    body = b"".join(_mixed_record(i, v, kind) for i, (v, kind) in enumerate(values))
    blob = bytearray(body + tail)
    if blob and data.draw(st.booleans()):
        position = data.draw(st.integers(0, len(blob) - 1))
        blob[position] = data.draw(st.integers(0, 255))
    records, damage = codec.iter_records(bytes(blob), 0)
    index: dict[bytes, int] = {}
    expiring: dict[bytes, tuple[int, int]] = {}
    result = replay_plain(bytes(blob), 0, 0, index, expiring)
    assert result.end == (damage.offset if damage else len(blob))
    expected: dict[bytes, int] = {}
    expected_expiry: dict[bytes, int] = {}
    for record in records:
        for member in record.members or (record,):
            if member.type is RecordType.DELETE:
                expected.pop(member.key, None)
            else:
                expected[member.key] = member.offset
                if member.expires_at_ms:
                    expected_expiry[member.key] = member.expires_at_ms
    assert {k: unpack_location(v)[1] for k, v in index.items()} == expected
    assert {k: at for k, (at, loc) in expiring.items() if index.get(k) == loc} == {
        k: at for k, at in expected_expiry.items() if k in expected
    }
    if damage is None:
        assert result.damage is None
    else:
        assert isinstance(result.damage, Damage)
        assert result.damage == damage


@pytest.mark.spec("ENG-11", "FMT-12", "ENG-74")
@pytest.mark.parametrize(
    ("slot", "offset"), [(16_384, 16), (16_385, (1 << 29) - 1), (32_767, 1 << 28), (32_767, 16)]
)
def test_slots_above_16384_and_offsets_below_2_to_the_29_make_distinct_locations(
    slot: int, offset: int
) -> None:
    """15 slot bits (ENG-74: 32,768 segments) and 29 offset bits (FMT-12: 512 MiB)."""
    location = pack_location(slot, offset, 7)
    assert location < 2**60
    assert unpack_location(location) == (slot, offset, 7)
    assert location != pack_location(slot - 1, offset, 7)
    assert (MAX_SLOTS, MAX_SEGMENT_SIZE) == (32_768, 1 << 29)


@pytest.mark.spec("ENG-11", "FMT-12")
def test_a_location_outside_its_fields_is_refused_not_packed_into_a_neighbour() -> None:
    assert unpack_location(pack_location(MAX_SLOTS - 1, MAX_SEGMENT_SIZE - 1, 0)) == (
        MAX_SLOTS - 1,
        MAX_SEGMENT_SIZE - 1,
        0,
    )
    with pytest.raises(
        AssertionError, match=r"^slot out of range: the store hands out at most MAX_SLOTS$"
    ):
        pack_location(MAX_SLOTS, 0, 0)
    with pytest.raises(AssertionError, match=r"^offset out of range: segment_size is capped$"):
        pack_location(0, MAX_SEGMENT_SIZE, 0)


# (slot, offset, value_len, the location written out by hand): bit 59..45 slot, 44..16 offset,
# 15..0 the value length capped at 65,535.
EDGES = [
    (0, 0, 0, 0),
    (0, 0, 65_534, 65_534),
    (0, 0, 65_535, 65_535),
    (0, 0, 65_536, 65_535),
    (0, 0, 2**26, 65_535),
    (0, 2**29 - 1, 0, 0x1FFF_FFFF_0000),
    (1, 0, 0, 1 << 45),
    (7, 2**28, 3, 0xF000_0000_0003),
    (8, 1, 1, 0x1_0000_0001_0001),
    (2**11, 0, 0, 1 << 56),
    (32_767, 0, 0, 0xFFF_E000_0000_0000),
    (32_767, 2**29 - 1, 65_534, 2**60 - 2),
    (32_767, 2**29 - 1, 65_535, 2**60 - 1),
    (32_767, 2**29 - 1, 1 << 31, 2**60 - 1),
]


@pytest.mark.spec("ENG-11", "FMT-12")
@pytest.mark.parametrize(("slot", "offset", "value_len", "location"), EDGES)
def test_a_location_at_the_edges_of_its_fields_is_these_exact_bits(
    slot: int, offset: int, value_len: int, location: int
) -> None:
    """Each of the module's two spellings of a location (pack_location, and pack_locations'
    byte layout for short values) gives the same int, alone and between others."""
    assert pack_location(slot, offset, value_len) == location
    assert unpack_location(location) == (slot, offset, min(value_len, LARGE_VALUE))
    assert pack_locations(slot, array("I", [offset]), array("I", [value_len])) == [location]
    offsets = array("I", [0, offset, 2**29 - 1])
    lens = array("I", [1, value_len, 2])
    around = [pack_location(slot, 0, 1), location, pack_location(slot, 2**29 - 1, 2)]
    assert pack_locations(slot, offsets, lens) == around
    assert pack_locations(slot, offsets, lens, max(lens)) == around


@pytest.mark.spec("ENG-11", "FMT-12")
@pytest.mark.parametrize("value_len", [0, 65_534, 65_535, 1 << 20])
@pytest.mark.parametrize("offset", [2**29, 2**29 + 1, 2**30, 2**32 - 1])
def test_pack_locations_refuses_an_offset_of_2_to_the_29_or_more(
    offset: int, value_len: int
) -> None:
    assert pack_locations(32_767, array("I", [16, offset]), array("I", [1, value_len])) is None
    assert pack_locations(0, array("I", [offset]), array("I", [value_len])) is None


UNEQUAL_COLUMNS = (
    r"^(zip\(\) argument 2 is (shorter|longer) than argument 1"
    r"|attempt to assign bytes of size \d+ to extended slice of size \d+)$"
)
"""The zip of pack_location's path, or the byte layout's strided copy."""


@pytest.mark.spec("ENG-11")
@pytest.mark.parametrize(
    ("offsets", "value_lens"),
    [
        ([], [5]),
        ([16], []),
        ([16, 32], [70_000]),
        ([16], [70_000, 1]),
        ([16, 32], [5]),
        ([16], [5, 6]),
    ],
)
def test_pack_locations_refuses_columns_of_different_lengths(
    offsets: list[int], value_lens: list[int]
) -> None:
    """A hint's columns have one entry per PUT; a short column is a caller's bug, never a
    truncated index."""
    with pytest.raises(ValueError, match=UNEQUAL_COLUMNS):
        pack_locations(3, array("I", offsets), array("I", value_lens))


def test_pack_locations_of_no_entries_is_an_empty_list() -> None:
    assert pack_locations(32_767, array("I"), array("I")) == []
    assert pack_locations(0, array("I"), array("I"), 0) == []


@pytest.mark.spec("FMT-36")
@pytest.mark.parametrize("size", [2**29 + 1, 2**30])
def test_a_segment_between_the_two_limits_is_explained_as_an_older_catlogs(size: int) -> None:
    assert older_segment(size, "/d") == (
        f"segment of {size} bytes, longer than this catlog reads (536870912); an older catlog,"
        " which allowed 1073741824, wrote it, and nothing was changed: compact the store with"
        " that catlog (catlog compact --segment-size 536870912 /d), then open it with this one"
    )


@pytest.mark.spec("FMT-36")
@pytest.mark.parametrize("size", [2**29, 2**30 + 1])
def test_a_segment_outside_the_two_limits_is_not_an_older_catlogs(size: int) -> None:
    """At most 512 MiB is readable; over 1 GiB no catlog wrote, so it is FMT-12's corruption."""
    with pytest.raises(AssertionError, match=r"^FMT-12's corruption otherwise$"):
        older_segment(size, "/d")


@pytest.mark.spec("ENG-11")
@pytest.mark.parametrize("vlen", [LARGE_VALUE - 1, LARGE_VALUE, LARGE_VALUE + 1, 70_000])
def test_replay_caps_a_large_value_length_without_touching_the_offset(vlen: int) -> None:
    data = encode_record(RecordType.PUT, 0, b"a", b"x") + encode_record(
        RecordType.PUT, 0, b"big", b"v" * vlen
    )
    index: dict[bytes, int] = {}
    assert replay_plain(data, 0, 5, index, {}).damage is None
    assert unpack_location(index[b"a"]) == (5, 0, 1)
    assert unpack_location(index[b"big"]) == (5, 23, min(vlen, LARGE_VALUE))


def _with_valid_crc(rtype: int, key: bytes, value: bytes) -> bytes:
    body = codec.BODY_HEADER.pack(rtype, 0, len(key), len(value)) + key + value
    return codec.CRC_FIELD.pack(crc32c(body)) + body


@pytest.mark.spec("FMT-7", "FMT-8", "FMT-21", "REC-7", "REC-3")
@pytest.mark.parametrize(
    ("rtype", "value", "kind"),
    [
        (0, b"", DamageKind.UNKNOWN_TYPE),
        (5, b"", DamageKind.UNKNOWN_TYPE),
        (5, b"v", DamageKind.UNKNOWN_TYPE),
        (RecordType.PUT_EXPIRING, b"v", DamageKind.BAD_EXPIRING),
        (RecordType.PUT_EXPIRING, b"", DamageKind.BAD_EXPIRING),  # no value: still no DELETE
        (RecordType.BATCH, b"", DamageKind.BAD_BATCH),
        (RecordType.DELETE, b"v", DamageKind.BAD_DELETE),
    ],
)
def test_replay_stops_at_a_whole_record_that_breaks_the_format(
    rtype: int, value: bytes, kind: DamageKind
) -> None:
    """Neither skipped nor applied: a reserved type with no value is not a DELETE."""
    first = encode_record(RecordType.PUT, 0, b"k", b"1")
    data = first + _with_valid_crc(rtype, b"k", value) + encode_record(RecordType.PUT, 0, b"j", b"")
    index: dict[bytes, int] = {}
    result = replay_plain(data, 0, 0, index, {})
    assert result.end == len(first)
    assert result.damage is not None
    assert (result.damage.offset, result.damage.kind) == (len(first), kind)
    assert list(index) == [b"k"]


@pytest.mark.spec("FMT-9", "REC-3")
@pytest.mark.parametrize(("key_len", "value_len"), [(MAX_KEY_SIZE, 0), (0, MAX_VALUE_SIZE)])
def test_replay_applies_a_record_at_exactly_the_limits(key_len: int, value_len: int) -> None:
    record = encode_record(RecordType.PUT, 0, b"k" * key_len, bytes(value_len))
    index: dict[bytes, int] = {}
    assert replay_plain(record, 0, 0, index, {}) == ReplayResult(len(record), None)
    assert list(index) == [b"k" * key_len]


@pytest.mark.spec("FMT-9", "REC-3")
@pytest.mark.parametrize(("key_len", "value_len"), [(MAX_KEY_SIZE + 1, 0), (0, MAX_VALUE_SIZE + 1)])
def test_replay_refuses_a_record_beyond_the_limits_even_when_its_crc_verifies(
    key_len: int, value_len: int
) -> None:
    record = _with_valid_crc(RecordType.PUT, b"k" * key_len, bytes(value_len))
    index: dict[bytes, int] = {}
    result = replay_plain(record, 0, 0, index, {})
    assert (result.end, index) == (0, {})
    assert result.damage is not None
    assert result.damage.kind is DamageKind.BAD_LENGTH
