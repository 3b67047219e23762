"""The one file-system interface every engine file operation goes through (ENG-23).

Like LevelDB's ``Env`` and SQLite's VFS, this is the seam where tests stand between the engine and
the disk: the crash-simulating file system (spec/recovery.md) implements the same two protocols,
and a shared contract suite keeps it honest against :class:`OsFileSystem`. The engine never calls
``os`` or ``open`` for data-directory work itself.

The operations are the ones whose durability a crash model has to reason about, and no more:
data reaches a file only through :meth:`File.append`, becomes durable only through
:meth:`File.sync`, and a created, renamed or removed name becomes durable only through
:meth:`FileSystem.sync_dir` (REC-9).
"""

from __future__ import annotations

import errno
import fcntl
import os
from typing import Protocol


class File(Protocol):
    """An open file: positional reads, appends at the end, and explicit durability."""

    @property
    def path(self) -> str: ...

    def size(self) -> int:
        """The file's current length, including appends not yet synced."""

    def read_at(self, offset: int, size: int) -> bytes:
        """Up to ``size`` bytes from ``offset``; shorter only where the file ends."""

    def append(self, data: bytes | bytearray | memoryview) -> int:
        """Write all of ``data`` at the end of the file; returns the offset it was written at."""

    def truncate(self, size: int) -> None:
        """Cut the file to ``size`` bytes (durable only after :meth:`sync`)."""

    def sync(self) -> None:
        """fsync: return only once every byte appended so far is durable."""

    def close(self) -> None: ...


class FileLock(Protocol):
    """An exclusive hold on a data directory, released by :meth:`release` or process exit."""

    def release(self) -> None: ...


class FileSystem(Protocol):
    """Operations on names: the directory side of the interface."""

    def open(self, path: str, *, writable: bool = False, create: bool = False) -> File:
        """Open ``path``; with ``create`` a missing file is made empty (durable after sync_dir)."""

    def exists(self, path: str) -> bool: ...

    def listdir(self, path: str) -> list[str]:
        """Names in the directory ``path``, in no particular order."""

    def makedirs(self, path: str) -> None:
        """Create ``path`` and its parents if missing."""

    def rename(self, src: str, dst: str) -> None:
        """Atomically replace ``dst`` by ``src`` (durable after sync_dir)."""

    def remove(self, path: str) -> None: ...

    def sync_dir(self, path: str) -> None:
        """fsync the directory, making creations, renames and removals in it durable."""

    def lock(self, path: str) -> FileLock:
        """Take an exclusive, non-blocking lock on ``path`` (created if missing).

        Raises :class:`BlockingIOError` when another holder has it.
        """


class OsFile:
    """A real file: ``pread`` to read, ``write`` on an ``O_APPEND`` descriptor to append."""

    __slots__ = ("_fd", "_path", "_size")

    def __init__(self, path: str, fd: int) -> None:
        self._path = path
        self._fd = fd
        self._size = os.fstat(fd).st_size

    @property
    def path(self) -> str:
        return self._path

    def size(self) -> int:
        return self._size

    def read_at(self, offset: int, size: int) -> bytes:
        return os.pread(self._fd, size, offset)

    def append(self, data: bytes | bytearray | memoryview) -> int:
        offset = self._size
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
            self._size += written
        return offset

    def truncate(self, size: int) -> None:
        os.ftruncate(self._fd, size)
        self._size = size

    def sync(self) -> None:
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class OsFileLock:
    """A ``flock`` on a file holding the owner's pid, so the error can say who has it."""

    __slots__ = ("_fd",)

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def release(self) -> None:
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = -1


class OsFileSystem:
    """The production :class:`FileSystem`: POSIX calls, nothing cached, nothing simulated."""

    def open(self, path: str, *, writable: bool = False, create: bool = False) -> File:
        flags = os.O_RDWR | os.O_APPEND if writable else os.O_RDONLY
        if create:
            flags |= os.O_CREAT
        return OsFile(path, os.open(path, flags | os.O_CLOEXEC, 0o644))

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def listdir(self, path: str) -> list[str]:
        return os.listdir(path)

    def makedirs(self, path: str) -> None:
        os.makedirs(path, exist_ok=True)

    def rename(self, src: str, dst: str) -> None:
        os.replace(src, dst)

    def remove(self, path: str) -> None:
        os.remove(path)

    def sync_dir(self, path: str) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def lock(self, path: str) -> FileLock:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise BlockingIOError(exc.errno, f"{path} is locked") from exc
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return OsFileLock(fd)
