"""Where the engine gets the time from (ENG-24), so tests move time instead of sleeping.

Two readings are needed and they must not be confused: wall-clock milliseconds, stamped into each
record (FMT-4) for people and later TTLs, and a monotonic reading that paces ``fsync="interval"``
(ENG-15) and cannot jump when the wall clock is set.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int:
        """Milliseconds since the Unix epoch (wall clock)."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards."""


class SystemClock:
    """The real clocks of the machine."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic(self) -> float:
        return time.monotonic()


class ManualClock:
    """A clock that moves only when a test says so; safe to share between threads."""

    def __init__(self, now_ms: int = 1_700_000_000_000, monotonic: float = 0.0) -> None:
        self._lock = threading.Lock()
        self._now_ms = now_ms
        self._monotonic = monotonic

    def now_ms(self) -> int:
        with self._lock:
            return self._now_ms

    def monotonic(self) -> float:
        with self._lock:
            return self._monotonic

    def step_wall_clock(self, seconds: float) -> None:
        """Move the wall-clock reading alone by ``seconds``, back if negative, as an operator or
        an NTP step moves a real one; the monotonic reading does not move (ENG-24, ENG-55)."""
        with self._lock:
            self._now_ms += round(seconds * 1000)

    def advance(self, seconds: float) -> None:
        """Move both readings forward by ``seconds``."""
        if seconds < 0:
            raise ValueError("a clock never goes backwards")
        with self._lock:
            self._monotonic += seconds
            self._now_ms += round(seconds * 1000)
