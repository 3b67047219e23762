"""The pure machine behind a server's failed store (catlog.reopen): backoff, reminders, refusal.

Time is a number here, so an hour of failures runs in microseconds and no test sleeps.
"""

from __future__ import annotations

from typing import Final

import pytest

import catlog
from catlog.reopen import ReopenPolicy, Step, StoreWatch

POLICY: Final = ReopenPolicy()


def failure(*, fsync: bool) -> catlog.StoreFailedError:
    return catlog.StoreFailedError("segment-00001.log: write failed", fsync_failed=fsync)


def reopen_times(watch: StoreWatch, error: catlog.StoreFailedError, until: float) -> list[float]:
    """Look every 0.25 s from 0 to ``until``; every reopen fails. The times of the attempts."""
    times = []
    for tick in range(int(until * 4) + 1):
        now = tick / 4
        if Step.REOPEN in watch.look(now, error):
            times.append(now)
            watch.attempt_failed(now)
    return times


@pytest.mark.spec("SRV-18")
def test_reopens_after_a_failed_write_start_at_one_second_and_double_to_thirty() -> None:
    watch = StoreWatch(POLICY)
    error = failure(fsync=False)
    assert watch.look(0.0, None) == []
    assert watch.look(0.0, error) == [Step.REPORT]
    times = reopen_times(watch, error, 120)
    assert times == [1, 3, 7, 15, 31, 61, 91]
    assert watch.attempts == len(times)


@pytest.mark.spec("SRV-18")
def test_no_reopen_runs_while_an_fsync_is_in_flight() -> None:
    watch = StoreWatch(POLICY)
    error = failure(fsync=False)
    watch.look(0.0, error)
    assert watch.look(1.0, error, idle=False) == []
    assert watch.look(1.25, error) == [Step.REOPEN]


@pytest.mark.spec("SRV-18")
def test_a_store_that_fails_again_soon_after_a_reopen_waits_longer_each_time() -> None:
    """A disk with a little space: each reopen works, and the store fails again at once."""
    watch = StoreWatch(POLICY)
    error = failure(fsync=False)
    now, delays = 0.0, []
    for _ in range(7):
        assert watch.look(now, error) == [Step.REPORT]
        delays.append(watch.delay)
        now += watch.delay
        assert Step.REOPEN in watch.look(now, error)
        watch.reopened(now)
        assert watch.look(now, None) == []
    assert delays == [1, 2, 4, 8, 16, 30, 30]


@pytest.mark.spec("SRV-18")
def test_the_delay_starts_again_at_one_second_once_a_reopened_store_lasted_thirty() -> None:
    watch = StoreWatch(POLICY)
    error = failure(fsync=False)
    watch.look(0.0, error)
    watch.look(1.0, error)
    watch.attempt_failed(1.0)  # next in 2 s
    watch.look(3.0, error)
    watch.reopened(3.0)
    watch.look(32.0, None)
    assert watch.delay == 4, "not 30 s healthy yet"
    watch.look(33.0, None)
    assert watch.delay == 1
    assert watch.look(40.0, error) == [Step.REPORT]
    assert watch.look(41.0, error) == [Step.REOPEN]


@pytest.mark.spec("SRV-19")
def test_after_a_failed_fsync_no_reopen_is_ever_tried_and_reminders_come_every_thirty() -> None:
    watch = StoreWatch(POLICY)
    error = failure(fsync=True)
    steps = [(tick / 4, watch.look(tick / 4, error)) for tick in range(3600 * 4 + 1)]
    assert steps[0] == (0.0, [Step.REPORT])
    assert not watch.reopens
    assert all(Step.REOPEN not in s for _, s in steps)
    reminders = [now for now, s in steps if s == [Step.REMIND]]
    assert reminders == [30.0 * n for n in range(1, 121)]


@pytest.mark.spec("SRV-16")
def test_a_failure_is_reported_once_however_often_the_store_is_looked_at() -> None:
    watch = StoreWatch(ReopenPolicy(first_delay=3600, remind_every=3600))
    error = failure(fsync=False)
    steps = [watch.look(tick / 100, error) for tick in range(10_000)]
    assert steps[0] == [Step.REPORT]
    assert not any(steps[1:])
