"""Writing hint files: at rotation, in a background thread, and for compaction's outputs.

A hint (FMT-15 .. FMT-20, built by :mod:`catlog.hint`) lets a later open read a sealed segment's
keys without scanning its records. It is written under a temporary name, fsynced and renamed
(ENG-30); the directory fsync that makes the name durable is the caller's (the next segment's
creation at rotation, ENG-10) or the background writer's own (ENG-43).

Threads: :meth:`HintWriter.queue` hands segments to one background thread, started on first
use, which writes their hints in the order they were sealed. A failure there stops background
hints and is logged; it never stops the store, since no write waits on a hint (ENG-43).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from .fs import FileSystem
from .hint import TEMPORARY_SUFFIX, build_hint, hint_name
from .segment import Segment, segment_name

log = logging.getLogger("catlog")


class HintWriter:
    """The hint files of one data directory (ENG-30, ENG-31, ENG-43)."""

    def __init__(
        self, fs: FileSystem, directory: str, still_exists: Callable[[Segment], bool]
    ) -> None:
        self._fs = fs
        self._directory = directory
        self._still_exists = still_exists
        """Whether a segment is still in the store: compaction may remove one while it waits."""
        self._queue: queue.Queue[Segment | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.failed = False
        """ENG-43: a background hint failed; none is written in the background from then on."""

    def write(self, number: int, data: bytes) -> None:
        """ENG-30's steps for the segment ``number`` whose bytes are ``data``; raises OSError.

        The rename is durable once the caller fsyncs the directory.
        """
        path = f"{self._directory}/{hint_name(number)}"
        temporary = path + TEMPORARY_SUFFIX
        hint = build_hint(number, data)
        if isinstance(hint, str):
            log.warning("%s: no hint written: %s", segment_name(number), hint)
            return
        if self._fs.exists(temporary):  # a leftover's bytes must not prefix ours
            self._fs.remove(temporary)
        file = self._fs.open(temporary, writable=True, create=True)
        try:
            file.append(hint)
            file.sync()
        finally:
            file.close()
        self._fs.rename(temporary, path)

    def queue(self, segment: Segment) -> None:
        """ENG-43: write ``segment``'s hint in the background thread (started on first use)."""
        if self.failed:
            return
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name=f"catlog-hints {self._directory}", daemon=True
            )
            self._thread.start()
        self._queue.put(segment)

    def join(self) -> None:
        """ENG-43: return once every hint queued so far is written (or has failed)."""
        self._queue.join()

    def stop(self) -> None:
        """ENG-43: write the hints still queued, then end the thread."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        while (segment := self._queue.get()) is not None:
            try:
                if not self.failed and self._still_exists(segment):
                    self.write(segment.number, segment.file.pread(segment.size(), 0))
                    self._fs.sync_dir(self._directory)
            except OSError as exc:
                if self._still_exists(segment):  # not just a segment compaction removed
                    self.failed = True
                    log.error(
                        "%s: writing the hint of %s failed (%s); no more hints are written "
                        "in the background until the store is reopened",
                        self._directory,
                        segment_name(segment.number),
                        exc,
                    )
            finally:
                self._queue.task_done()
        self._queue.task_done()
