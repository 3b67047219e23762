"""The settings a store is opened with (the parameters of :func:`catlog.open`), checked once.

Every check here runs before the directory is touched, so a bad setting never leaves a lock or a
half-opened store behind; each raises ``ValueError`` (``TypeError`` for a path of the wrong type)
with the bounds it expected (spec/engine.md: ENG-9, ENG-15, ENG-25, ENG-30, ENG-41, ENG-43,
ENG-65, ENG-73, ENG-74).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Final, Literal, get_args

from .compactionplan import RESERVED_SLOTS, default_max_bytes
from .filecache import default_max_open_files
from .index import MAX_SEGMENT_SIZE, MAX_SLOTS

FsyncPolicy = Literal["always", "interval", "never"]
HintMode = bool | Literal["background"]
"""ENG-30, ENG-43: no hints at rotation, hints in the rotating call, or in a background thread."""
FSYNC_POLICIES: Final = get_args(FsyncPolicy)

DEFAULT_SEGMENT_SIZE: Final = 64 * 1024 * 1024
"""ENG-9: a new segment is started once the active one would grow past this many bytes."""
MIN_SEGMENT_SIZE: Final = 64
DEFAULT_FSYNC_INTERVAL_MS: Final = 1000
DEFAULT_COMPACTION_YIELD_MS: Final = 1.0
"""ENG-99: a background compaction's turn between sleeps, in ms."""


@dataclass(frozen=True, slots=True)
class StoreOptions:
    """The checked settings of one open store, defaults filled in."""

    path: str
    """The data directory, without a trailing slash (``/`` stays ``/``)."""
    fsync: FsyncPolicy
    segment_size: int
    fsync_interval_ms: int
    hints: HintMode
    compact_threshold: float | None
    compact_max_bytes: int
    """ENG-73: the bound on the input bytes of a compaction the trigger starts."""
    max_segments: int
    """ENG-74: the most segments open at once; writes leave RESERVED_SLOTS to compaction."""
    max_open_files: int
    """ENG-65: at most this many descriptors are held by open sealed segments."""
    compaction_yield_ms: float
    """ENG-99: a background compaction sleeps after each turn of this many ms of work."""


def check_options(
    path: str | os.PathLike[str],
    *,
    fsync: FsyncPolicy,
    segment_size: int,
    fsync_interval_ms: int,
    hints: HintMode,
    compact_threshold: float | None,
    compact_max_bytes: int | None,
    max_segments: int,
    max_open_files: int | None,
    compaction_yield_ms: float = DEFAULT_COMPACTION_YIELD_MS,
) -> StoreOptions:
    """The settings :func:`catlog.open` was given, checked, with their defaults filled in."""
    if not (hints is False or hints is True or hints == "background"):  # ENG-25: not 1
        raise ValueError(f"hints must be False, True or 'background', not {hints!r}")
    if compact_threshold is not None and not 0 < compact_threshold < 1:
        raise ValueError("compact_threshold must be between 0 and 1 (exclusive), or None")
    if fsync not in FSYNC_POLICIES:
        raise ValueError(f"fsync must be one of {', '.join(FSYNC_POLICIES)}, not {fsync!r}")
    if not MIN_SEGMENT_SIZE <= segment_size <= MAX_SEGMENT_SIZE:
        raise ValueError(
            f"segment_size must be between {MIN_SEGMENT_SIZE} and {MAX_SEGMENT_SIZE} bytes"
        )
    if fsync_interval_ms <= 0:
        raise ValueError("fsync_interval_ms must be positive")
    if max_open_files is not None and max_open_files < 1:
        raise ValueError("max_open_files must be at least 1, or None for the default")
    if type(compaction_yield_ms) not in (int, float) or not 0.01 <= compaction_yield_ms <= 1000:
        raise ValueError("compaction_yield_ms must be a number from 0.01 to 1000")
    if compact_max_bytes is None:
        compact_max_bytes = default_max_bytes(segment_size)
    if type(compact_max_bytes) is not int or compact_max_bytes <= 0:
        raise ValueError("compact_max_bytes must be a positive int or None")
    if type(max_segments) is not int or not 2 * RESERVED_SLOTS <= max_segments <= MAX_SLOTS:
        raise ValueError(f"max_segments must be between {2 * RESERVED_SLOTS} and {MAX_SLOTS}")
    directory: object = os.fspath(path)  # a bytes path passes the type checker's view
    if not isinstance(directory, str):
        kind = type(directory).__name__
        raise TypeError(f"path must be a str or an os.PathLike of str, not {kind}")
    return StoreOptions(
        path=directory.rstrip("/") or "/",
        fsync=fsync,
        segment_size=segment_size,
        fsync_interval_ms=fsync_interval_ms,
        hints=hints,
        compact_threshold=compact_threshold,
        compact_max_bytes=compact_max_bytes,
        max_segments=max_segments,
        max_open_files=default_max_open_files() if max_open_files is None else max_open_files,
        compaction_yield_ms=float(compaction_yield_ms),
    )
