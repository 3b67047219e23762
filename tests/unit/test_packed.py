"""Packed segments and their records (spec/format.md section 5): codec, replay and hint."""

from __future__ import annotations

import pytest
from crc32c import crc32c
from hypothesis import given
from hypothesis import strategies as st

from catlog import codec
from catlog.codec import (
    EXPIRY_FIELD,
    MAX_KEY_SIZE,
    MAX_VALUE_SIZE,
    PACKED_LONG,
    PACKED_SHORT,
    PACKED_VERSION,
    SEGMENT_HEADER_SIZE,
    Damage,
    DamageKind,
    Record,
    RecordType,
    decode_record,
    encode_packed,
    encode_segment_header,
    find_next_record,
)
from catlog.hint import (
    Hint,
    HintProblem,
    apply_hint,
    build_hint,
    decode_hint,
)
from catlog.index import unpack_location
from catlog.walk import replay_packed

WORKED_PACKED_PUT = bytes.fromhex("81b317e8 41 04 0300 6e616d65 426f62".replace(" ", ""))
PACKED_HEADER = encode_segment_header(PACKED_VERSION)


def _whole(body: bytes) -> bytes:
    """A packed record from everything after its crc field, crc computed (FMT-27)."""
    return codec.CRC_FIELD.pack(crc32c(body)) + body


@pytest.mark.spec("FMT-27", "FMT-28", "FMT-26")
def test_the_worked_packed_record_of_the_spec_matches_the_encoder_byte_for_byte() -> None:
    assert encode_packed(RecordType.PUT, b"name", b"Bob") == WORKED_PACKED_PUT
    record = decode_record(WORKED_PACKED_PUT, 0, packed=True)
    assert record == Record(RecordType.PUT, 0, b"name", b"Bob", 0, 15, packed=True)
    assert PACKED_HEADER[8:12] == (2).to_bytes(4, "little")


@pytest.mark.spec("FMT-27", "FMT-28", "FMT-21", "FMT-8")
@given(
    st.sampled_from([RecordType.PUT, RecordType.DELETE, RecordType.PUT_EXPIRING]),
    st.binary(max_size=300),
    st.binary(max_size=300) | st.sampled_from([bytes(65_526), bytes(65_527), bytes(65_600)]),
    st.integers(0, 2**64 - 1),
)
def test_every_packed_record_round_trips_in_the_one_form_its_lengths_allow(
    rtype: RecordType, key: bytes, value: bytes, expires_at: int
) -> None:
    if rtype is RecordType.DELETE:
        value = b""
    field = EXPIRY_FIELD.pack(expires_at) + value if rtype is RecordType.PUT_EXPIRING else value
    data = b"junk" + encode_packed(rtype, key, field)
    record = decode_record(data, 4, packed=True)
    assert isinstance(record, Record)
    assert (record.type, record.key, record.value, record.size) == (
        rtype,
        key,
        value,
        len(data) - 4,
    )
    assert record.value_len == len(field)
    assert record.expires_at_ms == (expires_at if rtype is RecordType.PUT_EXPIRING else 0)
    short = len(key) <= 255 and len(field) <= 65_534
    assert data[8] == rtype | (0x40 if short else 0x50)
    head = (PACKED_SHORT if short else PACKED_LONG).size
    assert len(data) - 4 == head + len(key) + len(field)


@pytest.mark.spec("FMT-27", "REC-3")
@given(st.binary(max_size=300), st.binary(max_size=300), st.data())
def test_any_single_flipped_bit_of_a_packed_record_is_detected(
    key: bytes, value: bytes, data: st.DataObject
) -> None:
    record = bytearray(encode_packed(RecordType.PUT, key, value))
    bit = data.draw(st.integers(0, len(record) * 8 - 1))
    record[bit // 8] ^= 1 << (bit % 8)
    decoded = decode_record(bytes(record), 0, packed=True)
    assert isinstance(decoded, Damage) or (decoded.key, decoded.value) != (key, value)


@pytest.mark.spec("FMT-27", "REC-7")
@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (PACKED_LONG.pack(0, 0x51, 3, 2)[4:] + b"keyva", "long form for key_len=3 value_len=2"),
        (
            PACKED_SHORT.pack(0, 0x41, 1, 65_535)[4:] + b"k" + bytes(65_535),
            "short form for key_len=1 value_len=65535",
        ),
    ],
)
def test_a_packed_record_in_the_wrong_form_is_a_format_violation(body: bytes, detail: str) -> None:
    data = _whole(body)
    damage = decode_record(data, 0, packed=True)
    assert damage == Damage(0, DamageKind.BAD_PACKED, detail)
    assert isinstance(damage, Damage)
    assert damage.kind in codec.WRITTEN_WHOLE
    assert damage.end == len(data)


