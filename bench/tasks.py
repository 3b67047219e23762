"""The timed loops, each run in a child process with one contender in it (:mod:`bench.child`).

A task makes its own keys and values from the fixed seed (:mod:`bench.dataset`) before its clock
starts, opens its store untimed (except ``reopen``, where the open is what is timed), times its
loop alone with ``time.perf_counter`` (:func:`bench.timing.timed`), and answers with plain
figures. The parent decides the order and the directories; what a workload reports is built from
these answers in :mod:`bench.workloads`.

Most tasks run in a child started for that one call. The sliced workloads (``durable``,
``group``) keep one child per contender for the whole workload and ask it for one short slice at
a time, because a child per quarter-second slice would spend more time starting than measuring.
"""

from __future__ import annotations

import os
import shutil
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from crc32c import crc32c

import catlog

from . import compaction, dataset, memory, peers, segments
from .children import Reply, Scalar
from .group_floor import MinimalGroupCommit, TextbookGroupCommit
from .peers import Handle
from .sizes import KEY_SIZE, VALUE_SIZE
from .timing import Sample, for_duration, timed

RAW_RECORD_SIZE: Final = 141
"""Bytes per write in the raw append+fsync loop: about one catlog record of a 16-byte key and a
100-byte value (catlog's is 137). At fsync cost the few bytes either way do not show."""

FLOOR_HEADER: Final = struct.Struct("<IBQII")
"""The 21-byte record header of spec/format.md, restated so the floor does not import catlog."""


@dataclass(slots=True)
class Session:
    """What a long-lived child keeps between calls: the durable-put contender it holds open."""

    durable_op: Callable[[int], object] | None = None
    closers: list[Callable[[], object]] = field(default_factory=list)


def _sample(sample: Sample) -> Reply:
    return {"ops": sample.ops, "seconds": sample.seconds}


# ------------------------------------------------------------------------------- fill and get


def fill(_session: Session, peer: str, path: str, n: int) -> Reply:
    """``n`` puts into an empty store; the put loop timed, then ``close()`` timed apart."""
    keys, values = dataset.keys(n), dataset.values(n)
    handle = peers.BY_NAME[peer].open(path, True)
    put = handle.put

    def loop() -> None:
        for key, value in zip(keys, values, strict=True):
            put(key, value)

    sample = timed(n, loop)
    closing = timed(1, handle.close)
    backend = peers.dbm_backend(path) if peer == peers.DBM.label else ""
    shutil.rmtree(path)
    return {**_sample(sample), "close": closing.seconds, "backend": backend}


def build(_session: Session, peer: str, path: str, n: int) -> Reply:
    """The store the get workload reads: the fill's ``n`` keys and values, untimed."""
    handle = peers.BY_NAME[peer].open(path, True)
    for key, value in zip(dataset.keys(n), dataset.values(n), strict=True):
        handle.put(key, value)
    handle.close()
    backend = peers.dbm_backend(path) if peer == peers.DBM.label else ""
    return {"backend": backend}


def get(_session: Session, peer: str, path: str, n: int) -> Reply:
    """Reopen (untimed), then ``n`` gets of every key in shuffled order; a few values checked."""
    keys, values = dataset.keys(n), dataset.values(n)
    order = dataset.shuffled(keys)
    expected = dict(zip(keys[:100], values[:100], strict=True))
    handle = peers.BY_NAME[peer].open(path, False)
    fetch = handle.get

    def loop() -> None:
        for key in order:
            fetch(key)

    sample = timed(n, loop)
    for key, value in expected.items():
        assert fetch(key) == value, f"{peer} returned a wrong value"
    handle.close()
    return _sample(sample)


def many_segments(_session: Session, path: str, n: int, segment_size: int) -> Reply:
    """The open-files workload's store: the fill's ``n`` pairs in small segments, untimed."""
    with catlog.open(path, fsync="never", segment_size=segment_size) as store:
        for key, value in zip(dataset.keys(n), dataset.values(n), strict=True):
            store.put(key, value)
        return {"segments": store.stats().segments}


