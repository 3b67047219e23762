"""The hint codec without a file: exact bytes, round trips, and every kind of unusable hint.

Cites spec/format.md section 6 (FMT-15 .. FMT-20) and ENG-32 (a hint gives the index replay gives).
"""

from __future__ import annotations

import struct
from array import array
from typing import Final

import pytest
from crc32c import crc32c
from hypothesis import given
from hypothesis import strategies as st

from catlog.codec import (
    MAX_KEY_SIZE,
    MAX_VALUE_SIZE,
    encode_batch,
    encode_member,
    encode_record,
    encode_segment_header,
)
from catlog.hint import (
    HINT_HEADER,
    HINT_MAGIC,
    Hint,
    HintProblem,
    apply_hint,
    build_hint,
    decode_hint,
    encode_hint,
    hint_name,
    parse_hint_name,
    segment_crc,
    segment_crc_of,
)
from catlog.index import Expiring, pack_location
from catlog.walk import replay_plain

NOW_MS = 1_700_000_000_000

EXAMPLE_HINT = bytes.fromhex(
    "434154 4c4f4748 54 02000000 01000000 00000000 01000000 330f6a4b"
    "0300000000000000 4400000000000000 04000000 03000000 10000000 03000000"
    "6e616d65 6f6c64 81290777".replace(" ", "")
)
"""The worked example of spec/format.md section 6, byte for byte."""


def example_segment() -> bytes:
    return (
        encode_segment_header()
        + encode_record(1, NOW_MS, b"name", b"Bob")
        + encode_record(2, NOW_MS + 1, b"old")
    )


Op = tuple[bytes, bytes | None, int]
"""A write: key, value (None for a DELETE) and expiry (0 for none)."""


def _encode(op: Op, member: bool) -> bytes:
    key, value, expires_at = op
    encode = encode_member if member else encode_record
    if value is None:
        return encode(2, NOW_MS, key)
    if expires_at:
        return encode(3, NOW_MS, key, value, expires_at)
    return encode(1, NOW_MS, key, value)


def segment_of(ops: list[Op | list[Op]]) -> bytes:
    """A segment of records, a list standing for a batch of those writes (FMT-22)."""
    parts = [encode_segment_header()]
    for op in ops:
        if isinstance(op, list):
            parts.append(encode_batch(NOW_MS, [_encode(member, True) for member in op]))
        else:
            parts.append(_encode(op, False))
    return b"".join(parts)


def hint_of(number: int, data: bytes) -> bytes:
    built = build_hint(number, data)
    assert isinstance(built, bytes), built
    return built


def decoded(data: bytes) -> Hint:
    hint = decode_hint(data)
    assert isinstance(hint, Hint), hint
    return hint


@pytest.mark.spec("FMT-16", "FMT-17")
def test_the_worked_example_is_the_hint_the_writer_builds() -> None:
    assert hint_of(3, example_segment()) == EXAMPLE_HINT
    hint = decoded(EXAMPLE_HINT)
    assert (hint.segment_number, hint.segment_size) == (3, 68)
    assert hint.segment_crc == crc32c(example_segment()[16:]) == 0x4B6A0F33
    assert hint.put_keys == [b"name"]
    assert list(hint.put_offsets) == [16]
    assert list(hint.put_value_lens) == [3]
    assert hint.delete_keys == [b"old"]
    assert EXAMPLE_HINT[-4:] == struct.pack("<I", crc32c(EXAMPLE_HINT[:-4]))


@pytest.mark.spec("FMT-15")
def test_hint_names_follow_segment_names() -> None:
    assert hint_name(3) == "segment-00003.hint"
    assert hint_name(123456) == "segment-123456.hint"
    assert parse_hint_name("segment-00003.hint") == 3
    assert parse_hint_name("segment-00001.hint") == 1
    for other in (
        "segment-3.hint",
        "segment-00003.hint.tmp",
        "segment-00003.log",
        "x.hint",
        "segment-00000.hint",
        "segment-000001.hint",
    ):
        assert parse_hint_name(other) is None


