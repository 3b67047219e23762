"""Crash at every operation of a rotation that writes a hint (ENG-30), in every way REC-1 allows,
with the hint written in the rotating call and by the background thread (ENG-43). The thread's
operations fall between the writer's wherever the scheduler puts them; the simulated file system
takes an image after every operation of either, so every crash point of the run is checked.

After each crash the directory must recover a prefix holding every durable write (REC-2), and the
store opened through whatever hint survived must equal the store opened with every hint removed:
a half-written, torn or stale hint is never trusted (REC-15, REC-16).
"""

from __future__ import annotations

import pytest

import catlog
from catlog.simfs import SimFileSystem

from .test_crash_points import DIRECTORY, Step, drive, fresh_fs, open_store, systematic

SEGMENT_SIZE = 160


def recovered(fs: SimFileSystem) -> dict[bytes, bytes] | str:
    try:
        with open_store(fs, "always", SEGMENT_SIZE) as store:
            return dict(store.items())
    except catlog.CatlogError as exc:
        return f"{type(exc).__name__}: {exc}"


def without_hints(fs: SimFileSystem) -> SimFileSystem:
    for name in fs.listdir(DIRECTORY):
        if ".hint" in name:
            fs.remove(f"{DIRECTORY}/{name}")
    return fs


@pytest.mark.spec("ENG-30", "ENG-43", "REC-2", "REC-15", "REC-16", "ENG-32")
@pytest.mark.parametrize("policy", ["always", "never"])
@pytest.mark.parametrize("hints", [True, "background"])
def test_a_crash_anywhere_in_a_hinted_rotation_never_trusts_a_bad_hint(
    policy: str, hints: catlog.HintMode
) -> None:
    steps = [Step("put", b"k%d" % (i % 3), b"value-%d" % i if i % 4 else b"") for i in range(9)]
    steps += [Step("delete", b"k1"), Step("put", b"k2", b"last")]
    fs = fresh_fs()
    run = drive(fs, policy, steps, segment_size=SEGMENT_SIZE, hints=hints)  # type: ignore[arg-type]
    hinted_rotations = [op for op in run.trace if op[0] == "rename" and ".hint" in op[1]]
    assert len(hinted_rotations) >= 2, "the workload must seal segments"
    failures: list[str] = []
    seen: set[tuple[tuple[str, bytes], ...]] = set()
    for image in run.images:
        low, high = run.bounds(image.operations)
        for state in systematic(image):
            crashed = image.crash(state)
            disk = tuple(crashed.snapshot().items())
            if disk in seen:
                continue
            seen.add(disk)
            through_hints = recovered(crashed)
            ok = isinstance(through_hints, dict) and any(
                run.states[n] == through_hints for n in range(low, high + 1)
            )
            scanned = recovered(without_hints(image.crash(state)))
            if not ok or scanned != through_hints:
                failures.append(
                    f"after operation {image.operations} in '{state.label}': hints gave "
                    f"{through_hints!r}, scanning gave {scanned!r}, allowed n in [{low}, {high}]"
                )
    assert not failures, "\n".join(failures[:5])
