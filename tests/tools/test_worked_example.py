"""tools.md section 5 run as written: the transcript in the spec is what the tools print."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import catlog
from tests.tools.layout import NOW_MS, SEGMENT_SIZE, build, flip, overwrite, run, segment

SPEC = Path(__file__).resolve().parents[2] / "spec" / "tools.md"


def section() -> str:
    return SPEC.read_text().split("## 5. A worked example", 1)[1]


def transcript() -> list[tuple[list[str], list[str]]]:
    """Each ``$ catlog ...`` command of section 5 and the lines printed after it."""
    block = re.search(r"```\n(.*?)```", section(), re.DOTALL)
    assert block is not None, "section 5 holds a transcript"
    commands: list[tuple[list[str], list[str]]] = []
    for line in block.group(1).splitlines():
        if line.startswith("$ "):
            commands.append((line[2:].split(), []))
        else:
            commands[-1][1].append(line)
    return commands


@pytest.mark.spec("TOOL-6", "TOOL-7", "TOOL-8", "TOOL-13", "TOOL-14", "TOOL-18")
def test_the_worked_example_of_tools_md_prints_what_the_spec_shows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    build("data")
    with catlog.open("data", segment_size=SEGMENT_SIZE, clock=catlog.ManualClock(NOW_MS)) as store:
        assert store.delete(b"k3")
    third = Path("data", segment(3))
    stated = re.search(r"(\d+)-byte DELETE", " ".join(section().split()))
    assert stated is not None
    assert third.stat().st_size - (16 + 2 * 43) == int(stated.group(1)), "the DELETE's size"
    flip(Path("data", segment(1)), 59 + 21 + 2)  # a bit of the value of the record at 59
    overwrite(Path("data", segment(1)), 145 + 13, b"\xff\xff\xff\xff")  # its key_len
    with third.open("ab") as tail:
        tail.write(b"\x01\x02\x03\x04\x05")
    status = None
    for argv, printed in transcript():
        if argv == ["echo", "$?"]:
            assert [str(status)] == printed
            continue
        assert argv[0] == "catlog"
        status, out, _ = run(argv[1:], capsys)
        assert out.splitlines() == printed, argv
