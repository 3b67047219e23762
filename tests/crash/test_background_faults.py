"""Fail the background threads' file operations, one call at a time, and hold the store to REC-2.

``test_io_errors.py`` fails the calls a foreground call makes. Here the faults hit what the store
does on its own: the interval and never flusher (:meth:`Store.tick`, run in a thread named like
the flusher so that the fault can tell it from the foreground), the background hint writer
(``hints="background"``) and the compactor (``compact()`` and ``compact_in_background()``). For each
such workload a clean run counts how often each kind of background thread calls each writing
operation; then the workload is rerun once per call with that call failing, the way SQLite's
test VFS fails the Nth call (``EIO`` once, ``ENOSPC`` for good).

Whatever happens, the check is made from the outside, as a user would see it: every write
acknowledged as durable (a ``put`` that returned under ``fsync="always"``, or any write before a
``sync()`` or ``close()`` that returned normally) is there after reopening on a healthy disk,
and the reopened store holds a prefix of the issued writes (REC-2, REC-11). A flusher or
compactor that failed leaves a store that refuses writes (REC-10), so ``close()`` must raise
``StoreFailedError`` rather than return as if the buffered writes were durable (ENG-18); a
failed background hint changes nothing a user can see (ENG-43, REC-15).

The end-to-end check of issue 13's reproduction runs on a real full file system: an 8 MiB tmpfs
(root only; skipped where mounting is refused).

``CATLOG_CRASH_DEPTH=long`` (``nox -s crash``) and the ``nightly`` profile run longer workloads
with both error kinds each way.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

import pytest

import catlog
from catlog.simfs import Operation
from tests.crash.faulty_fs import FaultyFileSystem

LONG: Final = (
    os.environ.get("CATLOG_CRASH_DEPTH", "ci") == "long"
    or os.environ.get("HYPOTHESIS_PROFILE") == "nightly"
)
"""The long sweep runs in ``nox -s crash`` and in ``nox -s nightly``."""
ROUNDS: Final = 6 if LONG else 2
"""How many times each workload's pattern repeats: the long run goes through more rotations."""
Mode = tuple[int, bool]
ALL_MODES: Final[list[Mode]] = [
    (errno.EIO, False),
    (errno.EIO, True),
    (errno.ENOSPC, False),
    (errno.ENOSPC, True),
]
MODES: Final[list[Mode]] = ALL_MODES if LONG else [(errno.EIO, False), (errno.ENOSPC, True)]
WRITING: Final[list[Operation]] = ["append", "sync", "sync_dir", "open", "rename", "remove"]
"""The operations that change the disk (``open`` creates files), swept in each thread."""
INTERVAL_MS: Final = 3_600_000
"""The real flusher thread sleeps this long: only the test's own ticks flush."""
WAIT_S: Final = 30.0
MEMORY: Final = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
"""What is checked here is what a reopen finds after a failure with the process alive, not
what a power cut leaves (test_crash_points.py): files in memory serve, and fsync is free."""

Policy = Literal["always", "interval", "never"]
Kind = Literal["put", "tick", "sync", "compact", "compact in background"]


@dataclass(frozen=True)
class Step:
    kind: Kind
    key: bytes = b""
    value: bytes = b""


@dataclass(frozen=True)
class Scenario:
    """A workload and the kind of background thread whose calls fail in it."""

    name: str
    thread: str
    """The start of the failing thread's name (catlog/store.py names its threads)."""
    hints: catlog.HintMode
    segment_size: int
    steps: tuple[Step, ...]
    modes: tuple[Mode, ...] = tuple(MODES)


def puts(first: int, count: int) -> list[Step]:
    """``count`` puts over four keys, each value naming the write, so a prefix is recognisable."""
    return [Step("put", b"k%d" % (n % 4), b"v%03d" % n) for n in range(first, first + count)]


