"""A history of concurrent operations on a key-value store, and its check (ENG-50).

Threads stamp each operation with a tick of one shared counter when they call it and when it
returns (``next`` on an ``itertools.count`` is atomic under the GIL, so the ticks are in real-time
order). Every value written is unique: it names its writer and the writer's sequence number, so
each read that returned a value names the one write it saw. A delete writes "no value".

The check is sound: it reports only what no store satisfying ENG-50 could have done, whatever
the threads' timing. For each key it asks

- of a read that returned a value: was the write of that value called before the read returned,
  and was it not certainly overwritten before the read was called (some later write, called
  after it returned, itself returned before the read was called)?
- of a read that found no value: is there such a delete (or the key's initial absence)?
- of a read that only asked whether the key has a value (``in``): is there such a write of the
  kind it found?
- of the reads and writes together: are they linearizable? With unique values this is the
  zone test of Gibbons and Korach ("Testing shared memories", 1997): each written value's
  *cluster* is its write and the reads that returned it; its zone runs from the cluster's
  earliest return to its latest call (a *forward* zone when that is the order, *backward*
  otherwise). A single register's history is linearizable exactly when no two forward zones
  overlap and no backward zone lies inside a forward one. It catches what the first question
  cannot: a thread that reads a new value and then the value it replaced.

A snapshot is a read of every key at one instant within the ``snapshot()`` call. Its first read
of each key joins the history above as a read spanning that call; every later read of the key
through the snapshot must return the same; and the values it shows must have been current
together at one instant of the call (checked on the keys that have a value, and on pairs of keys
that only batches write, always with one value for both). A server's MGET is recorded the same
way, but need only show such a pair whole (PROTO-40), not every key at one instant.
"""

from __future__ import annotations

import bisect
import itertools
import threading
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

NEVER: Final = 1 << 62
"""A tick after every other: when a value that no later write replaced stopped being current."""

REPORTED: Final = 12
"""At most this many violations are described in full."""


@dataclass(frozen=True, slots=True)
class Op:
    """One write or read of one key: ``value`` None is "no value" (a delete, or a miss)."""

    key: bytes
    value: bytes | None
    start: int
    end: int
    what: str

    def describe(self) -> str:
        when = f"[called {self.start}, returned {self.end}]"
        return f"{self.what} of {self.key!r}: {_shown(self.value)} {when}"


@dataclass
class SnapshotView:
    """What one snapshot showed: its first read of each key, and what went wrong later."""

    start: int
    end: int
    what: str
    instant: bool = True
    """Whether every key it shows must be of one instant (False for an MGET: PROTO-40 promises
    only that an MSET is seen whole)."""
    first: dict[bytes, bytes | None] = field(default_factory=dict)
    changed: list[tuple[bytes, bytes | None]] = field(default_factory=list)
    """Later reads that differed from the first of their key: (key, what they returned)."""
    failures: list[str] = field(default_factory=list)
    """Whatever else went wrong reading it: an error raised, ``len`` or ``in`` changing."""


@dataclass
class History:
    """The operations of one run, appended to from many threads (``list.append`` is atomic)."""

    writes: list[Op] = field(default_factory=list)
    reads: list[Op] = field(default_factory=list)
    presence: list[tuple[Op, bool]] = field(default_factory=list)
    """Reads that learned only whether the key had a value (``in``, a delete's answer)."""
    snapshots: list[SnapshotView] = field(default_factory=list)
    pairs: list[tuple[bytes, bytes]] = field(default_factory=list)
    """Keys that only batches write, both in one batch with one value (or both deleted)."""
    errors: list[str] = field(default_factory=list)
    """Exceptions the threads raised, with their tracebacks."""
    _counter: itertools.count[int] = field(default_factory=itertools.count)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def tick(self) -> int:
        return next(self._counter)

    def wrote(self, key: bytes, value: bytes | None, start: int, end: int, what: str) -> None:
        self.writes.append(Op(key, value, start, end, what))

    def read(self, key: bytes, value: bytes | None, start: int, end: int, what: str) -> None:
        self.reads.append(Op(key, value, start, end, what))

    def found(self, key: bytes, present: bool, start: int, end: int, what: str) -> None:
        self.presence.append((Op(key, None, start, end, what), present))

    def snapshot_read(self, view: SnapshotView, key: bytes, value: bytes | None) -> None:
        """Record a read through a snapshot: the first of its key, or one that must repeat it."""
        if key not in view.first:
            view.first[key] = value
        elif view.first[key] != value:
            view.changed.append((key, value))


