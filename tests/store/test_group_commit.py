"""Group commit (ENG-28, ENG-29): many writers, few fsyncs, no write acknowledged too early."""

from __future__ import annotations

import signal
import sys
import threading
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import catlog
from catlog.commit import GroupCommit
from catlog.fs import File
from tests.crash.faulty_fs import FaultyFileSystem
from tests.failing_store import failing
from tests.passthrough_fs import PassThroughFile, PassThroughFileSystem

if TYPE_CHECKING:
    from _typeshed import TraceFunction


@dataclass
class DurabilityWitness(PassThroughFileSystem):
    """A FileSystem that knows, for each file, which bytes a *completed* fsync has covered.

    ``durable`` holds the bytes of each segment up to the size it had when its last completed
    fsync began: exactly what the spec lets a writer rely on. Each fsync takes at least
    ``fsync_seconds``, as a disk's does: on a file system in memory (tmpfs, where the mutation
    session puts the tests' files) an fsync returns at once, and writers would seldom find one
    running to share.
    """

    fsync_seconds: float = 0.001
    syncing: threading.Event = field(default_factory=threading.Event)
    written: dict[str, bytearray] = field(default_factory=dict)
    durable: dict[str, bytes] = field(default_factory=dict)
    syncs: int = 0
    mutex: threading.Lock = field(default_factory=threading.Lock)

    def wrap(self, file: File) -> File:
        with self.mutex:
            self.written.setdefault(file.path, bytearray(file.pread(file.size(), 0)))
        return WitnessFile(file, self)

    def durable_bytes(self) -> bytes:
        with self.mutex:
            return b"".join(self.durable.values())


class WitnessFile(PassThroughFile):
    def __init__(self, inner: File, fs: DurabilityWitness) -> None:
        super().__init__(inner)
        self._fs = fs

    def append(self, data: bytes | bytearray | memoryview) -> int:
        with self._fs.mutex:
            self._fs.written[self.path] += bytes(data)
        return self._inner.append(data)

    def truncate(self, size: int) -> None:
        with self._fs.mutex:
            del self._fs.written[self.path][size:]
        self._inner.truncate(size)

    def sync(self) -> None:
        with self._fs.mutex:
            covered = bytes(self._fs.written[self.path])
        self._inner.sync()
        self._fs.syncing.set()
        time.sleep(self._fs.fsync_seconds)
        with self._fs.mutex:
            if len(covered) > len(self._fs.durable.get(self.path, b"")):
                self._fs.durable[self.path] = covered
            self._fs.syncs += 1


def put_a_during_its_fsync(store: catlog.Store, fs: DurabilityWitness) -> threading.Thread:
    """Start ``put(b"a", b"1")`` in a thread; return the thread once that put's fsync is under
    way, so that whatever the caller appends next is not covered by it."""
    fs.syncing.clear()
    writer = threading.Thread(target=store.put, args=(b"a", b"1"))
    writer.start()
    assert fs.syncing.wait(10)
    return writer


