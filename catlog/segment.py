"""Segment files: their names (FMT-1), reading any segment, and writing the active one.

A segment is read with one positional read per record (ENG-11). The active segment also owns the
*write buffer*: records appended since the last flush live in a ``bytearray`` in this process
until :meth:`ActiveSegment.flush` hands them to the OS in one ``write``. That is what lets a put
cost less than a system call under ``fsync="never"`` and ``"interval"`` (ENG-14 .. ENG-16).

Readers take no lock (ENG-21). They see the active segment through :attr:`ActiveSegment.pending`,
a ``(flushed_size, buffer)`` pair that the writer replaces in one assignment when it flushes and
never mutates afterwards except by appending, so a reader that took the old pair still finds its
record in the old buffer, and one that took the new pair finds it in the file.
"""

from __future__ import annotations

import re
from typing import Final

from .codec import SEGMENT_HEADER_SIZE, encode_segment_header
from .fs import File, FileSystem

SEGMENT_NAME: Final = re.compile(r"segment-(\d{5,})\.log")


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
    """A segment no longer written to: reads go straight to the file."""

    __slots__ = ("file", "number", "slot")

    def __init__(self, file: File, number: int, slot: int) -> None:
        self.file = file
        self.number = number
        self.slot = slot

    def read_at(self, offset: int, size: int) -> bytes:
        return self.file.read_at(offset, size)

    def size(self) -> int:
        return self.file.size()


class ActiveSegment(Segment):
    """The newest segment, the only one appended to, with its write buffer."""

    __slots__ = ("_buffer", "_flushed", "pending", "records")

    def __init__(self, file: File, number: int, slot: int, records: int) -> None:
        super().__init__(file, number, slot)
        self._flushed = file.size()
        self._buffer = bytearray()
        self.pending: tuple[int, bytearray] = (self._flushed, self._buffer)
        self.records = records

    @classmethod
    def create(cls, fs: FileSystem, directory: str, number: int, slot: int) -> ActiveSegment:
        """Create a new segment with its header, durable before any record goes in (ENG-10)."""
        file = fs.open(f"{directory}/{segment_name(number)}", writable=True, create=True)
        file.append(encode_segment_header())
        file.sync()
        fs.sync_dir(directory)
        return cls(file, number, slot, records=0)

    def size(self) -> int:
        return self._flushed + len(self._buffer)

    def append(self, record: bytes) -> int:
        """Buffer ``record``; returns its offset in the segment."""
        offset = self._flushed + len(self._buffer)
        self._buffer += record
        self.records += 1
        return offset

    def flush(self) -> None:
        """Hand the buffered records to the OS in one write."""
        if self._buffer:
            buffer = self._buffer
            self.file.append(buffer)
            self._flushed += len(buffer)
            self._buffer = bytearray()
            self.pending = (self._flushed, self._buffer)

    @property
    def unflushed(self) -> int:
        return len(self._buffer)

    def read_at(self, offset: int, size: int) -> bytes:
        flushed, buffer = self.pending
        if offset >= flushed:
            start = offset - flushed
            return bytes(buffer[start : start + size])
        return self.file.read_at(offset, size)

    def seal(self) -> Segment:
        """The read-only view of this segment once it stops being active."""
        assert not self._buffer, "seal() needs a flushed segment: the buffer would be lost"
        return Segment(self.file, self.number, self.slot)


def has_records(size: int) -> bool:
    """Whether a segment of ``size`` bytes holds anything past its header."""
    return size > SEGMENT_HEADER_SIZE