def budget_get(_session: Session, path: str, n: int, max_open_files: int) -> Reply:
    """Reopen with ``max_open_files`` (untimed), then ``n`` gets in shuffled order (ENG-66)."""
    keys, values = dataset.keys(n), dataset.values(n)
    order = dataset.shuffled(keys)
    with catlog.open(path, fsync="never", max_open_files=max_open_files) as store:
        fetch = store.get
        for key in order[:1000]:  # the same warm-up for every budget: open what it keeps open
            fetch(key)

        def loop() -> None:
            for key in order:
                fetch(key)

        sample = timed(n, loop)
        for key, value in zip(keys[:100], values[:100], strict=True):
            assert fetch(key) == value, "catlog returned a wrong value"
    return _sample(sample)


# -------------------------------------------------------------------------- reopen and memory


def large(_session: Session, peer: str, path: str, n: int) -> Reply:
    """A store of ``n`` keys for reopen and memory, built one pair at a time (untimed)."""
    handle = peers.BY_NAME[peer].open(path, True)
    put = handle.put
    for key, value in dataset.pairs(n):
        put(key, value)
    handle.close()
    return {}


def reopen(_session: Session, peer: str, path: str) -> Reply:
    """The open call alone, timed; the close after it is not."""
    start = time.perf_counter()
    handle = peers.BY_NAME[peer].open(path, True)
    sample = Sample(1, time.perf_counter() - start)
    handle.close()
    return _sample(sample)


def index_memory(_session: Session, kind: str, path: str, keys: int) -> Reply:
    """Resident bytes the open store adds to this (fresh) process (see :mod:`bench.memory`)."""
    return {name: float(count) for name, count in memory.child(kind, path, keys).items()}


# -------------------------------------------------------------------------------- durable put


