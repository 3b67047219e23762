"""The open files of sealed segments, at most ``max_open_files`` at once (ENG-65 .. ENG-70).

Every open segment costs the process a descriptor and a memory map (ENG-56), and both are
limited (``ulimit -n``; ``vm.max_map_count``). So, as LevelDB's table cache does for its table
files, the store keeps only some sealed segments open, opens the others when a read needs them,
and closes the least recently used to make room.

Theory of operation
-------------------
A sealed segment's ``file`` is a :class:`SealedFile`: the segment's path and size, which never
change, and the open file behind it while the cache holds one. The segment's ``pread``, which
every get calls (:mod:`catlog.reading`), is one of two things:

* the open file's own ``pread``: a *hit*, and nothing in this module runs, so a get of a segment
  that is open costs what it cost before there was a cache (ENG-66);
* :meth:`SealedFile.pread`: a *miss*. It takes the cache's lock, opens the file if the cache
  does not hold it (closing another if that makes one too many), puts the open file's ``pread``
  back on the segment, and reads.

Recency is kept as CLOCK keeps it, the "second chance" approximation of least recently used that
needs nothing from a hit. The open files wait in a queue, oldest first. To close one, the cache
looks at the oldest: if its segment's ``pread`` is the fast one, the segment may have been read
since the cache last looked, so the cache puts the miss path back on it (clearing its "used" bit)
and moves it to the back of the queue; if it is still the miss path, nothing read it since, and
it is closed. A segment read after its bit was cleared passes once through the miss path, which
finds its file open, moves it to the back and makes its ``pread`` fast again.

Closing is dropping (ENG-68). A reader in another thread may have taken a segment's ``pread``
a moment before the cache closed its file; that reader holds the file through the bound method,
so the file and its map stay valid until it has finished its read, and the descriptor and the
map are released when the last reference goes (CPython's reference counting; ``OsFile`` closes
a descriptor it still holds when it is collected). :meth:`File.close` is never called on a
file a reader may be using: it would take the map away from under that reader.

A segment that compaction is about to remove is *kept open* (:meth:`SealedFile.keep_open`)
first, out of the queue: once its name is gone it could not be opened again, and a snapshot may
still read it (ENG-38, ENG-40).

Lock: :attr:`FileCache._lock` guards the queue, every :class:`SealedFile`'s handle and flags and
its segment's ``pread``. It nests inside the store's write lock (rotation and compaction take it
with that held) and is taken alone by a reader's miss; no other catlog lock is taken inside it.
"""

from __future__ import annotations

import errno
import os
import resource
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Final

from .errors import ReadError
from .fs import File, FileSystem

if TYPE_CHECKING:
    from .segment import Segment

MIN_OPEN_FILES: Final = 8
MAX_DEFAULT_OPEN_FILES: Final = 10_000
"""ENG-65: the default stays under Linux's ``vm.max_map_count`` (65,530 maps) with room to spare."""
RESERVED_DESCRIPTORS: Final = 64
"""ENG-65: descriptors left to everything else before the limit is shared: the active segment,
the lock, hints being written, compaction's outputs, the server's listening sockets."""


def default_max_open_files(soft_limit: int | None = None) -> int:
    """ENG-65: half of what ``RLIMIT_NOFILE``'s soft limit leaves after a reserve.

    The other half is for the process's other descriptors: a server's client connections above
    all. Clamped between :data:`MIN_OPEN_FILES` and :data:`MAX_DEFAULT_OPEN_FILES`.
    """
    if soft_limit is None:
        soft_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft_limit == resource.RLIM_INFINITY or soft_limit < 0:
        return MAX_DEFAULT_OPEN_FILES
    share = (soft_limit - RESERVED_DESCRIPTORS) // 2
    return max(MIN_OPEN_FILES, min(MAX_DEFAULT_OPEN_FILES, share))


def remedy(exc: OSError) -> str:
    """ENG-70: what an operator can do about a failure to open or map a file, in words."""
    if exc.errno == errno.EMFILE:
        return "raise the descriptor limit (ulimit -n) or lower max_open_files"
    if exc.errno == errno.ENFILE:
        return "the system's table of open files is full (fs.file-max); lower max_open_files"
    if exc.errno == errno.ENOMEM:
        return (
            "out of memory maps (vm.max_map_count) or address space; lower max_open_files"
            " or raise vm.max_map_count"
        )
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "check the owner and permissions of the data directory and its files"
    return ""


