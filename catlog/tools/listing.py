"""The segments of a data directory as they were at one moment, for tools that take no lock.

``dump``, ``map`` and ``export`` read a directory a running server may be changing (TOOL-36). A
compaction removes the segments it copied, and a listing read file by file would then name a file
that is gone by the time the tool reaches it. So :func:`open_listing` opens every listed segment
before reading any, and checks that a second listing names the same segments: then each name it
holds was a segment at the moment of the second listing, its open handle keeps its bytes whatever
happens to the name later (ENG-56's rule for the engine's own readers), and the set is one the
store's crash-safe order of renames and removals (ENG-39, REC-18) made a valid directory. A change
between the two listings makes it start again, a bounded number of times (TOOL-37).

Older segments never change once the store has moved on from them (ENG-10); the newest is read to
at least the end it had when its handle was opened (:class:`~catlog.fs.OsFile` keeps the size it
mapped), so a record half-way through being appended shows as a torn tail, as TOOL-30's note says.
"""

from __future__ import annotations

from types import TracebackType
from typing import Final

from catlog.fs import File, FileSystem
from catlog.scan import list_segments

from .status import UsageError

LISTING_ATTEMPTS: Final = 20
"""TOOL-37: listings tried before giving up on a directory that changes under every one."""


def segments_of(fs: FileSystem, directory: str) -> list[str]:
    """TOOL-40: the directory's segment names; a path with none is not a data directory."""
    names = list_segments(fs, directory)
    if not names:
        raise UsageError(f"{directory} holds no segment files; is it a catlog data directory?")
    return names


class Listing:
    """Open handles on the segments of one directory at one moment, oldest first."""

    def __init__(self, directory: str, names: list[str], files: list[File]) -> None:
        self.directory = directory
        self.names: list[str] = names
        self._files = files

    def read(self, index: int) -> bytes:
        """Segment ``names[index]`` whole, read through the handle opened with the listing."""
        file = self._files[index]
        return file.pread(file.size(), 0)

    def close(self) -> None:
        for file in self._files:
            file.close()
        self._files = []

    def __enter__(self) -> Listing:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def open_listing(fs: FileSystem, directory: str, *, attempts: int = LISTING_ATTEMPTS) -> Listing:
    """TOOL-36, TOOL-37: open every segment of ``directory`` as one listing named them.

    Raises :class:`UsageError` for a directory with no segment, or one that changed between every
    pair of listings ``attempts`` times in a row.
    """
    for _ in range(attempts):
        names = segments_of(fs, directory)
        files: list[File] = []
        try:
            for name in names:
                files.append(fs.open(f"{directory}/{name}"))
            if list_segments(fs, directory) == names:
                return Listing(directory, names, files)
        except FileNotFoundError:  # removed since the listing: a compaction finished
            pass
        except BaseException:
            _close(files)
            raise
        _close(files)
    raise UsageError(
        f"{directory} changed under each of {attempts} listings; "
        "its segments are being rewritten faster than they can be read"
    )


def _close(files: list[File]) -> None:
    for file in files:
        file.close()
