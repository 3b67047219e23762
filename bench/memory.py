"""Resident memory per key of an open store, each measured in a fresh interpreter.

A fresh process, because memory freed inside a long-lived one is not given back to the OS
predictably (pymalloc keeps arenas, glibc keeps heap): the earlier workloads would leave the
parent's RSS shaped by their garbage. The child imports everything first, takes a baseline,
opens the store (or builds the reference dict), collects garbage and measures again, so the
difference is what the open store keeps.

RSS is split in two. *Anonymous* resident memory (RSS less its file-backed, shared part) is the
process's own heap: the index, keys included, and the figure the target is about. *File-backed*
resident memory is page cache mapped into the process, which a store that reads its segments
through ``mmap`` gains as it touches them; the kernel can drop those pages under pressure, so
they are reported beside the figure rather than added to it.

:func:`child` runs in a child process of its own (:mod:`bench.tasks`, task ``memory``), started
for that one measurement with the catlog being measured on its path.
"""

from __future__ import annotations

import gc
import random
from typing import Final

import psutil
import semidbm

import catlog

from .sizes import KEY_SIZE, VALUE_SIZE

KINDS: Final = ("catlog", "semidbm", "dict")
"""``dict`` is the reference: ``{16-byte key: (int, int, int)}``, the naive Bitcask keydir."""


def _resident() -> tuple[int, int]:
    """(anonymous, file-backed) resident bytes; psutil's ``shared`` is statm's file-backed RSS."""
    info = psutil.Process().memory_info()
    return int(info.rss) - int(info.shared), int(info.shared)


def _reference_dict(keys: int) -> dict[bytes, tuple[int, int, int]]:
    """What a keydir of (segment, offset, size) tuples holds, with offsets as real as a store's."""
    rng = random.Random(1)
    record = 21 + KEY_SIZE + VALUE_SIZE
    return {rng.randbytes(KEY_SIZE): (1, 16 + i * record, VALUE_SIZE) for i in range(keys)}


def child(kind: str, path: str, keys: int) -> dict[str, int]:
    """The measurement itself; runs in the child process."""
    gc.collect()
    anonymous, file_backed = _resident()
    if kind == "catlog":
        held: object = catlog.open(path, fsync="never")
    elif kind == "semidbm":
        held = semidbm.open(path, "c")
    elif kind == "dict":
        held = _reference_dict(keys)
    else:
        raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")
    gc.collect()
    anonymous_after, file_backed_after = _resident()
    if isinstance(held, catlog.Store):
        assert len(held) == keys, "the store must hold the keys the parent built"
        held.close()
    return {
        "keys": keys,
        "anonymous": anonymous_after - anonymous,
        "file_backed": file_backed_after - file_backed,
    }
