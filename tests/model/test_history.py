"""Threads against one store on disk, every read checked against the history (ENG-50, ENG-38).

Writers put (some with a ttl), delete, write batches and ``put_many_nowait`` groups; readers
``get``, ask ``in`` and iterate; a snapshot taker holds snapshots (and ``items()``) across many
writes and compactions and reads them again and again; one thread calls ``compact()`` in a loop.
Segments are a few hundred bytes, so rotation and slot reuse never stop. :mod:`tests.model.history`
checks the result. Every thread's choices come from a seed (fixed in the ``ci`` profile, random
and printed in ``nightly``, which also runs 40 times longer; ``CATLOG_HISTORY_SEED`` sets it);
the threads' timing is not repeatable, so a seed narrows a failure down but need not replay it.

Three workloads: ``mixed`` is the above; ``sweep`` is one writer rewriting every key in turn with
values of one size (issue 13's reproduction of its defect 2: records then fall at the same
offsets in every segment, so a stale location can hold a well-formed record of the same key);
``rewrites`` races puts and deletes with ``expire`` and ``persist`` on three keys.

Every thread pauses a little after each operation: a get never releases the GIL, and readers
that never pause starve the writers (see tests/store/test_concurrency.py).
"""

from __future__ import annotations

import os
import random
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest

import catlog
from catlog.fs import File
from tests.model.history import History, SnapshotView, check
from tests.store.recording_fs import RecordingFile, RecordingFileSystem

NIGHTLY = os.environ.get("HYPOTHESIS_PROFILE") == "nightly"
SECONDS = 40 * 2.0 if NIGHTLY else 2.0
"""How long the writers write, per fsync policy."""
SEED = int(os.environ.get("CATLOG_HISTORY_SEED") or (random.randrange(1 << 32) if NIGHTLY else 13))
WRITERS = 3
READERS = 2
KEYS = [b"key%02d" % n for n in range(12)]
PAIRS = [(b"pair%d-a" % n, b"pair%d-b" % n) for n in range(3)]
EVERY_KEY = KEYS + [key for pair in PAIRS for key in pair]
VALUE_SIZES = (24, 100)
SEGMENT_SIZES = (512, 1024, 4096)
"""Each run's segment size is drawn from these by its seed: rotation every few writes."""
LONG_TTL = 3600.0
"""Expiring puts exercise FMT-21's records; none expires while the test runs."""


def _pause(rng: random.Random, most: float = 0.0005) -> None:
    time.sleep(rng.random() * most)