class FileCache:
    """The open files of one store's sealed segments; see the module for how it works."""

    __slots__ = ("_fs", "_held", "_lock", "_open", "capacity")

    def __init__(self, fs: FileSystem, capacity: int) -> None:
        assert capacity >= 1, "ENG-65: the store checks max_open_files"
        self._fs = fs
        self.capacity: Final = capacity
        self._lock = threading.Lock()
        self._open: OrderedDict[SealedFile, int] = OrderedDict()
        """The segments whose file is open and may be closed, the next the hand looks at first,
        each with the descriptors its file holds. Lock: ``_lock``."""
        self._held = 0
        """The descriptors the files in :attr:`_open` hold. Lock: ``_lock``."""

    def adopt(self, segment: Segment, handle: File | None, *, writable: bool = False) -> None:
        """Take over a sealed segment's file; ``handle``, open already, becomes its first open
        file, or with ``None`` the file is opened when first read.

        A file opened for writing (the active segment's, at rotation) holds two descriptors,
        its own and its map's, and is counted so (ENG-65); it is kept rather than reopened so
        that sealing costs no call on the file system.
        """
        sealed = SealedFile(self, segment, segment.file.path, segment.file.size())
        with self._lock:
            segment.file = sealed
            segment.pread = sealed.pread
            if handle is not None:
                sealed._handle = handle
                self._enqueue(sealed, 2 if writable else 1)

    def _acquire(self, sealed: SealedFile, offset: int) -> File:
        """The miss path: ``sealed``'s open file, opened now if it is not. ``offset`` is the
        read's, for the error (ENG-70)."""
        with self._lock:
            return self._acquire_locked(sealed, offset)

    def _acquire_locked(self, sealed: SealedFile, offset: int) -> File:
        handle = sealed._handle
        if handle is None:
            if sealed._closed:
                raise OSError(errno.EBADF, os.strerror(errno.EBADF))  # as a closed descriptor
            try:
                handle = self._fs.open(sealed.path)
            except OSError as exc:
                raise _open_failed(sealed.path, offset, exc) from exc
            sealed._handle = handle
            if not sealed._kept:
                self._enqueue(sealed, 1)
                return handle  # marked, unless making room passed over it: then as the queue says
        elif not sealed._kept:
            self._open.move_to_end(sealed)  # read since the hand passed: a second chance
        sealed._used = True
        sealed._segment.pread = handle.pread
        return handle

    def _enqueue(self, sealed: SealedFile, descriptors: int) -> None:
        """Queue a file just opened, marked used so that making room keeps it. Lock held."""
        handle = sealed._handle
        assert handle is not None, "only an open file is queued"
        sealed._used = True
        sealed._segment.pread = handle.pread
        self._open[sealed] = descriptors
        self._held += descriptors
        self._make_room()

    def _make_room(self) -> None:
        """ENG-67: close files, least recently used first (CLOCK), until few enough are open.
        Lock held."""
        queue = self._open
        while self._held > self.capacity and len(queue) > 1:
            oldest = next(iter(queue))
            if oldest._used:
                oldest._used = False
                oldest._segment.pread = oldest.pread
                queue.move_to_end(oldest)
            else:
                self._held -= queue.pop(oldest)
                oldest._handle = None  # dropped, never closed: see the module

    def _keep_open(self, sealed: SealedFile) -> None:
        """Open ``sealed`` if it is not, and take it out of the queue for good."""
        with self._lock:
            sealed._kept = True
            self._held -= self._open.pop(sealed, 0)
            self._acquire_locked(sealed, 0)

    def _forget(self, sealed: SealedFile) -> None:
        with self._lock:
            self._held -= self._open.pop(sealed, 0)
            sealed._handle = None
            sealed._closed = True
            sealed._used = False
            sealed._segment.pread = sealed.pread


def _open_failed(path: str, offset: int, exc: OSError) -> ReadError:
    """ENG-70: a file the cache could not open, as the read that needed it reports it."""
    advice = remedy(exc)
    reason = f"cannot open the segment to read it: {exc.strerror or exc}"
    return ReadError(path, offset, f"{reason}; {advice}" if advice else reason)


class SealedFile:
    """A sealed segment's :class:`~catlog.fs.File`, opened when read (ENG-66).

    Reading through it is the miss path; the segment's own ``pread`` is the fast one while the
    file is open. Its size is the segment's size when it was sealed, which never changes.
    """

    __slots__ = ("_cache", "_closed", "_handle", "_kept", "_path", "_segment", "_size", "_used")

    def __init__(self, cache: FileCache, segment: Segment, path: str, size: int) -> None:
        self._cache = cache
        self._segment = segment
        self._path = path
        self._size = size
        self._handle: File | None = None
        """The open file, or ``None``. Lock: the cache's."""
        self._used = False
        """CLOCK's bit: the segment's ``pread`` is the open file's. Lock: the cache's."""
        self._kept = False
        """Kept open, out of the queue (see :meth:`keep_open`). Lock: the cache's."""
        self._closed = False

    @property
    def path(self) -> str:
        return self._path

    def size(self) -> int:
        return self._size

    def pread(self, size: int, offset: int) -> bytes:
        return self._cache._acquire(self, offset).pread(size, offset)

    def keep_open(self) -> None:
        """Hold the file open until :meth:`close`, whatever the budget: its name is about to
        be removed (ENG-39), and a snapshot may still read it (ENG-40)."""
        self._cache._keep_open(self)

    def append(self, data: bytes | bytearray | memoryview) -> int:
        raise OSError(errno.EBADF, f"{self._path} is sealed: nothing is appended to it")

    def truncate(self, size: int) -> None:
        raise OSError(errno.EBADF, f"{self._path} is sealed: it is never truncated")

    def sync(self) -> None:
        """Nothing to do: a segment is durable before it is sealed (ENG-10)."""

    def close(self) -> None:
        """Let the file go; a reader still using it finishes first (see the module)."""
        self._cache._forget(self)

    def __repr__(self) -> str:
        return f"SealedFile({self._path!r}, open={self._handle is not None})"
