"""Hint files in a real directory: written at rotation, used at open, and never trusted blindly.

Cites ENG-30 .. ENG-32 (spec/engine.md) and REC-15, REC-16 (spec/recovery.md). The property at the
centre: opening through hints and opening by scanning give the same store, for any workload.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import tempfile
import threading
from dataclasses import replace
from pathlib import Path

import pytest
from crc32c import crc32c
from hypothesis import given, settings
from hypothesis import strategies as st

import catlog
from catlog.codec import CRC_FIELD
from catlog.hint import HINT_HEADER_SIZE, Hint, HintProblem, decode_hint, encode_hint, hint_name
from catlog.simfs import SimFileSystem
from tests.failing_store import failing


def contents(directory: str) -> dict[bytes, bytes]:
    """Everything a store shows through its public API: every key by iteration and by get."""
    with catlog.open(directory, hints=True) as store:
        found = {key: store[key] for key in store}
        assert len(store) == len(found)
        return found


def hints(directory: str) -> list[str]:
    return sorted(n for n in os.listdir(directory) if n.endswith(".hint"))


def snapshot(directory: str) -> dict[str, bytes]:
    return {n: Path(directory, n).read_bytes() for n in sorted(os.listdir(directory))}


def fill(directory: str, *, segment_size: int = 200) -> dict[bytes, bytes]:
    model: dict[bytes, bytes] = {}
    with catlog.open(directory, hints=True, segment_size=segment_size, fsync="never") as store:
        store.put(b"first", b"only segment 1 holds this key")  # so segment 1 matters
        model[b"first"] = b"only segment 1 holds this key"
        for i in range(40):
            key = b"k%d" % (i % 13)
            if i % 7 == 6:
                store.delete(key)
                model.pop(key, None)
            else:
                store.put(key, b"v%d" % i * (i % 5))
                model[key] = b"v%d" % i * (i % 5)
    return model


@pytest.mark.spec("ENG-30")
def test_each_sealed_segment_gets_a_hint_and_the_newest_none(data_dir: str) -> None:
    fill(data_dir)
    segments = sorted(n for n in os.listdir(data_dir) if n.endswith(".log"))
    assert len(segments) > 3
    assert hints(data_dir) == [n.replace(".log", ".hint") for n in segments[:-1]]
    assert not [n for n in os.listdir(data_dir) if n.endswith(".tmp")]


ops = st.lists(
    st.tuples(st.sampled_from([b"a", b"b", b"c", b"d", b""]), st.none() | st.binary(max_size=40)),
    max_size=60,
)


@pytest.mark.spec("ENG-32", "REC-15", "ENG-30")
@settings(max_examples=60)
@given(ops=ops, segment_size=st.sampled_from([64, 100, 200, 1000]))
def test_opening_through_hints_and_by_scanning_give_the_same_store(
    ops: list[tuple[bytes, bytes | None]], segment_size: int
) -> None:
    directory = tempfile.mkdtemp(prefix="catlog-hints-")
    try:
        model: dict[bytes, bytes] = {}
        with catlog.open(directory, hints=True, segment_size=segment_size, fsync="never") as store:
            for key, value in ops:
                if value is None:
                    assert store.delete(key) == (key in model)
                    model.pop(key, None)
                else:
                    store.put(key, value)
                    model[key] = value
        hinted = contents(directory)
        for name in hints(directory):
            os.remove(os.path.join(directory, name))
        assert contents(directory) == hinted == model
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def damage_first_hint(directory: str, how: str) -> None:
    path = Path(directory, hint_name(1))
    data = bytearray(path.read_bytes())
    if how == "flipped bit":
        data[len(data) // 2] ^= 0x10
    elif how == "truncated":
        del data[-5:]
    elif how == "unknown version":
        data[8] = 3
    elif how == "empty":
        data.clear()
    elif how == "stale":
        data[:] = Path(directory, hint_name(2)).read_bytes()  # another segment's hint
    elif how == "missing":
        path.unlink()
        return
    path.write_bytes(bytes(data))


HOW = ["flipped bit", "truncated", "unknown version", "empty", "stale", "missing"]


@pytest.mark.spec("REC-15", "FMT-18", "FMT-19")
@pytest.mark.parametrize("how", HOW)
def test_an_unusable_or_stale_hint_falls_back_to_scanning(
    data_dir: str, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    model = fill(data_dir)
    damage_first_hint(data_dir, how)
    before = snapshot(data_dir)
    with caplog.at_level(logging.WARNING, logger="catlog"):
        assert contents(data_dir) == model
    assert snapshot(data_dir) == before, "REC-15: open never writes or removes a hint"
    warned = [r.getMessage() for r in caplog.records if hint_name(1) in r.getMessage()]
    path, segment = f"{data_dir}/{hint_name(1)}", "segment-00001.log"
    if how == "missing":
        assert warned == []
    elif how == "stale":
        assert warned == [
            f"{path}: stale hint (it describes another state of {segment}); scanning the segment"
            " instead"
        ]
    else:
        assert warned in (
            [f"{path}: {problem.value}; scanning {segment} instead"] for problem in HintProblem
        )


@pytest.mark.spec("REC-15", "ENG-32")
def test_a_good_hint_is_used_without_a_warning(
    data_dir: str, caplog: pytest.LogCaptureFixture
) -> None:
    model = fill(data_dir)
    with caplog.at_level(logging.WARNING, logger="catlog"):
        assert contents(data_dir) == model
    assert caplog.records == []


@pytest.mark.spec("ENG-31", "FMT-20")
def test_a_segment_damaged_while_open_gets_no_hint_and_a_warning(
    data_dir: str, caplog: pytest.LogCaptureFixture
) -> None:
    with catlog.open(data_dir, hints=True, segment_size=200) as store:
        store.put(b"a", b"x" * 40)
        with open(f"{data_dir}/segment-00001.log", "r+b") as file:
            file.seek(40)
            byte = file.read(1)[0]
            file.seek(40)
            file.write(bytes([byte ^ 1]))
        store.put(b"b", b"y" * 40)
        with caplog.at_level(logging.WARNING, logger="catlog"):
            store.put(b"c", b"z" * 140)  # rotates
        assert store.stats().segments == 2
    assert hints(data_dir) == []
    assert [r.getMessage() for r in caplog.records] == [
        "segment-00001.log: no hint written: @16: crc mismatch"
    ]


@pytest.mark.spec("FMT-12", "REC-16")
def test_a_segment_longer_than_the_format_allows_is_reported_even_with_a_hint(
    data_dir: str,
) -> None:
    """The file is made sparse, so the test writes no gigabyte."""
    fill(data_dir)
    os.truncate(Path(data_dir, "segment-00001.log"), (1 << 30) + 1)
    with pytest.raises(
        catlog.CorruptionError,
        match=r"segment-00001\.log@1073741824: segment longer than the format allows$",
    ):
        catlog.open(data_dir, hints=True)


@pytest.mark.spec("REC-16", "FMT-19", "REC-6")
def test_a_hint_never_hides_damage_in_its_segment(data_dir: str) -> None:
    """The same length, one bit flipped in a value: scanning refuses it, so the hint must too."""
    fill(data_dir)
    path = Path(data_dir, "segment-00001.log")
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(catlog.CorruptionError, match=r"segment-00001\.log"):
        catlog.open(data_dir, hints=True)


@pytest.mark.spec("REC-16", "REC-15", "REC-19")
@pytest.mark.parametrize(
    ("version", "error"), [(2, catlog.CorruptionError), (3, catlog.UnsupportedFormatError)]
)
def test_a_hint_of_a_segment_whose_header_claims_another_version_is_not_used(
    data_dir: str, version: int, error: type[Exception]
) -> None:
    """Changing the version and fixing the header crc leaves a whole-file CRC-32C unchanged.

    Version 2 is the packed format (FMT-26): had the hint been used, open would succeed; read as
    packed records, the segment's records are damage (REC-19). Version 3 is unknown (FMT-3)."""
    fill(data_dir)
    path = Path(data_dir, "segment-00001.log")
    data = bytearray(path.read_bytes())
    data[8] = version
    data[12:16] = CRC_FIELD.pack(crc32c(bytes(data[:12])))
    path.write_bytes(bytes(data))
    with pytest.raises(error):
        catlog.open(data_dir, hints=True)


