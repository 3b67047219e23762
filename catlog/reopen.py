"""What a server does about a store that refuses writes, and when (spec/server.md SRV-16..19).

A pure machine, driven by the server's timer: each look at the store goes in as
``look(now, failure)`` and comes out as the steps to take (report the failure, remind of it,
try a reopen); the outcome of a reopen goes back in with :meth:`StoreWatch.attempt_failed` or
:meth:`StoreWatch.reopened`. Time is a number passed in, so a test walks the backoff through an
hour of failures without sleeping, and the server (catlog.server) keeps only the I/O: the log
lines, the probe, closing and opening the store.

States, and what moves between them::

    HEALTHY --failure seen: REPORT--> FAILED
    FAILED  --due, after a failed write: REOPEN--> attempt_failed() --> FAILED (delay doubled)
                                                   reopened()       --> HEALTHY
    FAILED  --after a failed fsync--> FAILED, for good (SRV-19): only REMIND

The delay doubles after every attempt, failed or not, up to ``max_delay``, and falls back to
``first_delay`` only once a reopened store has gone ``max_delay`` seconds without failing.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .errors import StoreFailedError


@dataclass(frozen=True, slots=True)
class ReopenPolicy:
    """SRV-16, SRV-18: how often the server looks at its store, and how it retries a reopen.

    The defaults are the spec's; tests shrink the times so that a backoff takes a fraction of a
    second.
    """

    check_every: float = 0.25
    """Seconds between two looks at :attr:`catlog.Store.failure` (SRV-16: within 1 s)."""
    first_delay: float = 1.0
    max_delay: float = 30.0
    remind_every: float = 30.0
    probe_bytes: int = 64 * 1024
    """What the probe before a reopen writes and fsyncs (SRV-18)."""


class Step(enum.Enum):
    REPORT = "report"
    """The store has just been seen failing: log it at ERROR level, with the plan."""
    REMIND = "remind"
    """Writes are still refused and the last line about it is ``remind_every`` old."""
    REOPEN = "reopen"
    """Probe, close the failed store and open it again now; then tell the outcome."""


class StoreWatch:
    """The state of one server's store as :mod:`catlog.server` sees it; see the module."""

    def __init__(self, policy: ReopenPolicy) -> None:
        self.policy = policy
        self.failure: StoreFailedError | None = None
        """The failure being handled; None while the store accepts writes."""
        self.failed_at = 0.0
        self.attempts = 0
        """Reopen attempts since the failure was seen."""
        self.delay = policy.first_delay
        """Seconds from the failure (or the last attempt) to the next attempt."""
        self._reminded_at = 0.0
        self._next_attempt = 0.0
        self._reopened_at: float | None = None

    def look(
        self, now: float, failure: StoreFailedError | None, *, idle: bool = True
    ) -> list[Step]:
        """One look at the store: ``failure`` is what it says refuses its writes, or None;
        ``idle`` says that no fsync is in flight, so the store may be swapped now."""
        policy = self.policy
        if failure is None:
            reopened = self._reopened_at
            if reopened is not None and now - reopened >= policy.max_delay:
                self.delay, self._reopened_at = policy.first_delay, None
            return []
        if self.failure is None:
            self.failure, self.failed_at, self._reminded_at = failure, now, now
            self.attempts = 0
            self._next_attempt = now + self.delay
            return [Step.REPORT]
        steps = []
        if now - self._reminded_at >= policy.remind_every:
            self._reminded_at = now
            steps.append(Step.REMIND)
        if self.reopens and now >= self._next_attempt and idle:
            self.attempts += 1
            steps.append(Step.REOPEN)
        return steps

    @property
    def reopens(self) -> bool:
        """SRV-18, SRV-19: whether the server reopens the store itself (not after an fsync)."""
        return self.failure is not None and not self.failure.fsync_failed

    def attempt_failed(self, now: float) -> None:
        self.delay = min(2 * self.delay, self.policy.max_delay)
        self._next_attempt = now + self.delay

    def reopened(self, now: float) -> None:
        self.failure, self._reopened_at = None, now
        self.delay = min(2 * self.delay, self.policy.max_delay)
