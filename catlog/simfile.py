"""An open file and a held lock of the simulated file system, :mod:`catlog.simfs`.

They are handles, not storage: each call goes back to the :class:`SimFileSystem` that made them,
which counts it, may fail it, and refuses it with ``EBADF`` once its process was killed, as a
dead process's descriptors are. A file's appends and truncates are recorded as changes a crash
may lose (REC-1).
"""

from __future__ import annotations

import errno
import os
from typing import TYPE_CHECKING

from .crashstate import Append, Truncate, _apply_file

if TYPE_CHECKING:
    from .crashstate import _Inode
    from .simfs import Operation, SimFileSystem


def _os_error(code: int, path: str = "") -> OSError:
    return OSError(code, os.strerror(code), path) if path else OSError(code, os.strerror(code))


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
