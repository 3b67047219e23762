"""Real processes, really killed: every put acknowledged under fsync="always" survives SIGKILL.

The simulated crashes of ``test_crash_points.py`` are only as good as the simulation; this suite
asks the real operating system. A child process writes ``k0``, ``k1``, ... in order and prints each
index only after ``put`` returned; the parent kills it with SIGKILL at a random moment (so, in
time, in the middle of a write, an fsync, a rotation or a tail repair), reopens the directory and
checks REC-2 and REC-8: every acknowledged key is there with its value, and the keys present are
a contiguous prefix with at most one more key than were acknowledged (the put in flight). The next
child then carries on in the same directory, so later trials start by recovering from the earlier
kills.

A killed process leaves the page cache intact, so this checks the engine's own ordering (buffer,
write, fsync, acknowledge) and its recovery, not the disk's: power loss is the simulated suites'
job. ``CATLOG_CRASH_DEPTH=long`` runs many more trials.
"""

from __future__ import annotations

import os
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Final

import pytest

import catlog

LONG: Final = os.environ.get("CATLOG_CRASH_DEPTH", "ci") == "long"
TRIALS: Final = 60 if LONG else 5
SEGMENT_SIZE: Final = 4096
"""Small, so that kills land in rotations too."""
START_TIMEOUT: Final = 20.0
"""Seconds a child may take to acknowledge its first put before the trial fails."""

CHILD: Final = """
import sys
import catlog

directory, first, segment_size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
store = catlog.open(directory, fsync="always", segment_size=segment_size)
i = first
while True:
    store.put(b"k%d" % i, b"value of key %d " % i * (1 + i % 7))
    print(i, flush=True)
    i += 1
"""


def value_of(i: int) -> bytes:
    return b"value of key %d " % i * (1 + i % 7)


def run_and_kill(directory: str, first: int, rng: random.Random) -> list[int]:
    """Start a writer at key ``first``, kill it after a random delay, return what it acked."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, directory, str(first), str(SEGMENT_SIZE)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None
    try:
        ready, _, _ = select.select([child.stdout], [], [], START_TIMEOUT)
        assert ready, "the child acknowledged nothing in time"
        time.sleep(rng.uniform(0.0, 0.15))
        child.send_signal(signal.SIGKILL)
        out, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL, err.decode(errors="replace")
    return [int(line) for line in out.decode().split()]


@pytest.mark.spec("REC-2", "REC-8", "ENG-14", "ENG-20", "REC-4")
def test_every_acknowledged_put_survives_sigkill(tmp_path: Path) -> None:
    directory = str(tmp_path / "data")
    rng = random.Random(int.from_bytes(os.urandom(4)))
    present = 0
    for trial in range(TRIALS):
        acked = run_and_kill(directory, present, rng)
        assert acked == list(range(present, present + len(acked))), "acks come in order"
        last_acked = acked[-1] if acked else present - 1
        with catlog.open(directory, segment_size=SEGMENT_SIZE) as store:
            keys = sorted(int(key[1:]) for key in store)
            for i in keys:
                assert store[b"k%d" % i] == value_of(i), f"trial {trial}: k{i} has a wrong value"
        count = len(keys)
        assert keys == list(range(count)), f"trial {trial}: keys are not a prefix: {keys[-5:]}"
        assert count > last_acked, f"trial {trial}: acknowledged k{last_acked} was lost"
        assert count <= last_acked + 2, f"trial {trial}: more than the one put in flight"
        present = count
    assert present > TRIALS, "every trial wrote something"
