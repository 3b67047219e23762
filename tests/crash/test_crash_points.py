"""Crash after every file-system operation, in every way REC-1 allows, and check REC-2 each time.

The method is ALICE's (Pillai et al., OSDI 2014), run on the engine itself rather than on a
trace: drive a generated workload through the real engine on a :class:`SimFileSystem`, take a
:class:`DiskImage` after each of its operations, and for every image build the file systems a
crash there could leave (:meth:`DiskImage.crash_states`: unsynced data lost, kept, torn at several
bytes, followed by zeros or garbage; directory entries kept or lost). Each is reopened by the real
engine, and the contents must be the dict model after some prefix of the writes issued before the
crash, a prefix holding every write acknowledged as durable by then (REC-2, REC-8). Reopening the
recovered directory again must change nothing (REC-13).

Recovery depends only on the bytes on disk, so each distinct post-crash disk is reopened once and
its outcome checked against every crash point that can produce it; the summary at the end of the
run says how many crash states were checked and how many distinct disks that took.

``CATLOG_CRASH_DEPTH=long`` runs more and longer workloads, tears more bytes per append and adds
random crash states (``nox -s crash``).
"""

from __future__ import annotations

import os
import random
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Final, Literal

import pytest

import catlog
from catlog.simfs import (
    Append,
    CrashState,
    DiskImage,
    FileFate,
    Fill,
    SimFile,
    SimFileSystem,
    SimulatedKill,
)

LONG: Final = os.environ.get("CATLOG_CRASH_DEPTH", "ci") == "long"
SEEDS: Final = 100 if LONG else 8
STEPS: Final = 120 if LONG else 40
TEARS: Final = 6 if LONG else 2
RANDOM_STATES: Final = 16 if LONG else 2
"""Random crash states added per crash point, on top of the systematic ones."""

DIRECTORY: Final = "/data/db"
INTERVAL_MS: Final = 3_600_000
"""The background flusher sleeps this long, so only the test's own tick() calls run it."""
NOW_MS: Final = 1_700_000_000_000
KEYS: Final = [b"k0", b"k1", b"k2", b"k3"]

Policy = Literal["always", "interval", "never"]
POLICIES: Final[list[Policy]] = ["always", "interval", "never"]

TALLY: Counter[str] = Counter()
"""Totals for the end-of-run summary (see :func:`_report`)."""


class _Summary:
    """A plugin registered at run time: prints :data:`TALLY` in pytest's terminal summary."""

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if TALLY:
            depth = "long" if LONG else "ci"
            terminalreporter.write_sep("-", f"crash-point exploration ({depth} depth)")
            for name, count in sorted(TALLY.items()):
                terminalreporter.write_line(f"{name}: {count}")


@pytest.fixture(scope="module", autouse=True)
def _report(request: pytest.FixtureRequest) -> None:
    manager = request.config.pluginmanager
    if not manager.has_plugin("catlog-crash-points-summary"):
        manager.register(_Summary(), "catlog-crash-points-summary")


# ------------------------------------------------------------------------------- workloads


@dataclass(frozen=True)
class Step:
    kind: Literal[
        "put",
        "ttl",
        "batch",
        "group",
        "delete",
        "sync",
        "flush",
        "tick",
        "reopen",
        "compact",
        "compact oldest",
    ]
    key: bytes = b""
    value: bytes = b""
    ops: tuple[tuple[bytes, bytes | None], ...] = ()
    """A batch's operations: ``(key, value)`` puts, ``(key, None)`` deletes (REC-17); a group's
    ``(key, value)`` puts (ENG-44)."""


TTL_SECONDS: Final = 10**10
"""Expiring puts (FMT-21) outlive every workload, on the manual clocks and on the real clock
of a restart alike (about 300 years): what is checked is that they replay."""