@pytest.mark.spec("ENG-32")
def test_a_hint_of_the_newest_segment_is_ignored(data_dir: str) -> None:
    """A crash can leave the newest segment with a hint (its successor lost): it is scanned."""
    model = fill(data_dir)
    newest = max(n for n in os.listdir(data_dir) if n.endswith(".log"))
    Path(data_dir, newest.replace(".log", ".hint")).write_bytes(b"CATLOGHT" + bytes(40))
    assert contents(data_dir) == model


@pytest.mark.spec("ENG-32", "REC-13")
def test_opening_through_hints_reads_hints_not_records_and_changes_nothing(
    data_dir: str,
) -> None:
    model = fill(data_dir)
    before = snapshot(data_dir)
    with catlog.open(data_dir, hints=True) as store:
        assert dict(store.items()) == model
        assert store.stats().segments == len(hints(data_dir)) + 1
    assert snapshot(data_dir) == before


@pytest.mark.spec("ENG-31", "REC-10")
@pytest.mark.parametrize("operation", ["append", "sync", "rename", "pread"])
def test_a_failing_hint_write_stops_the_store_like_a_failing_segment_write(
    operation: str,
) -> None:
    fs = SimFileSystem()
    with failing(catlog.open("/db", hints=True, fs=fs, segment_size=100)) as store:
        store.put(b"a", b"x" * 40)
        store.sync()
        nth = {"append": 1, "sync": 2, "rename": 1, "pread": 1}[operation]
        fs.fail(operation, nth=nth)  # type: ignore[arg-type]
        with pytest.raises(catlog.StoreFailedError) as caught:
            store.put(b"b", b"y" * 40)
        assert isinstance(caught.value.__cause__, OSError)
        assert caught.value.__cause__.errno == errno.EIO
        assert "hint" in str(caught.value)
        fs.heal()
    with catlog.open("/db", hints=True, fs=fs, segment_size=100) as store:
        assert dict(store.items()) == {b"a": b"x" * 40}, "the failed put was not acknowledged"
        store.put(b"b", b"y" * 40)
        store.put(b"c", b"z" * 40)
    with catlog.open("/db", hints=True, fs=fs, segment_size=100) as store:
        assert dict(store.items()) == {b"a": b"x" * 40, b"b": b"y" * 40, b"c": b"z" * 40}