def _flusher_steps() -> tuple[Step, ...]:
    """Its calls are few (an append and maybe an fsync per tick): more rounds, every mode."""
    steps: list[Step] = []
    for round_ in range(2 * ROUNDS):
        base = 12 * round_
        steps += [*puts(base, 3), Step("tick"), *puts(base + 3, 3), Step("tick")]
        steps += [*puts(base + 6, 2), Step("sync"), *puts(base + 8, 4), Step("tick")]
    return (*steps, *puts(24 * ROUNDS, 2))


def _hint_steps() -> tuple[Step, ...]:
    steps: list[Step] = []
    for round_ in range(ROUNDS):
        base = 12 * round_
        steps += [*puts(base, 6), Step("sync"), *puts(base + 6, 6), Step("compact in background")]
    return (*steps, *puts(12 * ROUNDS, 3))


def _compactor_steps() -> tuple[Step, ...]:
    steps: list[Step] = []
    for round_ in range(ROUNDS):
        base = 13 * round_
        steps += [*puts(base, 8), Step("compact"), *puts(base + 8, 3), Step("tick")]
        steps += [Step("compact in background"), *puts(base + 11, 2)]
    return tuple(steps)


FLUSHER: Final = Scenario("flusher", "catlog-flush", False, 128, _flusher_steps(), tuple(ALL_MODES))
HINTER: Final = Scenario("hint writer", "catlog-hints", "background", 96, _hint_steps())
COMPACTOR: Final = Scenario("compactor", "catlog-compact", False, 96, _compactor_steps())


def in_thread(name: str, call: Callable[[], object]) -> None:
    """Run ``call`` in a thread called ``name`` and wait for it; its exception is raised here.

    The store's own background threads run :meth:`Store.tick` and :meth:`Store.compact`; a
    test thread named like them runs the same code at a moment the test chooses, and the
    fault-injecting file system tells its calls from the foreground's by that name.
    """
    errors: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as exc:  # re-raised in the caller's thread below
            errors.append(exc)

    thread = threading.Thread(target=run, name=name)
    thread.start()
    thread.join(WAIT_S)
    assert not thread.is_alive(), f"{name} did not finish in {WAIT_S} s"
    if errors:
        raise errors[0]


def wait_for_compaction(store: catlog.Store) -> None:
    deadline = time.monotonic() + WAIT_S
    while store.stats().compacting:
        assert time.monotonic() < deadline, f"the compaction did not end in {WAIT_S} s"
        time.sleep(0.001)


@dataclass
class Outcome:
    """What one run of a workload did, seen from the outside."""

    states: list[dict[bytes, bytes]] = field(default_factory=lambda: [{}])
    """``states[n]``: the model after the first ``n`` issued writes."""
    durable: int = 0
    """How many of the issued writes were acknowledged as durable."""
    returned: int = 0
    """How many writes returned (were accepted) before any call failed."""
    refused: BaseException | None = None
    """The first ``StoreFailedError`` a call of the workload raised."""
    close_error: BaseException | None = None
    failure: catlog.StoreFailedError | None = None
    """``store.failure`` after ``close()`` (ENG-47)."""
    compactions_failed: int = 0
    """Compactions that failed without failing the store (ENG-57): ``compact()`` raised
    CompactionError, or ``stats().compaction_error`` said so after a background one."""
    leftovers: list[str] = field(default_factory=list)
    """Files of outputs a failed compaction should have removed, found after ``close()``."""