def workload(seed: int, steps: int) -> list[Step]:
    """Puts, expiring puts, overwrites, deletes and atomic batches over four keys, with syncs,
    flushes, ticks, reopens, and compactions of every segment or of the oldest (ENG-73)."""
    rng = random.Random(seed)
    out: list[Step] = []
    for _ in range(steps):
        roll = rng.random()
        key = rng.choice(KEYS)
        if roll < 0.42:
            out.append(Step("put", key, rng.randbytes(rng.randint(0, 24))))
        elif roll < 0.47:
            out.append(Step("ttl", key, rng.randbytes(rng.randint(0, 24))))
        elif roll < 0.55:
            ops = tuple(
                (rng.choice(KEYS), None if rng.random() < 0.3 else rng.randbytes(rng.randint(0, 9)))
                for _ in range(rng.randint(1, 4))
            )
            out.append(Step("batch", ops=ops))
        elif roll < 0.71:
            out.append(Step("delete", key))
        elif roll < 0.75:
            out.append(Step("compact oldest" if key in KEYS[:2] else "compact"))
        elif roll < 0.83:
            out.append(Step("sync"))
        elif roll < 0.88:
            out.append(Step("flush"))
        elif roll < 0.93:
            out.append(Step("tick"))
        else:
            out.append(Step("reopen"))
    return out


def group_workload(seed: int, steps: int) -> list[Step]:
    """Mostly groups of puts (``put_many_nowait``, ENG-44) of up to five pairs, some empty, with
    single puts, deletes, syncs, flushes, ticks and reopens between them."""
    rng = random.Random(seed)
    out: list[Step] = []
    for _ in range(steps):
        roll = rng.random()
        key = rng.choice(KEYS)
        if roll < 0.45:
            pairs = tuple(
                (rng.choice(KEYS), rng.randbytes(rng.randint(0, 24)))
                for _ in range(rng.randint(0, 5))
            )
            out.append(Step("group", ops=pairs))
        elif roll < 0.58:
            out.append(Step("put", key, rng.randbytes(rng.randint(0, 24))))
        elif roll < 0.72:
            out.append(Step("delete", key))
        elif roll < 0.8:
            out.append(Step("sync"))
        elif roll < 0.86:
            out.append(Step("flush"))
        elif roll < 0.92:
            out.append(Step("tick"))
        else:
            out.append(Step("reopen"))
    return out


def fresh_fs() -> SimFileSystem:
    """A simulated disk whose data directory already exists durably.

    Creating the directory itself is checked separately (see
    :func:`test_a_new_data_directory_survives_a_crash_after_an_acknowledged_put`).
    """
    fs = SimFileSystem()
    fs.makedirs(DIRECTORY)
    fs.sync_dir("/")
    fs.sync_dir("/data")
    return fs


def is_segment(path: str) -> bool:
    return path.rsplit("/", 1)[-1].startswith("segment-")


# ------------------------------------------------------------------------------- driving


@dataclass
class Run:
    """A workload driven once, with what the spec lets a crash after each operation keep."""

    images: list[DiskImage] = field(default_factory=list)
    """The disk before the run and after each of its operations (``image.operations`` says
    after how many operations of the file system's life)."""
    trace: list[tuple[str, str]] = field(default_factory=list)
    states: list[dict[bytes, bytes]] = field(default_factory=list)
    """``states[n]``: the model after the first ``n`` writes (``states[0]`` the starting state)."""
    durable: list[tuple[int, int]] = field(default_factory=list)
    """``(k, n)``: once ``k`` operations are done, the first ``n`` writes are acknowledged as
    durable (REC-2's definition: a put that returned under always, a sync, a close, a rotation,
    an interval fsync)."""
    issued: list[tuple[int, int]] = field(default_factory=list)
    """``(k, n)``: write ``n`` was issued when ``k`` operations were done."""
    inside_groups: set[int] = field(default_factory=set)
    """Each ``n`` that ends a prefix inside a group of puts: after one of its puts but the last."""

    def bounds(self, k: int) -> tuple[int, int]:
        """The shortest and the longest prefix a crash after operation ``k`` may recover."""
        low = max((n for done, n in self.durable if done <= k), default=0)
        high = max((n for done, n in self.issued if done <= k), default=0)
        return low, high


def open_store(fs: SimFileSystem, policy: Policy, segment_size: int) -> catlog.Store:
    return catlog.open(
        DIRECTORY,
        fs=fs,
        fsync=policy,
        segment_size=segment_size,
        fsync_interval_ms=INTERVAL_MS,
        clock=catlog.ManualClock(NOW_MS),
    )


