"""Random damage, then repair: open works, no value is garbage, check is clean, a rerun is a no-op.

Hypothesis writes a random workload across several small segments, damages the files at random
(flipped bits, zeroed ranges, garbage, huge length fields, cut or extended files, inserted bytes),
and checks the promises of spec/tools.md against what the store then returns. Before repairing,
it also checks that ``catlog check``'s verdict predicts what opening the store does (TOOL-4,
TOOL-8).
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import catlog
from catlog.cli import main
from catlog.repair import repair_directory
from tests.tools.layout import NOW_MS, snapshot

KEYS = [b"", b"a", b"bb", b"key-3", b"k" * 20]


@dataclass(frozen=True)
class Damage:
    kind: str
    segment: int
    position: int
    length: int
    data: bytes


damages = st.builds(
    Damage,
    kind=st.sampled_from(["flip", "zero", "garbage", "huge", "cut", "extend", "insert"]),
    segment=st.integers(0, 50),
    position=st.integers(0, 10_000),
    length=st.integers(1, 60),
    data=st.binary(min_size=1, max_size=40),
)

writes = st.lists(
    st.tuples(st.sampled_from(KEYS), st.none() | st.binary(max_size=40)), min_size=1, max_size=30
)


def apply(directory: str, damage: Damage) -> None:
    names = sorted(n for n in os.listdir(directory) if n.endswith(".log"))
    path = Path(directory, names[damage.segment % len(names)])
    data = bytearray(path.read_bytes())
    at = damage.position % (len(data) + 1)
    if damage.kind == "flip" and data:
        data[at % len(data)] ^= 1 << (damage.length % 8)
    elif damage.kind == "zero":
        data[at : at + damage.length] = bytes(len(data[at : at + damage.length]))
    elif damage.kind == "garbage":
        data[at : at + len(damage.data)] = damage.data
    elif damage.kind == "huge":
        data[at : at + 4] = b"\xff\xff\xff\x7f"
    elif damage.kind == "cut":
        del data[at:]
    elif damage.kind == "extend":
        data += damage.data
    elif damage.kind == "insert":
        data[at:at] = damage.data
    path.write_bytes(bytes(data))


def quiet_main(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        status = main(argv)
    return status, out.getvalue()


def opens(directory: str) -> bool:
    try:
        with catlog.open(directory):
            return True
    except catlog.CorruptionError:
        return False


@pytest.mark.spec("TOOL-16", "TOOL-14", "TOOL-8", "TOOL-4", "TOOL-3")
@given(workload=writes, damage=st.lists(damages, min_size=1, max_size=4))
def test_after_any_damage_repair_leaves_a_store_of_values_really_written(
    workload: list[tuple[bytes, bytes | None]], damage: list[Damage]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = f"{tmp}/data"
        written: dict[bytes, set[bytes]] = {key: set() for key in KEYS}
        with catlog.open(
            directory, segment_size=128, fsync="never", clock=catlog.ManualClock(NOW_MS)
        ) as store:
            for key, value in workload:
                if value is None:
                    store.delete(key)
                else:
                    store.put(key, value)
                    written[key].add(value)
        for hit in damage:
            apply(directory, hit)

        # check predicts open (TOOL-8): 0 or 3 means open succeeds, 1 means it refuses.
        status, _ = quiet_main(["check", directory])
        trial = f"{tmp}/trial"
        shutil.copytree(directory, trial)
        assert status in (0, 1, 3)
        assert opens(trial) == (status != 1)

        report = repair_directory(directory)
        assert not report.refused
        for seg in report.repaired:  # not a byte lost: kept, quarantined, or a replaced header
            assert seg.old_size - seg.bytes_quarantined - (seg.new_size - 16) in (0, 16)
        with catlog.open(directory) as store:
            for key in store:
                assert store[key] in written[key]
        assert quiet_main(["check", directory])[0] == 0
        before = snapshot(directory)
        second = repair_directory(directory)
        assert not second.changed
        assert second.repaired == ()
        assert snapshot(directory) == before
