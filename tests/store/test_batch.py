"""Atomic batches and snapshots through the Store API (ENG-37, ENG-38, FMT-22, FMT-24).

What a crash does to a batch is in tests/crash (REC-17); here: what a batch writes, what it
refuses, and what readers see of it and of snapshots while writes go on.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator

import pytest

import catlog
from catlog.clock import ManualClock
from catlog.codec import RECORD_HEADER_SIZE, RecordType
from tests.store.segments import records

START_MS = 1_700_000_000_000


@pytest.fixture(params=["always", "never"])
def store(data_dir: str, request: pytest.FixtureRequest) -> Iterator[catlog.Store]:
    clock = ManualClock(now_ms=START_MS)
    with catlog.open(data_dir, fsync=request.param, clock=clock) as opened:
        yield opened


@pytest.mark.spec("ENG-37", "FMT-22", "FMT-23")
def test_a_batch_is_one_record_with_its_operations_as_members_in_order(
    store: catlog.Store, data_dir: str
) -> None:
    store.put(b"gone", b"x")
    store.write_batch(
        [("put", b"a", b"1"), ("delete", b"gone"), ("put", b"b", b"2", 5.0), ("put", b"a", b"3")]
    )
    assert dict(store.items()) == {b"a": b"3", b"b": b"2"}
    assert store.expires_at(b"b") == START_MS + 5000
    store.flush()
    put, batch = records(data_dir)
    assert put.type is RecordType.PUT
    assert batch.type is RecordType.BATCH
    assert [(m.type, m.key, m.value) for m in batch.members] == [
        (RecordType.PUT, b"a", b"1"),
        (RecordType.DELETE, b"gone", b""),
        (RecordType.PUT_EXPIRING, b"b", b"2"),
        (RecordType.PUT, b"a", b"3"),
    ]


@pytest.mark.spec("ENG-37", "FMT-24", "ENG-12")
def test_keys_written_by_a_batch_are_read_from_their_member_before_and_after_reopen(
    data_dir: str,
) -> None:
    ops: list[catlog.BatchOp] = [("put", b"k%d" % i, b"v%d" % i * 30) for i in range(50)]
    ops.append(("put", b"big", bytes(range(256)) * 300))  # a large value: its length read first
    with catlog.open(data_dir) as store:
        store.write_batch(ops)
        expected = {op[1]: op[2] for op in ops if len(op) == 3}
        assert dict(store.items()) == expected
    with catlog.open(data_dir) as store:
        assert dict(store.items()) == expected


@pytest.mark.spec("ENG-37", "ENG-12", "FMT-24")
def test_an_empty_key_with_an_empty_value_is_read_from_its_member(store: catlog.Store) -> None:
    """A member that is nothing but its 21-byte header (found by the model under coverage)."""
    store.write_batch([("put", b"", b"")])
    assert store.get(b"") == b""
    store.write_batch([("put", b"", b"", 5.0), ("put", b"x", b"")])
    assert store.get(b"") == b""
    assert store.get(b"x") == b""


def _abandon_a_batch(store: catlog.Store) -> None:
    with store.batch() as batch:
        batch.put(b"c", b"3")
        raise RuntimeError("abandon")


@pytest.mark.spec("ENG-37")
def test_the_with_form_writes_at_the_end_of_the_block_or_not_at_all(
    store: catlog.Store, data_dir: str
) -> None:
    with store.batch() as batch:
        batch.put(b"a", b"1")
        batch.delete(b"nothing")
        batch.put(b"b", b"2", ttl=3)
        assert len(batch) == 3
        assert b"a" not in store, "nothing is written before the block ends"
    assert dict(store.items()) == {b"a": b"1", b"b": b"2"}
    with pytest.raises(RuntimeError):
        _abandon_a_batch(store)
    assert b"c" not in store
    store.flush()
    assert len(records(data_dir)) == 1


@pytest.mark.spec("ENG-37")
@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (("put", b"k"), ValueError),
        (("remove", b"k"), ValueError),
        (("delete", b"k", b"v"), ValueError),
        (("put", "k", b"v"), TypeError),
        (("put", b"k", 5), TypeError),
        (("put", b"k" * 70_000, b"v"), catlog.KeyTooLargeError),
        (("put", b"k", b"v", -1), ValueError),
    ],
)
def test_one_bad_operation_refuses_the_whole_batch(
    store: catlog.Store, data_dir: str, bad: catlog.BatchOp, error: type[Exception]
) -> None:
    with pytest.raises(error):
        store.write_batch([("put", b"fine", b"1"), bad])
    assert b"fine" not in store
    store.flush()
    assert os.path.getsize(f"{data_dir}/segment-00001.log") == 16


@pytest.mark.spec("ENG-37", "FMT-22")
def test_batches_are_limited_to_one_record_s_value_field(store: catlog.Store) -> None:
    half = bytes(catlog.MAX_VALUE_SIZE // 2)
    with pytest.raises(catlog.BatchTooLargeError):
        store.write_batch([("put", b"a", half), ("put", b"b", half)])
    assert len(store) == 0
    store.write_batch([("put", b"a", half[:-100])])
    assert len(store[b"a"]) == len(half) - 100


@pytest.mark.spec("ENG-37", "FMT-22", "FMT-9")
def test_a_batch_of_exactly_the_limit_is_written_and_one_byte_more_is_refused(
    store: catlog.Store,
) -> None:
    value = bytes(catlog.MAX_VALUE_SIZE - RECORD_HEADER_SIZE - 1)  # one member, key b"k"
    with pytest.raises(
        catlog.BatchTooLargeError, match=f"^batch of more than {catlog.MAX_VALUE_SIZE} bytes"
    ):
        store.write_batch([("put", b"k", value + b"x")])
    store.write_batch([("put", b"k", value)])
    assert len(store[b"k"]) == len(value)


@pytest.mark.spec("ENG-37", "ENG-33")
def test_a_batch_put_with_a_ttl_has_eight_bytes_less_room_and_bad_operations_are_named(
    store: catlog.Store,
) -> None:
    with pytest.raises(catlog.ValueTooLargeError):
        store.write_batch([("put", b"k", bytes(catlog.MAX_VALUE_SIZE - 7), 5.0)])
    expected = (
        "a batch operation is ('put', key, value[, ttl]) or ('delete', key), not ('get', b'k')"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
        store.write_batch([("put", b"a", b"1"), ("get", b"k")])
    assert len(store) == 0


@pytest.mark.spec("ENG-37")
def test_an_empty_batch_writes_nothing(store: catlog.Store, data_dir: str) -> None:
    store.write_batch([])
    with store.batch():
        pass
    store.flush()
    assert os.path.getsize(f"{data_dir}/segment-00001.log") == 16


@pytest.mark.spec("ENG-37", "ENG-21")
def test_readers_never_see_part_of_a_batch_of_puts(data_dir: str) -> None:
    """An MSET-like batch becomes visible at once: a reader finds both keys equal, always."""
    with catlog.open(data_dir, fsync="never") as store:
        store.write_batch([("put", b"x", b"0"), ("put", b"y", b"0")])
        stop = threading.Event()
        torn: list[tuple[bytes | None, bytes | None]] = []

        def read() -> None:
            while not stop.is_set():
                x, y = store.get(b"x"), store.get(b"y")
                if x is not None and y is not None and int(x) > int(y):
                    torn.append((x, y))

        reader = threading.Thread(target=read)
        reader.start()
        try:
            for i in range(1, 3000):
                store.write_batch([("put", b"y", b"%d" % i), ("put", b"x", b"%d" % i)])
        finally:
            stop.set()
            reader.join()
        assert not torn, torn[:3]


@pytest.mark.spec("ENG-38", "ENG-7")
def test_a_snapshot_shows_the_store_as_it_was_while_writes_go_on(store: catlog.Store) -> None:
    for i in range(100):
        store.put(b"%03d" % i, b"old")
    with store.snapshot() as snapshot:
        store.write_batch([("put", b"%03d" % i, b"new") for i in range(0, 100, 2)])
        for i in range(0, 100, 3):
            store.delete(b"%03d" % i)
        store.put(b"added", b"x")
        assert len(snapshot) == 100
        assert b"added" not in snapshot
        assert b"000" in snapshot
        assert snapshot[b"000"] == snapshot.get(b"000") == b"old"
        assert dict(snapshot.items()) == {b"%03d" % i: b"old" for i in range(100)}
        assert sorted(snapshot) == [b"%03d" % i for i in range(100)]
        assert snapshot.get(b"added") is None
        with pytest.raises(KeyError):
            snapshot[b"added"]
    assert store[b"002"] == b"new"
    assert b"000" not in store


@pytest.mark.spec("ENG-38")
def test_items_and_values_read_one_snapshot(store: catlog.Store) -> None:
    store.put(b"a", b"1")
    store.put(b"b", b"2")
    items = store.items()
    values = store.values()
    store.put(b"a", b"changed")
    store.delete(b"b")
    assert dict(items) == {b"a": b"1", b"b": b"2"}
    assert sorted(values) == [b"1", b"2"]


@pytest.mark.spec("ENG-38", "ENG-19")
def test_a_snapshot_of_a_closed_store_refuses_to_read(data_dir: str) -> None:
    store = catlog.open(data_dir)
    store.put(b"a", b"1")
    snapshot = store.snapshot()
    store.close()
    with pytest.raises(catlog.StoreClosedError):
        snapshot.get(b"a")
    with pytest.raises(catlog.StoreClosedError):
        store.snapshot()


@pytest.mark.spec("ENG-38", "ENG-40")
def test_a_closed_snapshot_is_empty_and_names_a_missing_key(store: catlog.Store) -> None:
    store.put(b"a", b"1")
    snapshot = store.snapshot()
    with pytest.raises(KeyError) as caught:
        snapshot[b"missing"]
    assert caught.value.args == (b"missing",)
    snapshot.close()
    assert len(snapshot) == 0
    assert b"a" not in snapshot
    assert snapshot.get(b"a") is None
    assert store[b"a"] == b"1"
