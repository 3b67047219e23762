"""The six workloads. Each takes a :class:`Run` and returns the outcomes it measured.

Every store lives in its own fresh directory under the run's temporary root, which sits on the same
disk as ``/tmp`` unless ``--tmp`` says otherwise, so catlog and its peers share one file system.
Only the loop a workload is about is timed: making keys, creating directories and (except where
the workload is the open itself) opening stores happen before the clock starts.
"""

from __future__ import annotations

import os
import shutil
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Final

from crc32c import crc32c

from . import compaction, dataset, memory, peers, servers
from . import server_loop as loop_module
from .group_floor import MinimalGroupCommit, TextbookGroupCommit
from .peers import Handle, Peer
from .report import Figure, Outcome, Target
from .sizes import KEY_SIZE, VALUE_SIZE, Sizes
from .timing import Sample, Timing, for_duration, round_robin, timed

RAW_RECORD_SIZE: Final = 141
"""Bytes per write in the raw append+fsync loop: about one catlog record of a 16-byte key and a
100-byte value (catlog's is 137). At fsync cost the few bytes either way do not show."""

FLOOR_HEADER: Final = struct.Struct("<IBQII")
"""The 21-byte record header of spec/format.md, restated so the floor does not import catlog."""


@dataclass(slots=True)
class Run:
    """One benchmark run: its sizes, its scratch directory, and stores built once and shared."""

    root: str
    sizes: Sizes
    _made: int = 0
    _large: dict[str, str] = field(default_factory=dict)

    def fresh_dir(self, name: str) -> str:
        self._made += 1
        safe = "".join(c if c.isalnum() else "-" for c in name)
        path = os.path.join(self.root, f"{self._made:03d}-{safe}")
        os.makedirs(path)
        return path

    def large_store(self, peer: Peer) -> str:
        """A store of ``sizes.large_keys`` keys, built on first use and kept for later workloads.

        Built one pair at a time from :func:`dataset.pairs`, so a million keys never sit in this
        process twice (that would distort nothing here, but it would make building slower).
        """
        if peer.label not in self._large:
            path = self.fresh_dir(f"large-{peer.label}")
            handle = peer.open(path, True)
            put = handle.put
            for key, value in dataset.pairs(self.sizes.large_keys):
                put(key, value)
            handle.close()
            self._large[peer.label] = path
        return self._large[peer.label]


def _figure(label: str, timing: Timing, unit: str) -> Figure:
    return Figure(label, timing.rate, unit, tuple(s.rate for s in timing.samples))


def _seconds(label: str, timing: Timing) -> Figure:
    return Figure(label, timing.seconds, "s", tuple(s.seconds for s in timing.samples))


# --------------------------------------------------------------------------------------- fill


def fill(run: Run) -> list[Outcome]:
    """Bulk load into an empty store: the put path with nothing forced to disk.

    Reported twice: the put loop alone (the target, since it is what a caller waits for on each
    put) and the loop plus ``close()``, because the peers with one transaction do much of their
    work at commit and catlog writes its last buffer and fsyncs at close.
    """
    n = run.sizes.fill_keys
    keys, values = dataset.keys(n), dataset.values(n)
    contenders = [peers.CATLOG, peers.SEMIDBM, peers.SQLITE, peers.DBM, peers.LMDB]
    closes: dict[str, list[Sample]] = {p.label: [] for p in contenders}
    backend: list[str] = []

    def once(peer: Peer) -> Callable[[], Sample]:
        def run_once() -> Sample:
            path = run.fresh_dir(f"fill-{peer.label}")
            handle = peer.open(path, True)
            put = handle.put

            def loop() -> None:
                for key, value in zip(keys, values, strict=True):
                    put(key, value)

            sample = timed(n, loop)
            closes[peer.label].append(timed(1, handle.close))
            if peer is peers.DBM and not backend:
                backend.append(peers.dbm_backend(path))
            shutil.rmtree(path)
            return sample

        return run_once

    timings = round_robin(run.sizes.repeats, {p.label: once(p) for p in contenders})
    with_close = {
        label: Timing(
            tuple(
                Sample(s.ops, s.seconds + c.seconds)
                for s, c in zip(t.samples, closes[label], strict=True)
            )
        )
        for label, t in timings.items()
    }
    dbm_label = f"dbm ({backend[0]})"

    def named(label: str) -> str:
        return dbm_label if label == peers.DBM.label else label

    def outcome(workload: str, found: dict[str, Timing], target: Target | None) -> Outcome:
        figures = [_figure(named(label), t, "puts/s") for label, t in found.items()]
        return Outcome(workload, figures[0], tuple(figures[1:]), peers.SEMIDBM.label, target)

    close_note = ", ".join(
        f"{named(label)} {min(c.seconds for c in found):.3f} s" for label, found in closes.items()
    )
    loop = outcome(f"fill: {n:,} puts, loop", timings, Target(1.2, at_least=True))
    notes = (f"close() (best): {close_note}.", f"dbm.whichdb: the default dbm is {backend[0]}.")
    return [
        replace(loop, notes=notes),
        outcome(f"fill: {n:,} puts, loop + close", with_close, None),
    ]