keys = st.binary(max_size=6)
one_op = st.tuples(keys, st.none() | st.binary(max_size=20), st.sampled_from([0, 0, 5, 1 << 62]))
operations = st.lists(one_op | st.lists(one_op, min_size=1, max_size=4), max_size=40)


@pytest.mark.spec("FMT-16", "FMT-17", "ENG-32", "FMT-24")
@given(before=operations, ops=operations, slot=st.integers(0, 5))
def test_applying_a_hint_gives_the_index_replay_gives(
    before: list[Op | list[Op]], ops: list[Op | list[Op]], slot: int
) -> None:
    """Whatever an older segment left in the index, hint and replay change it alike, expiries
    and batch members included."""
    start: dict[bytes, int] = {}
    start_expiring: Expiring = {}
    replay_plain(segment_of(before), 16, 9, start, start_expiring)
    data = segment_of(ops)
    replayed = dict(start)
    replayed_expiring = dict(start_expiring)
    assert replay_plain(data, 16, slot, replayed, replayed_expiring).damage is None
    hinted = dict(start)
    hinted_expiring = dict(start_expiring)
    hint = decoded(hint_of(7, data))
    apply_hint(hint, slot, hinted, hinted_expiring)
    assert hinted == replayed
    live = {k: v for k, v in replayed_expiring.items() if replayed.get(k) == v[1]}
    assert {k: v for k, v in hinted_expiring.items() if hinted.get(k) == v[1]} == live
    assert hint.matches(7, data)
    assert encode_hint(hint) == hint_of(7, data), "decode then encode is the identity"
    assert len(set(hint.put_keys + hint.delete_keys)) == len(hint.put_keys) + len(
        hint.delete_keys
    ), "FMT-17: each key once"


@pytest.mark.spec("FMT-17", "ENG-32")
def test_large_values_are_listed_with_their_real_length() -> None:
    data = segment_of([(b"big", bytes(70_000), 0), (b"small", b"x", 0)])
    hint = decoded(hint_of(1, data))
    assert list(hint.put_value_lens) == [70_000, 1]
    replayed: dict[bytes, int] = {}
    replay_plain(data, 16, 2, replayed, {})
    hinted: dict[bytes, int] = {}
    apply_hint(hint, 2, hinted, {})
    assert hinted == replayed


@pytest.mark.spec("FMT-16", "FMT-21", "FMT-24")
def test_expiring_puts_and_batch_members_are_listed_with_their_expiry_and_offset() -> None:
    data = segment_of([(b"a", b"1", 99), [(b"b", b"22", 0), (b"c", b"3", 7), (b"gone", None, 0)]])
    hint = decoded(hint_of(1, data))
    assert hint.put_keys == [b"b", b"a", b"c"], "plain PUT entries first, then expiring ones"
    assert hint.expiring_count == 2
    assert list(hint.expires_at) == [99, 7]
    assert list(hint.put_value_lens) == [2, 9, 9], "an expiring PUT's value_len counts its expiry"
    batch_at = 16 + 21 + 1 + 9
    assert list(hint.put_offsets) == [batch_at + 21, 16, batch_at + 21 + (21 + 1 + 2)]
    assert hint.delete_keys == [b"gone"]


@pytest.mark.spec("FMT-19")
def test_a_hint_matches_only_the_exact_bytes_it_was_built_from() -> None:
    data = example_segment()
    hint = decoded(hint_of(3, data))
    assert hint.matches(3, data)
    assert not hint.matches(4, data), "another segment number"
    assert not hint.matches(3, data[:-1]), "another length"
    changed = bytearray(data)
    changed[30] ^= 1
    assert not hint.matches(3, bytes(changed)), "same length, other bytes"
    newer = bytearray(data)
    newer[8] = 2  # version 2, with the header's crc fixed: a whole-file CRC would not change
    newer[12:16] = struct.pack("<I", crc32c(bytes(newer[:12])))
    assert crc32c(bytes(newer)) == crc32c(data), "the CRC residue the note in FMT-19 explains"
    assert not hint.matches(3, bytes(newer))