class Run:
    """One run's threads, their shared history, and the store they share."""

    def __init__(self, store: catlog.Store, seed: int, workload: str = "mixed") -> None:
        self.store = store
        self.seed = seed
        self.workload = workload
        self.history = History(pairs=list(PAIRS))
        self.writing = threading.Event()
        self.stop = threading.Event()
        self.compactions = 0

    def guarded(self, body: Callable[[random.Random], None], number: int) -> Callable[[], None]:
        def run() -> None:
            try:
                body(random.Random(self.seed * 100 + number))
            except BaseException:
                self.history.errors.append(f"thread {number}:\n{traceback.format_exc()}")
                self.stop.set()

        return run

    def value(self, rng: random.Random, who: str, n: int) -> bytes:
        label = b"%s#%d|" % (who.encode(), n)
        return label.ljust(rng.choice(VALUE_SIZES), b".")

    def writer(self, number: int) -> Callable[[random.Random], None]:
        who = f"w{number}"

        def write(rng: random.Random) -> None:
            store, history = self.store, self.history
            deadline = time.monotonic() + SECONDS
            n = 0
            if self.workload == "sweep":
                if number == 0:
                    self._sweep(rng, deadline)
                return
            if self.workload == "rewrites":
                self._rewrites(rng, who, deadline)
                return
            while time.monotonic() < deadline and not self.stop.is_set():
                n += 1
                roll = rng.random()
                key = rng.choice(KEYS)
                value = self.value(rng, who, n)
                if roll < 0.45:
                    start = history.tick()
                    store.put(key, value)
                    history.wrote(key, value, start, history.tick(), f"put by {who}")
                elif roll < 0.55:
                    start = history.tick()
                    store.put(key, value, ttl=LONG_TTL)
                    history.wrote(key, value, start, history.tick(), f"put with ttl by {who}")
                elif roll < 0.70:
                    start = history.tick()
                    existed = store.delete(key)
                    end = history.tick()
                    history.wrote(key, None, start, end, f"delete by {who}")
                    history.found(key, existed, start, end, f"delete by {who}")
                elif roll < 0.82:
                    self._batch(rng, who, n)
                elif roll < 0.90:
                    self._pair(rng, who, n)
                else:
                    chosen = rng.sample(KEYS, rng.randint(1, 4))
                    pairs = [(k, self.value(rng, who, n) + b"%d" % i) for i, k in enumerate(chosen)]
                    start = history.tick()
                    store.wait_durable(store.put_many_nowait(pairs))
                    end = history.tick()
                    for k, v in pairs:
                        history.wrote(k, v, start, end, f"put_many_nowait by {who}")
                _pause(rng)

        return write

    def _sweep(self, rng: random.Random, deadline: float) -> None:
        """Rewrite every key in turn with values of one size, as issue 13's reproduction does.

        Records then fall at the same offsets in every segment, so a read through a stale
        location can find a well-formed record of the same key there and return its value."""
        store, history = self.store, self.history
        n = 0
        while time.monotonic() < deadline and not self.stop.is_set():
            key = KEYS[n % len(KEYS)]
            n += 1
            value = b"w0#%d|" % n
            value = value.ljust(100, b".")
            start = history.tick()
            store.put(key, value)
            history.wrote(key, value, start, history.tick(), "put by w0")
            _pause(rng)

    def _rewrites(self, rng: random.Random, who: str, deadline: float) -> None:
        """Puts racing ``expire`` and ``persist``, which rewrite a key's value with its expiry.

        Neither changes a value, so the history counts them as reads of whether the key has
        one (``expire``) or not at all (``persist``); a value they brought back is an old one.
        """
        store, history = self.store, self.history
        n = 0
        while time.monotonic() < deadline and not self.stop.is_set():
            n += 1
            key = rng.choice(KEYS[:3])
            roll = rng.random()
            start = history.tick()
            if roll < 0.35:
                value = self.value(rng, who, n)
                store.put(key, value, ttl=LONG_TTL if roll < 0.2 else None)
                history.wrote(key, value, start, history.tick(), f"put by {who}")
            elif roll < 0.6:
                existed = store.expire(key, LONG_TTL + n)
                history.found(key, existed, start, history.tick(), f"expire by {who}")
            elif roll < 0.85:
                store.persist(key)
            else:
                existed = store.delete(key)
                end = history.tick()
                history.wrote(key, None, start, end, f"delete by {who}")
                history.found(key, existed, start, end, f"delete by {who}")
            _pause(rng)

    def _batch(self, rng: random.Random, who: str, n: int) -> None:
        ops: list[catlog.BatchOp] = []
        written: list[tuple[bytes, bytes | None]] = []
        for i, key in enumerate(rng.sample(KEYS, rng.randint(1, 4))):
            kind = rng.random()
            if kind < 0.25:
                ops.append(("delete", key))
                written.append((key, None))
                continue
            member = self.value(rng, who, n) + b"m%d" % i
            ops.append(("put", key, member, LONG_TTL) if kind < 0.4 else ("put", key, member))
            written.append((key, member))
        start = self.history.tick()
        self.store.write_batch(ops)
        end = self.history.tick()
        for key, value in written:
            self.history.wrote(key, value, start, end, f"batch by {who}")

    def _pair(self, rng: random.Random, who: str, n: int) -> None:
        first, second = rng.choice(PAIRS)
        value = None if rng.random() < 0.2 else self.value(rng, who, n)
        ops: list[catlog.BatchOp] = (
            [("delete", first), ("delete", second)]
            if value is None
            else [("put", first, value), ("put", second, value)]
        )
        start = self.history.tick()
        self.store.write_batch(ops)
        end = self.history.tick()
        for key in (first, second):
            self.history.wrote(key, value, start, end, f"pair batch by {who}")

    def reader(self, number: int) -> Callable[[random.Random], None]:
        who = f"reader {number}"

        def read(rng: random.Random) -> None:
            store, history = self.store, self.history
            while self.writing.is_set():
                key = rng.choice(EVERY_KEY)
                start = history.tick()
                roll = rng.random()
                if roll < 0.8:
                    value = store.get(key)
                    history.read(key, value, start, history.tick(), f"get by {who}")
                elif roll < 0.97:
                    present = key in store
                    history.found(key, present, start, history.tick(), f"'in' by {who}")
                else:
                    listed = set(store)  # ENG-7: the keys as of one instant of the call
                    end = history.tick()
                    for each in EVERY_KEY:
                        history.found(each, each in listed, start, end, f"iteration by {who}")
                _pause(rng)

        return read

    def snapshots(self, rng: random.Random) -> None:
        """Hold snapshots across writes and compactions, some for long, re-reading them."""
        store, history = self.store, self.history
        taken = 0
        while self.writing.is_set():
            taken += 1
            if rng.random() < 0.2:
                start = history.tick()
                items = store.items()
                view = SnapshotView(start, history.tick(), f"items() #{taken}")
                history.snapshots.append(view)
                seen = dict(items)
                for key in EVERY_KEY:
                    history.snapshot_read(view, key, seen.get(key))
                continue
            start = history.tick()
            with store.snapshot() as snapshot:
                view = SnapshotView(start, history.tick(), f"snapshot #{taken}")
                history.snapshots.append(view)
                size = len(snapshot)
                listed = set(snapshot)
                rounds = rng.choice((1, 2, 5, 20, 60))
                for _ in range(rounds):
                    for key in rng.sample(EVERY_KEY, 6):
                        try:
                            value = snapshot.get(key)
                        except catlog.CatlogError as exc:
                            view.failures.append(f"reading {key!r} raised {exc!r}")
                            continue
                        history.snapshot_read(view, key, value)
                        if not (key in snapshot) == (key in listed) == (value is not None):
                            view.failures.append(f"'in', iteration and get disagree on {key!r}")
                    if len(snapshot) != size or set(snapshot) != listed:
                        view.failures.append(
                            f"len or iteration changed (len {size} then {len(snapshot)})"
                        )
                    _pause(rng, 0.005)
                    if not self.writing.is_set():
                        break

    def compactor(self, rng: random.Random) -> None:
        while self.writing.is_set():
            self.store.compact()
            self.compactions += 1
            _pause(rng, 0.002)

    def final_reads(self, store: catlog.Store, what: str) -> None:
        for key in EVERY_KEY:
            start = self.history.tick()
            self.history.read(key, store.get(key), start, self.history.tick(), what)


