"""An in-memory file system that can crash: the edge the crash tests stand on (spec/recovery.md).

:class:`SimFileSystem` implements :class:`catlog.fs.FileSystem` exactly, so the real engine runs on
it unchanged (``catlog.open(path, fs=SimFileSystem())``). It differs from the disk in two ways that
tests need: it remembers what is *durable* apart from what is merely *written*, so it can show the
states a crash could leave (REC-1), and it can fail any call on demand.

Theory of operation
-------------------
Every file (an *inode*) holds its durable bytes and the list of changes made since its last
``sync``: appends and truncates, in the order they were made. Every directory holds its durable
entries (name -> inode) and the list of entry changes made since its last ``sync_dir``: a name
linked (a file created, a directory made), unlinked (removed) or renamed. ``sync`` folds a file's
changes into its durable bytes; ``sync_dir`` does the same for a directory's entries.

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

Crashing is done on a :class:`DiskImage`, an immutable snapshot that :meth:`SimFileSystem.image`
takes cheaply at any moment: take one after every operation (the ``observer`` hook) and each is a
crash point. :meth:`DiskImage.crash_states` yields a bounded, systematic set of crash states for
an image, :meth:`DiskImage.random_state` draws one at random, and :meth:`DiskImage.crash` builds
the file system a machine would show after crashing in that state.

:meth:`SimFileSystem.kill` is the other kind of crash, the process alone: locks are released and
open files die, but everything written stays where it was, durable or not (the page cache
survives a ``kill -9``).
"""

from __future__ import annotations

import enum
import errno
import itertools
import os
import posixpath
import random
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Final, Literal

from .fs import File, FileLock

Operation = Literal[
    "open",
    "exists",
    "listdir",
    "makedirs",
    "rename",
    "remove",
    "sync_dir",
    "lock",
    "size",
    "pread",
    "append",
    "truncate",
    "sync",
    "close",
]

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


@dataclass(frozen=True, slots=True)
class DiskImage:
    """An immutable snapshot of a :class:`SimFileSystem`: what is durable and what is pending."""

    files: tuple[tuple[int, FileImage], ...]
    dirs: tuple[tuple[int, DirImage], ...]
    operations: int
    """How many operations the file system had performed when the image was taken."""

    def pending_files(self) -> list[PendingFile]:
        current = _resolve(
            {node: dict(image.durable) for node, image in self.dirs},
            {node: image.changes for node, image in self.dirs},
            {node: frozenset(range(len(image.changes))) for node, image in self.dirs},
        )
        paths: dict[int, list[str]] = {}
        for path, node in current.items():
            paths.setdefault(node, []).append(path)
        return [
            PendingFile(node, tuple(sorted(paths.get(node, []))), len(f.durable), f.changes)
            for node, f in self.files
            if f.changes
        ]

    def pending_dirs(self) -> dict[int, int]:
        """Directory node -> number of unsynced entry changes, for directories that have some."""
        return {node: len(d.changes) for node, d in self.dirs if d.changes}

    def crash(self, state: CrashState) -> SimFileSystem:
        """The file system a machine shows after crashing in ``state``: all of it durable."""
        fates = dict(state.files)
        kept_dir_changes = dict(state.dirs)
        dir_images = dict(self.dirs)
        kept = {
            node: kept_dir_changes.get(
                node, frozenset(range(len(image.changes)) if state.keep_rest else ())
            )
            for node, image in self.dirs
        }
        fs = SimFileSystem()
        entries: dict[int, dict[str, int]] = {}
        for node, dir_image in dir_images.items():
            found = dict(dir_image.durable)
            for index, change in enumerate(dir_image.changes):
                if index in kept[node]:
                    _apply_dir(found, change)
            entries[node] = found
        contents: dict[int, bytes] = {}
        for node, image in self.files:
            fate = fates.get(node)
            if fate is None:
                fate = FileFate(len(image.changes)) if state.keep_rest else FileFate(0)
            contents[node] = _survivor(node, image, fate)
        fs._adopt(entries, contents)
        return fs

    def crash_states(
        self, *, tears: int = 2, seed: int = 0, select: Callable[[str], bool] | None = None
    ) -> Iterator[CrashState]:
        """A systematic set of crash states for this image; see spec/recovery.md (REC-1).

        Yields: everything unsynced lost; everything kept; for each file with unsynced changes,
        each whole-change prefix and appends torn at their first byte, their middle, their last
        byte and ``tears`` random bytes (the middle one also followed by zeros and by garbage to
        the append's full length), each with every other file's changes lost and then kept; and
        for each directory with unsynced entry changes, every subset of them (when there are
        more than four: each one dropped alone, and each prefix), with file changes lost and then
        kept.

        ``select``, if given, picks by path the files that get states of their own (say, only
        segments, not a lock file); the others go along with the rest.
        """
        rng = random.Random(f"{seed}:{self.operations}")
        yield CrashState("all unsynced lost", keep_rest=False)
        yield CrashState("all unsynced kept", keep_rest=True)
        keep_dirs = tuple(
            (node, frozenset(range(len(d.changes)))) for node, d in self.dirs if d.changes
        )
        paths = {pending.node: pending.paths for pending in self.pending_files()}
        for node, image in self.files:
            if not image.changes:
                continue
            if select is not None and not any(select(path) for path in paths[node]):
                continue
            for fate in _file_fates(image.changes, tears, rng):
                for rest in (False, True):
                    label = f"file {node} {_describe(fate)}, other files {_kept(rest)}"
                    yield CrashState(label, rest, ((node, fate),), () if rest else keep_dirs)
        for node, dir_image in self.dirs:
            count = len(dir_image.changes)
            if not count:
                continue
            if count <= 4:
                subsets: list[frozenset[int]] = [
                    frozenset(c)
                    for size in range(count + 1)
                    for c in itertools.combinations(range(count), size)
                ]
            else:
                subsets = [frozenset(range(count)) - {i} for i in range(count)]
                subsets += [frozenset(range(i)) for i in range(count)]
            for subset in subsets:
                for rest in (False, True):
                    label = f"dir {node} keeps changes {sorted(subset)}, files {_kept(rest)}"
                    others = tuple((n, f) for n, f in keep_dirs if n != node) if not rest else ()
                    yield CrashState(label, rest, (), ((node, subset), *others))

    def random_state(self, rng: random.Random) -> CrashState:
        """One crash state drawn at random: every file and directory chooses independently."""
        files: list[tuple[int, FileFate]] = []
        for node, image in self.files:
            if image.changes:
                files.append((node, _random_fate(image.changes, rng)))
        dirs = [
            (node, frozenset(i for i in range(len(d.changes)) if rng.random() < 0.5))
            for node, d in self.dirs
            if d.changes
        ]
        return CrashState("random", True, tuple(files), tuple(dirs))


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


