"""What a crash can keep of a simulated file system's unsynced changes (spec/recovery.md, REC-1).

The pure half of :mod:`catlog.simfs`: the changes a file or a directory records between syncs,
the nodes that hold them, the immutable images a :class:`DiskImage` is made of, and the fate a
crash deals each one. Only values live here, no file system, so the model reads on its own.

A crash keeps, for each file independently, a *prefix* of its changes: some changes whole, then
possibly part of the next append (a *torn* append), and after the torn bytes possibly zeros or
random garbage up to the length that append would have had. For each directory it keeps any
subset of its entry changes, applied in the order they were made (a rename is one change, so it is
atomic: the old name or the new one, never both or neither). Durable bytes and durable entries
always survive. A file whose name did not survive is gone with its data. The result is a fresh
:class:`SimFileSystem` on which everything is durable, no lock is held and no fault is armed.

This is the model published work says a careful application may rely on, and no more:

* ALICE (Pillai et al., "All File Systems Are Not Created Equal: On the Complexity of Crafting
  Crash-Consistent Applications", OSDI 2014) recorded system-call traces of real applications,
  replayed every crash state the traces allow under a file-system model, and found that appends
  are not atomic (a file may end in a prefix of an append, or in zeros or garbage up to its
  length), that creating or renaming a file is durable only after the directory is fsynced, and
  that operations on different files reach the disk in no promised order. Those three findings
  are the three degrees of freedom above. That a file keeps an in-order prefix of its own
  changes is the assumption spec/recovery.md states for ordered-data file systems.
* SQLite's crash-test VFS keeps the writes since the last sync and, at a simulated crash, keeps,
  drops or garbles each of them; its fault-injection VFS fails the Nth call of an operation, once
  or from then on, with an I/O error or "disk full". :meth:`SimFileSystem.fail` is that knob.
* LevelDB's fault-injection ``Env`` drops unsynced file data and deletes files created after the
  last directory sync; those are two of the states :meth:`DiskImage.crash_states` yields.

What it does not model: reordering of appends within one file and loss of fsynced data (catlog
reports corruption then, REC-6, and the corruption tests cover it), fsync failures that silently
drop dirty pages (the engine must never fsync again after one fails, REC-10, which the tests
check by counting calls). A directory is itself a name in its parent: made by ``makedirs``, it
too is durable only once the parent is synced.
"""

from __future__ import annotations

import enum
import posixpath
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final

ROOT: Final = "/"


class Fill(enum.Enum):
    """What a crash leaves after the surviving part of a torn append."""

    NOTHING = "nothing"
    """The file ends right after the bytes that survived."""
    ZEROS = "zeros"
    """The file's size was updated but the data never landed: zero bytes follow."""
    GARBAGE = "garbage"
    """Stale or random blocks follow (deterministic for a given state, so runs repeat)."""


# ------------------------------------------------------------------------------- changes


@dataclass(frozen=True, slots=True)
class Append:
    data: bytes


@dataclass(frozen=True, slots=True)
class Truncate:
    size: int


FileChange = Append | Truncate


@dataclass(frozen=True, slots=True)
class Link:
    """A name made in a directory: a file created, a directory made, or a rename's target."""

    name: str
    node: int


@dataclass(frozen=True, slots=True)
class Unlink:
    name: str


@dataclass(frozen=True, slots=True)
class Rename:
    """A rename within one directory: one change, so a crash keeps it whole or not at all."""

    src: str
    dst: str


DirChange = Link | Unlink | Rename


def _apply_file(data: bytearray, change: FileChange) -> None:
    if isinstance(change, Append):
        data += change.data
    elif change.size < len(data):
        del data[change.size :]
    else:
        data += bytes(change.size - len(data))


def _apply_dir(entries: dict[str, int], change: DirChange) -> None:
    if isinstance(change, Link):
        entries[change.name] = change.node
    elif isinstance(change, Unlink):
        entries.pop(change.name, None)
    elif change.src in entries:
        entries[change.dst] = entries.pop(change.src)


# ------------------------------------------------------------------------------- nodes


@dataclass(slots=True)
class _Inode:
    """A regular file: durable bytes, changes since the last sync, and the bytes as they are."""

    durable: bytes = b""
    changes: list[FileChange] = field(default_factory=list)
    data: bytearray = field(default_factory=bytearray)


@dataclass(slots=True)
class _Dir:
    durable: dict[str, int] = field(default_factory=dict)
    changes: list[DirChange] = field(default_factory=list)
    entries: dict[str, int] = field(default_factory=dict)


# ------------------------------------------------------------------------------- images


@dataclass(frozen=True, slots=True)
class FileImage:
    durable: bytes
    changes: tuple[FileChange, ...]