@pytest.mark.spec("FMT-27")
@pytest.mark.parametrize(
    ("key_len", "value_len", "short"),
    [(255, 0, True), (256, 0, False), (0, 65_534, True), (0, 65_535, False), (255, 65_534, True)],
)
def test_the_short_form_holds_exactly_the_records_within_both_bounds(
    key_len: int, value_len: int, short: bool
) -> None:
    record = encode_packed(RecordType.PUT, bytes(key_len), bytes(value_len))
    assert record[4] == (0x41 if short else 0x51)
    assert len(record) == (8 if short else 13) + key_len + value_len
    decoded = decode_record(record, 0, packed=True)
    assert isinstance(decoded, Record)
    assert (len(decoded.key), len(decoded.value)) == (key_len, value_len)


@pytest.mark.spec("FMT-9", "FMT-27", "REC-3")
@pytest.mark.parametrize(("key_len", "value_len"), [(MAX_KEY_SIZE, 0), (0, MAX_VALUE_SIZE)])
def test_packed_lengths_at_the_limits_are_believed(key_len: int, value_len: int) -> None:
    record = encode_packed(RecordType.PUT, bytes(key_len), bytes(value_len))
    decoded = decode_record(record, 0, packed=True)
    assert isinstance(decoded, Record)
    assert decoded.size == len(record)


@pytest.mark.spec("REC-5", "REC-22")
def test_the_first_record_after_a_damaged_header_says_which_format_the_segment_has() -> None:
    damaged = b"\xff" * SEGMENT_HEADER_SIZE
    packed = damaged + encode_packed(RecordType.PUT, b"k", b"v")
    plain = damaged + codec.encode_record(RecordType.PUT, 1, b"k", b"v")
    assert codec.find_follower_of_header(packed) == (SEGMENT_HEADER_SIZE, True)
    assert codec.find_follower_of_header(plain) == (SEGMENT_HEADER_SIZE, False)
    assert codec.find_follower_of_header(damaged + b"\0" * 40) == (None, False)
    later_packed = damaged + b"junk" + encode_packed(RecordType.PUT, b"k", b"v")
    assert codec.find_follower_of_header(plain + later_packed[16:]) == (SEGMENT_HEADER_SIZE, False)
    assert codec.find_follower_of_header(later_packed) == (SEGMENT_HEADER_SIZE + 4, True)


@pytest.mark.spec("FMT-28", "FMT-8", "FMT-21", "REC-7")
@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (PACKED_SHORT.pack(0, 0x44, 1, 1)[4:] + b"kv", DamageKind.UNKNOWN_TYPE),
        (PACKED_SHORT.pack(0, 0x01, 1, 1)[4:] + b"kv", DamageKind.UNKNOWN_TYPE),
        (PACKED_SHORT.pack(0, 0x42, 1, 1)[4:] + b"kv", DamageKind.BAD_DELETE),
        (PACKED_SHORT.pack(0, 0x43, 1, 7)[4:] + b"k" + bytes(7), DamageKind.BAD_EXPIRING),
    ],
)
def test_a_whole_packed_record_that_breaks_the_format_says_where_it_ends(
    body: bytes, kind: DamageKind
) -> None:
    data = _whole(body) + b"more"
    damage = decode_record(b"x" + data, 1, packed=True)
    assert isinstance(damage, Damage)
    assert (damage.offset, damage.kind, damage.end) == (1, kind, len(data) - 3)
    assert damage.detail.startswith("type=" if kind is DamageKind.UNKNOWN_TYPE else "value_len=")