@contextlib.contextmanager
def scratch_directory() -> Iterator[str]:
    directory = tempfile.mkdtemp(prefix="catlog-background-", dir=MEMORY)
    try:
        yield f"{directory}/data"
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def run_workload(
    scenario: Scenario, policy: Policy, fs: FaultyFileSystem, directory: str
) -> Outcome:
    """Drive ``scenario`` on ``fs`` until a call fails, then close; record what was promised."""
    clock = catlog.ManualClock()
    outcome = Outcome()
    model: dict[bytes, bytes] = {}
    store = catlog.open(
        directory,
        fs=fs,
        fsync=policy,
        segment_size=scenario.segment_size,
        fsync_interval_ms=INTERVAL_MS,
        hints=scenario.hints,
        clock=clock,
    )
    for step in scenario.steps:
        try:
            if step.kind == "put":
                after = {**model, step.key: step.value}
                outcome.states.append(after)  # issued: it may be on disk even if put raises
                store.put(step.key, step.value)
                model = after
                outcome.returned += 1
                if policy == "always":
                    outcome.durable = outcome.returned
            elif step.kind == "tick":
                clock.advance(INTERVAL_MS / 1000)
                in_thread("catlog-flush (the test's tick)", store.tick)
            elif step.kind == "sync":
                store.sync()
                outcome.durable = outcome.returned
            elif step.kind == "compact":
                in_thread("catlog-compact (a call of compact())", store.compact)
            else:
                store.compact_in_background()
                wait_for_compaction(store)
                if store.failure is None and store.stats().compaction_error is not None:
                    outcome.compactions_failed += 1
        except catlog.CompactionError:
            outcome.compactions_failed += 1  # ENG-57: the store goes on
        except catlog.StoreFailedError as exc:
            outcome.refused = exc
            break
    try:
        store.close()
    except catlog.StoreFailedError as exc:
        outcome.close_error = exc
    else:
        outcome.durable = outcome.returned  # ENG-18: a close that returns made them durable
    outcome.failure = store.failure
    outcome.leftovers = [
        name for name in fs.listdir(directory) if name.endswith((".compacting", ".hint.tmp"))
    ]
    return outcome


FSYNC_FAILED: Final[dict[Operation, bool]] = {
    "append": False,
    "open": False,
    "rename": False,
    "remove": False,
}
"""ENG-47: what ``fsync_failed`` says when this operation failed. A failing ``sync`` is an fsync
of a segment only in the flusher; elsewhere it may be a hint's or an empty new segment's, about
which the clause says nothing, nor about the directory's."""


MISCLASSIFIED: Final = "fsync_failed is "


def check_outcome(
    scenario: Scenario,
    *,
    operation: Operation,
    outcome: Outcome,
    fired: bool,
    directory: str,
    where: str,
) -> list[str]:
    """REC-2 from the outside, and what ``close()`` must have said about a failed store."""
    problems: list[str] = []
    store_failed = fired and scenario.thread != HINTER.thread
    if scenario.thread == COMPACTOR.thread and outcome.failure is None and fired:
        # ENG-57: a failing call on an output fails the compaction alone, which must say so
        # and leave no file of the output behind.
        store_failed = False
        if not outcome.compactions_failed:
            problems.append("a call failed, but neither the store nor the compaction did")
        if outcome.leftovers:
            problems.append(f"the failed compaction left {outcome.leftovers} (ENG-57)")
    if store_failed and outcome.close_error is None:
        problems.append(
            "close() returned normally although the store had failed in the background: it "
            "acknowledged writes it could not make durable (ENG-46, REC-20)"
        )
    if not store_failed and (outcome.refused or outcome.close_error):
        problems.append(f"the store refused a call: {outcome.refused or outcome.close_error!r}")
    if store_failed != (outcome.failure is not None):
        problems.append(f"store.failure is {outcome.failure!r} (ENG-47)")
    expected = FSYNC_FAILED.get(operation)
    if scenario.thread == FLUSHER.thread and operation == "sync":
        expected = True
    if outcome.failure is not None and expected not in (None, outcome.failure.fsync_failed):
        problems.append(
            f"{MISCLASSIFIED}{outcome.failure.fsync_failed} after a failing {operation}: "
            f"{outcome.failure} (ENG-47)"
        )
    with catlog.open(directory, segment_size=scenario.segment_size) as healthy:
        found = dict(healthy.items())
    allowed = outcome.states[outcome.durable :]
    if found not in allowed:
        holds = next((n for n, state in enumerate(outcome.states) if state == found), None)
        what = "no prefix of the issued writes" if holds is None else f"the first {holds} writes"
        problems.append(
            f"reopened on a healthy disk it holds {what}, but {outcome.durable} of "
            f"{len(outcome.states) - 1} issued writes were acknowledged as durable (REC-2): "
            f"{found!r}"
        )
    return [f"{where}: {problem}" for problem in problems]