def _shown(value: bytes | None) -> str:
    """A value for a report: the tests' values start with their writer and number."""
    return "no value" if value is None else f"{value.rstrip(b'.')!r:.40}"


class _Key:
    """The writes of one key, with when each value stopped being certainly current."""

    def __init__(self, writes: list[Op]) -> None:
        self.writes = sorted(writes, key=lambda op: op.start)
        self.starts = [op.start for op in self.writes]
        # until[i]: the earliest return of a write called after write i returned.
        self.by_value: dict[bytes | None, Op] = {
            op.value: op for op in self.writes if op.value is not None
        }
        """Each value written, to the write of it (no entry for "no value")."""
        ends_after = [NEVER] * (len(self.writes) + 1)
        for i in range(len(self.writes) - 1, -1, -1):
            ends_after[i] = min(ends_after[i + 1], self.writes[i].end)
        self._ends_after = ends_after
        initial = Op(b"", None, -1, -1, "the initial absence")
        self._kinds = {
            True: self._reach([op for op in self.writes if op.value is not None]),
            False: self._reach([initial, *(op for op in self.writes if op.value is None)]),
        }

    def _reach(self, ops: list[Op]) -> tuple[list[int], list[int]]:
        """The calls of ``ops`` in order, and the latest tick by which any of the ops called so
        far had certainly been replaced."""
        return [op.start for op in ops], list(itertools.accumulate(map(self.until, ops), max))

    def may_be(self, present: bool, read: Op) -> bool:
        """Whether the key may have had a value (``present``) or none at some instant of
        ``read``: some write of that kind was called before the read returned and was not
        certainly replaced before it was called."""
        starts, reach = self._kinds[present]
        called = bisect.bisect_left(starts, read.end)
        return called > 0 and reach[called - 1] > read.start

    def until(self, write: Op) -> int:
        """The tick by which ``write``'s value had certainly been replaced (NEVER if not)."""
        return self._ends_after[bisect.bisect_right(self.starts, write.end)]

    def around(self, read: Op, *seen: Op | None, count: int = 4) -> list[Op]:
        """The writes near ``read`` in time, for a report: ``count`` either side, and ``seen``."""
        low = bisect.bisect_left(self.starts, read.start)
        high = bisect.bisect_right(self.starts, read.end)
        near = self.writes[max(0, low - count) : high + count]
        extra = [op for op in seen if op is not None and op not in near]
        return sorted([*near, *extra], key=lambda op: op.start)


def check(history: History) -> list[str]:
    """Every violation of ENG-50 in ``history``, each described with the writes around it."""
    by_key: dict[bytes, list[Op]] = defaultdict(list)
    for op in history.writes:
        by_key[op.key].append(op)
    keys = {key: _Key(writes) for key, writes in by_key.items()}
    empty = _Key([])

    def key_of(key: bytes) -> _Key:
        return keys.get(key, empty)

    problems: list[str] = list(history.errors)
    snapshot_reads: list[Op] = []
    for view in history.snapshots:
        for key, value in view.first.items():
            snapshot_reads.append(Op(key, value, view.start, view.end, view.what))
        for key, value in view.changed:
            later = Op(key, value, view.start, view.end, f"{view.what}, read again")
            first = key_of(key).by_value.get(view.first[key])
            title = f"a snapshot changed: it first showed {_shown(view.first[key])}"
            again = key_of(key).by_value.get(value)
            problems.append(_report(title, later, key_of(key).around(later, first, again)))
    reads = [*history.reads, *snapshot_reads]
    for read in reads:
        problems.extend(_check_read(key_of(read.key), read))
    for op, present in history.presence:
        problems.extend(_check_presence(key_of(op.key), op, present))
    clustered: dict[bytes, list[Op]] = defaultdict(list)
    for read in reads:
        if read.value is not None:
            clustered[read.key].append(read)
    for key, writes in keys.items():
        problems.extend(_check_zones(writes, clustered.get(key, [])))
    for view in history.snapshots:
        problems.extend(_check_instant(keys, view, history.pairs))
    for view in history.snapshots:
        problems.extend(f"{view.what} [called {view.start}]: {text}" for text in view.failures)
    return problems