# ------------------------------------------------------------------------------- faults


@dataclass(slots=True)
class _Fault:
    countdown: int
    error: int
    persistent: bool
    partial: int
    fired: bool = False


class SimulatedKill(Exception):  # noqa: N818 - named for what it is, like KeyboardInterrupt
    """Raised by an operation of a killed process (see :meth:`SimFileSystem.kill_after`)."""


def _os_error(code: int, path: str = "") -> OSError:
    return OSError(code, os.strerror(code), path) if path else OSError(code, os.strerror(code))


# ------------------------------------------------------------------------------- the file system


class SimFileSystem:
    """An in-memory :class:`catlog.fs.FileSystem` that knows what a crash would keep.

    Paths are POSIX paths; a relative path is taken from the root. Every call is counted in
    :attr:`calls` and written to :attr:`trace`; :attr:`observer`, if set, is called after each
    one (with the file system's lock held, so it sees the state that call left).
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._dirs: dict[int, _Dir] = {0: _Dir()}
        self._inodes: dict[int, _Inode] = {}
        self._next_node = 1
        self._locked: set[int] = set()
        self._faults: dict[str, _Fault] = {}
        self._generation = 0
        """Bumped by :meth:`kill`: files and locks of an older generation belong to the dead."""
        self._kill_after: int | None = None
        self.calls: Counter[str] = Counter()
        self.trace: list[tuple[str, str]] = []
        """Every call in order, as ``(operation, path)``; a failed call is in it too."""
        self.observer: Callable[[SimFileSystem], None] | None = None

    # --------------------------------------------------------------------- crashing

    def image(self) -> DiskImage:
        """A snapshot of durable and pending state, to crash from now or later."""
        with self._lock:
            files = tuple(
                (node, FileImage(inode.durable, tuple(inode.changes)))
                for node, inode in self._inodes.items()
            )
            dirs = tuple(
                (node, DirImage(tuple(d.durable.items()), tuple(d.changes)))
                for node, d in self._dirs.items()
            )
            return DiskImage(files, dirs, len(self.trace))

    def crash_states(
        self, *, tears: int = 2, seed: int = 0, select: Callable[[str], bool] | None = None
    ) -> Iterator[CrashState]:
        """:meth:`DiskImage.crash_states` of the current image."""
        return self.image().crash_states(tears=tears, seed=seed, select=select)

    def crash(self, state: CrashState) -> SimFileSystem:
        """:meth:`DiskImage.crash` of the current image, as a new file system."""
        return self.image().crash(state)

    def kill(self) -> None:
        """The process dies, the machine does not: locks are freed, open files and locks die
        (their calls raise ``EBADF``, releases do nothing), and every byte and name stays as it
        is, durable or not."""
        with self._lock:
            self._generation += 1
            self._locked.clear()
            self._kill_after = None

    def kill_after(self, operations: int) -> None:
        """Kill the process (:meth:`kill`) once ``operations`` more calls have completed: the
        call after that raises :class:`SimulatedKill` instead of running, and the dead
        process's files and locks behave as after :meth:`kill`."""
        with self._lock:
            self._kill_after = len(self.trace) + operations

    def snapshot(self) -> dict[str, bytes]:
        """Every reachable file, path -> bytes as they are now (durable or not)."""
        with self._lock:
            paths = _resolve(
                {n: dict(d.entries) for n, d in self._dirs.items()},
                dict.fromkeys(self._dirs, ()),
                {n: frozenset() for n in self._dirs},
            )
            return {path: bytes(self._inodes[node].data) for path, node in sorted(paths.items())}

    def _adopt(self, entries: dict[int, dict[str, int]], contents: dict[int, bytes]) -> None:
        """Install a crashed state: every entry and byte durable; unreachable nodes dropped."""
        reachable: set[int] = set()
        stack = [0]
        while stack:
            node = stack.pop()
            reachable.add(node)
            for child in entries[node].values():
                if child in entries:
                    stack.append(child)
                else:
                    reachable.add(child)
        self._dirs = {n: _Dir(dict(e), [], dict(e)) for n, e in entries.items() if n in reachable}
        self._inodes = {
            n: _Inode(data, [], bytearray(data)) for n, data in contents.items() if n in reachable
        }
        self._next_node = max([0, *entries, *contents]) + 1

    # --------------------------------------------------------------------- faults and counts

    def fail(
        self,
        operation: Operation,
        *,
        nth: int = 1,
        error: int = errno.EIO,
        persistent: bool = False,
        partial: int = 0,
    ) -> None:
        """Make the ``nth`` call of ``operation`` from now on raise ``OSError(error)``.

        With ``persistent`` every later call of it fails too. For ``append``, ``partial`` bytes
        are written before the error: a short write.
        """
        assert nth >= 1, "the first call is call 1"
        with self._lock:
            self._faults[operation] = _Fault(nth, error, persistent, partial)

    def heal(self) -> None:
        """Disarm every fault."""
        with self._lock:
            self._faults.clear()

    @property
    def operations(self) -> int:
        """How many calls have been made so far."""
        return len(self.trace)

    def _begin(
        self, operation: Operation, path: str, generation: int | None = None
    ) -> _Fault | None:
        """Count a call; raise if its process is dead; return the fault it must raise, if any.

        Called with the lock held.
        """
        if generation is not None and generation != self._generation:
            self.calls[operation] += 1
            self.trace.append((operation, path))
            raise _os_error(errno.EBADF, path)
        if self._kill_after is not None and len(self.trace) >= self._kill_after:
            self.kill()
            raise SimulatedKill(f"process killed before {operation} {path}")
        self.calls[operation] += 1
        self.trace.append((operation, path))
        fault = self._faults.get(operation)
        if fault is None:
            return None
        if fault.fired:
            return fault if fault.persistent else None
        fault.countdown -= 1
        if fault.countdown > 0:
            return None
        fault.fired = True
        return fault

    def _check(self, operation: Operation, path: str, generation: int | None = None) -> None:
        fault = self._begin(operation, path, generation)
        if fault is not None:
            self._done()
            raise _os_error(fault.error, path)

    def _done(self) -> None:
        if self.observer is not None:
            self.observer(self)

    # --------------------------------------------------------------------- path lookup

    @staticmethod
    def _split(path: str) -> list[str]:
        normal = posixpath.normpath(posixpath.join(ROOT, path))
        return [part for part in normal.split("/") if part]

    def _lookup(self, path: str) -> int | None:
        node = 0
        for part in self._split(path):
            directory = self._dirs.get(node)
            if directory is None:
                raise _os_error(errno.ENOTDIR, path)
            child = directory.entries.get(part)
            if child is None:
                return None
            node = child
        return node

    def _directory(self, path: str, *, error_path: str | None = None) -> _Dir:
        """The directory at ``path``; ENOENT or ENOTDIR (naming ``error_path``) otherwise."""
        named = path if error_path is None else error_path
        node = self._lookup(path)
        if node is None:
            raise _os_error(errno.ENOENT, named)
        directory = self._dirs.get(node)
        if directory is None:
            raise _os_error(errno.ENOTDIR, named)
        return directory

    def _parent(self, path: str) -> tuple[_Dir, str]:
        """The directory holding ``path`` and the last name in it; raises if there is none."""
        parts = self._split(path)
        if not parts:
            raise _os_error(errno.EISDIR, path)
        directory = self._directory("/" + "/".join(parts[:-1]), error_path=path)
        return directory, parts[-1]

    def _new_node(self) -> int:
        node = self._next_node
        self._next_node += 1
        return node

    @staticmethod
    def _link(directory: _Dir, change: DirChange) -> None:
        directory.changes.append(change)
        _apply_dir(directory.entries, change)

    # --------------------------------------------------------------------- FileSystem protocol

    def open(self, path: str, *, writable: bool = False, create: bool = False) -> File:
        with self._lock:
            self._check("open", path)
            try:
                node = self._lookup(path)
                if node is None:
                    directory, name = self._parent(path)
                    if not create:
                        raise _os_error(errno.ENOENT, path)
                    node = self._new_node()
                    self._inodes[node] = _Inode()
                    self._link(directory, Link(name, node))
                elif node in self._dirs:
                    raise _os_error(errno.EISDIR, path)
                return SimFile(self, path, node, writable, self._generation)
            finally:
                self._done()

    def exists(self, path: str) -> bool:
        with self._lock:
            self._check("exists", path)
            try:
                return self._lookup(path) is not None
            except NotADirectoryError:
                return False
            finally:
                self._done()

    def listdir(self, path: str) -> list[str]:
        with self._lock:
            self._check("listdir", path)
            try:
                directory = self._directory(path)
                return list(directory.entries)
            finally:
                self._done()

    def makedirs(self, path: str) -> None:
        with self._lock:
            self._check("makedirs", path)
            try:
                node = 0
                for part in self._split(path):
                    directory = self._dirs.get(node)
                    if directory is None:
                        raise _os_error(errno.ENOTDIR, path)
                    child = directory.entries.get(part)
                    if child is None:
                        child = self._new_node()
                        self._dirs[child] = _Dir()
                        self._link(directory, Link(part, child))
                    node = child
                if node not in self._dirs:
                    raise _os_error(errno.EEXIST, path)
            finally:
                self._done()

    def rename(self, src: str, dst: str) -> None:
        with self._lock:
            self._check("rename", src)
            try:
                src_dir, src_name = self._parent(src)
                dst_dir, dst_name = self._parent(dst)
                node = src_dir.entries.get(src_name)
                if node is None:
                    raise _os_error(errno.ENOENT, src)
                target = dst_dir.entries.get(dst_name)
                if node in self._dirs or (target is not None and target in self._dirs):
                    raise _os_error(errno.EISDIR, dst)  # only files are renamed here
                if src_dir is dst_dir:
                    if src_name != dst_name:
                        self._link(src_dir, Rename(src_name, dst_name))
                else:
                    # Two directories, two changes: a crash may keep either, both or neither.
                    self._link(dst_dir, Link(dst_name, node))
                    self._link(src_dir, Unlink(src_name))
            finally:
                self._done()

    def remove(self, path: str) -> None:
        with self._lock:
            self._check("remove", path)
            try:
                directory, name = self._parent(path)
                node = directory.entries.get(name)
                if node is None:
                    raise _os_error(errno.ENOENT, path)
                if node in self._dirs:
                    raise _os_error(errno.EISDIR, path)
                self._link(directory, Unlink(name))
            finally:
                self._done()

    def sync_dir(self, path: str) -> None:
        with self._lock:
            self._check("sync_dir", path)
            try:
                directory = self._directory(path)
                directory.durable = dict(directory.entries)
                directory.changes.clear()
            finally:
                self._done()

    def lock(self, path: str) -> FileLock:
        with self._lock:
            self._check("lock", path)
            try:
                node = self._lookup(path)
                if node is None:
                    directory, name = self._parent(path)
                    node = self._new_node()
                    self._inodes[node] = _Inode()
                    self._link(directory, Link(name, node))
                elif node in self._dirs:
                    raise _os_error(errno.EISDIR, path)
                if node in self._locked:
                    raise BlockingIOError(errno.EWOULDBLOCK, f"{path} is locked")
                self._locked.add(node)
                # Like OsFileSystem: the holder's pid, written but not synced.
                inode = self._inodes[node]
                for change in (Truncate(0), Append(f"{os.getpid()}\n".encode())):
                    inode.changes.append(change)
                    _apply_file(inode.data, change)
                return SimFileLock(self, node, self._generation)
            finally:
                self._done()

    def _release(self, node: int, generation: int) -> None:
        with self._lock:
            if generation == self._generation:
                self._locked.discard(node)


