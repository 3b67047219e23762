"""The record codec on its own: bytes in, records out (spec/format.md)."""

from __future__ import annotations

import pytest
from crc32c import crc32c
from hypothesis import given
from hypothesis import strategies as st

from catlog import codec
from catlog.codec import (
    MAX_KEY_SIZE,
    MAX_VALUE_SIZE,
    RECORD_HEADER_SIZE,
    SEGMENT_HEADER_SIZE,
    Damage,
    DamageKind,
    HeaderStatus,
    Record,
    RecordType,
    decode_record,
    decode_segment_header,
    encode_batch,
    encode_member,
    encode_record,
    encode_segment_header,
    find_next_record,
)

WORKED_PUT = bytes.fromhex(
    "48ff8350 01 0068e5cf8b010000 04000000 03000000 6e616d65 426f62".replace(" ", "")
)
WORKED_DELETE = bytes.fromhex("43b048c2 02 0168e5cf8b010000 04000000 00000000 6e616d65")
WORKED_HEADER = bytes.fromhex("4341544c4f475347 01000000 b7d1c5a1")

keys = st.binary(max_size=300)
values = st.binary(max_size=3000)


@pytest.mark.spec("FMT-4", "FMT-5", "FMT-6", "FMT-2")
def test_worked_example_of_the_spec_matches_the_encoder_byte_for_byte() -> None:
    assert encode_record(RecordType.PUT, 1_700_000_000_000, b"name", b"Bob") == WORKED_PUT
    assert encode_record(RecordType.DELETE, 1_700_000_000_001, b"name") == WORKED_DELETE
    assert encode_segment_header() == WORKED_HEADER
    assert len(WORKED_PUT) == 28


@pytest.mark.spec("FMT-5")
def test_crc_is_castagnoli_with_its_published_check_value() -> None:
    assert crc32c(b"123456789") == 0xE3069283


@pytest.mark.spec("FMT-4", "FMT-5")
@given(st.integers(0, 2**64 - 1), keys, values)
def test_put_round_trips_through_the_decoder(timestamp: int, key: bytes, value: bytes) -> None:
    data = b"junk" + encode_record(RecordType.PUT, timestamp, key, value)
    record = decode_record(data, 4)
    assert record == Record(RecordType.PUT, timestamp, key, value, 4, len(data) - 4)


@pytest.mark.spec("FMT-4")
def test_large_values_round_trip() -> None:
    value = bytes(range(256)) * 4096
    record = decode_record(encode_record(RecordType.PUT, 1, b"k", value), 0)
    assert isinstance(record, Record)
    assert record.value == value