def drive(
    fs: SimFileSystem,
    policy: Policy,
    steps: list[Step],
    *,
    segment_size: int,
    start: dict[bytes, bytes] | None = None,
    hints: catlog.HintMode = False,
) -> Run:
    """Open a store on ``fs`` (its open is crash-tested too), run ``steps``, close it."""
    run = Run(states=[dict(start or {})])
    run.images.append(fs.image())
    fs.observer = lambda sim: run.images.append(sim.image())
    model = dict(run.states[0])
    clock = catlog.ManualClock(NOW_MS)

    def reopen() -> catlog.Store:
        return catlog.open(
            DIRECTORY,
            fs=fs,
            fsync=policy,
            segment_size=segment_size,
            fsync_interval_ms=INTERVAL_MS,
            clock=clock,
            hints=hints,
        )

    store = reopen()
    for step in steps:
        before = fs.operations
        written = len(run.states) - 1
        wrote = False
        if step.kind in ("put", "ttl"):
            run.issued.append((before, written + 1))
            store.put(step.key, step.value, ttl=TTL_SECONDS if step.kind == "ttl" else None)
            model[step.key] = step.value
            wrote = True
        elif step.kind == "batch":
            run.issued.append((before, written + 1))
            batch: list[catlog.BatchOp] = []
            for key, value in step.ops:
                if value is None:
                    batch.append(("delete", key))
                    model.pop(key, None)
                else:
                    batch.append(("put", key, value))
                    model[key] = value
            store.write_batch(batch)
            wrote = True
        elif step.kind == "group":
            # Each put of a group is a write of its own in REC-2's order (ENG-44: as that many
            # put_nowait calls), so a crash may keep any prefix of the group.
            pairs = [(key, value) for key, value in step.ops if value is not None]
            run.issued.append((before, written + len(pairs)))
            store.wait_durable(store.put_many_nowait(pairs))
            for key, value in pairs:
                model[key] = value
                run.states.append(dict(model))
            run.inside_groups.update(range(written + 1, written + len(pairs)))
        elif step.kind == "delete":
            existed = step.key in model
            if existed:
                run.issued.append((before, written + 1))
                del model[step.key]
            assert store.delete(step.key) is existed, "ENG-5: delete says whether the key was set"
            wrote = existed
        elif step.kind == "sync":
            store.sync()
        elif step.kind == "flush":
            store.flush()
        elif step.kind == "tick":
            clock.advance(INTERVAL_MS / 1000)
            store.tick()
        elif step.kind == "compact":
            store.compact()  # changes no value: no write of the model (REC-18)
        elif step.kind == "compact oldest":
            store.compact(max_bytes=2 * segment_size)  # ENG-72: a tombstone dropped stays dropped
        else:
            store.close()
            store = reopen()
        if wrote:
            run.states.append(dict(model))
        # An fsync of a segment during this step makes every earlier write durable: a rotation
        # (ENG-10), an interval flush (ENG-15), sync() and close() (ENG-17, ENG-18).
        for done in range(before, fs.operations):
            operation, path = fs.trace[done]
            if operation == "sync" and is_segment(path):
                run.durable.append((done + 1, written))
        acknowledged = wrote or step.kind == "group"
        if step.kind in ("sync", "reopen") or (acknowledged and policy == "always"):
            run.durable.append((fs.operations, len(run.states) - 1))  # ENG-14, ENG-17, ENG-18
    store.close()
    run.durable.append((fs.operations, len(run.states) - 1))
    fs.observer = None
    run.trace = list(fs.trace)
    return run


# ------------------------------------------------------------------------------- checking


Outcome = dict[bytes, bytes] | str
"""What reopening a crashed disk gave: its contents, or the error it raised."""