@pytest.mark.spec("FMT-18")
@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (lambda h: h[:43], HintProblem.SHORT),
        (lambda h: b"", HintProblem.SHORT),
        (lambda h: b"X" + h[1:], HintProblem.BAD_MAGIC),
        (lambda h: h[:8] + b"\x01" + h[9:], HintProblem.UNKNOWN_VERSION),
        (lambda h: h[:-1], HintProblem.CRC_MISMATCH),
        (lambda h: h + b"\0", HintProblem.CRC_MISMATCH),
        (lambda h: h[:50] + bytes([h[50] ^ 4]) + h[51:], HintProblem.CRC_MISMATCH),
    ],
    ids=["cut", "empty", "magic", "version", "truncated", "trailing", "flipped"],
)
def test_unusable_hints_are_told_apart(damage: object, problem: HintProblem) -> None:
    assert callable(damage)
    assert decode_hint(damage(EXAMPLE_HINT)) is problem


def reseal(body: bytes) -> bytes:
    return body + struct.pack("<I", crc32c(body))


@pytest.mark.spec("FMT-18")
def test_counts_and_ranges_are_checked_even_when_the_crc_verifies() -> None:
    body = bytearray(EXAMPLE_HINT[:-4])
    too_many = bytearray(body)
    too_many[12] = 9  # put_count 9: the columns would run past the keys
    assert decode_hint(reseal(bytes(too_many))) is HintProblem.BAD_LAYOUT
    for offset in (60, 4):  # 60 + 21 > segment_size 68; 4 is in the segment header
        out_of_range = bytearray(body)
        out_of_range[52:56] = struct.pack("<I", offset)
        hint = decode_hint(reseal(bytes(out_of_range)))
        assert isinstance(hint, Hint), "offsets are checked where they are made into entries"
        index = {b"name": 1, b"old": 2}
        assert apply_hint(hint, 3, index, {}) is HintProblem.BAD_LAYOUT
        assert index == {b"name": 1, b"old": 2}, "nothing applied"
    at_the_end = bytearray(body)
    at_the_end[52:56] = struct.pack("<I", 68 - 21)
    hint = decode_hint(reseal(bytes(at_the_end)))
    assert isinstance(hint, Hint)
    assert apply_hint(hint, 3, {}, {}) is None
    long_value = bytearray(body)
    long_value[56:60] = struct.pack("<I", 64 * 1024 * 1024 + 1)
    assert decode_hint(reseal(bytes(long_value))) is HintProblem.BAD_LAYOUT


@pytest.mark.spec("FMT-18")
@given(st.binary(max_size=200))
def test_any_bytes_decode_to_a_hint_or_a_problem(data: bytes) -> None:
    assert isinstance(decode_hint(data), Hint | HintProblem)