def durable_open(session: Session, kind: str, path: str, pool: int) -> Reply:
    """Open one durable-put contender in this child and keep it for the slices that follow.

    ``kind``: ``catlog`` (``fsync="always"``), ``sqlite`` (``synchronous=FULL``, a commit per
    put), ``raw`` (``os.write`` then ``os.fsync`` on an ``O_APPEND`` file) or ``floor`` (the
    floor's encoding and dict insert, then ``os.write`` and ``os.fdatasync``).
    """
    keys = dataset.keys(pool)
    value = dataset.values(1)[0]
    if kind in ("catlog", "sqlite"):
        if kind == "catlog":
            handle = peers.open_catlog(path, fsync="always")
        else:
            handle = peers.open_sqlite(path, synchronous="FULL", one_transaction=False)
        session.closers.append(handle.close)
        session.durable_op = _store_op(handle, keys, value)
        return {}
    mode = os.O_WRONLY | os.O_CREAT | os.O_APPEND
    fd = os.open(os.path.join(path, f"{kind}.log"), mode, 0o644)
    session.closers.append(lambda: os.close(fd))
    write = os.write
    if kind == "raw":
        record = os.urandom(RAW_RECORD_SIZE)
        fsync = os.fsync

        def raw_op(_i: int) -> None:
            write(fd, record)
            fsync(fd)

        session.durable_op = raw_op
        return {}
    assert kind == "floor", f"unknown durable contender {kind!r}"
    datasync = getattr(os, "fdatasync", os.fsync)
    pack = FLOOR_HEADER.pack
    floor_index: dict[bytes, int] = {}

    def floor_op(i: int) -> None:
        key = keys[i % len(keys)]
        body = key + value
        header = pack(crc32c(body), 1, time.time_ns() // 1_000_000, len(key), len(value))
        write(fd, header + body)
        floor_index[key] = i
        datasync(fd)

    session.durable_op = floor_op
    return {}


def _store_op(handle: Handle, keys: list[bytes], value: bytes) -> Callable[[int], object]:
    put = handle.put
    return lambda i: put(keys[i % len(keys)], value)


def durable_slice(session: Session, seconds: float) -> Reply:
    """Puts for ``seconds``, counted (:func:`bench.timing.for_duration`)."""
    assert session.durable_op is not None, "durable_open comes first"
    return _sample(for_duration(seconds, session.durable_op))


def durable_close(session: Session) -> Reply:
    for close in session.closers:
        close()
    session.closers.clear()
    session.durable_op = None
    return {}


# ------------------------------------------------------------------------------- group commit

Opener = Callable[[str], tuple[Callable[[bytes, bytes], object], Callable[[], object]]]


def _open_catlog_always(path: str) -> tuple[Callable[[bytes, bytes], object], Callable[[], object]]:
    store = peers.open_catlog(path, fsync="always")
    return store.put, store.close


def _open_group_floor(path: str) -> tuple[Callable[[bytes, bytes], object], Callable[[], object]]:
    floor = MinimalGroupCommit(os.path.join(path, "group.log"))
    return floor.put, floor.close


def _open_textbook(path: str) -> tuple[Callable[[bytes, bytes], object], Callable[[], object]]:
    textbook = TextbookGroupCommit(os.path.join(path, "group.log"))
    return textbook.put, textbook.close


GROUP_OPENERS: Final[dict[str, Opener]] = {
    "catlog": _open_catlog_always,
    "ceiling": _open_group_floor,
    "textbook": _open_textbook,
}


def group_slice(_session: Session, kind: str, path: str, threads: int, seconds: float) -> Reply:
    """``threads`` writers each putting distinct keys into one store that fsyncs every put."""
    put, close = GROUP_OPENERS[kind](path)
    value = dataset.values(1)[0]
    counts = [0] * threads
    start_line = threading.Barrier(threads + 1)

    def writer(index: int) -> None:
        prefix = b"%02d-" % index
        start_line.wait()
        deadline = time.perf_counter() + seconds
        done = 0
        while time.perf_counter() < deadline:
            put(prefix + b"%08d" % done, value)
            done += 1
        counts[index] = done

    workers = [threading.Thread(target=writer, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    start_line.wait()
    began = time.perf_counter()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - began
    close()
    shutil.rmtree(path)
    return _sample(Sample(sum(counts), elapsed))


# ---------------------------------------------------------------------------- pure-Python floor


def python_floor(_session: Session, path: str, n: int) -> Reply:
    """The least a pure-Python Bitcask put can do, ``n`` times (see workloads.python_floor)."""
    keys, values = dataset.keys(n), dataset.values(n)
    record_size = FLOOR_HEADER.size + KEY_SIZE + VALUE_SIZE
    index: dict[bytes, int] = {}
    pack = FLOOR_HEADER.pack
    timestamp = time.time_ns() // 1_000_000
    with open(os.path.join(path, "floor.log"), "wb") as file:
        write = file.write

        def loop() -> None:
            offset = 16
            for key, value in zip(keys, values, strict=True):
                header = pack(crc32c(key + value), 1, timestamp, KEY_SIZE, VALUE_SIZE)
                write(header + key + value)
                index[key] = offset
                offset += record_size

        sample = timed(n, loop)
    shutil.rmtree(path)
    return _sample(sample)


# ------------------------------------------------------------------------- compaction and loop


def compact(_session: Session, kind: str, path: str, n: int) -> Reply:
    """One store's overwrite-then-compact run (see :func:`bench.compaction.one_store`)."""
    return compaction.one_store(kind, path, n)


def loop(_session: Session, kind: str, root: str, reads: int) -> Reply:
    """One server's CPU time over the SET reads, then the GET reads, then (catlog) the INCR
    reads (see bench.server_loop)."""
    # Imported here: it needs the server's modules, which a --compare-with checkout of an older
    # catlog may lay out otherwise, and only this task uses them.
    from . import server_loop  # noqa: PLC0415

    sets, gets, incrs = server_loop.once(kind, root, reads)
    reply: Reply = {
        "set_ops": sets.ops,
        "set_seconds": sets.seconds,
        "get_ops": gets.ops,
        "get_seconds": gets.seconds,
    }
    if incrs is not None:
        reply |= {"incr_ops": incrs.ops, "incr_seconds": incrs.seconds}
    return reply


def segment_files(_session: Session, path: str, count: int) -> Reply:
    """The segments workload's store, ``count`` segments written as files (untimed)."""
    return segments.write_store(path, count)


def segments_under_limit(_session: Session, path: str, count: int, limit: int) -> Reply:
    """The segments workload: the store's life under ``ulimit -n limit``, each step timed."""
    return segments.under_limit(path, count, limit)


TASKS: Final = frozenset(
    {
        "fill",
        "build",
        "get",
        "large",
        "reopen",
        "index_memory",
        "durable_open",
        "durable_slice",
        "durable_close",
        "group_slice",
        "python_floor",
        "compact",
        "loop",
        "many_segments",
        "budget_get",
        "segment_files",
        "segments_under_limit",
    }
)
"""The functions of this module a parent may call, by the name :meth:`Child.call` sends."""


def run(session: Session, task: str, args: dict[str, Scalar]) -> Reply:
    """Call the task named ``task`` with ``args`` (keyword arguments, as JSON gave them)."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {sorted(TASKS)}")
    reply: Reply = globals()[task](session, **args)
    return reply