@dataclass
class Sweep:
    faults: int = 0
    fired: int = 0
    problems: list[str] = field(default_factory=list)


def sweep(scenario: Scenario, policy: Policy) -> Sweep:
    """Fail, in turn, each writing call the scenario's background thread makes."""
    with scratch_directory() as directory:
        clean = FaultyFileSystem()
        outcome = run_workload(scenario, policy, clean, directory)
        assert outcome.refused is None, outcome
        assert outcome.close_error is None, outcome
        counts = {op: clean.calls_by_thread[scenario.thread, op] for op in WRITING}
    assert sum(counts.values()) > 0, f"the {scenario.name} made no writing call: {counts}"
    result = Sweep()
    for operation, count in counts.items():
        for nth in range(1, count + 1):
            for error, persistent in scenario.modes:
                with scratch_directory() as directory:
                    fs = FaultyFileSystem()
                    fs.fail(
                        operation,
                        nth=nth,
                        error=error,
                        persistent=persistent,
                        thread=scenario.thread,
                    )
                    outcome = run_workload(scenario, policy, fs, directory)
                    fired = fs.fired()
                    where = (
                        f"{scenario.name} under fsync={policy}: {operation} #{nth} of {count} "
                        f"failing with {errno.errorcode[error]}"
                        f"{' for good' if persistent else ' once'}"
                    )
                    result.faults += 1
                    result.fired += fired
                    result.problems += check_outcome(
                        scenario,
                        operation=operation,
                        outcome=outcome,
                        fired=fired,
                        directory=directory,
                        where=where,
                    )
    return result


@pytest.mark.spec("REC-20", "REC-10", "REC-11", "ENG-15", "ENG-16", "ENG-46", "ENG-47")
@pytest.mark.parametrize("policy", ["interval", "never"])
def test_each_failing_flusher_call_loses_no_acknowledged_write(policy: Policy) -> None:
    result = sweep(FLUSHER, policy)
    assert result.fired == result.faults, "every enumerated call failed in its run"
    assert not result.problems, "\n".join(result.problems[:6])


@pytest.mark.spec("REC-20", "REC-11", "REC-15", "ENG-43", "ENG-47")
@pytest.mark.parametrize("policy", ["always", "never"])
def test_each_failing_hint_writer_call_changes_nothing_a_user_sees(policy: Policy) -> None:
    result = sweep(HINTER, policy)
    assert result.fired == result.faults, "every enumerated call failed in its run"
    assert not result.problems, "\n".join(result.problems[:6])


@pytest.mark.spec("REC-20", "REC-10", "REC-11", "REC-18", "ENG-46", "ENG-47", "ENG-39", "ENG-42")
@pytest.mark.parametrize("policy", ["always", "interval", "never"])
def test_each_failing_compactor_call_loses_no_acknowledged_write(policy: Policy) -> None:
    result = sweep(COMPACTOR, policy)
    assert result.fired == result.faults, "every enumerated call failed in its run"
    assert not result.problems, "\n".join(result.problems[:6])


def reopened(directory: str) -> dict[bytes, bytes]:
    with catlog.open(directory) as healthy:
        return dict(healthy.items())


def put_until_refused(store: catlog.Store, states: list[dict[bytes, bytes]], keys: range) -> None:
    """Put ``keys``, recording each issued write in ``states``; stop at the first refusal."""
    for n in keys:
        key, value = b"key-%03d" % n, b"%03d" % n * 300
        states.append({**states[-1], key: value})
        try:
            store.put(key, value)
        except catlog.StoreFailedError:
            return


