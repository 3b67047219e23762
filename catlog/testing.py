"""Test hooks: the one place where catlog's tests reach past the public API.

Tests go through the public API, the injected clock and the injected file system (STYLE.md).
What none of those can reach is listed here, each hook small, named for the state it creates,
and documented as a test hook; a test that needs another adds it here rather than touching a
store's private members itself. Like trio's testing helpers, it ships with the package, but it
is not re-exported from :mod:`catlog` and is not part of the API spec/engine.md specifies.

- :func:`parked_background_compactions`: a background compaction that has started its thread
  but not yet taken the compaction lock, the window ENG-42's "or starting" covers. No file
  system or clock call happens in that window, so no injected object can hold a thread there.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .store import Store
    from .writer import Writer


@contextmanager
def parked_background_compactions(store: Store) -> Iterator[None]:
    """Within the block, a background compaction ``store`` starts parks in its thread before
    taking the compaction lock; leaving the block lets it run. For tests only."""
    compaction = store._writer.compaction
    run = compaction._background
    release = threading.Event()

    def parked(writer: Writer, max_bytes: int | None) -> None:
        release.wait()
        run(writer, max_bytes)

    setattr(compaction, "_background", parked)  # noqa: B010 - shadows the method, for this block
    try:
        yield
    finally:
        release.set()
        delattr(compaction, "_background")