@dataclass(frozen=True, slots=True)
class DirImage:
    durable: tuple[tuple[str, int], ...]
    changes: tuple[DirChange, ...]


@dataclass(frozen=True, slots=True)
class FileFate:
    """What one file keeps of its unsynced changes at a crash (see the module docstring)."""

    applied: int
    """How many changes survive whole, oldest first."""
    torn: int = 0
    """Bytes of the next change (an append) that survive after those."""
    fill: Fill = Fill.NOTHING
    fill_bytes: int = 0
    """Zero or garbage bytes after the torn ones; at most what the append had left."""


@dataclass(frozen=True, slots=True)
class CrashState:
    """One way a crash can leave a :class:`DiskImage`.

    Files and directories not named in ``files`` / ``dirs`` keep all their changes when
    ``keep_rest`` is true, and none when it is false.
    """

    label: str
    keep_rest: bool
    files: tuple[tuple[int, FileFate], ...] = ()
    dirs: tuple[tuple[int, frozenset[int]], ...] = ()
    """For a directory, the indices of the changes that survive."""


@dataclass(frozen=True, slots=True)
class PendingFile:
    """A file with changes a crash could lose, as :meth:`DiskImage.pending_files` reports it."""

    node: int
    paths: tuple[str, ...]
    """Where the file is reachable now (empty for a removed file whose removal is unsynced)."""
    durable_size: int
    changes: tuple[FileChange, ...]


def _kept(rest: bool) -> str:
    return "kept" if rest else "lost"


def _describe(fate: FileFate) -> str:
    text = f"keeps {fate.applied} changes"
    if fate.torn or fate.fill_bytes:
        text += f" and {fate.torn} torn bytes"
    if fate.fill_bytes:
        text += f" then {fate.fill_bytes} bytes of {fate.fill.value}"
    return text


def _file_fates(
    changes: tuple[FileChange, ...], tears: int, rng: random.Random
) -> Iterator[FileFate]:
    for applied in range(len(changes) + 1):
        yield FileFate(applied)
        if applied == len(changes):
            break
        change = changes[applied]
        if not isinstance(change, Append) or len(change.data) < 2:
            continue
        size = len(change.data)
        points = {1, size // 2, size - 1}
        points.update(rng.randrange(1, size) for _ in range(tears))
        for torn in sorted(points):
            yield FileFate(applied, torn)
        middle = size // 2
        yield FileFate(applied, middle, Fill.ZEROS, size - middle)
        yield FileFate(applied, middle, Fill.GARBAGE, size - middle)
        yield FileFate(applied, 0, Fill.ZEROS, size)


def _random_fate(changes: tuple[FileChange, ...], rng: random.Random) -> FileFate:
    applied = rng.randint(0, len(changes))
    if applied == len(changes):
        return FileFate(applied)
    change = changes[applied]
    if not isinstance(change, Append) or not change.data:
        return FileFate(applied)
    size = len(change.data)
    torn = rng.randint(0, size - 1)
    fill = rng.choice(list(Fill))
    fill_bytes = 0 if fill is Fill.NOTHING else rng.randint(1, size - torn)
    return FileFate(applied, torn, fill, fill_bytes)


def _survivor(node: int, image: FileImage, fate: FileFate) -> bytes:
    """The bytes of one file after a crash with ``fate``."""
    assert 0 <= fate.applied <= len(image.changes), "a fate keeps changes the file had"
    data = bytearray(image.durable)
    for change in image.changes[: fate.applied]:
        _apply_file(data, change)
    if fate.torn or fate.fill_bytes:
        change = image.changes[fate.applied]
        assert isinstance(change, Append), "only an append can be torn"
        assert fate.torn + fate.fill_bytes <= len(change.data), "a tear stays within its append"
        data += change.data[: fate.torn]
        if fate.fill is Fill.ZEROS:
            data += bytes(fate.fill_bytes)
        elif fate.fill is Fill.GARBAGE:
            garbage = random.Random(f"garbage:{node}:{fate}")
            data += garbage.randbytes(fate.fill_bytes)
    return bytes(data)


def _resolve(
    durable: dict[int, dict[str, int]],
    changes: dict[int, tuple[DirChange, ...]],
    kept: dict[int, frozenset[int]],
) -> dict[str, int]:
    """Every file path reachable from the root, given which directory changes are kept."""
    entries: dict[int, dict[str, int]] = {}
    for node, found in durable.items():
        current = dict(found)
        for index, change in enumerate(changes[node]):
            if index in kept[node]:
                _apply_dir(current, change)
        entries[node] = current
    paths: dict[str, int] = {}
    stack = [(ROOT, 0)]
    while stack:
        path, node = stack.pop()
        for name, child in entries[node].items():
            child_path = posixpath.join(path, name)
            if child in entries:
                stack.append((child_path, child))
            else:
                paths[child_path] = child
    return paths
