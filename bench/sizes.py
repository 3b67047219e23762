"""How big each workload is, for a full run and for a quick smoke run.

The full sizes are the ones the targets in bench/README.md are stated for; the quick sizes exist
so that ``python -m bench --quick`` checks the harness end to end in well under a minute (two
repetitions, each a child process of its own), and their ratios are not evidence for or
against a target (small stores fit every cache and hide per-key costs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

KEY_SIZE: Final = 16
VALUE_SIZE: Final = 100


@dataclass(frozen=True, slots=True)
class Sizes:
    fill_keys: int
    """Puts in the fill workload, and keys read back by the random-get workload."""
    large_keys: int
    """Keys in the store that the reopen and index-memory workloads build once and reuse."""
    durable_seconds: float
    """How long each durable-put contender runs per repetition."""
    floor_records: int
    """Records written by the pure-Python floor."""
    repeats: int
    """Repetitions of each timed workload; the best one is reported."""
    server_rounds: int
    """Interleaved rounds of the server workload at -P 16 (at -P 1, every third of them); the
    median of each contender is reported."""


FULL: Final = Sizes(
    fill_keys=200_000,
    large_keys=1_000_000,
    durable_seconds=3.0,
    floor_records=200_000,
    repeats=3,
    server_rounds=9,
)

QUICK: Final = Sizes(
    fill_keys=20_000,
    large_keys=20_000,
    durable_seconds=0.5,
    floor_records=20_000,
    repeats=2,
    server_rounds=3,
)
