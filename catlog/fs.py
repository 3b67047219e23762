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
import mmap
import os
from typing import Final, Protocol

REMAP_STEP: Final = 1 << 20
"""Renew a file's read map once the file has grown this much past it (see :class:`OsFile`)."""


class File(Protocol):
    """An open file: positional reads, appends at the end, and explicit durability."""

    @property
    def path(self) -> str: ...

    def size(self) -> int:
        """The file's current length, including appends not yet synced."""

    def pread(self, size: int, offset: int) -> bytes:
        """Up to ``size`` bytes from ``offset``; shorter only where the file ends.

        The arguments come in :func:`os.pread`'s order, which every reader of this code knows.
        """

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
    """A real file: read through a read-only memory map, appended with ``write`` (``O_APPEND``).

    Reads slice a memory map of the file rather than calling ``pread``: on the machines the
    benchmark ran on, a system call costs about a microsecond, most of a get. The map covers the
    file as it was when mapped; reads beyond it fall back to ``pread``, and the map is renewed once
    the file has grown by :data:`REMAP_STEP` past it. An old map is never closed explicitly, only
    dropped, so a reader in another thread that still holds it finishes its slice safely.

    Mapping is why a segment must not be truncated by anyone else while a store has it open
    (ENG-20): a read of a mapped page past the end of a file raises SIGBUS. The engine truncates
    only at open, before any read, and drops the map first.
    """

    __slots__ = ("_closed", "_fd", "_identity", "_map", "_path", "_size")

    def __init__(self, path: str, fd: int, *, writable: bool = True) -> None:
        self._path = path
        self._fd = fd
        self._closed = False
        status = os.fstat(fd)
        self._size = status.st_size
        self._identity = (status.st_dev, status.st_ino)
        self._map: mmap.mmap | bytes = b""
        try:
            self._remap()
        except BaseException:
            os.close(fd)  # ENG-70: a failed mapping (ENOMEM, say) must not leak the descriptor
            self._fd = -1
            raise
        if not writable and self._map:
            # ENG-56: the map holds a descriptor of its own; a second one per sealed segment
            # would halve how many segments a store can open under the process's limit.
            os.close(fd)
            self._fd = -1

    @property
    def path(self) -> str:
        return self._path

    def size(self) -> int:
        return self._size

    def pread(self, size: int, offset: int) -> bytes:
        mapped = self._map
        end = offset + size
        if end <= len(mapped):
            return mapped[offset:end]
        if self._fd < 0:
            return self._pread_unmapped(size, offset)
        if self._size - len(mapped) >= REMAP_STEP:
            self._remap()
        return os.pread(self._fd, size, offset)

    def _pread_unmapped(self, size: int, offset: int) -> bytes:
        """A read past the map of a read-only file that kept no descriptor (ENG-56).

        Either the read runs past the end of the file (a short read, served from the map), or
        the file grew through another handle since it was opened, which only a reader of a live
        directory meets (the tools): then the file is opened again, by name, for that read, as
        long as the name still leads to the same file.
        """
        if self._closed:
            raise OSError(errno.EBADF, os.strerror(errno.EBADF))
        mapped = self._map
        try:
            fd = os.open(self._path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return mapped[offset : offset + size]  # removed: it can only be what was mapped
        try:
            status = os.fstat(fd)
            same = (status.st_dev, status.st_ino) == self._identity
            if not same or status.st_size <= len(mapped):
                return mapped[offset : offset + size]
            return os.pread(fd, size, offset)
        finally:
            os.close(fd)

    def _remap(self) -> None:
        if self._size:
            self._map = mmap.mmap(self._fd, self._size, access=mmap.ACCESS_READ)

    def append(self, data: bytes | bytearray | memoryview) -> int:
        offset = self._size
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
            self._size += written
        return offset

    def truncate(self, size: int) -> None:
        self._map = b""
        os.ftruncate(self._fd, size)
        self._size = size

    def sync(self) -> None:
        _datasync(self._fd)

    def close(self) -> None:
        self._closed = True
        self._map = b""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        # ENG-68: the file cache closes a sealed segment by dropping it, since a reader in another
        # thread may still be using it; the last reference gone, its descriptor goes too (the
        # map's own goes with the map).
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


_datasync: Final = getattr(os, "fdatasync", os.fsync)
"""fdatasync where the OS has it: it makes the data durable, and the file size an append changed
(the metadata needed to read the data back), but not the timestamps, so it saves a journal write
per sync, which the durable-put benchmark needs."""


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
        return OsFile(path, os.open(path, flags | os.O_CLOEXEC, 0o644), writable=writable)

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