class SimFileLock:
    """A held lock of a :class:`SimFileSystem`; releasing it twice does nothing."""

    __slots__ = ("_fs", "_generation", "_node", "_released")

    def __init__(self, fs: SimFileSystem, node: int, generation: int) -> None:
        self._fs = fs
        self._node = node
        self._generation = generation
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._fs._release(self._node, self._generation)


class SimFile:
    """An open file of a :class:`SimFileSystem`. It follows its inode, not its name: a removed
    or renamed file stays readable through it, as with a POSIX descriptor."""

    __slots__ = ("_closed", "_fs", "_generation", "_node", "_path", "_writable")

    def __init__(
        self, fs: SimFileSystem, path: str, node: int, writable: bool, generation: int
    ) -> None:
        self._fs = fs
        self._path = path
        self._node = node
        self._writable = writable
        self._generation = generation
        self._closed = False

    @property
    def path(self) -> str:
        return self._path

    def _inode(self, operation: Operation) -> _Inode:
        """Count the call and return the inode; called with the file system's lock held."""
        self._fs._check(operation, self._path, self._generation)
        if self._closed:
            self._fs._done()
            raise _os_error(errno.EBADF, self._path)
        return self._fs._inodes[self._node]

    def size(self) -> int:
        with self._fs._lock:
            inode = self._inode("size")
            self._fs._done()
            return len(inode.data)

    def pread(self, size: int, offset: int) -> bytes:
        with self._fs._lock:
            inode = self._inode("pread")
            self._fs._done()
            if size < 0 or offset < 0:
                raise _os_error(errno.EINVAL, self._path)
            return bytes(inode.data[offset : offset + size])

    def append(self, data: bytes | bytearray | memoryview) -> int:
        with self._fs._lock:
            fault = self._fs._begin("append", self._path, self._generation)
            try:
                if self._closed or not self._writable:
                    raise _os_error(errno.EBADF, self._path)
                inode = self._fs._inodes[self._node]
                offset = len(inode.data)
                written = bytes(data) if fault is None else bytes(memoryview(data)[: fault.partial])
                if written:
                    change = Append(written)
                    inode.changes.append(change)
                    _apply_file(inode.data, change)
                if fault is not None:
                    raise _os_error(fault.error, self._path)
                return offset
            finally:
                self._fs._done()

    def truncate(self, size: int) -> None:
        with self._fs._lock:
            inode = self._inode("truncate")
            try:
                if not self._writable:
                    raise _os_error(errno.EINVAL, self._path)
                if size < 0:
                    raise _os_error(errno.EINVAL, self._path)
                change = Truncate(size)
                inode.changes.append(change)
                _apply_file(inode.data, change)
            finally:
                self._fs._done()

    def sync(self) -> None:
        with self._fs._lock:
            inode = self._inode("sync")
            inode.durable = bytes(inode.data)
            inode.changes.clear()
            self._fs._done()

    def close(self) -> None:
        # Counted but never failed, like FaultyFileSystem: Linux closes the descriptor even
        # when close reports an error, and a dead process's descriptors are closed already.
        with self._fs._lock:
            self._fs.calls["close"] += 1
            self._fs.trace.append(("close", self._path))
            self._closed = True
            self._fs._done()