@dataclass
class Explorer:
    """Reopens crashed disks (each distinct one once) and checks REC-2 and REC-13."""

    segment_size: int
    outcomes: dict[tuple[tuple[str, bytes], ...], Outcome] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    recovered: set[int] = field(default_factory=set)
    """Each ``n`` such that some crash state recovered the state after the first ``n`` writes."""

    def recover(self, crashed: SimFileSystem) -> Outcome:
        disk = tuple((p, b) for p, b in crashed.snapshot().items() if not p.endswith("/LOCK"))
        outcome = self.outcomes.get(disk)
        if outcome is None:
            TALLY["distinct post-crash disks reopened"] += 1
            outcome = self._reopen(crashed)
            self.outcomes[disk] = outcome
        return outcome

    def _reopen(self, crashed: SimFileSystem) -> Outcome:
        try:
            with open_store(crashed, "always", self.segment_size) as store:
                found = dict(store.items())
            after_first = crashed.snapshot()
            with open_store(crashed, "always", self.segment_size) as store:
                again = dict(store.items())
        except catlog.CatlogError as exc:
            return f"{type(exc).__name__}: {exc}"
        if crashed.snapshot() != after_first or again != found:
            return "REC-13: a second open changed the recovered directory"
        return found

    def check(self, run: Run, states: Callable[[DiskImage], Iterator[CrashState]]) -> None:
        for image in run.images:
            k = image.operations
            low, high = run.bounds(k)
            for state in states(image):
                TALLY["crash states checked"] += 1
                outcome = self.recover(image.crash(state))
                matches = [n for n in range(low, high + 1) if run.states[n] == outcome]
                if matches:
                    self.recovered.update(matches)
                    continue
                last = run.trace[k - 1] if k else ("start", "")
                self.failures.append(
                    f"crash after operation {k} {last} in state '{state.label}': recovered "
                    f"{outcome!r}, expected the state after n writes for some n in "
                    f"[{low}, {high}], e.g. {run.states[low]!r}"
                )

    def assert_clean(self) -> None:
        assert not self.failures, f"{len(self.failures)} crash states break REC-2:\n" + "\n".join(
            self.failures[:10]
        )


def systematic(image: DiskImage, *, seed: int = 0) -> Iterator[CrashState]:
    yield from image.crash_states(tears=TEARS, seed=seed, select=is_segment)
    rng = random.Random(f"{seed}:{image.operations}")
    for _ in range(RANDOM_STATES):
        yield image.random_state(rng)


# ------------------------------------------------------------------------------- the model itself


@pytest.mark.spec("REC-1")
def test_a_crash_keeps_durable_bytes_and_tears_only_unsynced_ones() -> None:
    """The per-file half of REC-1, checked on the simulation before the engine is run on it."""
    fs = SimFileSystem()
    file = fs.open("/f", writable=True, create=True)
    file.append(b"durable|")
    file.sync()
    fs.sync_dir("/")
    file.append(b"pending")
    image = fs.image()
    (pending,) = image.pending_files()
    assert pending.paths == ("/f",)
    assert pending.changes == (Append(b"pending"),)

    def after(fate: FileFate) -> bytes:
        crashed = image.crash(CrashState("t", keep_rest=True, files=((pending.node, fate),)))
        return crashed.snapshot()["/f"]

    assert after(FileFate(0)) == b"durable|"
    assert after(FileFate(1)) == b"durable|pending"
    assert after(FileFate(0, 3)) == b"durable|pen"
    assert after(FileFate(0, 3, Fill.ZEROS, 4)) == b"durable|pen\0\0\0\0"
    garbage = after(FileFate(0, 3, Fill.GARBAGE, 4))
    assert garbage.startswith(b"durable|pen")
    assert len(garbage) == 15
    assert garbage == after(FileFate(0, 3, Fill.GARBAGE, 4)), "garbage repeats for a state"
    every = {tuple(image.crash(s).snapshot().items()) for s in image.crash_states(tears=3)}
    contents = {dict(disk)["/f"] for disk in every}
    assert all(c.startswith(b"durable|") and len(c) <= 15 for c in contents)
    assert {b"durable|", b"durable|pending", b"durable|p"} <= contents


