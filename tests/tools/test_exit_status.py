"""One exit-status table for every tool (TOOL-38 .. TOOL-41): each tool run on a clean, a damaged,
a locked and a missing directory, and with bad arguments."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

import pytest

import catlog
from catlog.cli import main
from tests.tools.layout import build, flip, segment, snapshot

TOOLS: dict[str, Callable[[str, Path], list[str]]] = {
    "stats": lambda d, _: ["stats", d],
    "check": lambda d, _: ["check", d],
    "dump": lambda d, _: ["dump", d],
    "repair": lambda d, _: ["repair", d],
    "compact": lambda d, _: ["compact", d],
    "map": lambda d, tmp: ["map", d, "--html", str(tmp / "map.html")],
    "export": lambda d, _: ["export", d],
}

EXPECTED: dict[str, dict[str, int]] = {
    "stats": {"clean": 0, "damaged": 1, "locked": 2, "missing": 2, "bad_arguments": 2},
    "check": {"clean": 0, "damaged": 1, "locked": 2, "missing": 2, "bad_arguments": 2},
    "dump": {"clean": 0, "damaged": 0, "locked": 0, "missing": 2, "bad_arguments": 2},
    "repair": {"clean": 0, "damaged": 0, "locked": 2, "missing": 2, "bad_arguments": 2},
    "compact": {"clean": 0, "damaged": 1, "locked": 2, "missing": 2, "bad_arguments": 2},
    "map": {"clean": 0, "damaged": 0, "locked": 0, "missing": 2, "bad_arguments": 2},
    "export": {"clean": 0, "damaged": 1, "locked": 0, "missing": 2, "bad_arguments": 2},
}
"""TOOL-38: dump, map and export read without the lock (TOOL-36); repair mends this damage."""

SITUATIONS = ["clean", "damaged", "locked", "missing", "bad_arguments"]


def status_of(argv: list[str]) -> int:
    """``catlog <argv>``'s exit status, argparse's ``SystemExit`` included."""
    try:
        return main(argv)
    except SystemExit as exit_:
        code = exit_.code
    assert isinstance(code, int), code
    return code


@contextmanager
def held(directory: str) -> Iterator[None]:
    with catlog.open(directory):
        yield


@pytest.mark.spec("TOOL-38", "TOOL-39", "TOOL-40", "TOOL-41", "TOOL-1")
@pytest.mark.parametrize("situation", SITUATIONS)
@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_every_tool_exits_by_the_one_table(
    tool: str, situation: str, data_dir: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    build(data_dir)
    target = data_dir
    argv = TOOLS[tool](target, tmp_path)
    holder: AbstractContextManager[None] = nullcontext()
    if situation == "damaged":
        flip(Path(data_dir, segment(1)), 30)  # a crc mismatch in an older segment: REC-6
    elif situation == "locked":
        holder = held(data_dir)
    elif situation == "missing":
        argv = TOOLS[tool](f"{data_dir}/nowhere", tmp_path)
    elif situation == "bad_arguments":
        argv = [argv[0], "--no-such-option", *argv[1:]]
    with holder:
        before = snapshot(data_dir)
        status = status_of(argv)
        after = snapshot(data_dir)
    out, err = capsys.readouterr()
    assert status == EXPECTED[tool][situation], f"catlog {' '.join(argv)}: {err}"
    if status == 2 or (status == 1 and tool != "check"):  # check's verdict is on stdout
        assert err, "the reason is on stderr"
    if status in (1, 2):
        assert after == before, "a tool that exits 1 or 2 changes no file"
        assert not os.path.exists(f"{data_dir}/nowhere"), "no tool creates a directory"
    if status == 1 and tool == "export":
        assert out == ""