@pytest.mark.spec("FMT-5", "REC-3")
@given(st.sampled_from(list(RecordType)), keys, values, st.data())
def test_any_single_flipped_bit_is_detected(
    rtype: RecordType, key: bytes, value: bytes, data: st.DataObject
) -> None:
    if rtype is RecordType.DELETE:
        value = b""
    if rtype is RecordType.BATCH:
        encoded = bytearray(encode_batch(42, [encode_member(1, 42, key, value)]))
    else:
        encoded = bytearray(encode_record(rtype, 42, key, value, 77))
    bit = data.draw(st.integers(0, len(encoded) * 8 - 1))
    encoded[bit // 8] ^= 1 << (bit % 8)
    assert isinstance(decode_record(bytes(encoded), 0), Damage)


@pytest.mark.spec("FMT-11")
def test_records_follow_each_other_without_padding() -> None:
    first = encode_record(RecordType.PUT, 1, b"a", b"xyz")
    second = encode_record(RecordType.DELETE, 2, b"a")
    records, damage = codec.iter_records(first + second, 0)
    assert damage is None
    assert [r.offset for r in records] == [0, len(first)]


@pytest.mark.spec("REC-3", "FMT-9")
@pytest.mark.parametrize(
    ("klen", "vlen"), [(MAX_KEY_SIZE + 1, 0), (0, MAX_VALUE_SIZE + 1), (2**32 - 1, 2**32 - 1)]
)
def test_lengths_beyond_the_limits_are_damage_without_reading_them(klen: int, vlen: int) -> None:
    header = codec.RECORD_HEADER.pack(0, 1, 0, klen, vlen)
    result = decode_record(header + b"\0" * 100, 0)
    assert isinstance(result, Damage)
    assert result.kind is DamageKind.BAD_LENGTH


@pytest.mark.spec("REC-3")
def test_a_record_running_past_the_end_is_incomplete() -> None:
    encoded = encode_record(RecordType.PUT, 1, b"key", b"value")
    for cut in range(len(encoded)):
        result = decode_record(encoded[:cut], 0)
        assert isinstance(result, Damage)
        expected = (
            DamageKind.INCOMPLETE_HEADER
            if cut < RECORD_HEADER_SIZE
            else DamageKind.INCOMPLETE_RECORD
        )
        assert result.kind is expected


def _with_valid_crc(rtype: int, key: bytes, value: bytes) -> bytes:
    body = codec.BODY_HEADER.pack(rtype, 0, len(key), len(value)) + key + value
    return codec.CRC_FIELD.pack(crc32c(body)) + body


@pytest.mark.spec("FMT-7", "FMT-6", "TOOL-4")
@pytest.mark.parametrize("rtype", [0, 5, 129, 131, 255])
def test_a_valid_record_of_a_reserved_type_is_reported_not_skipped(rtype: int) -> None:
    data = _with_valid_crc(rtype, b"k", b"v")
    result = decode_record(b"xx" + data + b"more", 2)
    assert isinstance(result, Damage)
    assert result.kind is DamageKind.UNKNOWN_TYPE
    assert result.end == 2 + len(data), "its crc vouches for where it ends (TOOL-4)"


@pytest.mark.spec("FMT-8")
def test_a_delete_that_carries_a_value_is_damage() -> None:
    result = decode_record(_with_valid_crc(RecordType.DELETE, b"k", b"v"), 0)
    assert isinstance(result, Damage)
    assert result.kind is DamageKind.BAD_DELETE


@pytest.mark.spec("FMT-9")
def test_the_limits_are_the_documented_sizes() -> None:
    assert MAX_KEY_SIZE == 65_536
    assert MAX_VALUE_SIZE == 67_108_864


@pytest.mark.spec("FMT-2", "FMT-3", "FMT-26")
def test_segment_header_statuses() -> None:
    good = encode_segment_header()
    assert decode_segment_header(good) == (HeaderStatus.OK, 1)
    assert decode_segment_header(encode_segment_header(2)) == (HeaderStatus.OK, 2)  # FMT-26
    assert decode_segment_header(good[:-1])[0] is HeaderStatus.INCOMPLETE
    assert decode_segment_header(b"X" + good[1:])[0] is HeaderStatus.CRC_MISMATCH
    future = encode_segment_header(version=3)
    assert decode_segment_header(future) == (HeaderStatus.UNSUPPORTED_VERSION, 3)
    foreign = b"NOTCATLG" + (1).to_bytes(4, "little")
    foreign += codec.CRC_FIELD.pack(crc32c(foreign))
    assert decode_segment_header(foreign)[0] is HeaderStatus.BAD_MAGIC
    assert len(good) == SEGMENT_HEADER_SIZE == 16


@pytest.mark.spec("REC-4")
def test_next_valid_record_is_found_after_garbage() -> None:
    record = encode_record(RecordType.PUT, 7, b"k", b"v")
    data = b"\0" * 40 + record
    assert codec.find_next_record(data, 0) == 40
    assert codec.find_next_record(b"\0" * 100, 0) is None


@pytest.mark.spec("REC-4", "REC-7")
def test_a_whole_record_of_a_reserved_type_counts_as_a_follower() -> None:
    data = b"garbage!" * 3 + _with_valid_crc(5, b"k", b"v")
    assert codec.find_next_record(data, 0) == 24


@pytest.mark.spec("REC-4")
def test_a_long_zero_filled_tail_is_searched_in_one_pass() -> None:
    """A zero run is skipped by a search, not tried at each of its 16 million offsets."""
    record = encode_record(RecordType.PUT, 7, b"k", b"v")
    assert codec.find_next_record(bytes(16 << 20), 0) is None
    assert codec.find_next_record(bytes(16 << 20) + record, 5) == 16 << 20
    assert codec.find_next_record(b"\1" + bytes(100) + record, 0) == 101


# --------------------------------------------------------------------- expiring PUTs and batches


@pytest.mark.spec("FMT-21")
@given(keys, values, st.integers(0, 2**64 - 1))
def test_an_expiring_put_round_trips_with_its_expiry_before_the_value(
    key: bytes, value: bytes, expires_at: int
) -> None:
    encoded = encode_record(RecordType.PUT_EXPIRING, 5, key, value, expires_at)
    start = RECORD_HEADER_SIZE + len(key)
    assert encoded[start : start + 8] == expires_at.to_bytes(8, "little")
    assert int.from_bytes(encoded[17:21], "little") == len(value) + 8, "value_len counts both"
    record = decode_record(encoded, 0)
    assert record == Record(RecordType.PUT_EXPIRING, 5, key, value, 0, len(encoded), expires_at)
    assert record.value_len == len(value) + 8


@pytest.mark.spec("FMT-21", "REC-7")
@pytest.mark.parametrize("short", [0, 1, 7])
def test_an_expiring_put_too_short_for_its_expiry_is_corruption(short: int) -> None:
    result = decode_record(_with_valid_crc(RecordType.PUT_EXPIRING, b"k", bytes(short)), 0)
    assert isinstance(result, Damage)
    assert result.kind is DamageKind.BAD_EXPIRING
    assert result.kind in codec.WRITTEN_WHOLE


def _batch() -> tuple[bytes, list[bytes]]:
    members = [
        encode_member(RecordType.PUT, 9, b"a", b"1"),
        encode_member(RecordType.DELETE, 9, b"b"),
        encode_member(RecordType.PUT_EXPIRING, 9, b"c", b"33", 1234),
    ]
    return encode_batch(9, members), members


@pytest.mark.spec("FMT-22", "FMT-23", "FMT-24")
def test_a_batch_decodes_to_its_members_at_their_own_offsets() -> None:
    batch, members = _batch()
    record = decode_record(b"xx" + batch, 2)
    assert isinstance(record, Record)
    assert record.type is RecordType.BATCH
    assert (record.key, record.value, record.size) == (b"", b"", len(batch))
    assert (record.offset, record.timestamp_ms) == (2, 9)
    at = 2 + RECORD_HEADER_SIZE
    assert [(m.type, m.key, m.value, m.expires_at_ms, m.offset) for m in record.members] == [
        (RecordType.PUT, b"a", b"1", 0, at),
        (RecordType.DELETE, b"b", b"", 0, at + len(members[0])),
        (RecordType.PUT_EXPIRING, b"c", b"33", 1234, at + len(members[0]) + len(members[1])),
    ]
    assert all(m.in_batch and m.timestamp_ms == 9 for m in record.members)


@pytest.mark.spec("FMT-23")
def test_a_member_has_the_flagged_type_and_a_masked_crc() -> None:
    member = encode_member(RecordType.PUT, 9, b"a", b"1")
    plain = encode_record(RecordType.PUT, 9, b"a", b"1")
    assert member[4] == 0x81
    stored = int.from_bytes(member[:4], "little")
    assert stored == crc32c(member[4:]) ^ 0x9E3779B9
    assert member[5:] == plain[5:]
    assert isinstance(decode_record(member, 0), Damage), "a member alone is no record"


@pytest.mark.spec("FMT-23", "REC-4")
def test_no_member_of_a_torn_batch_looks_like_a_following_record() -> None:
    """The reason for the mask: a batch cut anywhere leaves nothing that verifies after the cut."""
    batch, _ = _batch()
    for cut in range(1, len(batch)):
        torn = batch[:cut]
        assert isinstance(decode_record(torn, 0), Damage)
        assert find_next_record(torn, 1) is None


def _member_with_valid_crc(mtype: int, key: bytes, value: bytes) -> bytes:
    body = codec.BODY_HEADER.pack(mtype, 0, len(key), len(value)) + key + value
    return codec.CRC_FIELD.pack(crc32c(body) ^ codec.MEMBER_CRC_MASK) + body


def _batch_with_value(value: bytes, key: bytes = b"") -> bytes:
    return _with_valid_crc(RecordType.BATCH, key, value)


@pytest.mark.spec("FMT-22", "FMT-23", "REC-7")
@pytest.mark.parametrize(
    ("value", "key"),
    [
        (b"", b""),  # no members
        (encode_member(1, 0, b"a", b"1"), b"k"),  # a key on the batch
        (encode_member(1, 0, b"a", b"1")[:-1], b""),  # a member cut short
        (encode_member(1, 0, b"a", b"1") + b"\0" * 5, b""),  # bytes after the last member
        (encode_record(1, 0, b"a", b"1"), b""),  # an unmasked record inside
        (encode_member(1, 1, b"a", b"1"), b""),  # a member's timestamp differs from its batch's
        (encode_batch(0, [encode_member(1, 0, b"a", b"1")]), b""),  # a batch inside a batch
        (_member_with_valid_crc(0x82, b"a", b"v"), b""),  # a DELETE member with a value
        (_member_with_valid_crc(0x83, b"a", b"1234567"), b""),  # an expiry cut to 7 bytes
        (_member_with_valid_crc(0x84, b"", b""), b""),  # a member typed as a batch
    ],
)
def test_a_batch_that_breaks_the_format_is_corruption(value: bytes, key: bytes) -> None:
    batch = _batch_with_value(value, key)
    result = decode_record(batch + b"more", 0)
    assert isinstance(result, Damage)
    assert result.kind is DamageKind.BAD_BATCH
    assert result.kind in codec.WRITTEN_WHOLE
    assert result.end == len(batch), "its crc vouches for where it ends (TOOL-4)"


@pytest.mark.spec("TOOL-6", "ENG-22")
def test_each_damage_names_its_offset_and_reads_as_in_the_tools_worked_example() -> None:
    """The reasons `check` prints and `CorruptionError` carries, each at a nonzero offset."""
    record = encode_record(RecordType.PUT, 1, b"key", b"value")
    bad_length = codec.RECORD_HEADER.pack(0, 1, 0, 2**32 - 1, 20)
    cases = [
        (b"junk" + record[:5], DamageKind.INCOMPLETE_HEADER, "incomplete header: 5 bytes left"),
        (
            b"junk" + bad_length,
            DamageKind.BAD_LENGTH,
            "length field out of range: key_len=4294967295 value_len=20",
        ),
        (
            b"junk" + record[:-3],
            DamageKind.INCOMPLETE_RECORD,
            "record runs past end of data: needs 3 more bytes",
        ),
        (b"junk" + record[:-1] + b"?", DamageKind.CRC_MISMATCH, "crc mismatch"),
        (b"junk" + _with_valid_crc(5, b"k", b"v"), DamageKind.UNKNOWN_TYPE, ""),
        (b"junk" + _with_valid_crc(RecordType.DELETE, b"k", b"vv"), DamageKind.BAD_DELETE, ""),
    ]
    for data, kind, reason in cases:
        damage = decode_record(data, 4)
        assert isinstance(damage, Damage)
        assert (damage.offset, damage.kind) == (4, kind)
        if reason:
            assert damage.reason == reason
    assert decode_record(cases[4][0], 4) == Damage(4, DamageKind.UNKNOWN_TYPE, "type=5")
    assert decode_record(cases[5][0], 4) == Damage(4, DamageKind.BAD_DELETE, "value_len=2")


@pytest.mark.spec("FMT-9", "REC-3")
@pytest.mark.parametrize(("klen", "vlen"), [(MAX_KEY_SIZE, 0), (0, MAX_VALUE_SIZE)])
def test_lengths_at_the_limits_are_believed(klen: int, vlen: int) -> None:
    """A header at exactly the limits is in range: cut short, it is an incomplete record."""
    header = codec.RECORD_HEADER.pack(0, 1, 0, klen, vlen)
    result = decode_record(header + b"\0" * 100, 0)
    assert isinstance(result, Damage)
    assert result.kind is DamageKind.INCOMPLETE_RECORD


@pytest.mark.spec("FMT-9")
def test_a_key_of_exactly_the_limit_round_trips() -> None:
    key = bytes(range(256)) * (MAX_KEY_SIZE // 256)
    record = decode_record(encode_record(RecordType.PUT, 5, key, b"v"), 0)
    assert isinstance(record, Record)
    assert (record.key, record.value) == (key, b"v")


@pytest.mark.spec("REC-4", "REC-6")
@pytest.mark.parametrize("garbage", [b"\1", b"\1\2\3", b"\xff" * 22])
def test_the_search_for_a_follower_tries_every_offset(garbage: bytes) -> None:
    record = encode_record(RecordType.PUT, 7, b"k", b"v")
    assert codec.find_next_record(garbage + record, 0) == len(garbage)
    assert codec.find_next_record(garbage + record + record, len(garbage) + 1) == (
        len(garbage) + len(record)
    )


def _force_crc32c_to_zero(prefix: bytes) -> bytes:
    """Four bytes that, appended to ``prefix``, make the crc32c of the whole zero.

    crc32c is affine over GF(2): changing the last four bytes by ``x`` changes the crc by
    ``crc32c(x) ^ crc32c(0000)``, a linear function of ``x`` alone. Gaussian elimination over the
    32 single-bit ``x`` finds the ``x`` whose change cancels the crc of ``prefix + 0000``.
    """
    zero = crc32c(bytes(4))
    basis: dict[int, tuple[int, int]] = {}  # leading bit -> (image, the bits of x giving it)
    for bit in range(32):
        image, bits = crc32c((1 << bit).to_bytes(4, "little")) ^ zero, 1 << bit
        while image and image.bit_length() in basis:
            pivot_image, pivot_bits = basis[image.bit_length()]
            image, bits = image ^ pivot_image, bits ^ pivot_bits
        assert image, "the linear part of crc32c on four bytes is invertible"
        basis[image.bit_length()] = (image, bits)
    target, solution = crc32c(prefix + bytes(4)), 0
    while target:
        pivot_image, pivot_bits = basis[target.bit_length()]
        target, solution = target ^ pivot_image, solution ^ pivot_bits
    return solution.to_bytes(4, "little")


@pytest.mark.spec("REC-4", "REC-7")
def test_a_zero_run_is_skipped_only_up_to_the_first_header_with_a_nonzero_byte() -> None:
    """The zero-run shortcut may skip only windows of 21 zero bytes, none with a nonzero byte.

    The record here is whole (its crc verifies) and of the reserved type 0, so it counts as a
    follower (REC-7); its crc, type, timestamp, key_len and the low bytes of value_len are all
    zero, so its header's only nonzero byte is its last. A search through the zeros before it
    must still stop exactly there.
    """
    value_len = 1 << 24
    prefix = codec.BODY_HEADER.pack(0, 0, 0, value_len) + bytes(value_len - 4)
    body = prefix + _force_crc32c_to_zero(prefix)
    assert crc32c(body) == 0
    data = bytes(40) + codec.CRC_FIELD.pack(0) + body
    assert data[40:60] == bytes(20)
    assert data[60] != 0
    assert decode_record(data, 40) == Damage(40, DamageKind.UNKNOWN_TYPE, "type=0")
    for start in (0, 19, 39, 40):
        assert codec.find_next_record(data, start) == 40
    assert codec.find_next_record(data, 41) is None


@pytest.mark.spec("TOOL-6", "FMT-21", "FMT-22", "FMT-23")
def test_a_malformed_batch_or_expiring_put_says_what_is_wrong() -> None:
    """The reasons `check` prints for the new record types; member offsets are absolute."""
    at = 4 + RECORD_HEADER_SIZE  # the first member of a batch at offset 4
    cases = [
        (
            _with_valid_crc(RecordType.PUT_EXPIRING, b"k", bytes(5)),
            "expiring put without its expiry: value_len=5",
        ),
        (_batch_with_value(b""), "malformed batch: no members"),
        (_batch_with_value(b"", b"k"), "malformed batch: key_len=1"),
        (_batch_with_value(bytes(5)), f"malformed batch: member at {at} cut short"),
        (
            _batch_with_value(_member_with_valid_crc(0x81, bytes(MAX_KEY_SIZE + 1), b"")),
            f"malformed batch: member at {at} runs past the batch",
        ),
        (
            _batch_with_value(_member_with_valid_crc(0x83, b"a", b"1234567")),
            f"malformed batch: member at {at}: expiring put without its expiry: value_len=7",
        ),
    ]
    for data, reason in cases:
        damage = decode_record(b"junk" + data, 4)
        assert isinstance(damage, Damage)
        assert (damage.offset, damage.reason) == (4, reason)


@pytest.mark.spec("FMT-9", "FMT-23")
def test_a_member_key_of_exactly_the_limit_is_believed() -> None:
    key = bytes(range(256)) * (MAX_KEY_SIZE // 256)
    batch = encode_batch(7, [encode_member(RecordType.PUT, 7, key, b"v")])
    record = decode_record(batch, 0)
    assert isinstance(record, Record)
    assert [(m.key, m.value) for m in record.members] == [(key, b"v")]


@pytest.mark.spec("FMT-21", "FMT-23")
def test_an_expiring_put_or_member_without_an_expiry_given_never_expires() -> None:
    """`encode_record` and `encode_member` write expiry 0 when none is passed."""
    record = decode_record(encode_record(RecordType.PUT_EXPIRING, 7, b"k", b"v"), 0)
    assert isinstance(record, Record)
    assert record.expires_at_ms == 0
    member = encode_member(RecordType.PUT_EXPIRING, 7, b"k", b"v")
    assert member[RECORD_HEADER_SIZE + 1 : RECORD_HEADER_SIZE + 9] == bytes(8)
    record = decode_record(encode_batch(7, [member]), 0)
    assert isinstance(record, Record)
    assert record.members[0].expires_at_ms == 0
