"""Segment files: their names (FMT-1), reading any segment, and writing the active one.

A segment is read with one positional read per record (ENG-11). The active segment also owns the
*write buffer*: records appended since the last flush live in a ``bytearray`` in this process
until :meth:`ActiveSegment.flush` hands them to the OS in one ``write``. That is what lets a put
cost less than a system call under ``fsync="never"`` and ``"interval"`` (ENG-14 .. ENG-16).

Readers take no lock (ENG-21). They see the active segment through :attr:`ActiveSegment.pending`,
a ``(slot, flushed_size, buffer)`` triple that the writer replaces in one assignment when it
flushes, and never changes afterwards except by appending to the buffer. A reader that took the
old triple still finds its record in the old buffer; one that took the new triple finds it in the
file. The store's ``get`` reads the triple itself rather than calling a method here, for speed.
"""

from __future__ import annotations

import re
from typing import Final

from .codec import encode_segment_header
from .filecache import SealedFile
from .fs import File, FileSystem

WRITE_BUFFER_SIZE: Final = 64 * 1024
"""ENG-16: buffered records are handed to the OS once this many bytes wait in the process."""

SEGMENT_NAME: Final = re.compile(r"segment-(\d{5,})\.log")

COMPACTING_SUFFIX: Final = ".compacting"
"""FMT-25: an output of a compaction is written under ``<segment>.compacting`` until durable."""


def segment_name(number: int) -> str:
    """FMT-1: ``segment-00001.log``; the number is zero-padded to at least five digits."""
    return f"segment-{number:05d}.log"


def parse_segment_name(name: str) -> int | None:
    """The segment number of a file name, or ``None`` for any other file in the directory."""
    match = SEGMENT_NAME.fullmatch(name)
    if match is None:
        return None
    number = int(match.group(1))
    return number if number >= 1 and segment_name(number) == name else None


class Segment:
    """A segment no longer written to: reads go straight to the file.

    Once the store's file cache has taken it over (:mod:`catlog.filecache`), ``file`` is a
    :class:`~catlog.filecache.SealedFile` and ``pread`` is either its open file's ``pread`` or,
    while that is closed, the cache's miss path (ENG-66).
    """

    __slots__ = ("file", "number", "packed", "pread", "slot")

    def __init__(self, file: File, number: int, slot: int, *, packed: bool = False) -> None:
        self.file = file
        self.number = number
        self.slot = slot
        self.packed = packed
        """Whether the segment is packed (FMT-26): its records have FMT-27's layout."""
        self.pread = file.pread

    def size(self) -> int:
        return self.file.size()

    def keep_open(self) -> None:
        """Hold this segment's file open until it is closed, before its name is removed: once
        the name is gone a file the cache closed could not be opened again, and a snapshot may
        still read it (ENG-40, ENG-68)."""
        if isinstance(self.file, SealedFile):
            self.file.keep_open()


class ActiveSegment(Segment):
    """The newest segment, the only one appended to, with its write buffer."""

    __slots__ = ("_buffer", "_flushed", "end", "pending")

    def __init__(self, file: File, number: int, slot: int) -> None:
        super().__init__(file, number, slot)
        self._flushed = file.size()
        self.end = self._flushed
        """Where the next record will go: the segment's size, buffered bytes included."""
        self._buffer = bytearray()
        self.pending: tuple[int, int, bytearray] = (slot, self._flushed, self._buffer)

    @classmethod
    def create(cls, fs: FileSystem, directory: str, number: int, slot: int) -> ActiveSegment:
        """Create a new segment with its header, durable before any record goes in (ENG-10)."""
        file = fs.open(f"{directory}/{segment_name(number)}", writable=True, create=True)
        try:
            file.append(encode_segment_header())
            file.sync()
            fs.sync_dir(directory)
        except BaseException:
            file.close()
            raise
        return cls(file, number, slot)

    def size(self) -> int:
        return self.end

    def append(self, record: bytes) -> int:
        """Buffer ``record``, flushing once the buffer is full; returns the record's offset."""
        offset = self.end
        self._buffer += record
        self.end = offset + len(record)
        if len(self._buffer) >= WRITE_BUFFER_SIZE:
            self.flush()
        return offset

    def flush(self) -> None:
        """Hand the buffered records to the OS in one write."""
        if self._buffer:
            buffer = self._buffer
            self.file.append(buffer)
            self._flushed += len(buffer)
            self._buffer = bytearray()
            self.pending = (self.slot, self._flushed, self._buffer)

    @property
    def unflushed(self) -> int:
        return len(self._buffer)

    def seal(self) -> Segment:
        """The read-only view of this segment once it stops being active."""
        assert not self._buffer, "seal() needs a flushed segment: the buffer would be lost"
        return Segment(self.file, self.number, self.slot)
