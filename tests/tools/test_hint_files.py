"""The tools and hint files: check and repair leave hints alone, and open never trusts the hint of
a segment repair rewrote (FMT-15, FMT-19, REC-15, REC-16)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import catlog

from .layout import OFFSETS, build, flip, run, segment


def hints(directory: str) -> list[str]:
    return sorted(n for n in os.listdir(directory) if n.endswith(".hint"))


@pytest.mark.spec("FMT-15", "ENG-30")
def test_check_counts_hints_neither_as_segments_nor_as_problems(
    data_dir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    build(data_dir, hints=True)
    assert hints(data_dir) == ["segment-00001.hint", "segment-00002.hint"]
    status, out, err = run(["check", data_dir], capsys)
    assert status == 0, out
    assert err == ""
    assert out.startswith("clean: 3 segments,")
    assert ".hint" not in out


@pytest.mark.spec("REC-15", "REC-16", "FMT-19", "TOOL-24")
def test_after_repair_rewrites_a_segment_its_old_hint_is_stale_and_ignored(
    data_dir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    model = build(data_dir, hints=True)
    old_hint = Path(data_dir, "segment-00001.hint").read_bytes()
    flip(Path(data_dir, segment(1)), OFFSETS[1] + 30)  # a value byte of the second record
    with pytest.raises(catlog.CorruptionError):
        catlog.open(data_dir, hints=True)
    status, _out, _err = run(["repair", data_dir], capsys)
    assert status == 0
    assert not Path(data_dir, "segment-00001.hint").exists(), "TOOL-24: repair removes it"
    # As an older catlog's repair left it: a hint of bytes that are gone must be ignored.
    Path(data_dir, "segment-00001.hint").write_bytes(old_hint)
    with catlog.open(data_dir, hints=True) as store:
        found = dict(store.items())
    for name in hints(data_dir):
        os.remove(os.path.join(data_dir, name))
    with catlog.open(data_dir, hints=True) as store:
        assert dict(store.items()) == found, "the stale hint was not used"
    lost = set(model) - set(found)
    assert len(lost) <= 1, "only the damaged record's key can have lost its value"
