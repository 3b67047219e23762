"""The progress bar ``check`` and ``compact`` draw on a terminal's stderr (TOOL-9, TOOL-22).

It is drawn only where a person watches (stderr is a terminal) and the work is long enough for a
bar not to flicker; anywhere else the tools write nothing to stderr but errors.
"""

from __future__ import annotations

from typing import Final, TextIO

PROGRESS_MIN_BYTES: Final = 8 * 1024 * 1024
"""TOOL-9: below this a check takes well under a second, and a bar would only flicker."""
PROGRESS_WIDTH: Final = 30
_MIB: Final = 1024 * 1024


class ProgressBar:
    """TOOL-9: a one-line bar on a terminal's stderr, redrawn in place; silent anywhere else."""

    def __init__(
        self, stream: TextIO, total: int, *, enabled: bool, label: str = "checking"
    ) -> None:
        self._stream = stream
        self._total = total
        self._label = label
        self._enabled = enabled
        self._step = max(1, total // 200)
        self._next = 0
        self._shown = 0

    @classmethod
    def for_stream(cls, stream: TextIO, total: int, label: str = "checking") -> ProgressBar:
        enabled = total > PROGRESS_MIN_BYTES and stream.isatty()
        return cls(stream, total, enabled=enabled, label=label)

    def update(self, done: int) -> None:
        if not self._enabled or done < self._next:
            return
        self._next = done + self._step
        line = render_progress(done, self._total, label=self._label)
        self._stream.write("\r" + line.ljust(self._shown))
        self._stream.flush()
        self._shown = len(line)

    def clear(self) -> None:
        """Erase the bar, so that a line printed next starts at the left margin."""
        if self._shown:
            self._stream.write("\r" + " " * self._shown + "\r")
            self._stream.flush()
            self._shown = 0
            self._next = 0


def render_progress(
    done: int, total: int, width: int = PROGRESS_WIDTH, *, label: str = "checking"
) -> str:
    """``checking [#########---------------------]  30%  3.0/10.0 MiB``."""
    fraction = 1.0 if total <= 0 else min(max(done / total, 0.0), 1.0)
    filled = int(fraction * width)
    return (
        f"{label} [{'#' * filled}{'-' * (width - filled)}] {fraction:4.0%} "
        f"{done / _MIB:.1f}/{total / _MIB:.1f} MiB"
    )
