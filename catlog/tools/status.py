"""The exit statuses every tool follows (TOOL-38 .. TOOL-41), and the error for a wrong path.

One table for every tool, so a script can test any of them the same way: 0 the tool did what was
asked, 1 the store holds damage that stopped it (or, for ``check``, that it found), 2 the tool could
not run at all, 3 ``check`` found only a torn tail. :func:`status_of` turns an error into its row of
the table, so that no tool decides for itself what a locked directory means.
"""

from __future__ import annotations

from typing import Final

from catlog.errors import CatlogError, CorruptionError, UnsupportedFormatError

EXIT_OK: Final = 0
"""TOOL-38: done; for ``check``, no problem found."""
EXIT_DAMAGE: Final = 1
"""TOOL-39: damage that opening the store refuses, or that repair would not touch (TOOL-17)."""
EXIT_USAGE: Final = 2
"""TOOL-40: bad arguments, no data directory, a locked directory, a failing file system."""
EXIT_TORN_TAIL: Final = 3
"""TOOL-8: check found only a torn tail, which opening the store cuts by itself (REC-4)."""


class UsageError(CatlogError):
    """The path given to a tool is not a data directory or segment it can work on."""


def status_of(exc: CatlogError | OSError) -> int:
    """TOOL-39, TOOL-40: the exit status of a tool stopped by ``exc``.

    Only bytes that opening the store refuses are damage; everything else (a wrong path, a lock
    held elsewhere, an I/O error, a store made unusable by a failed fsync) means the tool could not
    run, and says nothing about the data.
    """
    if isinstance(exc, CorruptionError | UnsupportedFormatError):
        return EXIT_DAMAGE
    return EXIT_USAGE