def run_threads(store: catlog.Store, seed: int, workload: str = "mixed") -> Run:
    run = Run(store, seed, workload)
    run.writing.set()
    writers = [threading.Thread(target=run.guarded(run.writer(n), n)) for n in range(WRITERS)]
    others = [
        threading.Thread(target=run.guarded(run.reader(n), 10 + n)) for n in range(READERS)
    ] + [
        threading.Thread(target=run.guarded(run.snapshots, 20)),
        threading.Thread(target=run.guarded(run.compactor, 30)),
    ]
    for thread in writers + others:
        thread.start()
    for thread in writers:
        thread.join(timeout=SECONDS + 60)
    run.writing.clear()
    for thread in others:
        thread.join(timeout=60)
    stuck = [thread.name for thread in writers + others if thread.is_alive()]
    assert not stuck, f"threads still running a minute after the writers stopped: {stuck}"
    return run


def assert_linearizable(run: Run, setting: str) -> None:
    problems = check(run.history)
    history = run.history
    summary = (
        f"seed {run.seed}, {setting}: {len(history.writes)} writes, {len(history.reads)}"
        f" reads, {len(history.presence)} presence reads, {len(history.snapshots)} snapshots,"
        f" {run.compactions} compactions"
    )
    print(summary)
    assert not problems, (
        f"{len(problems)} violations of ENG-50/ENG-38 ({summary}); the first:\n\n"
        + "\n\n".join(problems[:5])
    )


def run_checked(
    tmp_path: Path, policy: catlog.FsyncPolicy, workload: str, seed: int = SEED
) -> None:
    """Run the threads on a fresh store, read every key after they stop and after reopening,
    and check the history."""
    directory = str(tmp_path / "data")
    segment_size = random.Random(f"{seed} {policy} {workload}").choice(SEGMENT_SIZES)
    with catlog.open(
        directory, fsync=policy, segment_size=segment_size, fsync_interval_ms=5
    ) as store:
        run = run_threads(store, seed, workload)
        run.final_reads(store, "get after every thread stopped")
    with catlog.open(directory) as reopened:
        run.final_reads(reopened, "get after reopening")
    assert run.compactions > 0, "the compactor never finished a compaction"
    assert_linearizable(run, f"fsync={policy}, segment_size={segment_size}, {workload}")


