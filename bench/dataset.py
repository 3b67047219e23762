"""The keys and values every store is fed: random, reproducible, and made before any clock starts.

Keys are 16 random bytes, so they spread over any hash or B-tree the way real ids do and never
arrive sorted (sorted keys would flatter B-trees such as LMDB and SQLite). Values are 100 random
bytes, distinct per key, so no store can gain from repeats. A fixed seed makes two runs write the
same bytes, which keeps their file sizes and page-cache behaviour comparable.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Final

from .sizes import KEY_SIZE, VALUE_SIZE

SEED: Final = 20240611


def keys(count: int, seed: int = SEED) -> list[bytes]:
    """``count`` distinct random keys (a duplicate among 2**128 is not worth a check)."""
    rng = random.Random(seed)
    return [rng.randbytes(KEY_SIZE) for _ in range(count)]


def values(count: int, seed: int = SEED + 1) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(VALUE_SIZE) for _ in range(count)]


def shuffled(items: list[bytes], seed: int = SEED + 2) -> list[bytes]:
    """The same keys in another order, so reads do not follow the order of the writes."""
    copy = list(items)
    random.Random(seed).shuffle(copy)
    return copy


def pairs(count: int, seed: int = SEED + 3) -> Iterator[tuple[bytes, bytes]]:
    """Key-value pairs made one at a time, for stores too large to hold their data twice in RAM."""
    rng = random.Random(seed)
    for _ in range(count):
        yield rng.randbytes(KEY_SIZE), rng.randbytes(VALUE_SIZE)
