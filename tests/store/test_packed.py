"""Packed segments in a store: compaction writes them, reads and reopening read them back.

Cites spec/format.md section 5 (FMT-26 .. FMT-28), ENG-39's packed outputs and REC-19. The
codec and replay of packed records on their own are in tests/unit/test_packed.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import catlog
from catlog.clock import ManualClock
from catlog.hint import Hint, decode_hint, encode_hint, hint_name
from catlog.segment import parse_segment_name
from tests.store.segments import is_packed, records

START_MS = 1_700_000_000_000


def segments(directory: str) -> list[int]:
    return sorted(n for n in map(parse_segment_name, os.listdir(directory)) if n is not None)


def contents(directory: str, **options: object) -> dict[bytes, bytes]:
    with catlog.open(directory, **options) as store:  # type: ignore[arg-type]
        return dict(store.items())


def fill(store: catlog.Store) -> dict[bytes, bytes]:
    """Values of every shape a packed record has: short and long form, a large value, an
    expiring PUT, batch members, empty keys and values; each key written more than once."""
    store.put(b"", b"old")
    store.put(b"", b"")
    store.put(b"short", b"x" * 100)
    store.put(b"short", b"y" * 100)
    store.put(bytes(range(256)) + b"long key", b"v")  # key_len 264: long form
    store.put(b"at the bound", bytes(65_534))  # the longest short-form value
    store.put(b"past the bound", bytes(65_535))  # long form, LARGE_VALUE in the index
    store.put(b"large", bytes(range(256)) * 300)
    store.put(b"expiring", b"soon", ttl=1000)
    store.put(b"expiring short value", b"e" * 65_526, ttl=1000)  # field 65,534 with its expiry
    store.write_batch([("put", b"member", b"m1"), ("put", b"member ttl", b"m2", 500.0)])
    store.write_batch([("put", b"gone", b"g"), ("delete", b"gone")])
    return dict(store.items())


@pytest.mark.spec("ENG-39", "FMT-26", "FMT-27", "FMT-28", "ENG-12", "ENG-32", "ENG-13")
@pytest.mark.parametrize("fsync", ["always", "never"])
def test_compaction_writes_packed_outputs_from_which_every_value_reads_back(
    data_dir: str, fsync: str
) -> None:
    clock = ManualClock(now_ms=START_MS)
    with catlog.open(data_dir, fsync=fsync, segment_size=200_000, clock=clock) as store:  # type: ignore[arg-type]
        expected = fill(store)
        expiries = {key: store.expires_at(key) for key in expected}
        store.compact()
        *outputs, active = segments(data_dir)
        assert outputs
        assert all(is_packed(data_dir, n) for n in outputs)
        assert not is_packed(data_dir, active)
        assert all(r.packed and r.timestamp_ms == 0 for n in outputs for r in records(data_dir, n))
        assert {key: store.get(key) for key in expected} == expected
        assert {key: store.expires_at(key) for key in expected} == expiries
        with store.snapshot() as snapshot:
            assert dict(snapshot.items()) == expected
        store.put(b"after", b"compaction")
        expected[b"after"] = b"compaction"
    hints = [name for name in os.listdir(data_dir) if name.endswith(".hint")]
    assert len(hints) == len(outputs), "every output has its hint (ENG-39)"
    assert contents(data_dir, clock=clock) == expected
    for name in hints:
        os.remove(f"{data_dir}/{name}")
    with catlog.open(data_dir, clock=clock) as scanned:
        assert dict(scanned.items()) == expected
        assert {key: scanned.expires_at(key) for key in expiries} == expiries


@pytest.mark.spec("FMT-27", "ENG-39")
def test_a_compacted_record_of_a_16_byte_key_and_a_100_byte_value_takes_124_bytes(
    data_dir: str,
) -> None:
    """The space the bench measures (bench/README.md): 8 header bytes per live record."""
    with catlog.open(data_dir, fsync="never") as store:
        for round_ in range(10):
            for i in range(100):
                store.put(b"key-%012d" % i, b"%03d" % round_ * 33 + b"!")
        report = store.compact()
        *outputs, _ = segments(data_dir)
    assert report.output_bytes == 16 + 100 * 124
    assert sum(os.path.getsize(f"{data_dir}/segment-{n:05d}.log") for n in outputs) == 16 + 12_400


@pytest.mark.spec("ENG-39", "FMT-26", "ENG-41")
def test_a_second_compaction_copies_packed_records_byte_for_byte(data_dir: str) -> None:
    clock = ManualClock(now_ms=START_MS)
    with catlog.open(data_dir, fsync="never", segment_size=4096, clock=clock) as store:
        for i in range(200):
            ttl = {0: 100.0, 1: 1000.0}.get(i % 7)
            store.put(b"k%03d" % (i % 80), b"v%d" % i, ttl=ttl)
        store.compact()
        first = {n: records(data_dir, n) for n in segments(data_dir)[:-1]}
        copied = {r.key: r for found in first.values() for r in found}
        for i in range(0, 80, 3):
            del store[b"k%03d" % i]
        clock.advance(150)  # the 100 s puts expire, none may be copied (ENG-34); 1000 s ones live
        expected = dict(store.items())
        expiring = {key for key in copied if copied[key].expires_at_ms}
        assert expiring - set(expected), "some expired"
        assert expiring & set(expected), "some still live"
        report = store.compact()
        assert report.records_copied == len(expected)
        assert report.reclaimed_bytes > 0
        assert store.stats().dead_bytes == 0
        *outputs, _ = segments(data_dir)
        assert not set(outputs) & set(first), "the first outputs were inputs, and are gone"
        second = [r for n in outputs for r in records(data_dir, n)]
        assert {r.key: (r.type, r.value, r.expires_at_ms) for r in second} == {
            key: (copied[key].type, copied[key].value, copied[key].expires_at_ms)
            for key in expected
        }
        assert dict(store.items()) == expected
    assert contents(data_dir, clock=clock) == expected


def _compacted(data_dir: str) -> tuple[dict[bytes, bytes], int, int]:
    """A store compacted into one packed output; returns its contents and the segment numbers."""
    with catlog.open(data_dir) as store:
        for i in range(20):
            store.put(b"key %d" % (i % 5), b"value %d" % i)
        store.compact()
        expected = dict(store.items())
    packed, active = segments(data_dir)
    return expected, packed, active


@pytest.mark.spec("REC-21", "REC-19", "FMT-26")
def test_a_newest_packed_segment_is_never_appended_to(data_dir: str) -> None:
    expected, packed, active = _compacted(data_dir)
    os.remove(f"{data_dir}/segment-{active:05d}.log")  # by hand: it held no record
    packed_bytes = Path(data_dir, f"segment-{packed:05d}.log").read_bytes()
    with catlog.open(data_dir) as store:
        assert store.stats().active_segment == f"segment-{packed + 1:05d}.log"
        assert dict(store.items()) == expected
        store.put(b"new", b"write")
        assert store[b"new"] == b"write"
        assert dict(store.items()) == {**expected, b"new": b"write"}
        assert Path(data_dir, f"segment-{packed:05d}.log").read_bytes() == packed_bytes
        assert not is_packed(data_dir, packed + 1)
        store.compact()  # the packed segment is an input like any other
        assert dict(store.items()) == {**expected, b"new": b"write"}
    assert contents(data_dir) == {**expected, b"new": b"write"}


@pytest.mark.spec("REC-19", "REC-6")
@pytest.mark.parametrize("newest", [False, True])
def test_damage_at_the_end_of_a_packed_segment_is_corruption_never_a_torn_tail(
    data_dir: str, newest: bool
) -> None:
    _, packed, active = _compacted(data_dir)
    if newest:
        os.remove(f"{data_dir}/segment-{active:05d}.log")
    path = Path(data_dir, f"segment-{packed:05d}.log")
    last = records(data_dir, packed)[-1]
    damaged = bytearray(path.read_bytes())
    damaged[-1] ^= 0xFF
    path.write_bytes(bytes(damaged))
    for name in os.listdir(data_dir):
        if name.endswith(".hint"):
            os.remove(f"{data_dir}/{name}")
    before = sorted(os.listdir(data_dir))
    with pytest.raises(catlog.CorruptionError) as caught:
        catlog.open(data_dir)
    assert (caught.value.path, caught.value.offset) == (str(path), last.offset)
    assert caught.value.reason == "crc mismatch"
    assert path.read_bytes() == bytes(damaged), "open changed no file"
    assert sorted(os.listdir(data_dir)) == before


@pytest.mark.spec("ENG-12", "REC-19", "ENG-22")
def test_a_read_of_a_damaged_packed_record_names_its_file_and_offset(data_dir: str) -> None:
    with catlog.open(data_dir) as store:
        store.put(b"a", b"first")
        store.put(b"b", b"second")
        store.compact()
        packed = segments(data_dir)[0]
        found = {r.key: r for r in records(data_dir, packed)}
        path = f"{data_dir}/segment-{packed:05d}.log"
        with open(path, "r+b") as file:
            file.seek(found[b"b"].offset + found[b"b"].size - 1)
            file.write(b"X")
        assert store[b"a"] == b"first"
        with pytest.raises(catlog.CorruptionError) as caught:
            store.get(b"b")
    assert (caught.value.path, caught.value.offset) == (path, found[b"b"].offset)
    assert caught.value.reason == "crc mismatch (reading key b'b')"


@pytest.mark.spec("ENG-12", "REC-19")
def test_an_index_entry_that_points_at_another_packed_record_is_reported(data_dir: str) -> None:
    """A location whose record holds another key: its crc verifies, its key does not match.
    The index is made to point there by a hint that says so."""
    with catlog.open(data_dir, hints=True) as store:
        store.put(b"a", b"1")
        store.put(b"b", b"2")
        store.compact()
        packed = segments(data_dir)[0]
    path = Path(f"{data_dir}/{hint_name(packed)}")
    hint = decode_hint(path.read_bytes())
    assert isinstance(hint, Hint)
    a, b = hint.put_keys.index(b"a"), hint.put_keys.index(b"b")
    hint.put_offsets[b] = hint.put_offsets[a]  # a hint that lies, its crc made to match
    path.write_bytes(encode_hint(hint))
    with (
        catlog.open(data_dir, hints=True) as store,
        pytest.raises(catlog.CorruptionError) as caught,
    ):
        store.get(b"b")
    assert caught.value.reason == "index points at a record of another key or type (PUT) " + (
        "(reading key b'b')"
    )


@pytest.mark.spec("ENG-39", "REC-19", "ENG-22")
def test_a_second_compaction_stops_at_damage_in_a_packed_input_and_names_it(
    data_dir: str,
) -> None:
    with catlog.open(data_dir) as store:
        store.put(b"a", b"1")
        store.put(b"b", b"2")
        store.compact()
        packed = segments(data_dir)[0]
        last = records(data_dir, packed)[-1]
        path = f"{data_dir}/segment-{packed:05d}.log"
        with open(path, "r+b") as file:
            file.seek(last.offset + last.size - 1)
            file.write(b"X")
        with pytest.raises(catlog.CorruptionError) as caught:
            store.compact()
        assert (caught.value.path, caught.value.offset) == (path, last.offset)
        assert caught.value.reason == "crc mismatch"
        assert os.path.exists(path), "nothing was removed"
        assert store[b"a"] == b"1"


@pytest.mark.spec("REC-19", "REC-6")
def test_damage_inside_a_packed_segment_names_the_packed_record_after_it(data_dir: str) -> None:
    _, packed, _ = _compacted(data_dir)
    found = records(data_dir, packed)
    path = Path(data_dir, f"segment-{packed:05d}.log")
    damaged = bytearray(path.read_bytes())
    damaged[found[1].offset + found[1].size - 1] ^= 0xFF
    path.write_bytes(bytes(damaged))
    for name in os.listdir(data_dir):
        if name.endswith(".hint"):
            os.remove(f"{data_dir}/{name}")
    with pytest.raises(catlog.CorruptionError) as caught:
        catlog.open(data_dir)
    assert caught.value.offset == found[1].offset
    assert caught.value.reason == (
        f"crc mismatch (a valid record follows at offset {found[2].offset}, so this is not a "
        "torn tail)"
    )


@pytest.mark.spec("ENG-41", "ENG-39")
def test_a_compaction_of_several_packed_inputs_leaves_the_dead_bytes_written_meanwhile(
    data_dir: str,
) -> None:
    """What a compaction takes from the estimate is what its inputs held dead, each record
    counted with a 21-byte header (ENG-41), packed inputs too; writes made during it stay."""
    with catlog.open(data_dir, fsync="never", segment_size=1024) as store:
        for i in range(60):
            store.put(b"k%02d" % i, bytes(40))
        store.compact()
        assert len(segments(data_dir)) >= 3, "several packed outputs"
        assert store.stats().dead_bytes == 0

        calls: list[int] = []

        def overwrite(done: int, total: int) -> None:
            calls.append(done)
            store.put(b"k00", bytes(41))

        store.compact(overwrite)
        dead = store.stats().dead_bytes
    # The first overwrite made dead the input's k00 (21 + 3 + 40 bytes as counted), each later
    # one the overwrite before it (21 + 3 + 41); the inputs held nothing else dead.
    assert len(calls) >= 3
    assert dead == (21 + 3 + 40) + (21 + 3 + 41) * (len(calls) - 1)


@pytest.mark.spec("ENG-39", "ENG-34")
def test_a_key_of_a_packed_input_that_expires_during_the_compaction_is_not_copied(
    data_dir: str,
) -> None:
    """The key is still in the index when the compaction starts; it expires while the inputs
    before its own are copied (the progress callback moves the clock)."""
    clock = ManualClock(now_ms=START_MS)
    with catlog.open(data_dir, fsync="never", segment_size=1024, clock=clock) as store:
        for i in range(40):
            store.put(b"k%02d" % i, bytes(40), ttl=10 if i in (38, 39) else None)
        store.compact()
        inputs = segments(data_dir)[:-1]
        assert len(inputs) >= 2
        assert {r.key for r in records(data_dir, inputs[-1])} >= {b"k38", b"k39"}
        report = store.compact(progress=lambda done, total: clock.advance(20))
        assert report.records_copied == 38
        assert b"k38" not in store
        assert len(store) == 38