def check_prefix(found: dict[bytes, bytes], states: list[dict[bytes, bytes]], durable: int) -> None:
    holds = next((n for n, state in enumerate(states) if state == found), None)
    what = "no prefix" if holds is None else f"the first {holds}"
    assert holds is not None, f"reopened, the store holds {what} of the issued writes (REC-2)"
    assert holds >= durable, (
        f"reopened, the store holds {what} of the {len(states) - 1} issued writes, but "
        f"{durable} were acknowledged as durable (REC-2)"
    )


@pytest.mark.spec("REC-20", "REC-10", "ENG-15", "ENG-46")
@pytest.mark.parametrize("synced_first", [False, True], ids=["nothing synced", "synced first"])
def test_the_real_flusher_thread_failing_makes_close_raise(
    tmp_path: Path, synced_first: bool
) -> None:
    """The flusher thread itself, on its own timer, fails to write (ENOSPC from then on)."""
    directory = str(tmp_path / "data")
    fs = FaultyFileSystem()
    states: list[dict[bytes, bytes]] = [{}]
    store = catlog.open(directory, fs=fs, fsync="interval", fsync_interval_ms=20)
    durable = 0
    if synced_first:
        put_until_refused(store, states, range(10))
        store.sync()
        durable = len(states) - 1
    fs.fail("append", error=errno.ENOSPC, persistent=True, thread="catlog-flush")
    put_until_refused(store, states, range(10, 30))
    deadline = time.monotonic() + WAIT_S
    while not fs.fired():
        assert time.monotonic() < deadline, f"the flusher did not write in {WAIT_S} s"
        time.sleep(0.005)
    try:
        store.close()
    except catlog.StoreFailedError:
        closed_normally = False
    else:
        closed_normally = True
        durable = len(states) - 1
    check_prefix(reopened(directory), states, durable)
    assert not closed_normally, "close() returned normally after the flusher failed (ENG-18)"


@contextlib.contextmanager
def small_tmpfs(mount_point: Path, size: str = "8m") -> Iterator[Path]:
    """A real file system that runs out of space; skips the test where it cannot be mounted."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount_point.mkdir()
    try:
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_point)],
            check=False,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot mount a tmpfs: {exc}")
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(
            ["umount", "-l", str(mount_point)], check=False, capture_output=True, timeout=30
        )


def fill(path: Path) -> None:
    """Write ``path`` until the file system has no byte left, smaller and smaller chunks."""
    with path.open("wb", buffering=0) as filler:
        for chunk in (1 << 20, 1 << 16, 1 << 12, 1):
            with contextlib.suppress(OSError):
                while True:
                    filler.write(b"\0" * chunk)


@pytest.mark.spec("REC-20", "REC-10", "REC-11", "ENG-15", "ENG-46")
@pytest.mark.parametrize("synced_first", [False, True], ids=["nothing synced", "synced first"])
def test_issue_13_a_full_disk_under_interval_loses_no_acknowledged_write(
    tmp_path: Path, synced_first: bool
) -> None:
    """Issue 13's defect 1 as reported: the flusher hits a full tmpfs, and close() returned
    normally although the 20 writes it thereby acknowledged were lost. Each value is 900 bytes,
    so the 20 cannot all fit in the segment's last, partly used page."""
    with small_tmpfs(tmp_path / "tmpfs") as mount:
        directory = str(mount / "data")
        states: list[dict[bytes, bytes]] = [{}]
        durable = 0
        store = catlog.open(directory, fsync="interval", fsync_interval_ms=200)
        try:
            if synced_first:
                put_until_refused(store, states, range(10))
                store.sync()
                durable = len(states) - 1
            fill(mount / "filler")
            put_until_refused(store, states, range(10, 30))
            time.sleep(1.0)  # the real flusher's timer: five intervals
        finally:
            try:
                store.close()
            except catlog.StoreFailedError:
                closed_normally = False
            else:
                closed_normally = True
                durable = len(states) - 1
            (mount / "filler").unlink()
        check_prefix(reopened(directory), states, durable)
        assert not closed_normally, "close() returned normally after the flusher failed"