@pytest.mark.spec("REC-1", "REC-9")
def test_a_crash_may_forget_names_not_made_durable_by_sync_dir() -> None:
    fs = SimFileSystem()
    fs.makedirs("/d")
    fs.sync_dir("/")
    for name in ("a", "b"):
        file = fs.open(f"/d/{name}", writable=True, create=True)
        file.append(name.encode())
        file.sync()
    fs.rename("/d/a", "/d/c")
    image = fs.image()
    assert sorted(image.pending_dirs().values()) == [3]
    listings = {tuple(sorted(image.crash(state).listdir("/d"))) for state in image.crash_states()}
    assert () in listings, "nothing linked since the last sync_dir need survive"
    assert ("b", "c") in listings
    assert ("b",) not in listings or ("a", "b") in listings
    for listing in listings:
        assert not {"a", "c"} <= set(listing), "a rename keeps one name, never both"
    fs.sync_dir("/d")
    assert {tuple(sorted(fs.crash(s).listdir("/d"))) for s in fs.crash_states()} == {("b", "c")}


@pytest.mark.spec("REC-1")
def test_different_files_survive_a_crash_independently() -> None:
    fs = SimFileSystem()
    files = [fs.open(f"/{name}", writable=True, create=True) for name in ("x", "y")]
    fs.sync_dir("/")
    for file in files:
        file.append(b"unsynced")
    disks = {tuple(fs.crash(s).snapshot().values()) for s in fs.crash_states()}
    assert (b"unsynced", b"") in disks
    assert (b"", b"unsynced") in disks


@pytest.mark.spec("REC-1")
def test_killing_the_process_keeps_everything_and_frees_the_lock() -> None:
    fs = SimFileSystem()
    lock = fs.lock("/LOCK")
    file = fs.open("/f", writable=True, create=True)
    file.append(b"in the page cache")
    fs.kill()
    assert fs.snapshot()["/f"] == b"in the page cache"
    with pytest.raises(OSError, match="Bad file descriptor"):
        file.append(b"from beyond")
    lock.release()
    fs.lock("/LOCK").release()


# ------------------------------------------------------------------------------- the engine


@pytest.mark.spec(
    "REC-1",
    "REC-2",
    "REC-8",
    "REC-13",
    "ENG-10",
    "ENG-14",
    "ENG-15",
    "ENG-16",
    "REC-17",
    "FMT-22",
    "REC-18",
    "ENG-39",
    "ENG-72",
)
@pytest.mark.parametrize("seed", range(SEEDS))
@pytest.mark.parametrize("policy", POLICIES)
def test_every_crash_point_recovers_a_prefix_holding_every_durable_write(
    policy: Policy, seed: int
) -> None:
    """Random small workloads with rotations every couple of records, crashed everywhere."""
    rng = random.Random(f"{policy}:{seed}")
    segment_size = rng.choice([96, 128, 200])
    steps = workload(seed * 7919 + len(policy), STEPS)
    run = drive(fresh_fs(), policy, steps, segment_size=segment_size)
    TALLY["crash points (operations)"] += len(run.images)
    explorer = Explorer(segment_size)
    explorer.check(run, lambda image: systematic(image, seed=seed))
    explorer.assert_clean()


GROUP_SEEDS: Final = 20 if LONG else 3


@pytest.mark.spec("ENG-44", "REC-1", "REC-2", "REC-8", "ENG-10", "ENG-14", "ENG-15", "ENG-16")
@pytest.mark.parametrize("seed", range(GROUP_SEEDS))
@pytest.mark.parametrize("policy", POLICIES)
def test_a_crash_inside_a_group_of_puts_recovers_a_prefix_of_its_puts(
    policy: Policy, seed: int
) -> None:
    """Groups of puts (ENG-44) crashed everywhere, including halfway through a group's bytes
    and through a rotation a group causes: each put of a group is its own write in REC-2's
    order, so some crash states must recover a prefix that ends inside a group."""
    rng = random.Random(f"group:{policy}:{seed}")
    segment_size = rng.choice([96, 128, 200])
    steps = group_workload(seed * 6007 + len(policy), STEPS)
    run = drive(fresh_fs(), policy, steps, segment_size=segment_size)
    TALLY["crash points (operations)"] += len(run.images)
    explorer = Explorer(segment_size)
    explorer.check(run, lambda image: systematic(image, seed=seed))
    explorer.assert_clean()
    assert explorer.recovered & run.inside_groups, "no crash state cut a group of puts short"