@pytest.mark.spec("ENG-30")
def test_a_leftover_temporary_hint_does_not_prefix_the_new_one(data_dir: str) -> None:
    with catlog.open(data_dir, hints=True, segment_size=100) as store:
        store.put(b"a", b"x" * 40)
    Path(data_dir, hint_name(1) + ".tmp").write_bytes(b"left by a crash" * 10)
    with catlog.open(data_dir, hints=True, segment_size=100) as store:
        store.put(b"b", b"y" * 40)
    assert Path(data_dir, hint_name(1)).read_bytes()[:8] == b"CATLOGHT"
    assert not Path(data_dir, hint_name(1) + ".tmp").exists()
    assert len(Path(data_dir, hint_name(1)).read_bytes()) > HINT_HEADER_SIZE
    assert contents(data_dir) == {b"a": b"x" * 40, b"b": b"y" * 40}


@pytest.mark.spec("ENG-43", "ENG-32", "ENG-18")
def test_background_hints_are_written_off_the_rotating_call_and_opened_through(
    data_dir: str,
) -> None:
    with catlog.open(data_dir, hints="background", segment_size=200, fsync="never") as store:
        for i in range(60):
            store.put(b"k%d" % (i % 7), b"value %d" % i)
        model = dict(store.items())
        sealed = store.stats().segments - 1
        writers = [t for t in threading.enumerate() if t.name == f"catlog-hints {data_dir}"]
        assert [t.daemon for t in writers] == [True], "a store left open does not hold up exit"
        store.close()  # and again as the block ends: a second close does nothing (ENG-18)
    assert len(hints(data_dir)) == sealed, "close waits for the queued hints"
    assert not [n for n in os.listdir(data_dir) if n.endswith(".tmp")]
    before = snapshot(data_dir)
    assert contents(data_dir) == model
    assert snapshot(data_dir) == before


