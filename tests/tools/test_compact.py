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
from tests.tools.layout import build, flip, run, segment, snapshot


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


def _segment_sizes(directory: str) -> list[int]:
    return [
        os.path.getsize(os.path.join(directory, name))
        for name in sorted(os.listdir(directory))
        if name.startswith("segment-") and name.endswith(".log")
    ]


@pytest.mark.spec("TOOL-42", "ENG-39")
def test_compact_segment_size_bounds_every_output(
    data_dir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with catlog.open(data_dir, segment_size=4096) as store:
        for round_ in range(2):
            for i in range(300):
                store.put(b"key-%03d" % i, b"%d" % round_ * 100)
        expected = dict(store.items())
    status, out, err = run(["compact", "--segment-size", "4096", data_dir], capsys)
    assert (status, err) == (0, ""), err
    written = int(re.search(r"into (\d+):", out).group(1))  # type: ignore[union-attr]
    assert written >= 300 * 100 // 4096, out
    assert max(_segment_sizes(data_dir)) <= 4096
    with catlog.open(data_dir) as store:
        assert dict(store.items()) == expected


@pytest.mark.spec("TOOL-42")
def test_compact_without_segment_size_uses_the_library_default(
    data_dir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with catlog.open(data_dir, segment_size=4096) as store:
        for i in range(300):
            store.put(b"key-%03d" % i, b"x" * 100)
    status, out, _ = run(["compact", data_dir], capsys)
    assert status == 0
    assert " into 1: " in out, "about 35 KB of live records fit in one 64 MiB output"
    assert catlog.DEFAULT_SEGMENT_SIZE == 64 * 1024 * 1024


@pytest.mark.spec("TOOL-42", "TOOL-40", "FMT-12")
@pytest.mark.parametrize("size", ["63", "536870913", "1073741825", "4k"])
def test_compact_refuses_a_segment_size_a_store_would_refuse(
    size: str, data_dir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    build(data_dir)
    before = snapshot(data_dir)
    with pytest.raises(SystemExit) as usage:
        run(["compact", "--segment-size", size, data_dir], capsys)
    assert usage.value.code == 2
    assert "--segment-size" in capsys.readouterr().err
    assert snapshot(data_dir) == before
