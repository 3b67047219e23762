"""What the store tells people: its errors, warnings and repair reports, word for word.

A report that names the wrong file, offset or cause sends a person to the wrong place, so these
tests read the whole message rather than only the exception's type: CorruptionError's path, offset
and reason (ENG-22), StoreFailedError naming the call that failed and its OS error (REC-10), the
torn-tail warning and TailRepair (REC-4), the hint warnings (REC-15) and KeyError's key (ENG-4).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import time
from pathlib import Path

import pytest
from crc32c import crc32c

import catlog
from catlog.codec import (
    RECORD_HEADER_SIZE,
    SEGMENT_HEADER_SIZE,
    RecordType,
    encode_member,
    encode_record,
)
from catlog.hint import hint_name
from catlog.index import LARGE_VALUE
from catlog.segment import segment_name
from tests.crash.faulty_fs import FaultyFileSystem
from tests.failing_store import CLOSED_FAILED, failing
from tests.store.recording_fs import RecordingFileSystem

SEGMENT = segment_name(1)
REFUSED = "writes are refused until the store is reopened, and writes not yet synced may be lost"


@pytest.mark.spec("ENG-4", "ENG-5")
def test_a_missing_key_raises_key_error_carrying_that_key(store: catlog.Store) -> None:
    with pytest.raises(KeyError) as read:
        store[b"missing"]
    with pytest.raises(KeyError) as deleted:
        del store[b"absent"]
    assert (read.value.args, deleted.value.args) == ((b"missing",), (b"absent",))


def test_repr_names_the_directory_the_policy_and_the_key_count(data_dir: str) -> None:
    store = catlog.open(data_dir, fsync="never")
    store.put(b"a", b"1")
    assert repr(store) == f"<catlog.Store {data_dir!r} fsync=never 1 keys>"
    store.close()
    assert repr(store) == f"<catlog.Store {data_dir!r} fsync=never closed>"


@pytest.mark.spec("ENG-12", "ENG-22", "REC-3")
def test_a_damaged_length_of_a_large_value_is_reported_where_it_lies(data_dir: str) -> None:
    """Values of LARGE_VALUE bytes or more are read in two steps; the first checks the header."""
    path = f"{data_dir}/{SEGMENT}"
    with catlog.open(data_dir) as store:
        store.put(b"big", b"v" * 70_000)
        with open(path, "r+b") as file:
            file.seek(SEGMENT_HEADER_SIZE + RECORD_HEADER_SIZE - 4)  # value_len
            file.write((2**31).to_bytes(4, "little"))
        with pytest.raises(catlog.CorruptionError) as caught:
            store.get(b"big")
        error = caught.value
        assert (error.path, error.offset) == (path, SEGMENT_HEADER_SIZE)
        assert error.reason == "length field out of range: value_len=2147483648"
        os.truncate(path, SEGMENT_HEADER_SIZE + 5)
        with pytest.raises(catlog.CorruptionError) as caught:
            store.get(b"big")
        assert (caught.value.path, caught.value.offset) == (path, SEGMENT_HEADER_SIZE)
        assert caught.value.reason == "record header cut short at 5 bytes"


@pytest.mark.spec("ENG-12", "ENG-22")
def test_a_valid_record_of_another_key_where_the_index_points_is_reported(data_dir: str) -> None:
    path = f"{data_dir}/{SEGMENT}"
    with catlog.open(data_dir) as store:
        store.put(b"a", b"1")
        with open(path, "r+b") as file:
            file.seek(SEGMENT_HEADER_SIZE)
            file.write(encode_record(RecordType.PUT, 0, b"b", b"1"))
        with pytest.raises(catlog.CorruptionError) as caught:
            store.get(b"a")
    assert (caught.value.path, caught.value.offset) == (path, SEGMENT_HEADER_SIZE)
    assert caught.value.reason == (
        "index points at a record of another key or type (PUT) (reading key b'a')"
    )


@pytest.mark.spec("ENG-12", "ENG-22", "FMT-23")
def test_a_damaged_batch_member_where_the_index_points_is_reported(data_dir: str) -> None:
    """A member's crc is masked (FMT-23), so its damage is judged and named apart from a record's;
    the first member here is 21 bytes, a header alone (empty key and value)."""
    path = f"{data_dir}/{SEGMENT}"
    first = SEGMENT_HEADER_SIZE + RECORD_HEADER_SIZE
    second = first + RECORD_HEADER_SIZE
    with catlog.open(data_dir) as store:
        store.write_batch([("put", b"", b""), ("put", b"b", b"2")])
        with open(path, "r+b") as file:
            file.seek(first + 5)  # the member's timestamp: flipped, since it may hold any byte
            byte = file.read(1)[0]
            file.seek(first + 5)
            file.write(bytes([byte ^ 0xFF]))
            file.seek(second)
            file.write(encode_member(RecordType.PUT, 0, b"c", b"2"))
        with pytest.raises(catlog.CorruptionError) as damaged:
            store.get(b"")
        with pytest.raises(catlog.CorruptionError) as other:
            store.get(b"b")
    assert (damaged.value.path, damaged.value.offset) == (path, first)
    assert damaged.value.reason == "batch member crc mismatch (reading key b'')"
    assert (other.value.path, other.value.offset) == (path, second)
    assert other.value.reason == (
        "index points at a batch member of another key or type (reading key b'b')"
    )


@pytest.mark.spec("ENG-12", "ENG-22", "FMT-21", "REC-3")
def test_a_short_or_malformed_record_where_the_index_points_is_reported(data_dir: str) -> None:
    path = f"{data_dir}/{SEGMENT}"
    body = encode_record(RecordType.PUT_EXPIRING, 0, b"k", b"v", 1)[4:]
    body = body[:13] + (1).to_bytes(4, "little") + b"kv"  # value_len 1: no room for the expiry
    expiring = crc32c(body).to_bytes(4, "little") + body
    with catlog.open(data_dir) as store:
        store.put(b"k", b"v")
        with open(path, "r+b") as file:
            file.seek(SEGMENT_HEADER_SIZE)
            file.write(expiring)
        with pytest.raises(catlog.CorruptionError) as malformed:
            store.get(b"k")
        os.truncate(path, SEGMENT_HEADER_SIZE + 3)
        with pytest.raises(catlog.CorruptionError) as short:
            store.get(b"k")
    assert malformed.value.reason == (
        "expiring put without its expiry: value_len=1 (reading key b'k')"
    )
    assert (short.value.path, short.value.offset) == (path, SEGMENT_HEADER_SIZE)
    assert short.value.reason == "incomplete header: 3 bytes left (reading key b'k')"


@pytest.mark.spec("FMT-9", "ENG-2", "ENG-3", "ENG-11")
@pytest.mark.parametrize("value_len", [LARGE_VALUE - 1, LARGE_VALUE, LARGE_VALUE + 1])
def test_values_around_the_large_value_mark_read_back(data_dir: str, value_len: int) -> None:
    with catlog.open(data_dir) as store:
        store.put(b"k", b"v" * value_len)
        assert store[b"k"] == b"v" * value_len


@pytest.mark.spec("FMT-9", "ENG-2", "ENG-3", "ENG-5")
def test_a_key_and_a_value_of_exactly_the_limits_are_accepted_in_any_bytes_like_form(
    data_dir: str,
) -> None:
    key = bytearray(b"k" * catlog.MAX_KEY_SIZE)
    value = memoryview(bytearray(catlog.MAX_VALUE_SIZE))
    with catlog.open(data_dir, fsync="never") as store:
        store.put(key, b"small")  # type: ignore[arg-type]
        store.put(b"big", value)  # type: ignore[arg-type]
        assert store.get(bytes(key)) == b"small"
        assert store.get(b"big") == bytes(catlog.MAX_VALUE_SIZE)
        assert store.delete(bytes(key))
        assert bytes(key) not in store


def _fail_rotation(store: catlog.Store, fs: FaultyFileSystem) -> None:
    store.put(b"a", b"x" * 60)
    fs.fail("open")
    store.put(b"b", b"y" * 60)


def _fail_fsync(store: catlog.Store, fs: FaultyFileSystem) -> None:
    fs.fail("sync")
    store.put(b"a", b"1")


def _fail_write(store: catlog.Store, fs: FaultyFileSystem) -> None:
    fs.fail("append")
    store.put(b"a", b"1")


def _fail_write_of_a_full_buffer(store: catlog.Store, fs: FaultyFileSystem) -> None:
    fs.fail("append")
    store.put_nowait(b"a", b"v" * 70_000)  # the buffer is handed over at once (ENG-16)


def _fail_sync_call(store: catlog.Store, fs: FaultyFileSystem) -> None:
    store.put_nowait(b"a", b"1")
    fs.fail("sync")
    store.sync()


def _fail_flush_of_a_sync_call(store: catlog.Store, fs: FaultyFileSystem) -> None:
    store.put_nowait(b"a", b"1")
    fs.fail("append")
    store.sync()


@pytest.mark.spec("REC-10", "ENG-22", "ENG-47")
@pytest.mark.parametrize(
    ("make_it_fail", "what", "fsync_failed"),
    [
        (_fail_fsync, "fsync", True),
        (_fail_write, "write", False),
        (_fail_write_of_a_full_buffer, "write", False),
        (_fail_sync_call, "fsync", True),
        (_fail_flush_of_a_sync_call, "write", False),
        (_fail_rotation, "creating a segment", False),
    ],
)
def test_a_failed_store_says_which_call_failed_and_why(
    data_dir: str, make_it_fail: object, what: str, fsync_failed: bool
) -> None:
    assert callable(make_it_fail)
    fs = FaultyFileSystem()
    with failing(catlog.open(data_dir, fs=fs, segment_size=100)) as store:
        with pytest.raises(catlog.StoreFailedError) as caught:
            make_it_fail(store, fs)
        cause = caught.value.__cause__
        assert isinstance(cause, OSError)
        assert cause.errno == errno.EIO
        expected = f"{data_dir}/{SEGMENT}: {what} failed ({cause}); {REFUSED}"
        assert str(caught.value) == expected
        assert caught.value.fsync_failed is fsync_failed
        fs.heal()
        with pytest.raises(catlog.StoreFailedError) as again:
            store.put(b"later", b"refused")
        assert str(again.value) == expected, "the refusal repeats the first failure"
        assert again.value.fsync_failed is fsync_failed
        assert store.failure is not None
        assert store.failure.fsync_failed is fsync_failed


@pytest.mark.spec("REC-10", "ENG-31", "ENG-22")
def test_a_failed_hint_write_names_the_hint(data_dir: str) -> None:
    fs = FaultyFileSystem()
    with failing(catlog.open(data_dir, fs=fs, hints=True, segment_size=100)) as store:
        store.put(b"a", b"x" * 60)
        fs.fail("rename")
        with pytest.raises(catlog.StoreFailedError) as caught:
            store.put(b"b", b"y" * 60)
        cause = caught.value.__cause__
        assert isinstance(cause, OSError)
        what = f"writing the hint {hint_name(1)}"
        assert str(caught.value) == f"{data_dir}/{SEGMENT}: {what} failed ({cause}); {REFUSED}"


@pytest.mark.spec("REC-4")
def test_a_cut_tail_is_logged_and_reported_with_segment_offset_length_reason_and_copy(
    data_dir: str, caplog: pytest.LogCaptureFixture
) -> None:
    with catlog.open(data_dir) as store:
        store.put(b"a", b"1")
    end = os.path.getsize(f"{data_dir}/{SEGMENT}")
    with open(f"{data_dir}/{SEGMENT}", "ab") as file:
        file.write(b"\1\2\3")
    with caplog.at_level(logging.WARNING, logger="catlog"), catlog.open(data_dir) as store:
        repairs = store.stats().tail_repairs
    reason = "incomplete header: 3 bytes left"
    kept = f"{SEGMENT}.torn-{end}"
    assert repairs == (catlog.TailRepair(SEGMENT, end, 3, reason, kept),)
    assert [r.getMessage() for r in caplog.records] == [
        f"{SEGMENT}@{end}: torn tail of 3 bytes cut off ({reason}); kept in {kept}"
    ]
    assert Path(data_dir, kept).read_bytes() == b"\1\2\3"


@pytest.mark.spec("REC-5", "REC-4")
def test_an_empty_newest_segment_is_repaired_with_nothing_to_keep(
    data_dir: str, caplog: pytest.LogCaptureFixture
) -> None:
    os.makedirs(data_dir)
    Path(data_dir, SEGMENT).touch()
    with caplog.at_level(logging.WARNING, logger="catlog"), catlog.open(data_dir) as store:
        repairs = store.stats().tail_repairs
    assert repairs == (catlog.TailRepair(SEGMENT, 0, 0, "empty segment", None),)
    assert caplog.records == []


@pytest.mark.spec("ENG-15", "ENG-24")
def test_interval_counts_time_from_the_last_sync_on_a_clock_that_did_not_start_at_zero(
    data_dir: str,
) -> None:
    clock = catlog.ManualClock(monotonic=5_000.0)
    with catlog.open(data_dir, clock=clock, fsync="interval", fsync_interval_ms=60_000) as store:
        for key in (b"a", b"b"):
            store.put(key, b"1")
            clock.advance(59.99)
            store.tick()
            assert store.stats().unflushed_bytes > 0, "59.99 s is not yet 60 s"
            clock.advance(0.01)
            store.tick()
            assert store.stats().unflushed_bytes == 0


@pytest.mark.spec("ENG-16", "ENG-24")
def test_never_hands_the_buffer_over_on_every_due_tick_not_only_the_first(data_dir: str) -> None:
    clock = catlog.ManualClock(monotonic=5_000.0)
    with catlog.open(data_dir, clock=clock, fsync="never", fsync_interval_ms=60_000) as store:
        for key in (b"a", b"b", b"c"):
            store.put(key, b"1")
            store.tick()
            assert store.stats().unflushed_bytes > 0, "not due yet"
            clock.advance(60)
            store.tick()
            assert store.stats().unflushed_bytes == 0


def ours(records: list[logging.LogRecord], path: str) -> list[logging.LogRecord]:
    """The records about the store at ``path``: a flusher of a store another test dropped
    unclosed (and not yet collected) may log too."""
    return [record for record in records if record.getMessage().startswith(f"{path}:")]


@pytest.mark.spec("REC-10", "ENG-15", "ENG-46")
def test_a_failing_background_sync_is_logged_with_the_store_path(
    data_dir: str, caplog: pytest.LogCaptureFixture
) -> None:
    fs = FaultyFileSystem()
    with caplog.at_level(logging.ERROR, logger="catlog"):
        store = catlog.open(data_dir, fs=fs, fsync="interval", fsync_interval_ms=5)
        fs.fail("sync")
        store.put(b"a", b"1")
        deadline = time.monotonic() + 10
        while not ours(caplog.records, data_dir) and time.monotonic() < deadline:
            time.sleep(0.005)
        with pytest.raises(catlog.StoreFailedError, match=CLOSED_FAILED):
            store.close()  # ENG-46
    [record] = ours(caplog.records, data_dir)
    assert record.getMessage() == f"{data_dir}: background flush failed"
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], catlog.StoreFailedError)


@pytest.mark.spec("ENG-20")
def test_a_locked_directory_is_refused_naming_the_holder_when_it_can(data_dir: str) -> None:
    with catlog.open(data_dir):
        with pytest.raises(catlog.LockedError) as caught:
            catlog.open(data_dir)
        assert str(caught.value) == (
            f"{data_dir} is already open in another store (pid {os.getpid()}); close it first"
        )
        fs = FaultyFileSystem()
        fs.fail("open")  # the lock file cannot be read: the message names no holder
        with pytest.raises(catlog.LockedError) as caught:
            catlog.open(data_dir, fs=fs)
        assert str(caught.value) == f"{data_dir} is already open in another store; close it first"


@pytest.mark.spec("ENG-20")
def test_a_lock_held_by_a_holder_that_wrote_no_pid_is_refused_without_one(data_dir: str) -> None:
    os.makedirs(data_dir)
    with open(f"{data_dir}/LOCK", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(catlog.LockedError) as caught:
            catlog.open(data_dir)
    assert str(caught.value) == f"{data_dir} is already open in another store; close it first"


@pytest.mark.spec("ENG-28", "ENG-5", "ENG-51")
def test_a_second_delete_of_a_key_whose_delete_waits_for_its_fsync_writes_nothing(
    data_dir: str,
) -> None:
    """ENG-51: the second delete is judged on the first, which waits for its fsync: the key
    will have no value when the second would take effect, so it writes nothing (as Redis's
    second DEL of a key answers 0)."""
    with catlog.open(data_dir) as store:
        store.put(b"a", b"1")
        assert store.delete_nowait(b"a") == (True, 2)
        assert b"a" in store, "the first has not taken effect yet"
        assert store.delete_nowait(b"a") == (False, 2)
        store.wait_durable(2)
        assert b"a" not in store
        assert len(store) == 0
        ticket = store.put_nowait(b"b", b"1")
        assert b"b" not in store
        assert store.delete_nowait(b"b") == (True, ticket + 1), "judged on the waiting PUT"
        store.wait_durable(ticket + 1)
        assert b"b" not in store


@pytest.mark.spec("ENG-18")
@pytest.mark.parametrize("policy", ["interval", "never"])
def test_close_fsyncs_writes_already_handed_to_the_os(
    data_dir: str, policy: catlog.FsyncPolicy
) -> None:
    fs = RecordingFileSystem()
    store = catlog.open(data_dir, fs=fs, fsync=policy, fsync_interval_ms=600_000)
    store.put(b"a", b"1")
    store.flush()
    fs.calls.clear()
    store.close()
    assert fs.calls[0] == ("sync", SEGMENT)
