"""The command line as a new user first meets it: ``python -m catlog`` and ``catlog stats``."""

from __future__ import annotations

import subprocess
import sys

import pytest

import catlog
from catlog.cli import main


def test_python_dash_m_catlog_help_lists_the_subcommands() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "catlog", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0
    assert "usage: catlog" in done.stdout
    for command in ("serve", "stats", "check", "dump", "repair", "compact"):
        assert command in done.stdout


@pytest.mark.spec("ENG-26", "REC-4")
def test_stats_prints_the_counters_and_any_tail_it_cut(
    data_dir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with catlog.open(data_dir) as store:
        store.put(b"a", b"1")
        store.put(b"b", b"2", ttl=10**9)
    with open(f"{data_dir}/segment-00001.log", "ab") as segment:
        segment.write(b"\0" * 30)
    assert main(["stats", data_dir]) == 0
    out = capsys.readouterr().out
    assert "keys            2" in out
    assert "expiring keys   1" in out
    assert "segment-00001.log@70: 30 bytes" in out


@pytest.mark.spec("ENG-20", "TOOL-40")
def test_stats_on_a_locked_directory_fails_with_a_clear_message(
    store: catlog.Store, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["stats", store.path]) == 2, "a lock held elsewhere: could not run (TOOL-40)"
    assert "already open" in capsys.readouterr().err
