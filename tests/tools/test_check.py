"""``catlog check DIR``: every problem with its file and offset, a summary, and an exit status."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

import catlog
from catlog import cli
from catlog.codec import encode_record
from catlog.tools import progress
from catlog.tools.progress import ProgressBar, render_progress
from tests.store.recording_fs import RecordingFileSystem
from tests.tools.layout import (
    FULL_SIZE,
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


@pytest.mark.spec("TOOL-1", "TOOL-7", "TOOL-8")
def test_a_clean_directory_exits_zero_with_a_summary(
    data_dir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    build(data_dir)
    with catlog.open(data_dir) as store:
        store.delete(b"k0")
    status, out, err = run(["check", data_dir], capsys)
    assert status == 0
    assert err == ""
    size = 2 * FULL_SIZE + HEADER_SIZE + 2 * RECORD_SIZE + 23
    assert out.splitlines() == [
        f"clean: 3 segments, {size} bytes, 11 records (10 puts, 1 delete), 9 live keys, 0 problems"
    ]


@pytest.mark.spec("TOOL-5", "TOOL-6", "TOOL-8", "TOOL-3")
def test_every_problem_in_every_segment_is_listed_and_the_exit_status_is_one(
    data_dir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    build(data_dir)
    flip(Path(data_dir, segment(1)), OFFSETS[1] + 30)
    flip(Path(data_dir, segment(1)), OFFSETS[3] + 2)
    overwrite(Path(data_dir, segment(2)), OFFSETS[2] + 17, b"\xff\xff\xff\x7f")
    before = snapshot(data_dir)
    status, out, _ = run(["check", data_dir], capsys)
    assert status == 1
    lines = out.splitlines()
    assert lines[:3] == [
        f"{segment(1)}@59: crc mismatch (43 bytes, 59..102; corrupt)",
        f"{segment(1)}@145: crc mismatch (43 bytes, 145..188; corrupt)",
        f"{segment(2)}@102: length field out of range: key_len=2 value_len=2147483647 "
        "(43 bytes, 102..145; corrupt)",
    ]
    assert (
        lines[3]
        == f"hint: `catlog repair {data_dir}` keeps every valid record, sets the rest aside"
    )
    assert lines[4].startswith("damaged: 3 segments, ")
    assert lines[4].endswith(", 7 records (7 puts, 0 deletes), 7 live keys, 3 problems")
    assert len(lines) == 5
    assert snapshot(data_dir) == before


@pytest.mark.spec("TOOL-4", "TOOL-6", "TOOL-8", "REC-4")
def test_a_torn_tail_alone_exits_three_and_open_then_succeeds(
    data_dir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    build(data_dir)
    newest = Path(data_dir, segment(3))
    newest.write_bytes(newest.read_bytes() + b"\x07" * 30)
    status, out, _ = run(["check", data_dir], capsys)
    assert status == 3
    end = HEADER_SIZE + 2 * RECORD_SIZE
    assert out.splitlines()[0].startswith(f"{segment(3)}@{end}: ")
    assert out.splitlines()[0].endswith(f"(30 bytes, {end}..{end + 30}; torn tail, open cuts it)")
    assert out.splitlines()[-1].startswith("torn tail: ")
    with catlog.open(data_dir) as store:
        assert store.stats().tail_repairs[0].offset == end


@pytest.mark.spec("TOOL-4", "TOOL-8", "REC-6")
def test_the_same_bytes_at_the_end_of_an_older_segment_are_corruption(
    data_dir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    build(data_dir)
    older = Path(data_dir, segment(2))
    older.write_bytes(older.read_bytes() + b"\x07" * 30)
    status, out, _ = run(["check", data_dir], capsys)
    assert status == 1
    assert out.splitlines()[0].endswith("(30 bytes, 188..218; corrupt)")
    with pytest.raises(catlog.CorruptionError):
        catlog.open(data_dir)


@pytest.mark.spec("TOOL-4", "TOOL-8", "FMT-3")
def test_an_unknown_version_is_unreadable_and_exits_one(
    data_dir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    build(data_dir)
    overwrite(Path(data_dir, segment(2)), 0, segment_header(version=9))
    status, out, _ = run(["check", data_dir], capsys)
    assert status == 1
    assert f"{segment(2)}@0: unsupported segment format version 9" in out
    assert out.splitlines()[-1].startswith("unreadable: ")
    assert "catlog repair will not touch them" in out.splitlines()[-2]


@pytest.mark.spec("TOOL-7", "REC-5", "FMT-25")
def test_quarantine_files_and_an_empty_newest_segment_are_notes_not_problems(
    data_dir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    build(data_dir)
    Path(data_dir, segment(3) + ".torn-102").write_bytes(b"\0" * 5)
    Path(data_dir, segment(1) + ".damaged-59.2").write_bytes(b"x")
    Path(data_dir, segment(4)).write_bytes(b"")
    Path(data_dir, segment(2) + ".repairing").write_bytes(b"")
    Path(data_dir, segment(9) + ".compacting").write_bytes(b"")
    Path(data_dir, "segment-9.log.compacting").write_bytes(b"")  # no segment's name: not noted
    status, out, _ = run(["check", data_dir], capsys)
    assert status == 0
    assert out.splitlines()[:-1] == [
        f"note: {segment(4)}: empty newest segment; open writes its header (REC-5)",
        f"note: {segment(1)}.damaged-59.2: quarantine file, 1 byte (REC-12)",
        f"note: {segment(2)}.repairing: left by an interrupted repair; catlog repair removes it",
        f"note: {segment(3)}.torn-102: quarantine file, 5 bytes (REC-12)",
        f"note: {segment(9)}.compacting: left by an interrupted compaction; opening the store "
        "removes it (REC-18)",
    ]


@pytest.mark.spec("TOOL-2", "TOOL-8", "ENG-20")
def test_check_of_a_directory_a_store_holds_exits_two_naming_the_pid(
    store: catlog.Store, capsys: pytest.CaptureFixture[str]
) -> None:
    store.put(b"a", b"1")
    status, out, err = run(["check", store.path], capsys)
    assert status == 2
    assert out == ""
    assert f"(pid {os.getpid()})" in err
    assert store.path in err


@pytest.mark.spec("TOOL-21")
def test_check_no_lock_reads_a_directory_a_store_holds(
    store: catlog.Store, capsys: pytest.CaptureFixture[str]
) -> None:
    store.put(b"a", b"1")
    status, out, _ = run(["check", "--no-lock", store.path], capsys)
    assert status == 0
    assert out.startswith("clean: 1 segment, ")


@pytest.mark.spec("TOOL-8")
def test_a_path_without_segments_is_a_usage_error_and_gets_no_lock_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = run(["check", str(tmp_path)], capsys)
    assert status == 2
    assert "holds no segment files" in err
    assert list(tmp_path.iterdir()) == []
    status, _, err = run(["check", str(tmp_path / "missing")], capsys)
    assert status == 2
    assert "missing" in err
    with pytest.raises(SystemExit) as usage:
        cli.main(["check"])
    assert usage.value.code == 2


@pytest.mark.spec("TOOL-1", "TOOL-2")
def test_check_does_its_file_operations_through_the_file_system_it_is_given(
    data_dir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    build(data_dir)
    fs = RecordingFileSystem()
    assert cli.main(["check", data_dir], fs=fs) == 0
    capsys.readouterr()
    assert fs.ops("lock") == ["LOCK"]
    assert set(fs.ops("pread")) == {segment(1), segment(2), segment(3)}
    assert fs.ops("append") == fs.ops("rename") == fs.ops("remove") == []


@pytest.mark.spec("TOOL-8", "TOOL-6")
def test_python_dash_m_catlog_check_in_a_real_process(data_dir: str) -> None:
    build(data_dir)
    flip(Path(data_dir, segment(2)), OFFSETS[0] + 22)
    done = subprocess.run(
        [sys.executable, "-m", "catlog", "check", data_dir],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stdout.startswith(f"{segment(2)}@16: crc mismatch (43 bytes, 16..59; corrupt)\n")
    assert done.stderr == ""


# ------------------------------------------------------------------------- the progress bar


@pytest.mark.spec("TOOL-9")
def test_the_bar_shows_the_fraction_done() -> None:
    assert render_progress(0, 10 * 1024 * 1024, width=10) == (
        "checking [----------]   0% 0.0/10.0 MiB"
    )
    assert render_progress(3 * 1024 * 1024, 10 * 1024 * 1024, width=10) == (
        "checking [###-------]  30% 3.0/10.0 MiB"
    )
    assert render_progress(5, 5, width=4) == "checking [####] 100% 0.0/0.0 MiB"
    assert render_progress(9, 5, width=4).startswith("checking [####] 100%")
    assert render_progress(0, 0, width=4).startswith("checking [####] 100%")


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.spec("TOOL-9")
def test_the_bar_is_drawn_only_on_a_terminal_and_only_for_large_directories() -> None:
    big = 100 * 1024 * 1024
    assert not ProgressBar.for_stream(io.StringIO(), big)._enabled
    assert not ProgressBar.for_stream(FakeTerminal(), 1024)._enabled
    terminal = FakeTerminal()
    bar = ProgressBar.for_stream(terminal, big)
    bar.update(big // 2)
    bar.update(big // 2 + 1)  # below one step further: not redrawn
    assert terminal.getvalue() == "\r" + render_progress(big // 2, big)
    bar.clear()
    assert terminal.getvalue().endswith("\r")
    assert terminal.getvalue().count("\r") == 3


@pytest.mark.spec("TOOL-9")
def test_check_draws_no_bar_when_stderr_is_not_a_terminal(
    data_dir: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    build(data_dir)
    monkeypatch.setattr(progress, "PROGRESS_MIN_BYTES", 0)
    status, _, err = run(["check", data_dir], capsys)
    assert (status, err) == (0, "")


@pytest.mark.spec("TOOL-9")
def test_check_on_a_terminal_draws_the_bar_and_erases_it_before_problem_lines(
    data_dir: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    build(data_dir)
    flip(Path(data_dir, segment(2)), OFFSETS[1] + 22)
    terminal = FakeTerminal()
    monkeypatch.setattr(progress, "PROGRESS_MIN_BYTES", 0)
    monkeypatch.setattr(sys, "stderr", terminal)
    assert cli.main(["check", data_dir]) == 1
    drawn = terminal.getvalue()
    assert "checking [" in drawn
    assert drawn.endswith("\r")  # erased at the end
    assert capsys.readouterr().out.startswith(f"{segment(2)}@59: crc mismatch")


def test_craft_record_matches_the_codec() -> None:
    """The tests' own record builder agrees with the engine (so damage tests mean something)."""
    assert craft_record(1, b"name", b"Bob", 5) == encode_record(1, 5, b"name", b"Bob")
