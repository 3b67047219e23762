"""A :class:`catlog.FileSystem` for tests that counts every call and fails the ones it is told to.

Modelled on SQLite's test VFS: arm a fault with :meth:`FaultyFileSystem.fail` and the Nth call of
that operation from then on raises the ``OSError`` a full or broken disk would (``EIO``,
``ENOSPC``), once or on every call after it. Everything else is delegated to a real
:class:`catlog.OsFileSystem`, so the bytes the engine leaves behind are the bytes a real failure
would leave, and a later open with a healthy file system can be checked against REC-11.

Counting every operation doubles as the ENG-23 check: anything the engine did to its directory
without going through here would be missing from :attr:`FaultyFileSystem.calls`. With ``mount``
the engine is given a directory that does not exist on disk, so a file operation that bypassed
the wrapper would not merely go uncounted, it would fail.

A fault can be limited to the calls made from one kind of thread (the store names its threads
``catlog-flush``, ``catlog-hints`` and ``catlog-compact``) or to paths matching a pattern, so that
the Nth write of the background flusher fails while the foreground goes on unharmed;
:attr:`FaultyFileSystem.calls_by_thread` counts calls per kind of thread to enumerate them.

It does not simulate a crash (dropping unsynced bytes); that is the crash file system's job.
"""

from __future__ import annotations

import errno
import os
import re
import threading
from collections import Counter
from dataclasses import dataclass, field

from catlog import File, FileLock, FileSystem, OsFileSystem
from catlog.simfs import Operation


@dataclass(slots=True)
class _Fault:
    countdown: int
    error: int
    persistent: bool
    partial: int
    thread: str | None = None
    path: re.Pattern[str] | None = None
    fired: bool = False

    def applies(self, thread: str, path: str) -> bool:
        """Whether a call from ``thread`` on ``path`` is one this fault counts."""
        return (self.thread is None or thread.startswith(self.thread)) and (
            self.path is None or self.path.search(path) is not None
        )