# --------------------------------------------------------------------------------- random get


def random_get(run: Run) -> list[Outcome]:
    """Point reads of existing keys in random order, after a reopen: the read path alone.

    Each repetition reopens the store (untimed) and reads every key once in a shuffled order, so
    no store is helped by reading in write order. The data is in the page cache for everyone.
    catlog checks each record's crc32c as it reads it; semidbm does not by default, so semidbm
    with ``verify_checksums=True`` is listed too, as the like-for-like comparison.
    """
    n = run.sizes.fill_keys
    keys, values = dataset.keys(n), dataset.values(n)
    order = dataset.shuffled(keys)
    expected = dict(zip(keys[:100], values[:100], strict=True))
    contenders = [
        peers.CATLOG,
        peers.SEMIDBM,
        peers.SEMIDBM_VERIFIED,
        replace(peers.SQLITE, label="sqlite3 WAL"),
        peers.DBM,
        replace(peers.LMDB, label="lmdb, one read txn"),
    ]

    def build(peer: Peer) -> str:
        path = run.fresh_dir(f"get-{peer.label}")
        handle = peer.open(path, True)
        for key, value in zip(keys, values, strict=True):
            handle.put(key, value)
        handle.close()
        return path

    def once(peer: Peer, path: str) -> Callable[[], Sample]:
        def run_once() -> Sample:
            handle = peer.open(path, False)
            get = handle.get

            def loop() -> None:
                for key in order:
                    get(key)

            sample = timed(n, loop)
            for key, value in expected.items():
                assert get(key) == value, f"{peer.label} returned a wrong value"
            handle.close()
            return sample

        return run_once

    paths = {p.label: build(p) for p in contenders}
    dbm_label = f"dbm ({peers.dbm_backend(paths[peers.DBM.label])})"
    runs = {dbm_label if p is peers.DBM else p.label: once(p, paths[p.label]) for p in contenders}
    timings = round_robin(run.sizes.repeats, runs)
    figures = [_figure(label, t, "gets/s") for label, t in timings.items()]
    return [
        Outcome(
            f"random get: {n:,} gets",
            figures[0],
            tuple(figures[1:]),
            peers.SEMIDBM.label,
            Target(1.0, at_least=True),
        )
    ]


# -------------------------------------------------------------------------------- durable put


