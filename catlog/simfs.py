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

What a crash keeps of those changes, and the published work that model follows, is
:mod:`catlog.crashstate` (REC-1); the open files and locks handed out are :mod:`catlog.simfile`.

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

import errno
import itertools
import os
import posixpath
import random
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

from .crashstate import (
    ROOT,
    Append,
    CrashState,
    DirChange,
    DirImage,
    FileChange,
    FileFate,
    FileImage,
    Fill,
    Link,
    PendingFile,
    Rename,
    Truncate,
    Unlink,
    _apply_dir,
    _apply_file,
    _describe,
    _Dir,
    _file_fates,
    _Inode,
    _kept,
    _random_fate,
    _resolve,
    _survivor,
)
from .fs import File, FileLock
from .simfile import SimFile, SimFileLock, _os_error

__all__ = [
    "ROOT",
    "Append",
    "CrashState",
    "DirChange",
    "DirImage",
    "DiskImage",
    "FileChange",
    "FileFate",
    "FileImage",
    "Fill",
    "Link",
    "Operation",
    "PendingFile",
    "Rename",
    "SimFile",
    "SimFileLock",
    "SimFileSystem",
    "SimulatedKill",
    "Truncate",
    "Unlink",
]

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


# ------------------------------------------------------------------------------- the image


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
                # The changes, not a copy of the entries: compacting a directory of 32,768
                # segments syncs it once per segment removed (tests/store/test_rotation.py).
                for change in directory.changes:
                    _apply_dir(directory.durable, change)
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