@pytest.mark.spec("FMT-9", "REC-3", "FMT-27")
def test_packed_lengths_are_checked_before_they_are_used() -> None:
    too_long = PACKED_LONG.pack(0, 0x51, MAX_KEY_SIZE + 1, 0)
    assert decode_record(too_long, 0, packed=True) == Damage(
        0, DamageKind.BAD_LENGTH, f"key_len={MAX_KEY_SIZE + 1} value_len=0"
    )
    cut = encode_packed(RecordType.PUT, b"key", b"value")
    assert decode_record(cut[:-1], 0, packed=True) == Damage(
        0, DamageKind.INCOMPLETE_RECORD, "needs 1 more bytes"
    )
    assert decode_record(cut[:7], 0, packed=True) == Damage(
        0, DamageKind.INCOMPLETE_HEADER, "7 bytes left"
    )
    long_cut = encode_packed(RecordType.PUT, bytes(300), b"v")[:12]
    assert decode_record(long_cut, 0, packed=True) == Damage(
        0, DamageKind.INCOMPLETE_HEADER, "12 bytes left"
    )
    flipped = bytearray(cut)
    flipped[-1] ^= 1
    assert decode_record(bytes(flipped), 0, packed=True) == Damage(0, DamageKind.CRC_MISMATCH)


@pytest.mark.spec("REC-4", "TOOL-23")
def test_the_follower_search_reads_packed_records_in_a_packed_segment() -> None:
    record = encode_packed(RecordType.PUT, b"k", b"v")
    data = b"\0" * 30 + b"garbage" + record
    assert find_next_record(data, 0, packed=True) == 37
    assert find_next_record(data, 0) is None, "a packed record is no record of section 2"
    assert find_next_record(b"\0" * 100, 0, packed=True) is None


def _packed_segment(ops: list[tuple[int, bytes, bytes]]) -> bytes:
    return PACKED_HEADER + b"".join(encode_packed(t, k, v) for t, k, v in ops)


packed_ops = st.lists(
    st.tuples(
        st.sampled_from([RecordType.PUT, RecordType.DELETE, RecordType.PUT_EXPIRING]),
        st.sampled_from([b"a", b"b", b"", bytes(256)]),
        st.binary(max_size=40) | st.just(bytes(70_000)),
    ).map(
        lambda op: (
            op[0],
            op[1],
            b""
            if op[0] is RecordType.DELETE
            else (
                EXPIRY_FIELD.pack(len(op[2])) + op[2] if op[0] is RecordType.PUT_EXPIRING else op[2]
            ),
        )
    ),
    max_size=12,
)


@pytest.mark.spec("ENG-13", "FMT-26", "REC-3")
@given(packed_ops, st.binary(max_size=20), st.data())
def test_packed_replay_stops_exactly_where_the_reference_decoder_finds_damage(
    ops: list[tuple[int, bytes, bytes]], tail: bytes, data: st.DataObject
) -> None:
    """replay_packed inlines the short PUT; it must agree with decode_record on every input."""
    blob = bytearray(_packed_segment(ops) + tail)
    if len(blob) > SEGMENT_HEADER_SIZE and data.draw(st.booleans()):
        position = data.draw(st.integers(SEGMENT_HEADER_SIZE, len(blob) - 1))
        blob[position] = data.draw(st.integers(0, 255))
    records, damage = codec.iter_records(bytes(blob), SEGMENT_HEADER_SIZE, packed=True)
    index: dict[bytes, int] = {}
    expiring: dict[bytes, tuple[int, int]] = {}
    result = replay_packed(bytes(blob), SEGMENT_HEADER_SIZE, 2, index, expiring)
    assert result.end == (damage.offset if damage else len(blob))
    assert result.damage == damage
    expected: dict[bytes, tuple[int, int, int]] = {}
    for record in records:
        if record.type is RecordType.DELETE:
            expected.pop(record.key, None)
        else:
            expected[record.key] = (2, record.offset, min(record.value_len, 65_535))
    assert {k: unpack_location(v) for k, v in index.items()} == expected