def _report(title: str, read: Op, writes: Iterable[Op]) -> str:
    lines = [title, f"  read:   {read.describe()}", "  writes of that key around it:"]
    lines.extend(f"    {op.describe()}" for op in writes)
    return "\n".join(lines)


def _check_read(key: _Key, read: Op) -> list[str]:
    if read.value is None:
        if key.may_be(False, read):
            return []
        return [
            _report(
                "a read found no value while the key certainly had one",
                read,
                key.around(read, None),
            )
        ]
    write = key.by_value.get(read.value)
    if write is None:
        return [
            _report(
                "a read returned a value never written to that key", read, key.around(read, None)
            )
        ]
    if write.start >= read.end:
        return [
            _report(
                "a read returned a value written only after it returned",
                read,
                key.around(read, write),
            )
        ]
    if key.until(write) <= read.start:
        return [
            _report(
                "a read returned a value already overwritten when it was called",
                read,
                key.around(read, write),
            )
        ]
    return []


def _check_presence(key: _Key, op: Op, present: bool) -> list[str]:
    if key.may_be(present, op):
        return []
    found = "a value" if present else "no value"
    return [
        _report(
            f"{op.what} found {found}, which was never current during it", op, key.around(op, None)
        )
    ]


def _check_zones(key: _Key, reads: list[Op]) -> list[str]:
    """The zone test (see the module's docstring) over one key's writes and value reads."""
    clusters: dict[int, list[Op]] = {id(op): [op] for op in key.writes}
    for read in reads:
        write = key.by_value.get(read.value)
        if write is not None:
            clusters[id(write)].append(read)
    forward: list[tuple[int, int, list[Op]]] = []
    backward: list[tuple[int, int, list[Op]]] = []
    for cluster in clusters.values():
        first_end = min(op.end for op in cluster)
        last_start = max(op.start for op in cluster)
        if first_end < last_start:
            forward.append((first_end, last_start, cluster))
        else:
            backward.append((last_start, first_end, cluster))
    forward.sort(key=lambda zone: zone[0])
    problems: list[str] = []
    for before, after in itertools.pairwise(forward):
        if after[0] < before[1]:
            problems.append(_zones("two values were each read after the other was", before, after))
    starts = [zone[0] for zone in forward]
    reach = list(itertools.accumulate((zone[1] for zone in forward), max))
    for zone in backward:
        low, high, _ = zone
        # A forward zone (f, s) holds (low, high) when f < low and high < s.
        earlier = bisect.bisect_left(starts, low)
        if earlier and reach[earlier - 1] > high:
            holder = next(z for z in forward[:earlier] if z[1] > high)
            problems.append(_zones("a value was read, replaced and read again", holder, zone))
    return problems[:REPORTED]


def _zones(title: str, *zones: tuple[int, int, list[Op]]) -> str:
    lines = [f"not linearizable: {title}"]
    for low, high, cluster in zones:
        lines.append(f"  zone {low}..{high}:")
        lines.extend(f"    {op.describe()}" for op in sorted(cluster, key=lambda op: op.start))
    return "\n".join(lines)


def _check_instant(
    keys: dict[bytes, _Key], view: SnapshotView, pairs: list[tuple[bytes, bytes]]
) -> list[str]:
    """One instant of the snapshot's call at which every value it shows was current."""
    problems = [
        f"{view.what} [called {view.start}, returned {view.end}] shows {a!r} and {b!r}, which"
        f" only batches write together, as {_shown(view.first[a])} and {_shown(view.first[b])}"
        for a, b in pairs
        if a in view.first and b in view.first and view.first[a] != view.first[b]
    ]
    if not view.instant:
        return problems
    low, high = view.start, view.end
    latest: Op | None = None
    earliest: Op | None = None
    for key, value in view.first.items():
        if value is None or key not in keys:
            continue
        write = keys[key].by_value.get(value)
        if write is None:
            continue  # reported by the read's own check
        until = keys[key].until(write)
        if write.start > low:
            low, latest = write.start, write
        if until < high:
            high, earliest = until, write
    if low >= high and latest is not None and earliest is not None:
        problems.append(
            f"{view.what} [called {view.start}, returned {view.end}] shows values never current"
            f" together:\n  {latest.describe()} was called at {latest.start}, but\n"
            f"  {earliest.describe()} was certainly replaced by {high}"
        )
    return problems