@pytest.mark.spec("ENG-50", "ENG-38", "ENG-21", "ENG-7", "ENG-37", "ENG-39", "ENG-40", "ENG-44")
@pytest.mark.parametrize(
    ("policy", "workload"),
    [
        ("always", "mixed"),
        ("interval", "mixed"),
        ("never", "mixed"),
        ("interval", "sweep"),
        ("never", "sweep"),
    ],
)
def test_concurrent_reads_and_snapshots_are_linearizable_around_compaction_and_rotation(
    tmp_path: Path, policy: catlog.FsyncPolicy, workload: str
) -> None:
    """Issue 13's defect 2 fails this: a snapshot held across a compaction and slot reuse
    raised a false CorruptionError (every policy) or showed a later value (``sweep``)."""
    run_checked(tmp_path, policy, workload)


@pytest.mark.spec("ENG-50", "ENG-35", "ENG-36")
@pytest.mark.parametrize(
    "policy",
    [
        pytest.param(
            "always",
            marks=pytest.mark.xfail(
                strict=True,
                reason="issue 13 defect (found by this checker): under fsync=always, expire and"
                " persist rewrite the value that has taken effect, after a put still waiting"
                " for its fsync, so the older value comes back",
            ),
        ),
        "interval",
        "never",
    ],
)
def test_expire_and_persist_racing_puts_are_linearizable(
    tmp_path: Path, policy: catlog.FsyncPolicy
) -> None:
    run_checked(tmp_path, policy, "rewrites")


class HeldFsync(RecordingFileSystem):
    """fsyncs wait at :attr:`release` while :attr:`holding`, so a test can act during one."""

    def __init__(self) -> None:
        super().__init__()
        self.holding = False
        self.entered = threading.Event()
        self.release = threading.Event()

    def open(self, path: str, *, writable: bool = False, create: bool = False) -> File:
        return _HeldFile(self.inner.open(path, writable=writable, create=create), self)


class _HeldFile(RecordingFile):
    def __init__(self, inner: File, fs: HeldFsync) -> None:
        super().__init__(inner, fs)
        self._held = fs

    def sync(self) -> None:
        if self._held.holding:
            self._held.holding = False
            self._held.entered.set()
            assert self._held.release.wait(30), "the test never released the fsync"
        super().sync()


@pytest.mark.spec("ENG-50", "ENG-35", "ENG-36")
@pytest.mark.xfail(
    strict=True,
    reason="issue 13 defect: under fsync=always, expire and persist rewrite the value that has"
    " taken effect, after a put still waiting for its fsync, so the older value comes back",
)
@pytest.mark.parametrize("rewrite", ["persist", "expire"])
def test_expire_or_persist_during_a_puts_fsync_does_not_bring_the_old_value_back(
    data_dir: str, rewrite: str
) -> None:
    """The minimal form of what the ``rewrites`` history found: a put's fsync is held while
    another thread persists (or re-expires) the key. Whichever order they take effect in, the
    put's value must be the key's value once both have returned."""
    fs = HeldFsync()
    with catlog.open(data_dir, fs=fs) as store:
        store.put(b"k", b"old", ttl=LONG_TTL)
        fs.holding = True
        putter = threading.Thread(target=store.put, args=(b"k", b"new"))
        putter.start()
        assert fs.entered.wait(30), "the put never reached its fsync"
        appended = store.last_ticket
        if rewrite == "persist":
            other = threading.Thread(target=store.persist, args=(b"k",))
        else:
            other = threading.Thread(target=store.expire, args=(b"k", 2 * LONG_TTL))
        other.start()
        # Until the rewrite is appended, or for a second: a store that orders it after the put
        # may instead wait for the put's fsync, and then appends nothing while this one is held.
        deadline = time.monotonic() + 1
        while store.last_ticket == appended and other.is_alive() and time.monotonic() < deadline:
            time.sleep(0.001)
        fs.release.set()
        putter.join(30)
        other.join(30)
        assert store.get(b"k") == b"new"
