"""``catlog compact DIR`` (TOOL-22): one compaction from the command line, and its report."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import catlog
from catlog.tools.progress import ProgressBar, render_progress
from tests.tools.layout import build, flip, run, segment


@pytest.mark.spec("TOOL-22", "TOOL-1", "ENG-39")
def test_compact_rewrites_the_directory_and_reports_what_it_reclaimed(
    data_dir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    expected = build(data_dir)
    with catlog.open(data_dir) as store:
        for key in list(expected)[:5]:
            store.put(key, b"newer")
            expected[key] = b"newer"
    status, out, err = run(["compact", data_dir], capsys)
    assert (status, err) == (0, "")
    match = re.fullmatch(
        r"compacted 3 segments into (\d+): (\d+) -> (\d+) bytes, (\d+) reclaimed \((\d+)%\); "
        r"10 records copied in [\d.]+ s\n",
        out,
    )
    assert match, out
    written, before, after, reclaimed, _ = map(int, match.groups())
    assert reclaimed == before - after > 0
    assert written == 1, "10 live records fit in one output"
    assert segment(1) not in os.listdir(data_dir)
    with catlog.open(data_dir) as store:
        assert dict(store.items()) == expected


@pytest.mark.spec("TOOL-22")
def test_compact_refuses_a_damaged_store_a_missing_one_and_a_locked_one(
    data_dir: str, capsys: pytest.CaptureFixture[str], tmp_path: object
) -> None:
    build(data_dir)
    flip(Path(data_dir, segment(1)), 30)
    before = sorted(os.listdir(data_dir))
    status, out, err = run(["compact", data_dir], capsys)
    assert (status, out) == (1, "")
    assert "segment-00001.log@16" in err
    assert sorted(os.listdir(data_dir)) == before
    status, _, err = run(["compact", f"{data_dir}/nowhere"], capsys)
    assert status == 2
    assert "nowhere" in err
    other = f"{tmp_path}/other"
    with catlog.open(other):
        status, _, err = run(["compact", other], capsys)
    assert status == 2
    assert "already open" in err


@pytest.mark.spec("TOOL-22", "TOOL-9")
def test_the_progress_bar_says_compacting() -> None:
    assert render_progress(1, 2, width=2, label="compacting").startswith("compacting [#-]")
    stream = io.StringIO()
    bar = ProgressBar(stream, 100, enabled=True, label="compacting")
    bar.update(50)
    assert stream.getvalue().startswith("\rcompacting [")


@pytest.mark.spec("TOOL-22", "SRV-2")
def test_compact_is_a_subcommand_of_python_m_catlog(data_dir: str) -> None:
    build(data_dir)
    done = subprocess.run(
        [sys.executable, "-m", "catlog", "compact", data_dir],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("compacted 3 segments into ")
