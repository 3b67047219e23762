"""Fail every call of every kind, one at a time, and hold the store to REC-10 and REC-11.

``test_failing_fs.py`` shows each failure once, on the real disk. This suite sweeps instead, on
:class:`SimFileSystem`: for a workload with rotations (and for one that starts by repairing a torn
tail, the only place the engine truncates), it counts how often each operation is called, then
reruns the workload once per call with that call failing (``EIO`` once, ``ENOSPC`` for good, and
short writes), the way SQLite's test VFS fails the Nth call. After each failure:

* the caller got ``StoreFailedError`` with the ``OSError`` as its cause (a failure inside
  ``catlog.open`` surfaces as that ``OSError`` or ``StoreFailedError``), and the write was not
  acknowledged nor made visible;
* the store refuses every later write, flush and sync even once the disk is healthy, and never
  calls fsync (or anything that writes) again, not even in ``close()`` (REC-10);
* a crash right then, in every state REC-1 allows, and a plain restart on the healed disk both
  recover a prefix of the issued writes holding every write acknowledged as durable (REC-11).
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field
from typing import Final, Literal

import pytest

import catlog
from catlog.simfs import DiskImage, Operation, SimFileSystem
from tests.crash.test_crash_points import (
    DIRECTORY,
    INTERVAL_MS,
    LONG,
    NOW_MS,
    TALLY,
    TTL_SECONDS,
    Explorer,
    Policy,
    Run,
    Step,
    _Summary,
    fresh_fs,
    is_segment,
    prelude_torn_record,
    systematic,
    workload,
)

WORKLOADS: Final = 10 if LONG else 2
STEPS: Final = 60 if LONG else 24
SEGMENT_SIZE: Final = 96

Mode = tuple[int, bool]
"""``(errno, persistent)``."""
MODES: Final[list[Mode]] = (
    [(errno.EIO, False), (errno.EIO, True), (errno.ENOSPC, False), (errno.ENOSPC, True)]
    if LONG
    else [(errno.EIO, False), (errno.ENOSPC, True)]
)
Scenario = Literal["fresh", "torn tail"]


@pytest.fixture(scope="module", autouse=True)
def _report(request: pytest.FixtureRequest) -> None:
    manager = request.config.pluginmanager
    if not manager.has_plugin("catlog-crash-points-summary"):
        manager.register(_Summary(), "catlog-crash-points-summary")


def start(scenario: Scenario) -> tuple[SimFileSystem, dict[bytes, bytes]]:
    if scenario == "fresh":
        return fresh_fs(), {}
    return prelude_torn_record()


@dataclass
class Failed:
    """A workload run until its first failure (or its end, if nothing failed)."""

    states: list[dict[bytes, bytes]]
    durable: int
    """How many writes were acknowledged as durable before the failure."""
    error: BaseException | None = None
    where: str = ""
    notes: list[str] = field(default_factory=list)
    compaction_errors: list[catlog.CompactionError] = field(default_factory=list)
    """ENG-57: compactions that failed on an output while the store went on."""

    @property
    def issued(self) -> int:
        return len(self.states) - 1


def assert_refuses_and_stays_still(store: catlog.Store, fs: SimFileSystem) -> list[str]:
    """REC-10 after a failure: refuse all writing, and never touch the disk to write again."""
    fs.heal()
    before = {op: fs.calls[op] for op in ("append", "sync", "sync_dir", "truncate")}
    problems = []
    attempts = {
        "put": lambda: store.put(b"later", b"refused"),
        "delete": lambda: store.delete(b"later"),
        "sync": store.sync,
        "flush": store.flush,
    }
    for name, attempt in attempts.items():
        try:
            attempt()
        except catlog.StoreFailedError:
            continue
        except catlog.CatlogError as exc:  # pragma: no cover - reported below
            problems.append(f"{name} raised {exc!r}, not StoreFailedError")
            continue
        problems.append(f"{name} was accepted after the store failed")
    if store.get(b"later") is not None:
        problems.append("a refused put became visible")
    try:
        store.close()
    except catlog.StoreFailedError:
        pass
    else:
        problems.append("close() returned normally after the store failed (ENG-46)")
    after = {op: fs.calls[op] for op in before}
    if after != before:
        problems.append(f"the failed store wrote or synced again: {before} -> {after}")
    return problems


def run_with_fault(
    fs: SimFileSystem, policy: Policy, steps: list[Step], first: dict[bytes, bytes]
) -> Failed:
    """Run ``steps`` on ``fs`` (a fault armed) until something fails; check the failed store."""
    clock = catlog.ManualClock(NOW_MS)
    result = Failed([dict(first)], 0)
    model = dict(first)

    def open_store() -> catlog.Store:
        return catlog.open(
            DIRECTORY,
            fs=fs,
            fsync=policy,
            segment_size=SEGMENT_SIZE,
            fsync_interval_ms=INTERVAL_MS,
            clock=clock,
        )

    try:
        store = open_store()
    except (OSError, catlog.StoreFailedError) as exc:
        result.error, result.where = exc, "open"
        return result
    for step in [*steps, Step("reopen")]:
        before = fs.operations
        written = result.issued
        writes = step.kind in ("put", "ttl", "batch") or (
            step.kind == "delete" and step.key in model
        )
        visible_before = dict(store.items()) if writes else {}
        try:
            if step.kind == "put":
                store.put(step.key, step.value)
            elif step.kind == "ttl":
                store.put(step.key, step.value, ttl=TTL_SECONDS)
            elif step.kind == "batch":
                store.write_batch(
                    [("delete", k) if v is None else ("put", k, v) for k, v in step.ops]
                )
            elif step.kind == "delete":
                assert store.delete(step.key) is writes
            elif step.kind == "sync":
                store.sync()
            elif step.kind == "flush":
                store.flush()
            elif step.kind == "tick":
                clock.advance(INTERVAL_MS / 1000)
                store.tick()
            elif step.kind == "compact":
                store.compact()
            elif step.kind == "compact oldest":
                store.compact(max_bytes=2 * SEGMENT_SIZE)  # ENG-73
            else:
                store.close()
                store = open_store()
        except catlog.CompactionError as exc:
            result.compaction_errors.append(exc)  # ENG-57: only the compaction failed
            continue
        except catlog.StoreFailedError as exc:
            result.error, result.where = exc, step.kind
            if writes:
                result.states.append(_after(model, step))
            if not store.closed:
                if writes and dict(store.items()) != visible_before:
                    result.notes.append("the failed write changed what readers see")
                result.notes += assert_refuses_and_stays_still(store, fs)
            return result
        except OSError as exc:
            # Only catlog.open may let the OS error through; any other call must wrap it.
            result.error, result.where = exc, "open" if step.kind == "reopen" else step.kind
            return result
        if writes:
            model = _after(model, step)
            result.states.append(dict(model))
        synced = any(
            op == "sync" and is_segment(path) for op, path in fs.trace[before : fs.operations]
        )
        if synced:
            result.durable = written  # a rotation, interval flush, sync or close fsynced
        if step.kind in ("sync", "reopen") or (writes and policy == "always"):
            result.durable = result.issued
    store.close()
    return result


def _after(model: dict[bytes, bytes], step: Step) -> dict[bytes, bytes]:
    after = dict(model)
    if step.kind in ("put", "ttl"):
        after[step.key] = step.value
    elif step.kind == "batch":
        for key, value in step.ops:
            if value is None:
                after.pop(key, None)
            else:
                after[key] = value
    else:
        after.pop(step.key, None)
    return after


def check_recovery(fs: SimFileSystem, failed: Failed, image: DiskImage) -> list[str]:
    """REC-11: a crash now, or a restart on the healed disk, recovers an allowed prefix."""
    run = Run(
        images=[image],
        trace=list(fs.trace),
        states=failed.states,
        durable=[(0, failed.durable)],
        issued=[(0, failed.issued)],
    )
    explorer = Explorer(SEGMENT_SIZE)
    explorer.check(run, systematic)
    fs.heal()
    with catlog.open(DIRECTORY, fs=fs, segment_size=SEGMENT_SIZE) as store:
        found = dict(store.items())
    if found not in failed.states[failed.durable :]:
        explorer.failures.append(
            f"restart after the failure recovered {found!r}, not a prefix of length "
            f"{failed.durable}..{failed.issued}"
        )
    return explorer.failures


def sweep(
    scenario: Scenario, policy: Policy, operation: Operation, modes: list[Mode], partial: int = 0
) -> int:
    """Fail each call of ``operation`` in turn; returns how many faults fired."""
    fired = 0
    for seed in range(WORKLOADS):
        # The checks read through the store; a failing read there would be the test's own.
        steps = [] if operation == "pread" else workload(seed * 101 + len(policy), STEPS)
        fs, first = start(scenario)
        baseline = fs.calls[operation]
        healthy = run_with_fault(fs, policy, steps, first)
        assert healthy.error is None, healthy.error
        count = fs.calls[operation] - baseline
        for nth in range(1, count + 1):
            for error, persistent in modes:
                fs, first = start(scenario)
                fs.fail(operation, nth=nth, error=error, persistent=persistent, partial=partial)
                failed = run_with_fault(fs, policy, steps, first)
                where = f"{operation} #{nth} failing with {errno.errorcode[error]}"
                fired += 1
                TALLY["faults injected"] += 1
                cause: BaseException | None = failed.error
                if cause is None:
                    assert failed.compaction_errors, f"{where}: nothing failed"
                    cause = failed.compaction_errors[0].__cause__
                elif isinstance(cause, catlog.StoreFailedError):
                    cause = cause.__cause__
                else:
                    assert failed.where == "open", f"{where}: {failed.error!r} outside open"
                assert isinstance(cause, OSError), f"{where}: no OSError chained as the cause"
                assert cause.errno == error, f"{where}: surfaced {cause!r}"
                assert not failed.notes, f"{where} during {failed.where}: {failed.notes}"
                problems = check_recovery(fs, failed, fs.image())
                assert not problems, f"{where} during {failed.where}:\n" + "\n".join(problems[:5])
    return fired


OPERATIONS: Final[list[Operation]] = ["append", "sync", "sync_dir", "open", "listdir", "lock"]


@pytest.mark.spec("REC-10", "REC-11", "REC-2", "ENG-14", "ENG-22")
@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("policy", ["always", "never", "interval"])
def test_each_failing_call_stops_the_store_and_reopens_to_a_prefix(
    policy: Policy, operation: Operation
) -> None:
    """Every call of ``operation`` in a rotating workload, failed in turn."""
    assert sweep("fresh", policy, operation, MODES) > 0


@pytest.mark.spec("REC-10", "REC-11", "REC-4", "REC-9")
@pytest.mark.parametrize("operation", ["truncate", "append", "sync", "sync_dir", "open", "pread"])
def test_each_failing_call_during_tail_repair_fails_the_open_and_a_retry_repairs(
    operation: Operation,
) -> None:
    """Opening a directory with a torn tail quarantines and truncates; fail each step of it.

    A failing ``pread`` is swept over the open alone: replay reads each segment once.
    """
    assert sweep("torn tail", "always", operation, MODES) > 0


@pytest.mark.spec("REC-10", "REC-11", "REC-4")
@pytest.mark.parametrize("partial", [1, 12, 21, 40])
@pytest.mark.parametrize("policy", ["always", "never"])
def test_short_writes_leave_a_tail_that_reopening_cuts_off(policy: Policy, partial: int) -> None:
    """A write that ran out of space after ``partial`` bytes: a torn tail made by the engine
    itself, with the process still running."""
    assert sweep("fresh", policy, "append", [(errno.ENOSPC, False)], partial=partial) > 0
