"""Shared test set-up: hypothesis profiles, the ``spec`` marker, and store fixtures.

Profiles (select with ``HYPOTHESIS_PROFILE``): ``ci`` is bounded so plain ``nox`` stays within
minutes; ``nightly`` runs the same properties far longer; ``dev`` is quick for editing;
``mutation`` is ``dev`` made repeatable (fixed examples, no example database) for ``nox -s
mutation``, so that which mutants survive does not change from one run to the next, and without
shrinking: mutmut needs only pass or fail, and shrinking a stateful failure the model suite found
in a mutant took minutes (mutants of ``apply_record`` timed out after 230 s doing it).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings

import catlog

settings.register_profile(
    "ci",
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile(
    "nightly",
    max_examples=20_000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
settings.register_profile("dev", max_examples=20, deadline=None)
settings.register_profile(
    "mutation",
    settings.get_profile("dev"),
    derandomize=True,
    database=None,
    print_blob=False,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


_CLEAN_DURATION = pytest.StashKey[float]()

MUTATION_HANG_FACTOR = 3.0
MUTATION_HANG_GRACE_S = 5.0
"""A mutant's test that runs longer than ``3 x`` its clean run ``+ 5 s`` is taken to hang."""

MUTMUT_TIMEOUT_EXIT = 36
"""The exit status mutmut 3 counts as a timeout (its ``status_by_exit_code``)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under ``nox -s mutation``, run a mutant's tests fastest first.

    mutmut stops at a mutant's first failing test, so a mutant most tests kill is killed sooner
    when the quick ones go first. ``CATLOG_MUTATION_STATS`` names mutmut's record of each
    test's duration in its clean run (absent in that run itself: then the order is kept).
    """
    stats = Path(os.environ.get("CATLOG_MUTATION_STATS", "") or os.devnull)
    if stats.is_file():
        durations: dict[str, float] = json.loads(stats.read_text())["duration_by_test"]
        items.sort(key=lambda item: durations.get(item.nodeid, 0.0))
        for item in items:
            item.stash[_CLEAN_DURATION] = durations.get(item.nodeid, 0.0)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    """Under ``nox -s mutation``, end a mutant's run as a timeout as soon as one test hangs.

    mutmut's own limit is for the whole run: five times the clean run of all the mutated
    function's tests, over a minute for the store's. A mutant that deadlocks the group commit
    (most of the store's timeouts) would hold its worker that long; this watchdog ends it a few
    seconds after the one test it hangs in was due, with the status mutmut counts as a timeout.
    Outside mutation runs (no clean duration stashed) it does nothing.
    """
    clean = item.stash.get(_CLEAN_DURATION, None)
    if clean is None:
        return (yield)
    limit = MUTATION_HANG_FACTOR * clean + MUTATION_HANG_GRACE_S
    watchdog = threading.Timer(limit, os._exit, args=(MUTMUT_TIMEOUT_EXIT,))
    watchdog.daemon = True
    watchdog.start()
    try:
        return (yield)
    finally:
        watchdog.cancel()


@pytest.fixture
def data_dir(tmp_path: Path) -> str:
    """A fresh, not yet existing data directory."""
    return str(tmp_path / "data")


@pytest.fixture
def store(data_dir: str) -> Iterator[catlog.Store]:
    """An open store with the default policy (fsync="always") in a fresh directory."""
    with catlog.open(data_dir) as opened:
        yield opened
