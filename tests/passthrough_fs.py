"""The base of the tests' file systems that watch or change a few calls of the real one.

Each wrapper (recording calls, witnessing what an fsync covered, closing a store under a read)
differs from the file system it wraps in one or two calls; the rest of the
:class:`catlog.FileSystem` and :class:`catlog.File` interfaces pass through from here, so that a
call added to the interface is added once, and a wrapper's own text is only what it changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from catlog.fs import File, FileLock, FileSystem, OsFileSystem


@dataclass
class PassThroughFileSystem:
    """Hands every call to ``inner``; files are opened as :class:`PassThroughFile` by
    :meth:`wrap`, which a subclass overrides to watch its files."""

    inner: FileSystem = field(default_factory=OsFileSystem)

    def wrap(self, file: File) -> File:
        return file

    def open(self, path: str, *, writable: bool = False, create: bool = False) -> File:
        return self.wrap(self.inner.open(path, writable=writable, create=create))

    def exists(self, path: str) -> bool:
        return self.inner.exists(path)

    def listdir(self, path: str) -> list[str]:
        return self.inner.listdir(path)

    def makedirs(self, path: str) -> None:
        self.inner.makedirs(path)

    def rename(self, src: str, dst: str) -> None:
        self.inner.rename(src, dst)

    def remove(self, path: str) -> None:
        self.inner.remove(path)

    def sync_dir(self, path: str) -> None:
        self.inner.sync_dir(path)

    def lock(self, path: str) -> FileLock:
        return self.inner.lock(path)


class PassThroughFile:
    """Hands every call to the file it wraps."""

    def __init__(self, inner: File) -> None:
        self._inner = inner

    @property
    def path(self) -> str:
        return self._inner.path

    def size(self) -> int:
        return self._inner.size()

    def pread(self, size: int, offset: int) -> bytes:
        return self._inner.pread(size, offset)

    def append(self, data: bytes | bytearray | memoryview) -> int:
        return self._inner.append(data)

    def truncate(self, size: int) -> None:
        self._inner.truncate(size)

    def sync(self) -> None:
        self._inner.sync()

    def close(self) -> None:
        self._inner.close()