def durable_put(run: Run) -> list[Outcome]:
    """Acknowledged-durable writes from one writer, against what the disk allows at all.

    The raw loop (``os.write`` of one record then ``os.fsync`` on an ``O_APPEND`` file) is the
    ceiling for any store that fsyncs each write: catlog under ``fsync="always"`` does exactly that
    plus its own bookkeeping, so the ratio shows what the bookkeeping costs. SQLite committing
    each insert with ``synchronous=FULL`` is shown for context.

    The durable floor is the pure-Python floor's put (a header ``struct.pack``, one ``crc32c``, a
    dict insert) followed by ``os.write`` and ``os.fdatasync``: the least a pure-Python store that
    fsyncs each put can do. It differs from the raw loop by a few microseconds of Python per put,
    yet costs more than that: code that runs right after the process wakes from an fsync runs
    several times slower than in a tight loop (caches and branch predictors gone cold), so it is
    the fairer yardstick for what catlog's own code adds.

    The contenders take turns in short slices (a quarter of a second each) and each one's rate is
    its total over all its slices. On this VM the disk's fsync rate drifts by a fifth from one
    second to the next, so three-second runs one after another compared the drift, not the code.
    """
    slice_seconds = 0.25
    rounds = max(1, round(run.sizes.durable_seconds * run.sizes.repeats / slice_seconds))
    pool = dataset.keys(min(run.sizes.fill_keys, 100_000))
    value = dataset.values(1)[0]
    record = os.urandom(RAW_RECORD_SIZE)

    catlog_dir = run.fresh_dir("durable-catlog")
    sqlite_dir = run.fresh_dir("durable-sqlite")
    raw_dir = run.fresh_dir("durable-raw")
    catlog_store = peers.open_catlog(catlog_dir, fsync="always")
    sqlite_store = peers.open_sqlite(sqlite_dir, synchronous="FULL", one_transaction=False)
    fd = os.open(os.path.join(raw_dir, "raw.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    floor_fd = os.open(
        os.path.join(raw_dir, "floor.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644
    )
    write, fsync = os.write, os.fsync
    datasync = getattr(os, "fdatasync", os.fsync)
    pack = FLOOR_HEADER.pack
    floor_index: dict[bytes, int] = {}

    def raw_op(_i: int) -> None:
        write(fd, record)
        fsync(fd)

    def floor_op(i: int) -> None:
        key = pool[i % len(pool)]
        body = key + value
        header = pack(crc32c(body), 1, time.time_ns() // 1_000_000, len(key), len(value))
        write(floor_fd, header + body)
        floor_index[key] = i
        datasync(floor_fd)

    def store_op(handle: Handle) -> Callable[[int], object]:
        put = handle.put
        return lambda i: put(pool[i % len(pool)], value)

    raw = "raw os.write+os.fsync, O_APPEND"
    sqlite = "sqlite3 WAL synchronous=FULL, commit per put"
    floor = "pure-Python durable floor: encode, dict insert, os.write+os.fdatasync"
    contenders: dict[str, Callable[[int], object]] = {
        'catlog fsync="always"': store_op(catlog_store),
        raw: raw_op,
        sqlite: store_op(sqlite_store),
        floor: floor_op,
    }
    slices: dict[str, list[Sample]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, op in contenders.items():
            slices[name].append(for_duration(slice_seconds, op))
    catlog_store.close()
    sqlite_store.close()
    os.close(fd)
    os.close(floor_fd)
    for path in (catlog_dir, sqlite_dir, raw_dir):
        shutil.rmtree(path)
    timings = {
        name: Timing((Sample(sum(s.ops for s in found), sum(s.seconds for s in found)),))
        for name, found in slices.items()
    }
    figures = [_figure(label, t, "puts/s") for label, t in timings.items()]
    total = rounds * slice_seconds
    name = f"durable put: {total:g} s each in {slice_seconds:g} s turns, one writer"
    return [
        Outcome(
            name,
            figures[0],
            tuple(figures[1:3]),
            raw,
            Target(0.95, at_least=True),
            (
                f"the raw loop writes {RAW_RECORD_SIZE}-byte records; catlog's are 137 bytes.",
                "catlog syncs with fdatasync, the raw loop with fsync (see catlog/fs.py).",
            ),
        ),
        Outcome(
            f"{name}, against the pure-Python floor",
            figures[0],
            (figures[3],),
            floor,
            None,
            (
                "the floor's put: a header struct.pack, one crc32c, a dict insert, then os.write "
                "and os.fdatasync of the 137-byte record; no lock, checks or group commit.",
            ),
        ),
    ]


# ------------------------------------------------------------------------------- group commit


def _threaded_puts(
    open_store: Callable[[str], tuple[Callable[[bytes, bytes], object], Callable[[], object]]],
    path: str,
    threads: int,
    seconds: float,
    value: bytes,
) -> Sample:
    """``threads`` writers each putting distinct keys into one store that fsyncs every put."""
    put, close = open_store(path)
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
    return Sample(sum(counts), elapsed)


def _open_catlog_always(path: str) -> tuple[Callable[[bytes, bytes], object], Callable[[], object]]:
    store = peers.open_catlog(path, fsync="always")
    return store.put, store.close


def _open_group_floor(path: str) -> tuple[Callable[[bytes, bytes], object], Callable[[], object]]:
    floor = MinimalGroupCommit(os.path.join(path, "group.log"))
    return floor.put, floor.close


def _open_textbook(path: str) -> tuple[Callable[[bytes, bytes], object], Callable[[], object]]:
    textbook = TextbookGroupCommit(os.path.join(path, "group.log"))
    return textbook.put, textbook.close


def group_commit(run: Run) -> list[Outcome]:
    """Durable puts from 16 threads at once, against one writer: what group commit buys.

    Under ``fsync="always"`` one writer pays one fsync per put; 16 writers share each fsync
    (ENG-29), so their total rate should be many times the single writer's. How many times is
    bounded by what CPython threads can do on the machine, so the target is set against the ceiling
    measured in the same turns: 16 catlog writers at least 0.9x of its 16. The contenders take
    turns in half-second slices, for the same reason as the durable-put workload. Beside catlog
    run two group commits in the least Python (:mod:`bench.group_floor`): catlog's own scheme,
    a ceiling whose 16-to-1 ratio says what this machine and CPython allow, and the textbook
    one, for scale.
    """
    slice_seconds = 0.5
    rounds = max(1, round(run.sizes.durable_seconds * run.sizes.repeats / slice_seconds / 2))
    value = dataset.values(1)[0]
    ceiling = "minimal group commit (ceiling)"
    textbook = "textbook group commit"
    contenders = {
        'catlog fsync="always", 1 writer': (_open_catlog_always, 1),
        'catlog fsync="always", 16 writer threads': (_open_catlog_always, 16),
        f"{ceiling}, 1 writer": (_open_group_floor, 1),
        f"{ceiling}, 16 writer threads": (_open_group_floor, 16),
        f"{textbook}, 1 writer": (_open_textbook, 1),
        f"{textbook}, 16 writer threads": (_open_textbook, 16),
    }
    slices: dict[str, list[Sample]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, (opener, threads) in contenders.items():
            path = run.fresh_dir(f"group-{threads}")
            slices[name].append(_threaded_puts(opener, path, threads, slice_seconds, value))
            shutil.rmtree(path)
    one, many, ceiling_one, ceiling_many, textbook_one, textbook_many = (
        _figure(
            name,
            Timing((Sample(sum(s.ops for s in found), sum(s.seconds for s in found)),)),
            "puts/s",
        )
        for name, found in slices.items()
    )
    turns = f"{rounds * slice_seconds:g} s each in {slice_seconds:g} s turns"
    return [
        Outcome(
            f"group commit: {turns}",
            many,
            (one, ceiling_many, ceiling_one),
            one.label,
            None,
            (
                "each writer puts distinct 12-byte keys with 100-byte values.",
                f"the ceiling's own 16 writers / 1 writer: "
                f"{ceiling_many.value / ceiling_one.value:.2f}x; the textbook's: "
                f"{textbook_many.value / textbook_one.value:.2f}x.",
            ),
        ),
        Outcome(
            f"group commit against its ceiling: {turns}",
            many,
            (ceiling_many, textbook_many),
            ceiling_many.label,
            Target(0.9, at_least=True),
            (
                "bench/group_floor.py: records encoded and queued; a leader writes them with "
                "one os.write and os.fdatasync; catlog's scheme (ENG-29, ENG-45) for the "
                "ceiling, one condition and notify_all for the textbook; no index, segments, "
                "checks or error handling.",
            ),
        ),
    ]


# ------------------------------------------------------------------------------------- reopen


def reopen(run: Run) -> list[Outcome]:
    """Time to open a closed store: catlog through its hint files, catlog scanning every segment,
    and semidbm, which scans its whole file.

    Only the open call is timed. The files are in the page cache (they were just written), so
    this measures the CPU cost of rebuilding the index, not the disk: a cold open would add the
    read time, which is larger for the scan (64 MiB per sealed segment) than for its hint (about
    13 MiB). The scan-only copy is the same directory with its ``.hint`` files left out (ENG-32:
    a missing hint means the segment is scanned). Contenders are interleaved, best of
    ``repeats``.
    """
    n = run.sizes.large_keys
    paths = {p.label: run.large_store(p) for p in (peers.CATLOG, peers.SEMIDBM)}
    scanning = Peer(SCAN_ONLY_LABEL, peers.CATLOG.open)
    paths[SCAN_ONLY_LABEL] = _without_hints(run, paths[peers.CATLOG.label])

    def once(peer: Peer) -> Callable[[], Sample]:
        def run_once() -> Sample:
            start = time.perf_counter()
            handle = peer.open(paths[peer.label], True)
            sample = Sample(1, time.perf_counter() - start)
            handle.close()
            return sample

        return run_once

    contenders = (peers.CATLOG, scanning, peers.SEMIDBM)
    timings = round_robin(run.sizes.repeats, {p.label: once(p) for p in contenders})
    hinted, scanned, semidbm = (_seconds(label, t) for label, t in timings.items())
    note = "catlog checks every record's crc32c while scanning; semidbm checks none."
    hint_note = (
        "with hints catlog checks one crc32c per sealed segment (FMT-19), not one per record; "
        "the newest segment is always scanned."
    )
    return [
        Outcome(
            f"reopen with hints: {n:,} keys",
            hinted,
            (semidbm, scanned),
            peers.SEMIDBM.label,
            Target(0.6, at_least=False),
            (hint_note,),
        ),
        Outcome(
            f"reopen with hints vs scanning: {n:,} keys",
            hinted,
            (scanned,),
            SCAN_ONLY_LABEL,
            Target(0.5, at_least=False),
            (hint_note,),
        ),
        Outcome(
            f"reopen scanning only: {n:,} keys",
            scanned,
            (semidbm,),
            peers.SEMIDBM.label,
            Target(1.0, at_least=False),
            (note,),
        ),
    ]


SCAN_ONLY_LABEL: Final = "catlog scan only"


def _without_hints(run: Run, path: str) -> str:
    """A copy of the store at ``path`` with its hint files left out, made once per run."""
    copy = run.fresh_dir("catlog-scan-only")
    shutil.rmtree(copy)
    shutil.copytree(path, copy, ignore=shutil.ignore_patterns("*.hint", "LOCK"))
    return copy


# ------------------------------------------------------------------------------- index memory


def index_memory(run: Run) -> list[Outcome]:
    """Resident bytes per key of an open store: what the whole keydir costs in RAM.

    Measured once, not best-of-N: it is a count of bytes, not a race against noise. The figure is
    anonymous memory (the heap); file-backed pages mapped in by reading through ``mmap`` are
    page cache the kernel can reclaim, so they go in a note (see :mod:`bench.memory`).
    """
    n = run.sizes.large_keys
    hinted = run.large_store(peers.CATLOG)
    found = {
        "catlog": memory.measure("catlog", _without_hints(run, hinted), n),
        "catlog, opened through hints": memory.measure("catlog", hinted, n),
        peers.SEMIDBM.label: memory.measure("semidbm", run.large_store(peers.SEMIDBM), n),
        "dict {16-byte key: (int, int, int)}": memory.measure("dict", "-", n),
    }
    figures = [Figure(label, f.anonymous, "B/key") for label, f in found.items()]
    mapped = ", ".join(f"{label} {f.file_backed:.0f} B/key" for label, f in found.items())
    return [
        Outcome(
            f"index memory: {n:,} keys",
            figures[0],
            tuple(figures[1:]),
            peers.SEMIDBM.label,
            Target(120, at_least=False, absolute=True),
            (
                "anonymous RSS after open minus before, in a fresh interpreter per store.",
                "catlog's figure is for the default open, which scans; opening through hints "
                "leaves the decoded hint's freed memory in the process's heap.",
                f"file-backed RSS (mapped page cache, reclaimable) added: {mapped}.",
            ),
        )
    ]


# ---------------------------------------------------------------------------- pure-Python floor


def python_floor(run: Run) -> list[Outcome]:
    """The least any pure-Python Bitcask put can cost, to see how far catlog's put is from it.

    Per record: one dict insert, one header ``struct.pack``, one ``crc32c`` over key and value, and
    one write to a buffered file object. No validation, no lock, no clock (the timestamp is a
    constant), no segment rotation: everything catlog does beyond this is its own overhead.
    """
    n = run.sizes.floor_records
    keys, values = dataset.keys(n), dataset.values(n)
    record_size = FLOOR_HEADER.size + KEY_SIZE + VALUE_SIZE

    def floor_once() -> Sample:
        path = run.fresh_dir("floor")
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
        return sample

    def catlog_once() -> Sample:
        path = run.fresh_dir("floor-catlog")
        handle = peers.open_catlog(path)
        put = handle.put

        def loop() -> None:
            for key, value in zip(keys, values, strict=True):
                put(key, value)

        sample = timed(n, loop)
        handle.close()
        shutil.rmtree(path)
        return sample

    floor = "pure-Python floor"
    timings = round_robin(run.sizes.repeats, {"catlog": catlog_once, floor: floor_once})
    figures = [_figure(label, t, "puts/s") for label, t in timings.items()]
    return [Outcome(f"pure-Python floor: {n:,} records", figures[0], (figures[1],), floor)]


def server(run: Run) -> list[Outcome]:
    """redis-benchmark against catlog's server and its peers (see :mod:`bench.servers`)."""
    requests = 100_000 if run.sizes.fill_keys >= 100_000 else 10_000
    return servers.server_workload(
        run.fresh_dir("servers"), requests=requests, rounds=run.sizes.server_rounds
    )


def server_loop(run: Run) -> list[Outcome]:
    """The servers' Python per request, fed reads directly (see :mod:`bench.server_loop`)."""
    reads = 5_000 if run.sizes.fill_keys >= 100_000 else 500
    return loop_module.server_loop(run.fresh_dir("server-loop"), reads, run.sizes.repeats)


def compact_space(run: Run) -> list[Outcome]:
    """Bytes on disk after a compaction, against semidbm's (see :mod:`bench.compaction`)."""
    return compaction.space(run.fresh_dir("compact"), run.sizes.fill_keys // 2)


def compact_latency(run: Run) -> list[Outcome]:
    """Server GET/SET latency while a compaction runs (see :mod:`bench.compaction`)."""
    return compaction.latency(run.fresh_dir("compact-latency"), run.sizes.fill_keys // 2)


WORKLOADS: Final[dict[str, Callable[[Run], list[Outcome]]]] = {
    "fill": fill,
    "get": random_get,
    "durable": durable_put,
    "group": group_commit,
    "reopen": reopen,
    "memory": index_memory,
    "floor": python_floor,
    "server": server,
    "loop": server_loop,
    "compact": compact_space,
    "latency": compact_latency,
}
"""By the name ``--only`` takes, in the order a full run goes through them."""
