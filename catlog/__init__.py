"""catlog: a persistent, append-only, log-structured key-value store.

This module is the public API and nothing more (spec/engine.md). Everything a user needs is
re-exported here; ``tests/unit/test_api.py`` checks that ``__all__`` is exactly this surface.
"""

from .batch import Batch, BatchOp
from .clock import Clock, ManualClock, SystemClock
from .codec import MAX_KEY_SIZE, MAX_VALUE_SIZE
from .errors import (
    BatchTooLargeError,
    CatlogError,
    CompactionError,
    CorruptionError,
    InvalidTypeError,
    KeyTooLargeError,
    LockedError,
    OpenError,
    ReadError,
    StoreClosedError,
    StoreFailedError,
    UnsupportedFormatError,
    ValueTooLargeError,
)
from .fs import File, FileLock, FileSystem, OsFileSystem
from .opening import TailRepair
from .options import DEFAULT_FSYNC_INTERVAL_MS, DEFAULT_SEGMENT_SIZE, FsyncPolicy, HintMode
from .snapshot import Snapshot
from .stats import StoreStats
from .store import Store, open
from .transaction import Transaction

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_FSYNC_INTERVAL_MS",
    "DEFAULT_SEGMENT_SIZE",
    "MAX_KEY_SIZE",
    "MAX_VALUE_SIZE",
    "Batch",
    "BatchOp",
    "BatchTooLargeError",
    "CatlogError",
    "Clock",
    "CompactionError",
    "CorruptionError",
    "File",
    "FileLock",
    "FileSystem",
    "FsyncPolicy",
    "HintMode",
    "InvalidTypeError",
    "KeyTooLargeError",
    "LockedError",
    "ManualClock",
    "OpenError",
    "OsFileSystem",
    "ReadError",
    "Snapshot",
    "Store",
    "StoreClosedError",
    "StoreFailedError",
    "StoreStats",
    "SystemClock",
    "TailRepair",
    "Transaction",
    "UnsupportedFormatError",
    "ValueTooLargeError",
    "__version__",
    "open",
]