def prelude_torn_record() -> tuple[SimFileSystem, dict[bytes, bytes]]:
    """Two synced puts, a third handed to the OS and torn halfway, garbage after it."""
    fs = fresh_fs()
    with open_store(fs, "never", 1 << 20) as store:
        store.put(b"a", b"kept")
        store.put(b"b", b"kept too")
        store.sync()
        store.put(b"c", b"torn apart by the crash")
        store.flush()
        image = fs.image()
    (segment,) = [p for p in image.pending_files() if any(map(is_segment, p.paths))]
    (record,) = segment.changes
    assert isinstance(record, Append)
    half = len(record.data) // 2
    fate = FileFate(0, half, Fill.GARBAGE, len(record.data) - half)
    state = CrashState("torn record", keep_rest=True, files=((segment.node, fate),))
    return image.crash(state), {b"a": b"kept", b"b": b"kept too"}


def prelude_mid_rotation(
    last: Callable[[tuple[str, str]], bool], fate: FileFate | None
) -> tuple[SimFileSystem, dict[bytes, bytes]]:
    """Crash while a rotation starts segment 2: right after the operation ``last`` picks."""
    fs = fresh_fs()
    images: list[DiskImage] = []
    fs.observer = lambda sim: images.append(sim.image())
    with open_store(fs, "always", 64) as store:
        store.put(b"a", b"fills segment one")
        store.put(b"b", b"starts segment two")
    fs.observer = None
    done = next(i + 1 for i, op in enumerate(fs.trace) if last(op))
    (image,) = [image for image in images if image.operations == done]
    files: tuple[tuple[int, FileFate], ...] = ()
    if fate is not None:
        (new,) = [
            p for p in image.pending_files() if p.paths == (f"{DIRECTORY}/segment-00002.log",)
        ]
        files = ((new.node, fate),)
    return image.crash(CrashState("mid-rotation", keep_rest=True, files=files)), {
        b"a": b"fills segment one"
    }


PRELUDES: Final[dict[str, Callable[[], tuple[SimFileSystem, dict[bytes, bytes]]]]] = {
    "torn record": prelude_torn_record,
    "torn header": lambda: prelude_mid_rotation(
        lambda op: op == ("append", f"{DIRECTORY}/segment-00002.log"), FileFate(0, 7)
    ),
    "empty newest segment": lambda: prelude_mid_rotation(
        lambda op: op == ("open", f"{DIRECTORY}/segment-00002.log"), None
    ),
}


