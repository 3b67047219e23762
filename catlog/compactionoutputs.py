"""The output segments of one compaction (ENG-39 step 2, ENG-57): written one after another.

:class:`Outputs` takes the live records the copy walks (:mod:`catlog.walk`) hand it and writes
them as packed segments (FMT-26) in the numbers the compaction reserved. Each output is fsynced,
hinted, renamed into place and the directory fsynced before the index entries move to it, so
nothing the writer relies on lies in an output before it is installed; one that fails is closed
and removed with its hint, and fails only the compaction (ENG-57). :mod:`catlog.compaction`
drives it.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Final

from .codec import PACKED_VERSION, SEGMENT_HEADER_SIZE, encode_segment_header
from .errors import CatlogError, CompactionError
from .fs import File
from .hint import TEMPORARY_SUFFIX as HINT_TEMPORARY_SUFFIX
from .hint import hint_name
from .index import pack_location
from .segment import COMPACTING_SUFFIX, Segment, segment_name

if TYPE_CHECKING:
    from .writer import Writer


def install(writer: Writer, segment: Segment, moves: list[tuple[bytes, int, int]]) -> None:
    """ENG-39 step 2, lock held: a durable output joins the store; its entries move to it.

    ENG-41, ENG-73: a record whose entry moves is dead in its input from then on, and a copy
    whose key was written or expired since it was copied is dead in the output; each is counted
    in the segment that holds it, so that removing an input takes away exactly what its share
    of the estimate holds, in whatever units open or the writes counted it."""
    with writer.lock:
        writer.segments.place(segment)
        index = writer.index
        expires = writer.expires
        keyspace = writer.keyspace
        slot = segment.slot
        for key, old, new in moves:
            if index.get(key) == old and not (expires and writer.expired(key)):
                index[key] = new
                keyspace.kill(len(key), old)
                continue
            if index.get(key) == old:
                keyspace.forget(key)  # expired since it was copied (ENG-34)
            keyspace.add_dead(slot, keyspace.size_of(len(key), new))


def check_writable(writer: Writer) -> None:
    """Stop a compaction once the store refuses writes (REC-10) or is closing."""
    with writer.lock:
        if writer.refusal is not None:
            raise writer.refused()


class Outputs:
    """ENG-39 step 2: the output segments of one compaction, written one after another.

    Records are gathered in a buffer and appended in chunks; an output is finished (fsynced,
    hinted, renamed into place, the directory fsynced, then installed) when the next record
    would take it past ``segment_size``, as the active segment would be rotated (ENG-9).
    """

    CHUNK: Final = 1 << 20

    # The output being written, each set by _start before anything reads it.
    _number: int
    _size: int
    _slot: int
    _moves: list[tuple[bytes, int, int]]
    """Each record copied into it: its key, its input location and its output location."""

    def __init__(self, writer: Writer, first: int, end: int) -> None:
        self._writer = writer
        self._next = first
        self._end = end
        self._file: File | None = None
        """The output being written, or ``None`` between outputs."""
        self._buffer = bytearray()
        self._uninstalled = False
        """ENG-57: an output was started and is not installed yet: a failure removes it."""
        self.bytes = 0
        self.skipped: list[tuple[bytes, int]] = []
        """ENG-55: ``(key, location)`` of the records copying skipped because their key had
        expired; :func:`check_nothing_left` forgets them."""
        self.records = 0
        self.written = 0
        self.appended = 0
        """ENG-77: bytes appended to outputs, installed or not."""

    def add(self, key: bytes, old: int, value_len: int, record: bytes) -> None:
        writer = self._writer
        if self._file is not None and self._size + len(record) > writer.segment_size:
            self.finish()
        if self._file is None:
            self._start()
        offset = self._size
        self._buffer += record
        self._size += len(record)
        self._moves.append((key, old, pack_location(self._slot, offset, value_len)))
        self.records += 1
        if len(self._buffer) >= self.CHUNK:
            self._write()

    def _start(self) -> None:
        writer = self._writer
        assert self._next < self._end, "ENG-39: the gap bounds the number of outputs"
        self._number = self._next
        self._next += 1
        path = f"{writer.path}/{segment_name(self._number)}{COMPACTING_SUFFIX}"
        with writer.lock:
            try:
                self._slot = writer.segments.new_slot(compaction=True)
            except CatlogError as exc:
                raise CompactionError(
                    f"{writer.path}/{segment_name(self._number)}", str(exc)
                ) from exc
            writer.segments.hold(self._slot, writer.active)
        self._uninstalled = True
        try:
            if writer.fs.exists(path):
                writer.fs.remove(path)
            self._file = writer.fs.open(path, writable=True, create=True)
            self._file.append(encode_segment_header(PACKED_VERSION))
        except OSError as exc:
            raise self._failed("creating", exc) from exc
        self.appended += SEGMENT_HEADER_SIZE
        self._size = SEGMENT_HEADER_SIZE
        self._moves = []

    def _write(self) -> None:
        assert self._file is not None
        try:
            self._file.append(self._buffer)
        except OSError as exc:
            raise self._failed("writing", exc) from exc
        self.appended += len(self._buffer)
        self._buffer = bytearray()

    def finish(self) -> None:
        """Make the current output durable, put it in place and move the index to it."""
        file = self._file
        if file is None:
            return
        writer = self._writer
        check_writable(writer)
        self._write()
        name = segment_name(self._number)
        try:
            file.sync()
        except OSError as exc:
            raise self._failed("fsyncing", exc) from exc
        try:
            file.close()
            reader = writer.fs.open(file.path)  # ENG-39: every output gets its hint
            try:
                data = reader.pread(self._size, 0)
            finally:
                reader.close()
            writer.hints.write(self._number, data)
            writer.fs.rename(file.path, f"{writer.path}/{name}")
        except OSError as exc:
            raise self._failed("finishing", exc) from exc
        try:
            writer.fs.sync_dir(writer.path)
        except OSError as exc:
            raise self._failed("fsyncing the directory of", exc) from exc
        try:
            installed = writer.fs.open(f"{writer.path}/{name}")
        except OSError as exc:
            raise self._failed("finishing", exc) from exc
        segment = Segment(installed, self._number, self._slot, packed=True)
        install(writer, segment, self._moves)
        self._uninstalled = False
        self.bytes += self._size
        self.written += 1
        self._file = None

    def _failed(self, what: str, exc: OSError) -> CompactionError:
        """ENG-57: a failing call on an output fails the compaction, not the store: nothing the
        writer relies on is in an output until it is installed."""
        path = f"{self._writer.path}/{segment_name(self._number)}"
        return CompactionError(path, f"{what} a compaction output failed ({exc})")

    def abandon(self) -> None:
        """ENG-57: after a failure, give back what the output not yet installed holds: its file,
        closed and removed (under either name, with its hint), and its slot. Best effort: what
        cannot be removed now is a leftover the next open removes (REC-18) or replays as the
        copies it holds."""
        if not self._uninstalled:
            return
        self._uninstalled = False
        writer = self._writer
        file, self._file = self._file, None
        if file is not None:
            with contextlib.suppress(OSError):
                file.close()
        name = f"{writer.path}/{segment_name(self._number)}"
        hint = f"{writer.path}/{hint_name(self._number)}"
        for path in (name + COMPACTING_SUFFIX, name, hint, hint + HINT_TEMPORARY_SUFFIX):
            with contextlib.suppress(OSError):
                if writer.fs.exists(path):
                    writer.fs.remove(path)
        with contextlib.suppress(OSError):
            writer.fs.sync_dir(writer.path)
        with writer.lock:
            writer.segments.release(self._slot)
