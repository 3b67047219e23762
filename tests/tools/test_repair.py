"""``catlog repair DIR``: keep every valid record, set every damaged byte aside; rerun: no-op."""

from __future__ import annotations

import errno
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

import catlog
from catlog.cli import main
from catlog.fs import File
from catlog.repair import repair_directory
from tests.passthrough_fs import PassThroughFile, PassThroughFileSystem
from tests.store.recording_fs import RecordingFileSystem
from tests.tools.layout import (
    HEADER_SIZE,
    OFFSETS,
    RECORD_SIZE,
    build,
    craft_record,
    flip,
    overwrite,
    run,
    segment,
    segment_header,
    snapshot,
)


def assert_repaired(directory: str, capsys: pytest.CaptureFixture[str]) -> dict[str, bytes]:
    """TOOL-16: open succeeds, check is clean, and a second repair changes nothing."""
    with catlog.open(directory):
        pass
    after = snapshot(directory)
    status, out, _ = run(["check", directory], capsys)
    assert status == 0, out
    assert out.splitlines()[-1].startswith("clean: ")
    status, out, _ = run(["repair", directory], capsys)
    assert status == 0
    assert out.splitlines()[-1].startswith("clean: nothing to repair; ")
    assert snapshot(directory) == after
    return after


@pytest.mark.spec("TOOL-16", "TOOL-18")
def test_a_clean_directory_is_left_alone(data_dir: str, capsys: pytest.CaptureFixture[str]) -> None:
    build(data_dir)
    before = snapshot(data_dir)
    status, out, _ = run(["repair", data_dir], capsys)
    assert status == 0
    assert out.splitlines() == ["clean: nothing to repair; 3 segments, 10 records"]
    assert snapshot(data_dir) == before


