"""The workloads. Each takes a :class:`Run` and returns the outcomes it measured.

Every store lives in its own fresh directory under the run's temporary root, which sits on the same
disk as ``/tmp`` unless ``--tmp`` says otherwise, so catlog and its peers share one file system.
Only the loop a workload is about is timed: making keys, creating directories and (except where
the workload is the open itself) opening stores happen before the clock starts.

The loops themselves are in :mod:`bench.tasks` and run in child processes, one contender in each
(:mod:`bench.children`); this module decides the order, the directories and what is reported.
Every checkout of the run (the catlog beside bench/, and any ``--compare-with``) is a contender
of its own wherever catlog is, labelled ``catlog@LABEL``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from typing import Final

from . import children, compaction, expiry, peers, segments, servers
from . import server_loop as loop_module
from .children import HERE, Checkout, Reply, Scalar, Worker
from .report import Figure, Outcome, Target
from .sizes import Sizes
from .tasks import RAW_RECORD_SIZE
from .timing import Sample, Timing, round_robin


@dataclass(slots=True)
class Run:
    """One benchmark run: its sizes, its scratch directory, the catlogs it measures (the one
    beside bench/ first), and stores built once and shared."""

    root: str
    sizes: Sizes
    checkouts: tuple[Checkout, ...] = (HERE,)
    in_process: bool = False
    """``--in-process``: run the loops in this process, as the harness used to (see children)."""
    _made: int = 0
    _large: dict[str, str] = field(default_factory=dict)

    def fresh_dir(self, name: str) -> str:
        self._made += 1
        safe = "".join(c if c.isalnum() else "-" for c in name)
        path = os.path.join(self.root, f"{self._made:03d}-{safe}")
        os.makedirs(path)
        return path

    def once(self, checkout: Checkout, task: str, **args: Scalar) -> Reply:
        """``task`` in a child started for it (see :func:`bench.children.once`)."""
        return children.once(checkout, task, in_process=self.in_process, **args)

    def start(self, checkout: Checkout) -> Worker:
        """A child kept for several calls (the sliced workloads)."""
        return children.start(checkout, in_process=self.in_process)

    def large_store(self, peer: str, checkout: Checkout = HERE) -> str:
        """A store of ``sizes.large_keys`` keys, built on first use (in a child, by the
        checkout's own catlog) and kept for later workloads."""
        name = checkout.owns(peer) if peer.startswith("catlog") else peer
        if name not in self._large:
            path = self.fresh_dir(f"large-{name}")
            self.once(checkout, "large", peer=peer, path=path, n=self.sizes.large_keys)
            self._large[name] = path
        return self._large[name]


@dataclass(frozen=True, slots=True)
class Contender:
    """One column of a workload: its label, what the child opens, and which catlog it imports."""

    label: str
    peer: str
    """A :data:`bench.peers.BY_NAME` key, or the kind a task takes (``raw``, ``ceiling``...)."""
    checkout: Checkout = HERE


def _catlogs(run: Run, label: str, peer: str) -> list[Contender]:
    """``label``'s contender for every checkout: ``catlog ...``, ``catlog@before ...``."""
    return [Contender(c.owns(label), peer, c) for c in run.checkouts]


def _sample(reply: Reply, prefix: str = "") -> Sample:
    return Sample(int(float(reply[f"{prefix}ops"])), float(reply[f"{prefix}seconds"]))


def _figure(label: str, timing: Timing, unit: str) -> Figure:
    return Figure(label, timing.rate, unit, tuple(s.rate for s in timing.samples))


def _seconds(label: str, timing: Timing) -> Figure:
    return Figure(label, timing.seconds, "s", tuple(s.seconds for s in timing.samples))


def _total(label: str, slices: list[Sample]) -> Figure:
    """One figure for a sliced contender: all its operations over all its time."""
    ops = sum(s.ops for s in slices)
    return _figure(label, Timing((Sample(ops, sum(s.seconds for s in slices)),)), "puts/s")


# --------------------------------------------------------------------------------------- fill


def fill(run: Run) -> list[Outcome]:
    """Bulk load into an empty store: the put path with nothing forced to disk.

    Reported twice: the put loop alone (the target, since it is what a caller waits for on each
    put) and the loop plus ``close()``, because the peers with one transaction do much of their
    work at commit and catlog writes its last buffer and fsyncs at close.
    """
    n = run.sizes.fill_keys
    contenders = [
        *_catlogs(run, "catlog", peers.CATLOG.label),
        *(
            Contender(p.label, p.label)
            for p in (peers.SEMIDBM, peers.SQLITE, peers.DBM, peers.LMDB)
        ),
    ]
    closes: dict[str, list[Sample]] = {c.label: [] for c in contenders}
    backend: list[str] = []

    def once(contender: Contender) -> Callable[[], Sample]:
        def run_once() -> Sample:
            path = run.fresh_dir(f"fill-{contender.label}")
            reply = run.once(contender.checkout, "fill", peer=contender.peer, path=path, n=n)
            closes[contender.label].append(Sample(1, float(reply["close"])))
            if reply["backend"] and not backend:
                backend.append(str(reply["backend"]))
            return _sample(reply)

        return run_once

    timings = round_robin(run.sizes.repeats, {c.label: once(c) for c in contenders})
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
    with ``verify_checksums=True`` is listed too, as the like-for-like comparison. Each store is
    built by its own catlog (or peer) in a child of its own, untimed.
    """
    n = run.sizes.fill_keys
    contenders = [
        *_catlogs(run, "catlog", peers.CATLOG.label),
        Contender(peers.SEMIDBM.label, peers.SEMIDBM.label),
        Contender(peers.SEMIDBM_VERIFIED.label, peers.SEMIDBM_VERIFIED.label),
        Contender("sqlite3 WAL", peers.SQLITE.label),
        Contender(peers.DBM.label, peers.DBM.label),
        Contender("lmdb, one read txn", peers.LMDB.label),
    ]
    paths: dict[str, str] = {}
    labels: dict[str, str] = {}
    for c in contenders:
        paths[c.label] = run.fresh_dir(f"get-{c.label}")
        built = run.once(c.checkout, "build", peer=c.peer, path=paths[c.label], n=n)
        backend = str(built["backend"])
        labels[c.label] = f"dbm ({backend})" if backend else c.label

    def once(contender: Contender) -> Callable[[], Sample]:
        def run_once() -> Sample:
            path = paths[contender.label]
            return _sample(run.once(contender.checkout, "get", peer=contender.peer, path=path, n=n))

        return run_once

    timings = round_robin(run.sizes.repeats, {labels[c.label]: once(c) for c in contenders})
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


def _sliced(
    run: Run,
    contenders: list[Contender],
    rounds: int,
    call: Callable[[Worker, Contender], Reply],
    *,
    opening: Callable[[Worker, Contender], object] | None = None,
    closing: Callable[[Worker, Contender], object] | None = None,
) -> dict[str, list[Sample]]:
    """``rounds`` rounds of one slice per contender, each contender in a child kept throughout.

    ``opening`` and ``closing`` run once per child before the first round and after the last
    (untimed); ``call`` runs one slice.
    """
    slices: dict[str, list[Sample]] = {c.label: [] for c in contenders}
    with ExitStack() as stack:
        workers: dict[str, Worker] = {}
        for c in contenders:
            workers[c.label] = run.start(c.checkout)
            stack.callback(workers[c.label].close)
        if opening is not None:
            for c in contenders:
                opening(workers[c.label], c)
        for _ in range(rounds):
            for c in contenders:
                slices[c.label].append(_sample(call(workers[c.label], c)))
        if closing is not None:
            for c in contenders:
                closing(workers[c.label], c)
    return slices


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
    Each contender stays open in a child of its own for the whole workload.
    """
    slice_seconds = 0.25
    rounds = max(1, round(run.sizes.durable_seconds * run.sizes.repeats / slice_seconds))
    pool = min(run.sizes.fill_keys, 100_000)
    raw = "raw os.write+os.fsync, O_APPEND"
    sqlite = "sqlite3 WAL synchronous=FULL, commit per put"
    floor = "pure-Python durable floor: encode, dict insert, os.write+os.fdatasync"
    contenders = [
        *_catlogs(run, 'catlog fsync="always"', "catlog"),
        Contender(raw, "raw"),
        Contender(sqlite, "sqlite"),
        Contender(floor, "floor"),
    ]
    paths = {c.label: run.fresh_dir(f"durable-{c.peer}") for c in contenders}

    def opening(worker: Worker, c: Contender) -> None:
        worker.call("durable_open", kind=c.peer, path=paths[c.label], pool=pool)

    def one_slice(worker: Worker, _c: Contender) -> Reply:
        return worker.call("durable_slice", seconds=slice_seconds)

    def closing(worker: Worker, _c: Contender) -> Reply:
        return worker.call("durable_close")

    slices = _sliced(run, contenders, rounds, one_slice, opening=opening, closing=closing)
    for path in paths.values():
        shutil.rmtree(path)
    figures = {label: _total(label, found) for label, found in slices.items()}
    mine, others = figures[contenders[0].label], [figures[c.label] for c in contenders[1:]]
    versions = [f for f in others if f.label.startswith("catlog")]
    total = rounds * slice_seconds
    name = f"durable put: {total:g} s each in {slice_seconds:g} s turns, one writer"
    return [
        Outcome(
            name,
            mine,
            (*versions, figures[raw], figures[sqlite]),
            raw,
            Target(0.95, at_least=True),
            (
                f"the raw loop writes {RAW_RECORD_SIZE}-byte records; catlog's are 137 bytes.",
                "catlog syncs with fdatasync, the raw loop with fsync (see catlog/fs.py).",
            ),
        ),
        Outcome(
            f"{name}, against the pure-Python floor",
            mine,
            (*versions, figures[floor]),
            floor,
            None,
            (
                "the floor's put: a header struct.pack, one crc32c, a dict insert, then os.write "
                "and os.fdatasync of the 137-byte record; no lock, checks or group commit.",
            ),
        ),
    ]


# ------------------------------------------------------------------------------- group commit


def group_commit(run: Run) -> list[Outcome]:
    """Durable puts from 16 threads at once, against one writer: what group commit buys.

    Under ``fsync="always"`` one writer pays one fsync per put; 16 writers share each fsync
    (ENG-29), so their total rate should be many times the single writer's. How many times is
    bounded by what CPython threads can do on the machine, so the target is set against the ceiling
    measured in the same turns: 16 catlog writers at least 0.9x of its 16. The contenders take
    turns in half-second slices, for the same reason as the durable-put workload, each in a child
    of its own kept for the whole workload (a slice opens a fresh store in a fresh directory).
    Beside catlog run two group commits in the least Python (:mod:`bench.group_floor`): catlog's
    own scheme, a ceiling whose 16-to-1 ratio says what this machine and CPython allow, and the
    textbook one, for scale.
    """
    slice_seconds = 0.5
    rounds = max(1, round(run.sizes.durable_seconds * run.sizes.repeats / slice_seconds / 2))
    ceiling = "minimal group commit (ceiling)"
    textbook = "textbook group commit"
    one_writer = 'catlog fsync="always", 1 writer'
    many_writers = 'catlog fsync="always", 16 writer threads'
    threads: dict[str, int] = {}
    contenders: list[Contender] = []
    for label, kind in (("catlog", "catlog"), (ceiling, "ceiling"), (textbook, "textbook")):
        for count, suffix in ((1, "1 writer"), (16, "16 writer threads")):
            if kind == "catlog":
                found = _catlogs(run, one_writer if count == 1 else many_writers, kind)
            else:
                found = [Contender(f"{label}, {suffix}", kind)]
            contenders += found
            threads.update((c.label, count) for c in found)
    # catlog's contenders first, ordered as before: every checkout's 1 writer, then its 16.
    contenders.sort(key=lambda c: not c.label.startswith("catlog"))

    def one_slice(worker: Worker, c: Contender) -> Reply:
        path = run.fresh_dir(f"group-{threads[c.label]}")
        return worker.call(
            "group_slice", kind=c.peer, path=path, threads=threads[c.label], seconds=slice_seconds
        )

    slices = _sliced(run, contenders, rounds, one_slice)
    figures = {label: _total(label, found) for label, found in slices.items()}
    one, many = figures[one_writer], figures[many_writers]
    ceiling_one, ceiling_many = (
        figures[f"{ceiling}, 1 writer"],
        figures[f"{ceiling}, 16 writer threads"],
    )
    textbook_one = figures[f"{textbook}, 1 writer"]
    textbook_many = figures[f"{textbook}, 16 writer threads"]
    versions = [
        figures[c.owns(label)] for c in run.checkouts[1:] for label in (many_writers, one_writer)
    ]
    turns = f"{rounds * slice_seconds:g} s each in {slice_seconds:g} s turns"
    return [
        Outcome(
            f"group commit: {turns}",
            many,
            (one, *versions, ceiling_many, ceiling_one),
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
            (*versions[::2], ceiling_many, textbook_many),
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

    Only the open call is timed, in a child started for each open. The files are in the page
    cache (they were just written), so this measures the CPU cost of rebuilding the index, not
    the disk: a cold open would add the read time, which is larger for the scan (64 MiB per
    sealed segment) than for its hint (about 13 MiB). The scan-only copy is the same directory
    with its ``.hint`` files left out (ENG-32: a missing hint means the segment is scanned).
    Contenders are interleaved, best of ``repeats``. Each checkout opens the store its own code
    built.
    """
    n = run.sizes.large_keys
    paths: dict[str, str] = {}
    contenders: list[Contender] = []
    for c in run.checkouts:
        built = run.large_store(peers.CATLOG.label, c)
        paths[c.label] = built
        paths[c.owns(SCAN_ONLY_LABEL)] = _without_hints(run, built, c)
        contenders += [
            Contender(c.label, peers.CATLOG.label, c),
            Contender(c.owns(SCAN_ONLY_LABEL), peers.CATLOG.label, c),
        ]
    paths[peers.SEMIDBM.label] = run.large_store(peers.SEMIDBM.label)
    contenders.append(Contender(peers.SEMIDBM.label, peers.SEMIDBM.label))

    def once(contender: Contender) -> Callable[[], Sample]:
        def run_once() -> Sample:
            path = paths[contender.label]
            return _sample(run.once(contender.checkout, "reopen", peer=contender.peer, path=path))

        return run_once

    timings = round_robin(run.sizes.repeats, {c.label: once(c) for c in contenders})
    figures = {label: _seconds(label, t) for label, t in timings.items()}
    hinted, scanned = figures["catlog"], figures[SCAN_ONLY_LABEL]
    semidbm = figures[peers.SEMIDBM.label]
    versions = [figures[c.label] for c in run.checkouts[1:]]
    versions_scanned = [figures[c.owns(SCAN_ONLY_LABEL)] for c in run.checkouts[1:]]
    note = "catlog checks every record's crc32c while scanning; semidbm checks none."
    hint_note = (
        "with hints catlog checks one crc32c per sealed segment (FMT-19), not one per record; "
        "the newest segment is always scanned."
    )
    return [
        Outcome(
            f"reopen with hints: {n:,} keys",
            hinted,
            (*versions, semidbm, scanned),
            peers.SEMIDBM.label,
            Target(0.6, at_least=False),
            (hint_note,),
        ),
        Outcome(
            f"reopen with hints vs scanning: {n:,} keys",
            hinted,
            (*versions, scanned, *versions_scanned),
            SCAN_ONLY_LABEL,
            Target(0.5, at_least=False),
            (hint_note,),
        ),
        Outcome(
            f"reopen scanning only: {n:,} keys",
            scanned,
            (*versions_scanned, semidbm),
            peers.SEMIDBM.label,
            Target(1.0, at_least=False),
            (note,),
        ),
    ]


SCAN_ONLY_LABEL: Final = "catlog scan only"


def _without_hints(run: Run, path: str, checkout: Checkout = HERE) -> str:
    """A copy of the store at ``path`` with its hint files left out, made once per run."""
    key = f"{checkout.label} without hints"
    if key not in run._large:
        copy = run.fresh_dir(f"{checkout.label}-scan-only")
        shutil.rmtree(copy)
        shutil.copytree(path, copy, ignore=shutil.ignore_patterns("*.hint", "LOCK"))
        run._large[key] = copy
    return run._large[key]


# ------------------------------------------------------------------------------- index memory


def index_memory(run: Run) -> list[Outcome]:
    """Resident bytes per key of an open store: what the whole keydir costs in RAM.

    Measured once, not best-of-N: it is a count of bytes, not a race against noise. Each store is
    opened in a child started for it (see :mod:`bench.memory`). The figure is anonymous memory
    (the heap); file-backed pages mapped in by reading through ``mmap`` are page cache the
    kernel can reclaim, so they go in a note.
    """
    n = run.sizes.large_keys
    measured: list[tuple[str, Checkout, str, str]] = []
    for c in run.checkouts:
        hinted = run.large_store(peers.CATLOG.label, c)
        measured += [
            (c.label, c, "catlog", _without_hints(run, hinted, c)),
            (c.owns("catlog, opened through hints"), c, "catlog", hinted),
        ]
    measured += [
        (peers.SEMIDBM.label, HERE, "semidbm", run.large_store(peers.SEMIDBM.label)),
        ("dict {16-byte key: (int, int, int)}", HERE, "dict", "-"),
    ]
    found: dict[str, tuple[float, float]] = {}
    for label, checkout, kind, path in measured:
        # Always a child of its own, even with --in-process: this process's heap is the noise.
        reply = children.once(checkout, "index_memory", kind=kind, path=path, keys=n)
        found[label] = (float(reply["anonymous"]) / n, float(reply["file_backed"]) / n)
    figures = [Figure(label, anonymous, "B/key") for label, (anonymous, _) in found.items()]
    mapped = ", ".join(f"{label} {backed:.0f} B/key" for label, (_, backed) in found.items())
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
    catlog's side is the fill task's put loop (default open, no hints).
    """
    n = run.sizes.floor_records
    floor = "pure-Python floor"
    contenders = [*_catlogs(run, "catlog", peers.CATLOG_NO_HINTS.label), Contender(floor, floor)]

    def once(contender: Contender) -> Callable[[], Sample]:
        def run_once() -> Sample:
            path = run.fresh_dir(f"floor-{contender.label}")
            if contender.peer == floor:
                return _sample(run.once(contender.checkout, "python_floor", path=path, n=n))
            return _sample(
                run.once(contender.checkout, "fill", peer=contender.peer, path=path, n=n)
            )

        return run_once

    timings = round_robin(run.sizes.repeats, {c.label: once(c) for c in contenders})
    figures = [_figure(label, t, "puts/s") for label, t in timings.items()]
    return [Outcome(f"pure-Python floor: {n:,} records", figures[0], tuple(figures[1:]), floor)]


def server(run: Run) -> list[Outcome]:
    """redis-benchmark against catlog's server and its peers (see :mod:`bench.servers`)."""
    requests = 100_000 if run.sizes.fill_keys >= 100_000 else 10_000
    return servers.server_workload(
        run.fresh_dir("servers"), requests=requests, rounds=run.sizes.server_rounds
    )


def server_loop(run: Run) -> list[Outcome]:
    """The servers' Python per request, fed reads directly (see :mod:`bench.server_loop`); each
    repetition of each server in a child started for it, interleaved."""
    reads = 5_000 if run.sizes.fill_keys >= 100_000 else 500
    root = run.fresh_dir("server-loop")
    contenders = [*_catlogs(run, "catlog", "catlog"), Contender(loop_module.CEILING, "ceiling")]
    found: dict[str, list[loop_module.Timings]] = {c.label: [] for c in contenders}

    def once(contender: Contender) -> Callable[[], Sample]:
        def run_once() -> Sample:
            reply = run.once(
                contender.checkout, "loop", kind=contender.peer, root=root, reads=reads
            )
            incr = _sample(reply, "incr_") if "incr_ops" in reply else None
            found[contender.label].append((_sample(reply, "set_"), _sample(reply, "get_"), incr))
            return found[contender.label][-1][0]

        return run_once

    round_robin(run.sizes.repeats, {c.label: once(c) for c in contenders})
    return loop_module.outcomes(found, reads)


def compact_space(run: Run) -> list[Outcome]:
    """Bytes on disk after a compaction, against semidbm's (see :mod:`bench.compaction`); each
    store filled and compacted in a child started for it, by its own catlog."""
    n = run.sizes.fill_keys // 2
    found: dict[str, Reply] = {}
    for contender in [*_catlogs(run, "catlog", "catlog"), Contender("semidbm", "semidbm")]:
        path = run.fresh_dir(f"compact-{contender.label}")
        found[contender.label] = run.once(
            contender.checkout, "compact", kind=contender.peer, path=path, n=n
        )
        shutil.rmtree(path)
    return compaction.space(found, n)


def compact_latency(run: Run) -> list[Outcome]:
    """Server GET/SET latency while a compaction runs (see :mod:`bench.compaction`)."""
    return compaction.latency(run.fresh_dir("compact-latency"), run.sizes.fill_keys // 2)


OPEN_FILES_SEGMENT_SIZE: Final = 64 * 1024
"""The open-files workload's segments: small, so that the fill's keys make hundreds of them."""
OPEN_FILES_SMALL_BUDGET: Final = 8


def open_files(run: Run) -> list[Outcome]:
    """Random gets with every segment held open against a budget far below the segments (ENG-65).

    The first is the get path as it is when the budget is not in the way (ENG-66: a hit costs
    nothing); the second pays the miss path, an open and a map per read of a closed segment,
    on nearly every get. Only the catlog beside bench/ takes part: older ones have no budget.
    """
    n = run.sizes.fill_keys
    path = run.fresh_dir("open-files")
    built = run.once(HERE, "many_segments", path=path, n=n, segment_size=OPEN_FILES_SEGMENT_SIZE)
    segments = int(built["segments"])
    budgets = {
        f"max_open_files={10_000} (all {segments} segments open)": 10_000,
        f"max_open_files={OPEN_FILES_SMALL_BUDGET}": OPEN_FILES_SMALL_BUDGET,
    }

    def once(budget: int) -> Callable[[], Sample]:
        def run_once() -> Sample:
            reply = run.once(HERE, "budget_get", path=path, n=n, max_open_files=budget)
            return _sample(reply)

        return run_once

    timings = round_robin(run.sizes.repeats, {label: once(b) for label, b in budgets.items()})
    shutil.rmtree(path)
    all_open, small = (_figure(label, t, "gets/s") for label, t in timings.items())
    return [
        Outcome(
            f"random get over {segments} segments: {n:,} gets", small, (all_open,), all_open.label
        )
    ]


def many_segments(run: Run) -> list[Outcome]:
    """Issue 17: a store of 20,000 segments under ``ulimit -n 1024`` (see :mod:`bench.segments`).

    Run once, not ``repeats`` times: the figures say that it works and roughly what each step
    costs, and the peak of descriptors is the one judged. Only the catlog beside bench/ takes
    part: before FMT-12's 15 slot bits no catlog opened more than 16,384 segments.
    """
    path = run.fresh_dir("segments")
    built = run.once(HERE, "segment_files", path=path, count=segments.SEGMENTS)
    reply = run.once(
        HERE, "segments_under_limit", path=path, count=segments.SEGMENTS, limit=segments.LIMIT
    )
    shutil.rmtree(path)
    limit, budget = int(reply["limit"]), int(reply["budget"])
    count = int(built["segments"])

    def seconds(step: str) -> Figure:
        return Figure(step, float(reply[f"{step}_seconds"]), "s")

    def rate(step: str, ops: str, unit: str) -> Figure:
        return Figure(step, int(reply[ops]) / float(reply[f"{step}_seconds"]), unit)

    steps = (
        seconds("open"),
        rate("get", "gets", "gets/s"),
        rate("put", "puts", "puts/s"),
        seconds("compact"),
        seconds("close"),
    )
    where = f"{count:,} segments, ulimit -n {limit}"
    return [
        Outcome(
            f"peak descriptors: {where}",
            Figure("catlog", float(reply["peak"]), "fds"),
            steps,
            None,
            Target(limit - 1, at_least=False, absolute=True),
            (
                f"max_open_files {budget} (the default, ENG-65); {reply['gets']} gets of every"
                f" key, {reply['puts']} puts each rotating, a compaction bounded to"
                f" {segments.COMPACT_SEGMENTS} segments' bytes removed {reply['removed']} and"
                f" wrote {reply['written']} ({reply['copied']} records copied); segments"
                f" {reply['segments_before']} before it, {reply['segments_after']} after",
            ),
        )
    ]


def expiry_latency(run: Run) -> list[Outcome]:
    """Server PING latency while every key expires at once (see :mod:`bench.expiry`)."""
    return expiry.workload(run.fresh_dir("expiry"), run.sizes.fill_keys, run.checkouts)


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
    "files": open_files,
    "segments": many_segments,
    "expiry": expiry_latency,
}
"""By the name ``--only`` takes, in the order a full run goes through them."""