@pytest.mark.spec("ENG-29", "ENG-14", "REC-8")
def test_no_put_returns_before_an_fsync_covers_it_and_writers_share_fsyncs(data_dir: str) -> None:
    fs = DurabilityWitness()
    threads, per_thread = 16, 40
    early: list[bytes] = []
    with catlog.open(data_dir, fs=fs, fsync="always", segment_size=4096) as store:
        start = threading.Barrier(threads)

        def write(worker: int) -> None:
            start.wait()
            for n in range(per_thread):
                key = b"w%02d-%03d" % (worker, n)
                store.put(key, b"v" * 50)
                if key not in fs.durable_bytes():
                    early.append(key)

        workers = [threading.Thread(target=write, args=(w,)) for w in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert len(store) == threads * per_thread
    assert early == []
    assert fs.syncs < threads * per_thread, "group commit shares fsyncs between writers"


@pytest.mark.spec("ENG-28", "ENG-29")
def test_a_write_appended_during_a_commit_takes_effect_with_the_fsync_that_covers_it(
    data_dir: str,
) -> None:
    """b is appended while the fsync of a's commit is under way, so that fsync does not cover
    it: a takes effect when that commit ends, b only with the next."""
    fs = DurabilityWitness(fsync_seconds=0.3)
    with catlog.open(data_dir, fs=fs, fsync="always") as store:
        leader = put_a_during_its_fsync(store, fs)
        ticket = store.put_nowait(b"b", b"2")
        leader.join()
        assert (store.get(b"a"), store.get(b"b")) == (b"1", None)
        store.wait_durable(ticket)
        assert store.get(b"b") == b"2"


class SignalError(Exception):
    """What the test's signal handler raises."""


@pytest.mark.spec("ENG-29")
def test_a_writer_whose_wait_is_interrupted_leaves_the_group_commit_going(data_dir: str) -> None:
    """A signal handler's exception ends a writer's wait for the fsync another writer leads
    (here while that fsync is under way): the interrupted writer must leave the queue of
    waiters, or the lead would later be handed to it and no later write would ever commit."""
    fs = DurabilityWitness(fsync_seconds=0.3)
    store = catlog.open(data_dir, fs=fs, fsync="always")
    leader = put_a_during_its_fsync(store, fs)

    def interrupt(signum: int, frame: object) -> None:
        raise SignalError

    previous = signal.signal(signal.SIGUSR1, interrupt)
    alarm = threading.Timer(0.1, signal.pthread_kill, (threading.get_ident(), signal.SIGUSR1))
    try:
        alarm.start()
        with pytest.raises(SignalError):
            store.put(b"b", b"2")
    finally:
        alarm.join()
        signal.signal(signal.SIGUSR1, previous)
    leader.join()
    later = threading.Thread(target=store.put, args=(b"c", b"3"), daemon=True)
    later.start()
    later.join(10)
    assert not later.is_alive(), "a later write waits for ever"
    assert (store[b"a"], store[b"c"]) == (b"1", b"3")
    store.close()


def interrupted_at(line: int, code: types.CodeType) -> Callable[[], None]:
    """Make the ``line``-th line this thread starts in frames of ``code`` raise SignalError
    instead, as a signal handler's exception would there; returns what undoes it.

    The interpreter runs a signal handler between any two lines of the main thread, and while
    it waits for a lock, so every line of a wait is a place such an exception may come. A line
    met again is passed over: that is a ``with`` block's end, whose lock a signal's exception
    cannot keep held (the handler runs once the release returns), while one raised by a trace
    function there would.
    """
    started: set[int] = set()
    previous = sys.gettrace()

    def in_frame(frame: types.FrameType, event: str, arg: object) -> TraceFunction:
        if event == "line" and frame.f_lineno not in started:
            started.add(frame.f_lineno)
            if len(started) == line:
                sys.settrace(previous)
                raise SignalError
        return in_frame

    def on_call(frame: types.FrameType, event: str, arg: object) -> TraceFunction | None:
        return in_frame if frame.f_code is code else None

    sys.settrace(on_call)
    return lambda: sys.settrace(previous)


def start_during_the_next_fsync(
    fs: DurabilityWitness, threads: list[threading.Thread]
) -> threading.Thread:
    """Start ``threads`` once the next fsync is under way, from a thread returned at once."""
    fs.syncing.clear()

    def start() -> None:
        if fs.syncing.wait(10):
            for thread in threads:
                thread.start()

    starter = threading.Thread(target=start)
    starter.start()
    return starter


@pytest.mark.spec("ENG-59", "ENG-29")
@pytest.mark.parametrize("role", ["sleeper", "leader"])
def test_a_writer_interrupted_at_any_line_of_its_wait_leaves_the_group_commit_going(
    tmp_path: Path, role: str
) -> None:
    """Two other writers wait beside the interrupted one: as the one it hands the lead to, and
    one of a relay it passes on (a sleeper), or as the sleepers its term covers or hands the
    lead to (a leader). Whatever line of the wait the exception comes at, both of them and a
    later writer return."""
    wait = GroupCommit.wait_durable.__code__
    line = 0
    while True:
        line += 1
        assert line < 200, "the wait never ends without an exception"
        fs = DurabilityWitness(fsync_seconds=0.02)
        store = catlog.open(tmp_path / str(line), fs=fs, fsync="always")
        others = [
            threading.Thread(target=store.put, args=(b"x%d" % n, b"x"), daemon=True) for n in (1, 2)
        ]
        first = threading.Thread(target=lambda: None)
        if role == "sleeper":
            first = put_a_during_its_fsync(store, fs)
            for other in others:
                other.start()
        else:
            starter = start_during_the_next_fsync(fs, others)
        undo = interrupted_at(line, wait)
        try:
            store.put(b"b", b"2")
            interrupted = False
        except SignalError:
            interrupted = True
        finally:
            undo()
        if role == "leader":
            fs.syncing.set()  # interrupted before its fsync: the others write all the same
            starter.join(10)
        else:
            first.join(10)
        for other in others:
            other.join(10)
            assert not other.is_alive(), f"line {line}: a writer beside it waits for ever"
        later = threading.Thread(target=store.put, args=(b"c", b"3"), daemon=True)
        later.start()
        later.join(10)
        assert not later.is_alive(), f"line {line}: a later write waits for ever"
        assert store[b"c"] == b"3"
        store.close()
        if not interrupted:
            return  # the wait ran through: every line of it was tried


@pytest.mark.spec("ENG-28", "ENG-14")
def test_a_write_appended_without_waiting_takes_effect_when_it_is_durable(data_dir: str) -> None:
    with catlog.open(data_dir, fsync="always") as store:
        store.put(b"k", b"old")
        first = store.put_nowait(b"k", b"new")
        assert store.get(b"k") == b"old", "not durable yet, so not visible"
        existed, second = store.delete_nowait(b"gone")
        assert (existed, second) == (False, first)
        store.wait_durable(first)
        assert store.get(b"k") == b"new"
        existed, third = store.delete_nowait(b"k")
        assert (existed, third) == (True, first + 1)
        assert store.get(b"k") == b"new"
        store.put_nowait(b"other", b"x")
        store.wait_durable(third)
        assert store.get(b"k") is None
        assert store.get(b"other") == b"x", "one fsync covers every write appended before it"
    with catlog.open(data_dir) as store:
        assert store.get(b"k") is None


@pytest.mark.spec("ENG-28")
@pytest.mark.parametrize("policy", ["interval", "never"])
def test_without_always_a_write_takes_effect_at_once(
    data_dir: str, policy: catlog.FsyncPolicy
) -> None:
    with catlog.open(data_dir, fsync=policy) as store:
        ticket = store.put_nowait(b"k", b"v")
        assert store.get(b"k") == b"v"
        store.wait_durable(ticket)
        assert store.delete_nowait(b"k") == (True, ticket + 1)
        assert b"k" not in store


@pytest.mark.spec("ENG-28", "REC-10")
def test_waiting_on_a_write_whose_fsync_failed_raises(data_dir: str) -> None:
    fs = FaultyFileSystem()
    with failing(catlog.open(data_dir, fs=fs, fsync="always")) as store:
        ticket = store.put_nowait(b"k", b"v")
        fs.fail("sync")
        with pytest.raises(catlog.StoreFailedError):
            store.wait_durable(ticket)
        with pytest.raises(catlog.StoreFailedError):
            store.wait_durable(ticket)
        assert store.get(b"k") is None


@pytest.mark.spec("ENG-29", "REC-10")
def test_when_a_shared_fsync_fails_every_waiting_writer_is_told_and_none_hangs(
    data_dir: str,
) -> None:
    fs = FaultyFileSystem()
    threads = 16
    outcomes: list[str] = []
    with failing(catlog.open(data_dir, fs=fs, fsync="always")) as store:
        start = threading.Barrier(threads + 1)

        def write(worker: int) -> None:
            start.wait()
            try:
                for n in range(1000):
                    store.put(b"w%02d-%04d" % (worker, n), b"v" * 50)
            except catlog.StoreFailedError:
                outcomes.append("refused")
            else:
                outcomes.append("done")

        workers = [threading.Thread(target=write, args=(w,)) for w in range(threads)]
        for worker in workers:
            worker.start()
        fs.fail("sync", nth=20)
        start.wait()
        for worker in workers:
            worker.join(timeout=60)
        assert not any(worker.is_alive() for worker in workers), "a writer never woke"
    assert outcomes == ["refused"] * threads


def sync_count_of_writers(data_dir: str, threads: int, puts: int, fsync_seconds: float) -> int:
    """Let ``threads`` writers put ``puts`` each at once; return the fsyncs of the group
    commits (the open's and the close's left out)."""
    fs = DurabilityWitness(fsync_seconds=fsync_seconds)
    with catlog.open(data_dir, fs=fs, fsync="always") as store:
        start = threading.Barrier(threads)

        def write(worker: int) -> None:
            start.wait()
            for n in range(puts):
                store.put(b"w%d-%d" % (worker, n), b"v")

        writers = [threading.Thread(target=write, args=(i,)) for i in range(threads)]
        before = fs.syncs
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join(60)
        return fs.syncs - before


@pytest.mark.spec("ENG-45", "ENG-29")
def test_a_leader_waits_for_the_writers_it_woke_so_one_fsync_covers_them_all(
    data_dir: str,
) -> None:
    """Eight writers, 50 ms fsyncs: a leader that started at once would cover only the writers
    that arrived during the fsync before, so the eight would take turns in two groups of about
    four, some 19 fsyncs for their 10 puts each (measured, before ENG-45). Waiting for them to
    come back, each fsync covers all eight: 11. (The wait may last one 50 ms fsync: ample time
    for a woken thread to put again, even on a loaded machine.)"""
    syncs = sync_count_of_writers(data_dir, threads=8, puts=10, fsync_seconds=0.05)
    assert syncs <= 14


@pytest.mark.spec("ENG-45")
def test_a_writer_that_does_not_come_back_delays_the_next_fsync_by_one_fsync_at_most(
    data_dir: str,
) -> None:
    """a is covered by the first fsync and then stops writing; b, asleep during it, leads the
    next and waits for a, but not past the length of that fsync (about 0.3 s here)."""
    fs = DurabilityWitness(fsync_seconds=0.3)
    with catlog.open(data_dir, fs=fs, fsync="always") as store:
        first = put_a_during_its_fsync(store, fs)
        began = time.monotonic()
        store.put(b"b", b"2")  # sleeps through a's fsync, then leads its own
        took = time.monotonic() - began
        first.join()
        assert store.get(b"b") == b"2"
    assert took < 3.0, "b waited for a far longer than one fsync"


class CountingCondition(threading.Condition):
    """A Condition that counts the waits with a timeout made on it: only ENG-45's wait has one."""

    timed_waits = 0

    def wait(self, timeout: float | None = None) -> bool:
        if timeout is not None:
            CountingCondition.timed_waits += 1
        return super().wait(timeout)


@pytest.mark.spec("ENG-45")
def test_a_lone_writer_never_waits_for_others_to_come_back(
    data_dir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer a commit covered is the one that comes back: its next commit starts at once.
    (Waiting would cost it one fsync per put, halving its rate, which only a benchmark shows;
    so the test counts the waits instead.)"""
    fs = DurabilityWitness(fsync_seconds=0.01)
    with monkeypatch.context() as patch:
        patch.setattr(threading, "Condition", CountingCondition)
        store = catlog.open(data_dir, fs=fs, fsync="always")
    CountingCondition.timed_waits = 0
    with store:
        for n in range(5):
            store.put(b"k%d" % n, b"v")
            store.wait_durable(store.put_many_nowait([(b"a", b"1"), (b"b", b"2")]))
        store.sync()
        store.put(b"last", b"v")
    assert CountingCondition.timed_waits == 0
    assert fs.syncs >= 11


@pytest.mark.spec("ENG-45", "ENG-18")
def test_close_during_a_leaders_wait_for_a_writer_returns_when_the_term_ends(
    data_dir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """close() waits for a leader's term to end. Here it begins while the leader is in ENG-45's
    wait for a writer that does not come back, so two threads wait on the commit state at once;
    the end of the term must still wake close() (the store skips its notify when nobody waits,
    so it must count both)."""
    leader_waits = threading.Event()

    class SignallingCondition(threading.Condition):
        def wait(self, timeout: float | None = None) -> bool:
            if timeout is not None:
                leader_waits.set()
            return super().wait(timeout)

    fs = DurabilityWitness(fsync_seconds=0.3)
    with monkeypatch.context() as patch:
        patch.setattr(threading, "Condition", SignallingCondition)
        store = catlog.open(data_dir, fs=fs, fsync="always")
    first = put_a_during_its_fsync(store, fs)
    second = threading.Thread(target=store.put, args=(b"b", b"2"))  # leads next, waits for a
    second.start()
    assert leader_waits.wait(10)
    closer = threading.Thread(target=store.close, daemon=True)
    closer.start()
    closer.join(10)
    assert not closer.is_alive(), "close() was never woken when the leader's term ended"
    first.join(10)
    second.join(10)
    assert store.closed
    with catlog.open(data_dir) as reopened:
        assert dict(reopened.items()) == {b"a": b"1", b"b": b"2"}


@pytest.mark.spec("ENG-45", "ENG-17", "ENG-115")
def test_a_sync_during_a_leaders_wait_ends_the_wait_and_leaves_nobody_to_notify(
    data_dir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """a's commit (a 2 s fsync) is the last: b, asleep during it, leads next and waits for a,
    who does not come back. A sync() then makes everything durable, after which nobody is
    awaited: the leader's wait must end by the sync's notify, not by its 2 s bound, and its
    commit then fsyncs nothing (ENG-115).
    Then, with nobody waiting, a lone writer's puts notify nobody."""
    waits: list[bool] = []
    """How each of the leader's timed waits ended: True if notified, False if timed out."""
    notifies: list[int] = [0]
    leader_waits = threading.Event()
    fs = DurabilityWitness(fsync_seconds=0.0)

    class RecordingCondition(threading.Condition):
        def wait(self, timeout: float | None = None) -> bool:
            if timeout is None:
                return super().wait()
            fs.fsync_seconds = 0.0  # a's fsync is over; the sync's takes no time
            leader_waits.set()
            notified = super().wait(timeout)
            waits.append(notified)
            return notified

        def notify_all(self) -> None:
            notifies[0] += 1
            super().notify_all()

    with monkeypatch.context() as patch:
        patch.setattr(threading, "Condition", RecordingCondition)
        store = catlog.open(data_dir, fs=fs, fsync="always")
    with store:
        fs.fsync_seconds = 2.0
        first = put_a_during_its_fsync(store, fs)
        second = threading.Thread(target=store.put, args=(b"b", b"2"))
        second.start()
        assert leader_waits.wait(30), "b never waited for a"
        syncs = fs.syncs
        store.sync()
        second.join(30)
        first.join(30)
        assert waits == [True], "the leader's wait outlived the sync that left nobody away"
        assert fs.syncs == syncs + 1, "the leader fsynced again what the sync had made durable"
        notifies[0] = 0
        for n in range(3):
            store.put(b"c%d" % n, b"3")
        assert notifies == [0], "a lone writer's puts notified a wait nobody is in"
        assert store.get(b"b") == b"2"
