"""The typed errors of catlog's public API (spec/engine.md, ENG-22).

Every error a caller can see derives from :class:`CatlogError`, so ``except catlog.CatlogError`` is
a complete handler. Errors about bytes on disk name the file and the offset, in the form
``segment-00003.log@4096: crc mismatch`` that ``catlog check`` also prints.
"""

from __future__ import annotations


class CatlogError(Exception):
    """Base class of every error catlog raises on purpose."""


class CorruptionError(CatlogError):
    """Bytes on disk that are not what the format promises, somewhere a crash cannot explain."""

    def __init__(self, path: str, offset: int, reason: str) -> None:
        self.path = path
        self.offset = offset
        self.reason = reason
        super().__init__(f"{path}@{offset}: {reason}")


class ReadError(CatlogError, OSError):
    """Reading a record failed in the operating system (EIO, say): the disk, not the bytes.

    Also an :class:`OSError`, which is what it wraps (its ``__cause__``), so handlers of either
    catch it. The store goes on: a failed read refuses nothing else (ENG-22).
    """

    def __init__(self, path: str, offset: int, reason: str) -> None:
        self.path = path
        self.offset = offset
        self.reason = reason
        super().__init__(f"{path}@{offset}: {reason}")

    def __str__(self) -> str:
        return f"{self.path}@{self.offset}: {self.reason}"


class UnsupportedFormatError(CatlogError):
    """A segment written by a newer (or foreign) format version than this reader knows (FMT-3)."""

    def __init__(self, path: str, version: int) -> None:
        self.path = path
        self.version = version
        super().__init__(f"{path}: segment format version {version} is not supported")


class OpenError(CatlogError, OSError):
    """Opening a store failed in the operating system (ENG-49): the message says which step,
    on which path, in words, so that a full disk or a misnamed directory reads as what it is.

    Also an :class:`OSError` (its ``errno`` is the cause's), which is what it wraps.
    """

    def __init__(self, path: str, doing: str, cause: OSError, advice: str = "") -> None:
        self.path = path
        self.doing = doing
        message = f"cannot open {path}: {doing}: {cause}"
        # ENG-70: where the operator can do something about it, the message says what.
        super().__init__(cause.errno, f"{message}; {advice}" if advice else message)

    def __str__(self) -> str:
        return str(self.args[1])


class LockedError(CatlogError):
    """Another process (or another open Store in this one) holds the data directory (ENG-20)."""


class StoreClosedError(CatlogError):
    """The store was closed; open it again to go on (ENG-19)."""


class StoreFailedError(CatlogError):
    """A write or fsync failed; the store refuses writes until it is reopened (REC-10).

    ``fsync_failed`` tells the two apart (ENG-47): after a failed fsync the page cache may hold
    bytes the disk lost, so only an operator should reopen; after a failed write it is safe.
    """

    def __init__(self, message: str, *, fsync_failed: bool = False) -> None:
        self.fsync_failed = fsync_failed
        super().__init__(message)


def fresh_copy(error: CatlogError) -> CatlogError:
    """A new error like ``error``, so that each raise of a refusal (REC-10, ENG-19) gets its
    own traceback rather than growing one shared object's."""
    if isinstance(error, StoreFailedError):
        return StoreFailedError(str(error), fsync_failed=error.fsync_failed)
    return type(error)(*error.args)


class CompactionError(CatlogError):
    """A compaction failed on one of its outputs (a full disk, say); the store goes on (ENG-57).

    ``path`` names the output being written; the message says what failed. Nothing is lost and
    the store accepts writes: the output was removed, and no input had been.
    """

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}; the compaction was abandoned, the store goes on")


class KeyTooLargeError(CatlogError, ValueError):
    """A key longer than ``MAX_KEY_SIZE`` (FMT-9)."""


class ValueTooLargeError(CatlogError, ValueError):
    """A value longer than ``MAX_VALUE_SIZE`` (FMT-9)."""


class BatchTooLargeError(CatlogError, ValueError):
    """A batch whose records would exceed the value-field limit of one record (FMT-22)."""


class InvalidTypeError(CatlogError, TypeError):
    """A key or value that is not ``bytes`` (ENG-2)."""
