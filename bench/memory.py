"""Resident memory per key of an open store, each measured in a fresh interpreter.

A fresh process, because memory freed inside a long-lived one is not given back to the OS
predictably (pymalloc keeps arenas, glibc keeps heap): the earlier workloads would leave the
parent's RSS shaped by their garbage. The child imports everything first, takes a baseline,
opens the store (or builds the reference dict), collects garbage and measures again, so the
difference is what the open store keeps: its index, keys included.

Run as ``python -m bench.memory KIND PATH KEYS``; it prints one JSON object.
"""

from __future__ import annotations

import gc
import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Final

import psutil
import semidbm

import catlog

from .sizes import KEY_SIZE, VALUE_SIZE

KINDS: Final = ("catlog", "semidbm", "dict")
"""``dict`` is the reference: ``{16-byte key: (int, int, int)}``, the naive Bitcask keydir."""

REPOSITORY: Final = Path(__file__).resolve().parent.parent


def _rss() -> int:
    return int(psutil.Process().memory_info().rss)


def _reference_dict(keys: int) -> dict[bytes, tuple[int, int, int]]:
    """What a keydir of (segment, offset, size) tuples holds, with offsets as real as a store's."""
    rng = random.Random(1)
    record = 21 + KEY_SIZE + VALUE_SIZE
    return {rng.randbytes(KEY_SIZE): (1, 16 + i * record, VALUE_SIZE) for i in range(keys)}


def child(kind: str, path: str, keys: int) -> dict[str, int]:
    """The measurement itself; runs in the child process."""
    gc.collect()
    before = _rss()
    if kind == "catlog":
        held: object = catlog.open(path, fsync="never")
    elif kind == "semidbm":
        held = semidbm.open(path, "c")
    elif kind == "dict":
        held = _reference_dict(keys)
    else:
        raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")
    gc.collect()
    after = _rss()
    if isinstance(held, catlog.Store):
        assert len(held) == keys, "the store must hold the keys the parent built"
        held.close()
    return {"before": before, "after": after, "keys": keys}


def measure(kind: str, path: str, keys: int) -> float:
    """Bytes of resident memory per key that ``kind`` keeps for the ``keys`` keys in ``path``."""
    # ``-m`` from the repository root: bench/ is not installed, it is found beside catlog/.
    done = subprocess.run(
        [sys.executable, "-m", "bench.memory", kind, path, str(keys)],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        check=True,
    )
    found = json.loads(done.stdout)
    return (int(found["after"]) - int(found["before"])) / keys


if __name__ == "__main__":
    print(json.dumps(child(sys.argv[1], sys.argv[2], int(sys.argv[3]))))