@dataclass(slots=True)
class FaultyFileSystem:
    """Delegates to ``inner``; counts calls per operation; raises armed faults."""

    inner: FileSystem = field(default_factory=OsFileSystem)
    mount: tuple[str, str] | None = None
    """``(virtual, real)``: paths under ``virtual`` are served from the directory ``real``."""
    calls: Counter[str] = field(default_factory=Counter)
    calls_by_thread: Counter[tuple[str, str]] = field(default_factory=Counter)
    """Calls per ``(kind of thread, operation)``; the kind is the thread name's first word
    (``MainThread``, ``catlog-flush``, ``catlog-hints``, ``catlog-compact``)."""
    trace: list[tuple[str, str]] = field(default_factory=list)
    """Every call in order, as ``(operation, path)``, for tests of what happens before what."""
    largest_read: int = 0
    """The biggest ``size`` any ``pread`` asked for: a damaged length must not inflate it."""
    read_limit: int | None = None
    """A ``pread`` asking for more raises ``MemoryError``, as it would on a smaller machine
    (``os.pread`` allocates the whole buffer before it reads)."""
    _faults: dict[str, _Fault] = field(default_factory=dict)
    _mutex: threading.Lock = field(default_factory=threading.Lock)
    """The store calls from several threads; counting and firing are one step under it."""

    def fail(
        self,
        operation: Operation,
        *,
        nth: int = 1,
        error: int = errno.EIO,
        persistent: bool = False,
        partial: int = 0,
        thread: str | None = None,
        path: str | None = None,
    ) -> None:
        """Make the ``nth`` call of ``operation`` from now on raise ``OSError(error)``.

        With ``persistent`` every later call fails too, as a dead disk would. For ``append``,
        ``partial`` bytes of the data are written before the error, as a short write that ran
        out of space leaves them. With ``thread``, only calls from threads whose name starts
        with it are counted and failed; with ``path``, only calls on paths where the regular
        expression matches (``re.search``).
        """
        assert nth >= 1, "the first call is call 1"
        pattern = None if path is None else re.compile(path)
        self._faults[operation] = _Fault(nth, error, persistent, partial, thread, pattern)

    def fired(self) -> bool:
        """Whether any armed fault has fired."""
        with self._mutex:
            return any(fault.fired for fault in self._faults.values())

    def heal(self) -> None:
        """Disarm every fault."""
        self._faults.clear()

    def check(self, operation: Operation, path: str) -> _Fault | None:
        """Count one call of ``operation`` and return the fault it must raise, if any."""
        thread = threading.current_thread().name
        with self._mutex:
            self.calls[operation] += 1
            self.calls_by_thread[thread.split(" ", 1)[0], operation] += 1
            self.trace.append((operation, path))
            fault = self._faults.get(operation)
            if fault is None or not fault.applies(thread, path):
                return None
            if fault.fired:
                return fault if fault.persistent else None
            fault.countdown -= 1
            if fault.countdown > 0:
                return None
            fault.fired = True
            return fault

    def maybe_fail(self, operation: Operation, path: str) -> None:
        fault = self.check(operation, path)
        if fault is not None:
            raise _os_error(fault.error)

    def real(self, path: str) -> str:
        """The path on disk behind the path the engine used."""
        if self.mount is None:
            return path
        virtual, real = self.mount
        assert path == virtual or path.startswith(virtual + "/"), f"{path} is outside the mount"
        return real + path[len(virtual) :]

    # ------------------------------------------------------------------ FileSystem protocol

    def open(self, path: str, *, writable: bool = False, create: bool = False) -> File:
        self.maybe_fail("open", path)
        return FaultyFile(
            self, path, self.inner.open(self.real(path), writable=writable, create=create)
        )

    def exists(self, path: str) -> bool:
        self.maybe_fail("exists", path)
        return self.inner.exists(self.real(path))

    def listdir(self, path: str) -> list[str]:
        self.maybe_fail("listdir", path)
        return self.inner.listdir(self.real(path))

    def makedirs(self, path: str) -> None:
        self.maybe_fail("makedirs", path)
        self.inner.makedirs(self.real(path))

    def rename(self, src: str, dst: str) -> None:
        self.maybe_fail("rename", src)
        self.inner.rename(self.real(src), self.real(dst))

    def remove(self, path: str) -> None:
        self.maybe_fail("remove", path)
        self.inner.remove(self.real(path))

    def sync_dir(self, path: str) -> None:
        self.maybe_fail("sync_dir", path)
        self.inner.sync_dir(self.real(path))

    def lock(self, path: str) -> FileLock:
        self.maybe_fail("lock", path)
        return self.inner.lock(self.real(path))


class FaultyFile:
    """One open file of a :class:`FaultyFileSystem`; its calls count toward the same totals."""

    __slots__ = ("_fs", "_inner", "_path")

    def __init__(self, fs: FaultyFileSystem, path: str, inner: File) -> None:
        self._fs = fs
        self._path = path
        self._inner = inner

    @property
    def path(self) -> str:
        return self._path

    def size(self) -> int:
        self._fs.maybe_fail("size", self._path)
        return self._inner.size()

    def pread(self, size: int, offset: int) -> bytes:
        self._fs.maybe_fail("pread", self._path)
        self._fs.largest_read = max(self._fs.largest_read, size)
        if self._fs.read_limit is not None and size > self._fs.read_limit:
            raise MemoryError(f"pread({size}, {offset}) of {self._path}")
        return self._inner.pread(size, offset)

    def append(self, data: bytes | bytearray | memoryview) -> int:
        fault = self._fs.check("append", self._path)
        if fault is not None:
            if fault.partial:
                self._inner.append(memoryview(data)[: fault.partial])
            raise _os_error(fault.error)
        return self._inner.append(data)

    def truncate(self, size: int) -> None:
        self._fs.maybe_fail("truncate", self._path)
        self._inner.truncate(size)

    def sync(self) -> None:
        self._fs.maybe_fail("sync", self._path)
        self._inner.sync()

    def close(self) -> None:
        # Counted but never failed: the engine cannot act on a failed close, and Linux closes
        # the descriptor even when close reports an error.
        self._fs.check("close", self._path)
        self._inner.close()


def _os_error(code: int) -> OSError:
    return OSError(code, os.strerror(code))