@pytest.mark.spec("FMT-16", "FMT-17", "FMT-19", "ENG-32", "FMT-26")
@given(packed_ops)
def test_the_hint_of_a_packed_segment_is_version_3_and_gives_replay_s_index(
    ops: list[tuple[int, bytes, bytes]],
) -> None:
    data = _packed_segment(ops)
    encoded = build_hint(7, data)
    assert isinstance(encoded, bytes)
    assert encoded[8:12] == (3).to_bytes(4, "little")
    hint = decode_hint(encoded)
    assert isinstance(hint, Hint)
    assert hint.packed
    assert hint.matches(7, data)
    assert not hint.matches(7, encode_segment_header() + data[SEGMENT_HEADER_SIZE:])
    replayed: dict[bytes, int] = {}
    replayed_expiring: dict[bytes, tuple[int, int]] = {}
    replay_packed(data, SEGMENT_HEADER_SIZE, 1, replayed, replayed_expiring)
    hinted: dict[bytes, int] = {}
    hinted_expiring: dict[bytes, tuple[int, int]] = {}
    apply_hint(hint, 1, hinted, hinted_expiring)
    assert hinted == replayed
    assert {k: v for k, v in hinted_expiring.items() if hinted.get(k) == v[1]} == {
        k: v for k, v in replayed_expiring.items() if replayed.get(k) == v[1]
    }


@pytest.mark.spec("FMT-18", "FMT-26")
def test_a_version_3_hint_may_point_at_the_last_8_bytes_a_version_2_one_may_not() -> None:
    """An empty key and value make an 8-byte packed record: its offset + 8 is the segment's end."""
    data = _packed_segment([(RecordType.PUT, b"", b"")])
    encoded = build_hint(1, data)
    assert isinstance(encoded, bytes)
    hint = decode_hint(encoded)
    assert isinstance(hint, Hint)
    assert apply_hint(hint, 0, {}, {}) is None
    as_version_2 = bytearray(encoded)
    as_version_2[8] = 2
    as_version_2[-4:] = crc32c(bytes(as_version_2[:-4])).to_bytes(4, "little")
    hint = decode_hint(bytes(as_version_2))
    assert isinstance(hint, Hint)
    assert apply_hint(hint, 0, {}, {}) is HintProblem.BAD_LAYOUT


@pytest.mark.spec("FMT-20", "REC-19")
def test_no_hint_is_built_for_a_damaged_packed_segment() -> None:
    data = bytearray(_packed_segment([(RecordType.PUT, b"k", b"v"), (RecordType.PUT, b"j", b"w")]))
    data[-1] ^= 0xFF
    assert build_hint(1, bytes(data)) == f"@{SEGMENT_HEADER_SIZE + 10}: crc mismatch"


@pytest.mark.spec("REC-4", "TOOL-3")
def test_the_follower_search_tries_the_last_offset_a_header_fits_at() -> None:
    """The smallest record of each layout, ending exactly where the data ends, is found."""
    smallest_packed = encode_packed(RecordType.PUT, b"", b"")
    smallest_plain = codec.encode_record(RecordType.PUT, 1, b"", b"")
    assert (len(smallest_packed), len(smallest_plain)) == (8, 21)
    assert find_next_record(b"\x01" + smallest_packed, 0, packed=True) == 1
    assert find_next_record(b"\x01" + smallest_plain, 0) == 1


@pytest.mark.spec("FMT-27", "REC-7", "ENG-13")
def test_packed_replay_stops_at_a_short_form_record_too_long_for_it() -> None:
    """A short header with value_len 65,535 verifies but breaks the form; replay's fast path
    must not take it as a PUT."""
    wrong = _whole(PACKED_SHORT.pack(0, 0x41, 1, 65_535)[4:] + b"k" + bytes(65_535))
    data = PACKED_HEADER + encode_packed(RecordType.PUT, b"a", b"1") + wrong
    index: dict[bytes, int] = {}
    result = replay_packed(data, SEGMENT_HEADER_SIZE, 0, index, {})
    assert result.end == SEGMENT_HEADER_SIZE + 10
    assert result.damage is not None
    assert result.damage.kind is DamageKind.BAD_PACKED
    assert set(index) == {b"a"}