@pytest.mark.spec("FMT-18")
@given(st.integers(0, len(EXAMPLE_HINT) * 8 - 1))
def test_every_flipped_bit_makes_the_hint_unusable(bit: int) -> None:
    flipped = bytearray(EXAMPLE_HINT)
    flipped[bit // 8] ^= 1 << (bit % 8)
    assert isinstance(decode_hint(bytes(flipped)), HintProblem)


@pytest.mark.spec("FMT-20")
@pytest.mark.parametrize("cut", [1, 5, 21])
def test_no_hint_is_built_for_a_segment_replay_would_not_accept_whole(cut: int) -> None:
    data = example_segment()
    assert isinstance(build_hint(3, data[:-cut]), str)
    flipped = bytearray(data)
    flipped[20] ^= 1
    assert "crc mismatch" in str(build_hint(3, bytes(flipped)))
    assert isinstance(build_hint(3, b"not a segment header"), str)


def test_an_empty_segment_has_an_empty_hint() -> None:
    hint = decoded(hint_of(2, encode_segment_header()))
    assert hint.put_keys == hint.delete_keys == []
    assert hint.put_offsets == array("I")


@pytest.mark.spec("FMT-19")
@pytest.mark.parametrize("size", [16, 17, (1 << 20) + 15, (1 << 20) + 16, (1 << 20) + 17, 3 << 20])
def test_the_segment_crc_read_a_chunk_at_a_time_is_the_crc_of_the_whole(size: int) -> None:
    data = bytes(i * 7 % 251 for i in range(size))
    reads: list[tuple[int, int]] = []

    def pread(length: int, offset: int) -> bytes:
        reads.append((length, offset))
        return data[offset : offset + length]

    assert segment_crc_of(pread, size) == segment_crc(data)
    assert all(0 < length <= 1 << 20 for length, _ in reads)
    assert segment_crc_of(pread, size + 100) == segment_crc(data), "a short file ends the read"


@pytest.mark.spec("FMT-19")
def test_the_segment_crc_covers_the_size_asked_for_even_when_the_file_is_longer() -> None:
    data = bytes(range(100))
    reads: list[tuple[int, int]] = []

    def pread(length: int, offset: int) -> bytes:
        reads.append((length, offset))
        return data[offset : offset + length]

    assert segment_crc_of(pread, 50) == segment_crc(data[:50])
    assert reads == [(34, 16)]


@pytest.mark.spec("FMT-16", "FMT-17", "ENG-32")
@pytest.mark.parametrize("count", [1, 1023, 1024, 1025, 3000])
@pytest.mark.parametrize("length", [2, 16, 40])
def test_keys_of_one_length_are_read_back_in_order_across_runs(count: int, length: int) -> None:
    """Keys of equal length take a faster split when decoded; the result must not differ."""
    keys = [i.to_bytes(length, "big") for i in range(count)]
    segment = encode_segment_header() + b"".join(
        encode_record(1, NOW_MS, key, b"v") for key in keys
    )
    hint = decode_hint(build_hint(4, segment))  # type: ignore[arg-type]
    assert isinstance(hint, Hint)
    assert hint.put_keys == keys
    mixed = decode_hint(build_hint(4, segment + encode_record(1, NOW_MS, b"odd" * 20, b"v")))  # type: ignore[arg-type]
    assert isinstance(mixed, Hint)
    assert mixed.put_keys == [*keys, b"odd" * 20]


@pytest.mark.spec("FMT-16", "FMT-17")
def test_the_empty_key_alone_in_a_hint_is_read_back() -> None:
    segment = encode_segment_header() + encode_record(1, NOW_MS, b"", b"v")
    hint = decode_hint(build_hint(4, segment))  # type: ignore[arg-type]
    assert isinstance(hint, Hint)
    assert hint.put_keys == [b""]


LARGEST_OFFSET: Final = (1 << 29) - 21
"""FMT-12: the last offset at which a record's 21-byte header fits in the longest segment."""
BOUNDARY_OFFSETS: Final = [16, 255, 256, (1 << 24) - 1, 1 << 24, (1 << 28) + 5, LARGEST_OFFSET]
"""Offsets whose top byte is 0, 1 and each of the five bits the slot's low three sit above."""


@pytest.mark.spec("ENG-32", "ENG-11", "FMT-18", "FMT-12")
@given(
    st.lists(
        st.tuples(
            st.integers(16, LARGEST_OFFSET) | st.sampled_from(BOUNDARY_OFFSETS),
            st.integers(0, 300) | st.sampled_from([65_534, 65_535, 65_536, 1 << 26]),
        ),
        max_size=40,
    ),
    st.sampled_from(
        [0, 1, 2, 3, 4, 7, 8, 255, 1023, 1024, 2047, 2048, 16_383, 16_384, 16_385, 20_000, 32_767]
    ),
)
def test_the_index_entries_of_a_hint_are_those_replay_would_make(
    entries: list[tuple[int, int]], slot: int
) -> None:
    """apply_hint lays out the entries' bytes in C when it can; they must equal pack_location's,
    up to the last slot (15 bits, ENG-74) and the last offset (29 bits, FMT-12)."""
    offsets = array("I", [offset for offset, _ in entries])
    value_lens = array("I", [value_len for _, value_len in entries])
    keys = [b"k%d" % i for i in range(len(entries))]
    hint = Hint(1, 1 << 29, 0, keys, offsets, value_lens, [])
    index: dict[bytes, int] = {}
    assert apply_hint(hint, slot, index, {}) is None
    assert index == {
        key: pack_location(slot, offset, value_len)
        for key, (offset, value_len) in zip(keys, entries, strict=True)
    }


@pytest.mark.spec("FMT-18", "FMT-12", "REC-16")
@pytest.mark.parametrize(
    "offset", [1 << 29, (1 << 29) + 16, (1 << 30) - 21, 1 << 30, (1 << 31) + 7, (1 << 32) - 1]
)
@pytest.mark.parametrize("value_len", [1, 70_000])
def test_an_offset_no_location_can_hold_makes_the_hint_unusable(
    offset: int, value_len: int
) -> None:
    """Its top bits would land among the slot's: the entry would point into another segment.
    Both paths of pack_locations refuse it, the byte layout (short values) and the other."""
    lens = array("I", [1, value_len])
    hint = Hint(1, 1 << 30, 0, [b"a", b"b"], array("I", [16, offset]), lens, [])
    index: dict[bytes, int] = {}
    assert apply_hint(hint, 5, index, {}) is HintProblem.BAD_LAYOUT
    assert index == {}


def raw_hint(
    key_lens: list[int],
    offsets: list[int],
    value_lens: list[int],
    keys: bytes,
    *,
    deletes: int = 0,
) -> bytes:
    """A version-2 hint of PUT entries laid out column by column, whatever the columns say."""
    head = HINT_HEADER.pack(HINT_MAGIC, 2, len(offsets), 0, deletes, 0, 1, 1 << 30)
    columns = [struct.pack(f"<{len(c)}I", *c) for c in (key_lens, offsets, value_lens)]
    return reseal(head + b"".join(columns) + keys)


@pytest.mark.spec("FMT-18", "FMT-9")
@pytest.mark.parametrize(
    ("key_lens", "value_lens", "keys"),
    [
        ([0xFFFF_FFFF, 3], [1, 1], b"ab"),  # read as signed, -1 + 3: the keys' 2 bytes
        ([1, 1], [1, 0xFFFF_FFFF], b"ab"),
        ([1, MAX_KEY_SIZE + 1], [1, 1], bytes(MAX_KEY_SIZE + 2)),  # the longest not the first
        ([4, 3], [1, 1], b"nameoldX"),  # one byte of keys more than the lengths say
    ],
    ids=["key length 2**32-1", "value length 2**32-1", "a later key too long", "keys too long"],
)
def test_key_and_value_lengths_out_of_range_make_the_hint_unusable(
    key_lens: list[int], value_lens: list[int], keys: bytes
) -> None:
    assert decode_hint(raw_hint(key_lens, [16, 40], value_lens, keys)) is HintProblem.BAD_LAYOUT


@pytest.mark.spec("FMT-18", "FMT-9")
def test_the_longest_key_and_value_fit_in_a_hint() -> None:
    hint = decoded(
        raw_hint([1, MAX_KEY_SIZE], [16, 40], [MAX_VALUE_SIZE, 1], bytes(MAX_KEY_SIZE + 1))
    )
    assert len(hint.put_keys[1]) == MAX_KEY_SIZE
    assert hint.longest_value == MAX_VALUE_SIZE


@pytest.mark.spec("FMT-16", "FMT-21")
def test_the_latest_expiry_a_record_can_hold_is_read_back_from_its_hint() -> None:
    latest = 2**64 - 1
    hint = decoded(hint_of(2, segment_of([(b"k", b"v", latest)])))
    assert list(hint.expires_at) == [latest]


@pytest.mark.spec("FMT-16")
def test_a_decoded_hint_knows_its_longest_value() -> None:
    assert decoded(EXAMPLE_HINT).longest_value == 3
    assert decoded(hint_of(2, encode_segment_header())).longest_value == 0