@pytest.mark.spec("REC-2", "REC-4", "REC-5", "REC-9", "REC-12", "REC-13")
@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("prelude", sorted(PRELUDES))
def test_a_crash_during_tail_repair_is_repaired_again(prelude: str, policy: Policy) -> None:
    """Start from a torn directory, so the first open repairs it, and crash inside that repair
    (quarantine written, not yet synced; truncated, not yet synced; header rewritten) and in
    the writes after it."""
    crashed, start = PRELUDES[prelude]()
    steps = workload(len(prelude) * 31 + len(policy), STEPS // 2)
    run = drive(crashed, policy, steps, segment_size=96, start=start)
    assert any(".torn-" in path or op == "truncate" for op, path in run.trace), "it repaired"
    TALLY["crash points (operations)"] += len(run.images)
    explorer = Explorer(96)
    explorer.check(run, systematic)
    explorer.assert_clean()


# ------------------------------------------------------------------------------- found bugs
# The tests below found bugs that open now fixes: it fsyncs the data directory, and the parent
# of every directory it created (REC-9).


@pytest.mark.spec("REC-1", "REC-2", "REC-8", "ENG-25")
def test_a_new_data_directory_survives_a_crash_after_an_acknowledged_put() -> None:
    """REC-1: a directory's name is durable only after its parent is fsynced, like a file's."""
    fs = SimFileSystem()
    fs.makedirs("/data")
    fs.sync_dir("/")
    with open_store(fs, "always", 1 << 20) as store:
        store.put(b"acknowledged", b"durable")
        image = fs.image()
    lost = []
    for state in image.crash_states():
        with open_store(image.crash(state), "always", 1 << 20) as store:
            if store.get(b"acknowledged") != b"durable":
                lost.append(state.label)
    assert not lost, f"an acknowledged put was lost in: {lost}"


@pytest.mark.spec("REC-1", "REC-2", "REC-8", "ENG-25")
def test_a_data_directory_with_new_parents_survives_a_crash_after_an_acknowledged_put() -> None:
    """ENG-25 creates "the directory" with its parents; each new name needs its parent synced."""
    fs = SimFileSystem()
    directory = "/new/parents/db"
    with catlog.open(directory, fs=fs) as store:
        store.put(b"acknowledged", b"durable")
        image = fs.image()
    lost = []
    for state in image.crash_states():
        with catlog.open(directory, fs=image.crash(state)) as store:
            if store.get(b"acknowledged") != b"durable":
                lost.append(state.label)
    assert not lost, f"an acknowledged put was lost in: {lost}"


@pytest.mark.spec("REC-1", "REC-2", "REC-8", "REC-9")
def test_writes_acknowledged_after_a_kill_survive_a_later_power_loss() -> None:
    """kill -9 at every operation of a rotating session, reopen (the page cache still holds the
    unsynced directory entry of segment 2), write under always, then lose power."""
    session = [Step("put", b"k%d" % i, b"value %d" % i) for i in range(6)]
    total = len(drive(fresh_fs(), "always", session, segment_size=64).images)
    failures: list[str] = []
    for kill_at in range(1, total):
        fs = fresh_fs()
        store: catlog.Store | None = None
        acknowledged: dict[bytes, bytes] = {}
        fs.kill_after(kill_at)
        with suppress(SimulatedKill):
            store = open_store(fs, "always", 64)
            for step in session:
                store.put(step.key, step.value)
                acknowledged[step.key] = step.value
        if store is not None:
            with suppress(SimulatedKill, catlog.CatlogError):
                store.close()
        fs.kill()  # if the kill came after the last operation, it comes now
        with open_store(fs, "always", 64) as store:
            store.put(b"after", b"the reopen")
            acknowledged[b"after"] = b"the reopen"
            image = fs.image()
        for state in image.crash_states():
            TALLY["crash states checked"] += 1
            with open_store(image.crash(state), "always", 64) as store:
                found = dict(store.items())
            if any(found.get(key) != value for key, value in acknowledged.items()):
                failures.append(f"killed after operation {kill_at}, then '{state.label}'")
    assert not failures, "acknowledged writes lost:\n" + "\n".join(failures[:10])


# --------------------------------------------------------------------------- the checker's teeth


class DirectoryFsyncIgnored(SimFileSystem):
    """A disk that acknowledges ``sync_dir`` and does nothing: the engine cannot tell."""

    def sync_dir(self, path: str) -> None:
        self.calls["sync_dir"] += 1
        self.trace.append(("sync_dir", path))
        if self.observer is not None:
            self.observer(self)


@pytest.mark.spec("REC-1", "REC-2", "REC-9")
def test_exploration_notices_when_directory_fsyncs_do_nothing() -> None:
    """The exploration must be able to fail: with directory fsyncs ignored, rotated segments
    can vanish at a crash, and acknowledged writes with them."""
    fs = DirectoryFsyncIgnored()
    fs.makedirs(DIRECTORY)
    SimFileSystem.sync_dir(fs, "/")
    SimFileSystem.sync_dir(fs, "/data")
    steps = [Step("put", b"k%d" % (i % 3), b"value %d" % i) for i in range(8)]
    run = drive(fs, "always", steps, segment_size=64)
    explorer = Explorer(64)
    explorer.check(run, systematic)
    assert explorer.failures, "a lost segment must break REC-2"


@pytest.mark.spec("REC-1", "REC-2", "ENG-14")
def test_exploration_notices_when_file_fsyncs_do_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    def sync_ignored(self: SimFile) -> None:
        self.size()

    monkeypatch.setattr(SimFile, "sync", sync_ignored)
    steps = [Step("put", b"k%d" % (i % 3), b"value %d" % i) for i in range(4)]
    run = drive(fresh_fs(), "always", steps, segment_size=1 << 20)
    explorer = Explorer(1 << 20)
    explorer.check(run, systematic)
    assert explorer.failures, "a put acknowledged without a real fsync must be losable"