@pytest.mark.spec("ENG-43")
def test_a_compaction_waits_for_queued_hints_and_leaves_none_for_its_inputs(
    data_dir: str,
) -> None:
    with catlog.open(data_dir, hints="background", segment_size=200, fsync="never") as store:
        for i in range(80):
            store.put(b"k%d" % (i % 5), b"value %d" % i)
        store.compact()
        for i in range(20):
            store.put(b"j%d" % i, b"more %d" % i)
        model = dict(store.items())
        live = {int(n[8:-4]) for n in os.listdir(data_dir) if n.endswith(".log")}
    orphans = [n for n in hints(data_dir) if int(n[8:-5]) not in live]
    assert orphans == [], "no hint is left for a segment compaction removed"
    assert contents(data_dir) == model


class ErrorLogged(logging.Handler):
    """Sets :attr:`event` at the first error logged: a background thread's failure, seen as a
    user sees it, waited for without polling."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.event = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.event.set()


@pytest.mark.spec("ENG-43", "REC-10")
def test_a_failing_background_hint_is_logged_and_stops_hints_not_the_store(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fs = SimFileSystem()
    logged = ErrorLogged()
    logging.getLogger("catlog").addHandler(logged)
    try:
        with (
            caplog.at_level(logging.ERROR, logger="catlog"),
            catlog.open("/db", hints="background", fs=fs, segment_size=100) as store,
        ):
            fs.fail("rename", nth=1)
            for i in range(6):
                store.put(b"k%d" % i, b"x" * 40)  # rotates every put or two
            assert logged.event.wait(timeout=30), "the hint's failure is logged"
            store.put(b"after", b"still writes")
    finally:
        logging.getLogger("catlog").removeHandler(logged)
    # close wrote the hints still queued (ENG-43): after the failure, none
    assert [n for n in fs.listdir("/db") if n.endswith(".hint")] == []
    failure = OSError(errno.EIO, os.strerror(errno.EIO), "/db/segment-00001.hint.tmp")
    assert [r.getMessage() for r in caplog.records] == [
        f"/db: writing the hint of segment-00001.log failed ({failure}); no more hints are"
        " written in the background until the store is reopened"
    ]
    with catlog.open("/db", fs=fs) as store:
        assert store[b"after"] == b"still writes"
        assert len(store) == 7


@pytest.mark.spec("ENG-25", "ENG-43")
def test_an_unknown_hint_mode_is_refused(data_dir: str) -> None:
    with pytest.raises(ValueError, match="hints must be"):
        catlog.open(data_dir, hints="sometimes")  # type: ignore[arg-type]
    assert not os.path.exists(data_dir)


@pytest.mark.spec("REC-15", "FMT-18", "REC-16")
def test_a_hint_whose_offset_runs_past_its_segment_is_ignored_and_the_segment_scanned(
    data_dir: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The crc verifies (the hint was resealed), but an entry points past the segment's end."""
    model = fill(data_dir)
    path = Path(data_dir, hint_name(1))
    hint = decode_hint(path.read_bytes())
    assert isinstance(hint, Hint)
    offsets = hint.put_offsets
    offsets[0] = hint.segment_size
    path.write_bytes(encode_hint(replace(hint, put_offsets=offsets)))
    with caplog.at_level(logging.WARNING, logger="catlog"):
        assert contents(data_dir) == model
    assert (
        f"{data_dir}/{hint_name(1)}: hint counts or entries out of range; "
        "scanning segment-00001.log instead"
    ) in caplog.messages