@pytest.mark.spec("TOOL-14", "TOOL-13", "TOOL-16", "TOOL-18")
def test_damage_in_an_older_segment_is_quarantined_and_every_valid_record_kept(
    data_dir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    state = build(data_dir)
    path = Path(data_dir, segment(1))
    original = path.read_bytes()
    flip(path, OFFSETS[1] + 30)
    damaged_bytes = path.read_bytes()[OFFSETS[1] : OFFSETS[2]]
    status, out, _ = run(["repair", data_dir], capsys)
    assert status == 0
    assert out.splitlines() == [
        f"{segment(1)}@59: crc mismatch (43 bytes, 59..102; corrupt) -> kept in "
        f"{segment(1)}.damaged-59",
        f"{segment(1)}: rewritten, 188 -> 145 bytes, 3 records kept, 43 bytes quarantined",
        "repaired: 1 of 3 segments rewritten, 43 bytes quarantined, all 9 records kept",
    ]
    assert path.read_bytes() == original[: OFFSETS[1]] + original[OFFSETS[2] :]
    assert Path(data_dir, f"{segment(1)}.damaged-59").read_bytes() == damaged_bytes
    assert_repaired(data_dir, capsys)
    with catlog.open(data_dir) as store:
        del state[b"k1"]
        assert dict(store.items()) == state


@pytest.mark.spec("TOOL-14", "TOOL-13", "TOOL-3")
def test_several_damages_in_several_segments_each_get_their_own_file(
    data_dir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    build(data_dir)
    flip(Path(data_dir, segment(1)), OFFSETS[0] + 4)
    overwrite(Path(data_dir, segment(1)), OFFSETS[2] + 13, b"\xff\xff\xff\xff")
    overwrite(Path(data_dir, segment(2)), OFFSETS[1] + 5, bytes(RECORD_SIZE + 10))
    status, _, _ = run(["repair", data_dir], capsys)
    assert status == 0
    quarantine = sorted(n for n in snapshot(data_dir) if ".damaged-" in n)
    assert quarantine == [
        f"{segment(1)}.damaged-102",
        f"{segment(1)}.damaged-16",
        f"{segment(2)}.damaged-59",
    ]
    assert len(Path(data_dir, f"{segment(2)}.damaged-59").read_bytes()) == 2 * RECORD_SIZE
    assert_repaired(data_dir, capsys)
    with catlog.open(data_dir) as store:
        assert sorted(store) == [b"k1", b"k3", b"k4", b"k7", b"k8", b"k9"]


@pytest.mark.spec("TOOL-14", "TOOL-13", "REC-4")
@pytest.mark.parametrize(
    "tail", [b"\0" * 50, b"\x01" * 5, craft_record(1, b"k", b"v" * 30)[:-3]], ids=repr
)
def test_a_torn_tail_ends_exactly_as_open_would_leave_it(
    data_dir: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], tail: bytes
) -> None:
    build(data_dir)
    newest = Path(data_dir, segment(3))
    newest.write_bytes(newest.read_bytes() + tail)
    opened = str(tmp_path / "opened")
    shutil.copytree(data_dir, opened)
    with catlog.open(opened):
        pass
    status, out, _ = run(["repair", data_dir], capsys)
    assert status == 0
    end = HEADER_SIZE + 2 * RECORD_SIZE
    assert f"-> kept in {segment(3)}.torn-{end}" in out
    assert snapshot(data_dir) == snapshot(opened)
    assert_repaired(data_dir, capsys)


@pytest.mark.spec("TOOL-14", "TOOL-4", "REC-5")
def test_a_torn_header_of_the_newest_segment_gets_a_fresh_one(
    data_dir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    build(data_dir)
    Path(data_dir, segment(4)).write_bytes(b"CATLOGS")
    assert run(["repair", data_dir], capsys)[0] == 0
    assert Path(data_dir, segment(4)).read_bytes() == segment_header()
    assert Path(data_dir, f"{segment(4)}.torn-0").read_bytes() == b"CATLOGS"
    assert_repaired(data_dir, capsys)


@pytest.mark.spec("TOOL-14", "TOOL-13")
@pytest.mark.parametrize("offset", [0, 8, 12], ids=["magic", "version", "crc"])
def test_a_bad_header_of_an_older_segment_is_replaced_and_its_records_kept(
    data_dir: str, capsys: pytest.CaptureFixture[str], offset: int
) -> None:
    state = build(data_dir)
    path = Path(data_dir, segment(2))
    flip(path, offset)
    bad_header = path.read_bytes()[:HEADER_SIZE]
    records = path.read_bytes()[HEADER_SIZE:]
    assert run(["repair", data_dir], capsys)[0] == 0
    assert path.read_bytes() == segment_header() + records
    assert Path(data_dir, f"{segment(2)}.damaged-0").read_bytes() == bad_header
    assert_repaired(data_dir, capsys)
    with catlog.open(data_dir) as store:
        assert dict(store.items()) == state


@pytest.mark.spec("TOOL-14", "TOOL-13", "REC-5")
def test_an_empty_older_segment_gets_a_header_and_an_empty_newest_one_is_left_alone(
    data_dir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    build(data_dir)
    Path(data_dir, segment(2)).write_bytes(b"")
    Path(data_dir, segment(4)).write_bytes(b"")
    status, out, _ = run(["repair", data_dir], capsys)
    assert status == 0
    assert f"{segment(2)}@0: incomplete segment header: empty segment" in out
    assert "(no bytes to keep)" in out
    assert Path(data_dir, segment(2)).read_bytes() == segment_header()
    assert Path(data_dir, segment(4)).read_bytes() == b""
    assert not [n for n in snapshot(data_dir) if ".damaged-" in n or ".torn-" in n]
    with catlog.open(data_dir) as store:
        assert len(store) == 6


@pytest.mark.spec("TOOL-17", "REC-7", "FMT-7", "FMT-3")
@pytest.mark.parametrize("odd", ["reserved-type", "delete-with-value", "version-2"])
def test_bytes_a_newer_writer_may_have_written_make_repair_refuse_and_change_nothing(
    data_dir: str, capsys: pytest.CaptureFixture[str], odd: str
) -> None:
    build(data_dir)
    flip(Path(data_dir, segment(1)), OFFSETS[2] + 25)  # repairable damage elsewhere
    Path(data_dir, segment(2) + ".repairing").write_bytes(b"left over")
    if odd == "version-2":
        overwrite(Path(data_dir, segment(3)), 0, segment_header(version=3))
    else:
        record = (
            craft_record(7, b"new", b"x")
            if odd == "reserved-type"
            else craft_record(2, b"k0", b"x")
        )
        newest = Path(data_dir, segment(3))
        newest.write_bytes(newest.read_bytes() + record)
    before = snapshot(data_dir)
    for argv in (["repair", data_dir], ["repair", "--dry-run", data_dir]):
        status, out, _ = run(argv, capsys)
        assert status == 1
        lines = out.splitlines()
        assert lines[0].startswith(f"{segment(3)}@")
        assert lines[0].endswith("repair refuses)")
        assert lines[-1].startswith("refused: no file changed; 1 region ")
        assert snapshot(data_dir) == before


@pytest.mark.spec("TOOL-13")
def test_an_existing_quarantine_file_with_other_bytes_is_kept_and_the_next_name_used(
    data_dir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    build(data_dir)
    taken = Path(data_dir, f"{segment(1)}.damaged-59")
    taken.write_bytes(b"an earlier repair's bytes")
    taken_2 = Path(data_dir, f"{segment(1)}.damaged-59.2")
    taken_2.write_bytes(b"and another")
    flip(Path(data_dir, segment(1)), OFFSETS[1] + 25)
    status, out, _ = run(["repair", data_dir], capsys)
    assert status == 0
    assert f"-> kept in {segment(1)}.damaged-59.3" in out
    assert taken.read_bytes() == b"an earlier repair's bytes"
    assert taken_2.read_bytes() == b"and another"
    assert len(Path(data_dir, f"{segment(1)}.damaged-59.3").read_bytes()) == RECORD_SIZE


@pytest.mark.spec("TOOL-2", "TOOL-18", "ENG-20")
def test_repair_of_a_directory_a_store_holds_exits_two_and_changes_nothing(
    data_dir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    build(data_dir)
    newest = Path(data_dir, segment(3))
    with catlog.open(data_dir) as store:
        newest.write_bytes(newest.read_bytes() + b"\0" * 9)  # as if torn while it runs
        before = snapshot(data_dir)
        status, out, err = run(["repair", data_dir], capsys)
        assert (status, out) == (2, "")
        assert "is open in another process (pid " in err
        assert snapshot(data_dir) == before
        with pytest.raises(catlog.LockedError):
            repair_directory(data_dir)
        store.get(b"k0")


@pytest.mark.spec("TOOL-19")
def test_dry_run_says_what_it_would_do_and_changes_nothing(
    data_dir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    build(data_dir)
    flip(Path(data_dir, segment(2)), OFFSETS[3] + 25)
    Path(data_dir, segment(1) + ".repairing").write_bytes(b"")
    before = snapshot(data_dir)
    status, out, _ = run(["repair", "--dry-run", data_dir], capsys)
    assert status == 0
    assert snapshot(data_dir) == before
    assert out.splitlines() == [
        f"{segment(1)}.repairing: would be removed (left by an interrupted repair)",
        f"{segment(2)}@145: crc mismatch (43 bytes, 145..188; corrupt) -> would be kept in "
        f"{segment(2)}.damaged-145",
        f"{segment(2)}: would be rewritten, 188 -> 145 bytes, 3 records kept, 43 bytes quarantined",
        "dry run, nothing changed: 1 of 3 segments rewritten, 43 bytes quarantined, "
        "all 9 records kept",
    ]


@pytest.mark.spec("TOOL-8", "TOOL-18")
def test_a_path_without_segments_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = run(["repair", str(tmp_path)], capsys)
    assert status == 2
    assert "holds no segment files" in err
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------- crash safety


@pytest.mark.spec("TOOL-15", "TOOL-1")
def test_quarantine_is_durable_before_the_new_segment_replaces_the_old(data_dir: str) -> None:
    build(data_dir)
    flip(Path(data_dir, segment(2)), OFFSETS[1] + 25)
    flip(Path(data_dir, segment(2)), OFFSETS[3] + 25)
    fs = RecordingFileSystem()
    repair_directory(data_dir, fs=fs)
    seg, q1, q2 = segment(2), f"{segment(2)}.damaged-59", f"{segment(2)}.damaged-145"
    writes = [
        (op, name)
        for op, name in fs.calls
        if op in ("open+create", "append", "sync", "rename", "sync_dir", "remove", "lock")
    ]
    assert writes == [
        ("lock", "LOCK"),
        ("open+create", f"{q1}.repairing"),
        ("append", f"{q1}.repairing"),
        ("sync", f"{q1}.repairing"),
        ("rename", f"{q1}.repairing->{q1}"),
        ("open+create", f"{q2}.repairing"),
        ("append", f"{q2}.repairing"),
        ("sync", f"{q2}.repairing"),
        ("rename", f"{q2}.repairing->{q2}"),
        ("sync_dir", "data"),
        ("open+create", f"{seg}.repairing"),
        ("append", f"{seg}.repairing"),
        ("append", f"{seg}.repairing"),
        ("append", f"{seg}.repairing"),
        ("sync", f"{seg}.repairing"),
        ("rename", f"{seg}.repairing->{seg}"),
        ("sync_dir", "data"),
    ]


@pytest.mark.spec("TOOL-15")
def test_a_leftover_scratch_file_is_removed_before_anything_else(
    data_dir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    build(data_dir)
    Path(data_dir, segment(3) + ".repairing").write_bytes(b"half a segment")
    Path(data_dir, segment(3) + ".torn-59.repairing").write_bytes(b"half a quarantine")
    flip(Path(data_dir, segment(1)), OFFSETS[0] + 25)
    fs = RecordingFileSystem()
    assert main(["repair", data_dir], fs=fs) == 0
    assert "left by an interrupted repair" in capsys.readouterr().out
    removes = [i for i, (op, _) in enumerate(fs.calls) if op == "remove"]
    first_write = min(i for i, (op, _) in enumerate(fs.calls) if op == "open+create")
    assert len(removes) == 2
    assert max(removes) < first_write
    assert not [n for n in snapshot(data_dir) if n.endswith(".repairing")]


@dataclass
class InterruptedFileSystem(PassThroughFileSystem):
    """Fails the ``fail_at``-th changing operation, and every one after it, with EIO.

    Not a crash simulation (unsynced bytes stay), but it stops repair between any two of its
    steps, which is what restartability needs.
    """

    fail_at: int = 1
    count: int = 0

    def tick(self) -> None:
        self.count += 1
        if self.count >= self.fail_at:
            raise OSError(errno.EIO, "interrupted")

    def open(self, path: str, *, writable: bool = False, create: bool = False) -> File:
        if create:
            self.tick()
        return _InterruptedFile(self.inner.open(path, writable=writable, create=create), self)

    def rename(self, src: str, dst: str) -> None:
        self.tick()
        super().rename(src, dst)

    def remove(self, path: str) -> None:
        self.tick()
        super().remove(path)

    def sync_dir(self, path: str) -> None:
        self.tick()
        super().sync_dir(path)


class _InterruptedFile(PassThroughFile):
    def __init__(self, inner: File, fs: InterruptedFileSystem) -> None:
        super().__init__(inner)
        self._fs = fs

    def append(self, data: bytes | bytearray | memoryview) -> int:
        try:
            self._fs.tick()
        except OSError:
            self._inner.append(data[: len(data) // 2])  # a write cut short, then the error
            raise
        return self._inner.append(data)

    def truncate(self, size: int) -> None:
        self._fs.tick()
        super().truncate(size)

    def sync(self) -> None:
        self._fs.tick()
        super().sync()


@pytest.mark.spec("TOOL-15", "TOOL-16", "TOOL-13")
def test_a_repair_stopped_at_any_step_is_finished_by_the_next_run_with_the_same_result(
    tmp_path: Path,
) -> None:
    damaged = str(tmp_path / "damaged")
    build(damaged)
    flip(Path(damaged, segment(1)), OFFSETS[1] + 25)
    flip(Path(damaged, segment(2)), 2)
    newest = Path(damaged, segment(3))
    newest.write_bytes(newest.read_bytes() + b"\x05" * 11)
    reference = str(tmp_path / "reference")
    shutil.copytree(damaged, reference)
    repair_directory(reference)
    expected = snapshot(reference)

    step = 1
    while True:
        attempt = str(tmp_path / f"attempt-{step}")
        shutil.copytree(damaged, attempt)
        fs = InterruptedFileSystem(fail_at=step)
        try:
            repair_directory(attempt, fs=fs)
        except OSError:
            interrupted = True
        else:
            interrupted = False
        repair_directory(attempt)
        assert snapshot(attempt) == expected, f"stopped at step {step}"
        if not interrupted:
            break
        step += 1
    assert step > 20, "every step of three segment repairs was interrupted once"


@pytest.mark.spec("TOOL-24", "ENG-30", "REC-15")
def test_repair_removes_the_hint_of_each_segment_it_rewrites(
    data_dir: str, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """A hint left beside a rewritten segment describes bytes that are gone: every later open
    would warn about it and scan anyway."""
    with catlog.open(data_dir, hints=True, segment_size=128) as store:
        for i in range(12):
            store.put(b"key-%02d" % i, b"value %02d" % i)
    hints = sorted(p.name for p in Path(data_dir).glob("*.hint"))
    assert len(hints) >= 3, "every sealed segment got its hint"
    flip(Path(data_dir, segment(1)), HEADER_SIZE + 25)  # inside the first record's key
    status, out, _ = run(["repair", data_dir], capsys)
    assert status == 0, out
    assert sorted(p.name for p in Path(data_dir).glob("*.hint")) == hints[1:]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="catlog"), catlog.open(data_dir) as store:
        assert len(store) == 11
    assert [r.getMessage() for r in caplog.records] == [], "no stale hint, no warning"
