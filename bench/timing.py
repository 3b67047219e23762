"""Timed samples and best-of-N: the only clock the harness uses is ``time.perf_counter``.

Every throughput workload runs ``repeats`` times and reports its best repetition. The best, not
the mean, because the noise on a shared machine (another process, a page-cache writeback landing
in the middle of a loop) only ever makes a run slower: the fastest run is the one closest to what
the code itself costs. All repetitions are kept in the JSON results so the spread stays visible.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Sample:
    """One repetition: ``ops`` operations took ``seconds``."""

    ops: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.ops / self.seconds if self.seconds > 0 else float("inf")


@dataclass(frozen=True, slots=True)
class Timing:
    """Every repetition of one contender in one workload."""

    samples: tuple[Sample, ...]

    @property
    def best(self) -> Sample:
        """The fastest repetition (highest rate; for a fixed op count, the shortest)."""
        return max(self.samples, key=lambda s: s.rate)

    @property
    def rate(self) -> float:
        return self.best.rate

    @property
    def seconds(self) -> float:
        return self.best.seconds


def round_robin(times: int, runs: dict[str, Callable[[], Sample]]) -> dict[str, Timing]:
    """Run every contender once per round, ``times`` rounds; each run times only its own loop.

    Round-robin rather than all repetitions of one contender in a row, so that a slow spell of
    the machine (a neighbour's burst, the disk flushing someone's dirty pages) is shared out
    across contenders instead of landing on whichever one happened to be running.
    """
    samples: dict[str, list[Sample]] = {name: [] for name in runs}
    for _ in range(times):
        for name, run in runs.items():
            samples[name].append(run())
    return {name: Timing(tuple(found)) for name, found in samples.items()}


def timed(ops: int, loop: Callable[[], object]) -> Sample:
    """Time one call of ``loop``, which performs ``ops`` operations."""
    start = time.perf_counter()
    loop()
    return Sample(ops, time.perf_counter() - start)


def for_duration(seconds: float, op: Callable[[int], object]) -> Sample:
    """Call ``op(0)``, ``op(1)``, ... until ``seconds`` have passed; count the calls.

    The clock is read after every call. That costs well under a microsecond, which is noise
    beside the millisecond-scale fsync this is used for.
    """
    clock = time.perf_counter
    start = clock()
    deadline = start + seconds
    count = 0
    now = start
    while now < deadline:
        op(count)
        count += 1
        now = clock()
    return Sample(count, now - start)
