"""The store against a dict: the core verification of the engine (spec/engine.md, FMT-14).

A hypothesis state machine drives a real :class:`catlog.Store` on disk and a plain ``dict`` side
by side through puts, overwrites, deletes, gets, syncs, flushes and reopenings (with segment
sizes small enough that rotation happens every few writes), puts with a ttl, expire and persist
while a manual clock moves on, atomic batches, and snapshots, and after every step checks that
they agree on ``len``, on iteration and on every key. The model's expiries are a second dict
from key to expiry time; a key whose time the clock has passed is dropped from the model. A
failure shrinks to a short program of these rules that can be pasted into a test.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    MultipleResults,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
)

import catlog
from catlog.clock import ManualClock
from catlog.index import LARGE_VALUE

policies = st.sampled_from(["always", "interval", "never"])
segment_sizes = st.sampled_from([64, 100, 256, 1024, catlog.DEFAULT_SEGMENT_SIZE])
small_values = st.binary(max_size=64)


class StoreAgainstDict(RuleBasedStateMachine):
    """What both machines share: a store and its dict model, the writes, and the checks."""

    keys = Bundle("keys")
    scratch: str | None = None
    """Where the data directories go; None for the system's temporary directory."""

    def __init__(self) -> None:
        super().__init__()
        self.directory = tempfile.mkdtemp(prefix="catlog-model-", dir=self.scratch)
        self.model: dict[bytes, bytes] = {}
        self.expiries: dict[bytes, int] = {}
        self.clock = ManualClock()
        self.store: catlog.Store | None = None
        self.hints: catlog.HintMode = False
        self.threshold: float | None = None
        """ENG-41: automatic compaction, bounded (ENG-73), in the machines that draw one."""

    def _open(self, policy: catlog.FsyncPolicy, segment_size: int) -> catlog.Store:
        return catlog.open(
            self.directory,
            fsync=policy,
            segment_size=segment_size,
            fsync_interval_ms=3_600_000,
            clock=self.clock,
            hints=self.hints,
            compact_threshold=self.threshold,
        )

    def _set(self, key: bytes, value: bytes, expires_at: int | None = None) -> None:
        self.model[key] = value
        if expires_at is None:
            self.expiries.pop(key, None)
        else:
            self.expiries[key] = expires_at

    def _remove(self, key: bytes) -> None:
        self.model.pop(key, None)
        self.expiries.pop(key, None)

    @property
    def db(self) -> catlog.Store:
        assert self.store is not None, "initialize runs first"
        return self.store

    @rule(target=keys, key=st.binary(max_size=12))
    def new_key(self, key: bytes) -> bytes:
        return key

    @rule(key=keys, value=small_values)
    def put(self, key: bytes, value: bytes) -> None:
        self.db.put(key, value)
        self._set(key, value)

    @rule(pairs=st.lists(st.tuples(keys, small_values), max_size=6))
    def put_many(self, pairs: list[tuple[bytes, bytes]]) -> None:
        self.db.wait_durable(self.db.put_many_nowait(pairs))  # ENG-44
        for key, value in pairs:
            self._set(key, value)

    @rule(key=keys)
    def delete(self, key: bytes) -> None:
        assert self.db.delete(key) == (key in self.model)
        self._remove(key)

    @rule(key=keys, value=small_values, ttl_ms=st.integers(1, 5000))
    def put_with_ttl(self, key: bytes, value: bytes, ttl_ms: int) -> None:
        ttl = ttl_ms / 1000
        self.db.put(key, value, ttl=ttl)
        # ENG-33 rounds ttl * 1000 up, in floats: 2047 / 1000 * 1000 is 2047.0000000000002,
        # so that ttl is 2048 ms.
        self._set(key, value, self.clock.now_ms() + math.ceil(ttl * 1000))

    @rule(ms=st.integers(0, 3000))
    def time_passes(self, ms: int) -> None:
        self.clock.advance(ms / 1000)
        now = self.clock.now_ms()
        for key in [k for k, at in self.expiries.items() if now > at]:
            self._remove(key)

    @rule(
        ops=st.lists(
            st.tuples(st.sampled_from(["put", "delete", "ttl"]), keys, small_values), max_size=6
        )
    )
    def batch(self, ops: list[tuple[str, bytes, bytes]]) -> None:
        batch: list[catlog.BatchOp] = []
        for kind, key, value in ops:
            if kind == "delete":
                batch.append(("delete", key))
                self._remove(key)
            elif kind == "ttl":
                batch.append(("put", key, value, 2.5))
                self._set(key, value, self.clock.now_ms() + 2500)
            else:
                batch.append(("put", key, value))
                self._set(key, value)
        self.db.write_batch(batch)

    @rule(limit=st.integers(1, 3))
    def forget_expired(self, limit: int) -> None:
        """ENG-62: a bounded step of forgetting changes no answer (the invariants check)."""
        assert 0 <= self.db.purge_expired(limit) <= limit

    @rule()
    def sync(self) -> None:
        self.db.sync()

    @rule()
    def flush(self) -> None:
        self.db.flush()

    @invariant()
    def the_stores_structures_agree(self) -> None:
        """ENG-55 and the store's state table (catlog/store.py): its own consistency check."""
        if self.store is not None:
            self.store._check_invariants()

    @invariant()
    def counts_exact_in_stats(self) -> None:
        """ENG-60: with expired keys forgotten or not, stats() counts the model's keys."""
        if self.store is not None:
            stats = self.db.stats()
            assert (stats.keys, stats.expiring_keys) == (len(self.model), len(self.expiries))

    @invariant()
    def same_length(self) -> None:
        if self.store is not None:
            assert len(self.db) == len(self.model)

    @invariant()
    def same_keys_and_values(self) -> None:
        if self.store is not None:
            assert sorted(self.db) == sorted(self.model)
            for key, value in self.model.items():
                assert self.db[key] == value

    def teardown(self) -> None:
        if self.store is not None:
            self.store.close()
        shutil.rmtree(self.directory, ignore_errors=True)


class StoreMatchesDict(StoreAgainstDict):
    """The store against a dict: every rule; each view is read in the step that made it."""

    keys = StoreAgainstDict.keys

    @initialize(policy=policies, segment_size=segment_sizes, hints=st.booleans())
    def open_store(self, policy: catlog.FsyncPolicy, segment_size: int, hints: bool) -> None:
        self.hints = hints
        self.store = self._open(policy, segment_size)

    @rule(key=keys, value=st.binary(min_size=LARGE_VALUE - 2, max_size=LARGE_VALUE + 2))
    def put_large(self, key: bytes, value: bytes) -> None:
        self.db[key] = value
        self._set(key, value)

    @rule(key=keys, first=small_values, second=small_values)
    def overwrite(self, key: bytes, first: bytes, second: bytes) -> None:
        self.db.put(key, first)
        self.db.put(key, second)
        self._set(key, second)

    @rule(key=consumes(keys))
    def delete_and_forget(self, key: bytes) -> None:
        assert self.db.delete(key) == (key in self.model)
        self._remove(key)
        assert self.db.get(key) is None

    @rule(key=keys, ttl_ms=st.integers(-100, 5000))
    def expire(self, key: bytes, ttl_ms: int) -> None:
        at = self.clock.now_ms() + ttl_ms
        assert self.db.expire_at(key, at) == (key in self.model)
        if key in self.model:
            if ttl_ms <= 0:
                self._remove(key)
            else:
                self.expiries[key] = at

    @rule(key=keys)
    def persist(self, key: bytes) -> None:
        assert self.db.persist(key) == (key in self.expiries)
        self.expiries.pop(key, None)

    @rule(key=keys)
    def expiry_is_reported(self, key: bytes) -> None:
        if key in self.model:
            assert self.db.expires_at(key) == self.expiries.get(key)

    @rule()
    def compact(self) -> None:
        """ENG-39: compaction changes no value; reading through a snapshot taken before it too."""
        with self.db.snapshot() as before:
            self.db.compact()
            assert dict(before.items()) == self.model

    @rule(max_bytes=st.integers(1, 2048))
    def compact_the_oldest(self, max_bytes: int) -> None:
        """ENG-72, ENG-73: a bounded compaction changes no value, and none comes back at the
        next reopen (a tombstone dropped while an older PUT of its key survived would)."""
        with self.db.snapshot() as before:
            self.db.compact(max_bytes=max_bytes)
            assert dict(before.items()) == self.model

    @rule(key=keys, value=small_values)
    def snapshot_ignores_later_writes(self, key: bytes, value: bytes) -> None:
        with self.db.snapshot() as snapshot:
            self.db.put(key, value)
            assert dict(snapshot.items()) == self.model
        self._set(key, value)

    @rule(key=keys)
    def get(self, key: bytes) -> None:
        assert self.db.get(key) == self.model.get(key)
        assert (key in self.db) == (key in self.model)

    @precondition(lambda self: self.store is not None)
    @rule(segment_size=segment_sizes, policy=policies)
    def reopen(self, segment_size: int, policy: catlog.FsyncPolicy) -> None:
        """Close and open again, maybe with other settings: the data must not notice."""
        self.db.close()
        self.store = self._open(policy, segment_size)
        assert self.db.stats().tail_repairs == (), "a clean close leaves no torn tail"


@pytest.mark.spec(
    "ENG-1",
    "ENG-4",
    "ENG-5",
    "ENG-6",
    "ENG-7",
    "ENG-9",
    "ENG-13",
    "FMT-14",
    "ENG-18",
    "ENG-33",
    "ENG-34",
    "ENG-35",
    "ENG-36",
    "ENG-37",
    "ENG-38",
    "ENG-32",
    "ENG-39",
    "ENG-72",
    "ENG-73",
)
class TestStoreMatchesDict(StoreMatchesDict.TestCase):  # type: ignore[valid-type,misc]
    """Under the ``ci`` profile: 300 programs of up to 50 steps, about 20,000 steps in all."""

    settings = settings(
        stateful_step_count=50,
        max_examples=max(300, settings().max_examples),
    )


tiny_segment_sizes = st.sampled_from([64, 100, 256, 512, 1024])
hint_modes = st.sampled_from([False, True, "background"])
VIEW_KINDS = ("snapshot", "snapshot keys", "store keys", "items", "values")
MAX_HELD = 4
MEMORY = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
"""This machine checks what reads return, not what survives a crash (tests/crash does): its
fsyncs, a few thousand per run with compactions, are free in memory."""
COMPACTION_WAIT_S = 30.0
MAX_PUTS_TO_ROTATE = 100
"""With 1024-byte segments, 21-byte records (empty key and value) rotate every 48 puts."""


@dataclass
class HeldView:
    """A view of the store made at one step and kept open across the steps after it.

    ``frozen`` is the model as it was when the view was made: what the view must go on showing,
    whatever was written, compacted or rotated since. An iterator or generator remembers what it
    has yielded so far, so that at its end the whole can be compared, not just each item.
    """

    kind: str
    frozen: dict[bytes, bytes]
    snapshot: catlog.Snapshot | None = None
    keys: Iterator[bytes] | None = None
    pairs: Iterator[tuple[bytes, bytes]] | None = None
    values: Iterator[bytes] | None = None
    seen: list[bytes] = field(default_factory=list)
    done: bool = False


def assert_refuses_when_closed(snapshot: catlog.Snapshot, key: bytes) -> None:
    """ENG-38, ENG-19: every operation on a snapshot of a closed store raises."""
    attempts: list[Callable[[], object]] = [
        lambda: len(snapshot),
        lambda: iter(snapshot),
        lambda: key in snapshot,
        lambda: snapshot.get(key),
        lambda: next(snapshot.items(), None),
    ]
    for attempt in attempts:
        with pytest.raises(catlog.StoreClosedError):
            attempt()


class HeldViewsMatchFrozenModels(StoreAgainstDict):
    """The store against a dict, with snapshots and iterators held open across steps (ENG-38)."""

    keys = StoreAgainstDict.keys
    scratch = MEMORY

    def __init__(self) -> None:
        super().__init__()
        self.held: list[HeldView] = []

    @initialize(
        target=keys,
        policy=policies,
        segment_size=tiny_segment_sizes,
        hints=hint_modes,
        first=st.dictionaries(st.binary(max_size=12), small_values, min_size=1, max_size=8),
        threshold=st.sampled_from([None, 0.3]),
    )
    def open_store(
        self,
        policy: catlog.FsyncPolicy,
        segment_size: int,
        hints: catlog.HintMode,
        first: dict[bytes, bytes],
        threshold: float | None = None,
    ) -> MultipleResults[bytes]:
        """Open with a few keys written and a snapshot of them held from the start.

        Swarm testing leaves some rules out of each program; with the first view held here,
        every program that compacts and rotates at all tests a view across it.
        """
        self.hints = hints
        self.threshold = threshold
        self.store = self._open(policy, segment_size)
        for key, value in first.items():
            self.db.put(key, value)
            self._set(key, value)
        self.hold_a_view("snapshot")
        return multiple(*first)

    @precondition(lambda self: len(self.held) < MAX_HELD)
    @rule(kind=st.sampled_from(VIEW_KINDS))
    def hold_a_view(self, kind: str) -> None:
        view = HeldView(kind, dict(self.model))
        if kind == "snapshot":
            view.snapshot = self.db.snapshot()
        elif kind == "snapshot keys":
            view.snapshot = self.db.snapshot()
            view.keys = iter(view.snapshot)
        elif kind == "store keys":
            view.keys = iter(self.db)  # ENG-7: the keys as of the moment iteration began
        elif kind == "items":
            view.pairs = self.db.items()
        else:
            view.values = self.db.values()
        self.held.append(view)

    @precondition(lambda self: bool(self.held))
    @rule(data=st.data(), steps=st.integers(1, 4))
    def advance_a_view(self, data: st.DataObject, steps: int) -> None:
        """Take a few items from a held iterator; each must be what the frozen model holds."""
        view = data.draw(st.sampled_from(self.held))
        for _ in range(steps):
            if view.done:
                break
            if view.keys is not None:
                key = next(view.keys, None)
                if key is None:
                    view.done = True
                    break
                assert key in view.frozen, f"{view.kind} yielded {key!r}, not in it when made"
                view.seen.append(key)
                if view.snapshot is not None:
                    assert view.snapshot[key] == view.frozen[key]
            elif view.pairs is not None:
                pair = next(view.pairs, None)
                if pair is None:
                    view.done = True
                    break
                key, value = pair
                assert view.frozen.get(key) == value, f"items() yielded {key!r}: {value!r}"
                view.seen.append(key)
            elif view.values is not None:
                next_value = next(view.values, None)
                if next_value is None:
                    view.done = True
                    break
                assert next_value in view.frozen.values(), f"values() yielded {next_value!r}"
                view.seen.append(next_value)
        if view.done and view.kind != "snapshot":
            if view.kind == "values":
                assert sorted(view.seen) == sorted(view.frozen.values())
            else:
                assert sorted(view.seen) == sorted(view.frozen), f"{view.kind} missed keys"

    @precondition(lambda self: bool(self.held))
    @rule(data=st.data())
    def let_go_of_a_view(self, data: st.DataObject) -> None:
        view = data.draw(st.sampled_from(self.held))
        self.held.remove(view)
        if view.snapshot is not None:
            view.snapshot.close()

    def _compact(self, background: bool, max_bytes: int | None = None) -> None:
        """ENG-39: compaction frees the inputs' slots; the next rotations may reuse them.

        In the background (ENG-42) the step ends once the compactor has finished, so the model
        stays a sequence of steps. With ``max_bytes``, the oldest segments only (ENG-73).
        """
        if not background:
            self.db.compact(max_bytes=max_bytes)
            return
        self.db.compact_in_background()
        deadline = time.monotonic() + COMPACTION_WAIT_S
        while self.db.stats().compacting:
            assert time.monotonic() < deadline, "the background compaction did not finish"
            time.sleep(0.001)

    def _write_until_rotation(self, key: bytes, value: bytes, rotations: int = 1) -> None:
        """Rewrite ``key`` until the store has started ``rotations`` new segments.

        Each new segment may take a slot compaction freed; the held snapshots are checked while
        each is active (the moment a read could confuse the old segment with the new one).
        """
        for _ in range(rotations):
            active = self.db.stats().active_segment
            for _ in range(MAX_PUTS_TO_ROTATE):
                self.db.put(key, value)
                if self.db.stats().active_segment != active:
                    break
            self._set(key, value)
            self.held_snapshots_match_their_frozen_models()

    @rule(background=st.booleans())
    def compact(self, background: bool) -> None:
        self._compact(background)

    @rule(background=st.booleans(), key=keys, value=small_values)
    def compact_then_rotate(self, background: bool, key: bytes, value: bytes) -> None:
        self._compact(background)
        self.held_snapshots_match_their_frozen_models()
        self._write_until_rotation(key, value, 3)

    @rule(max_bytes=st.integers(1, 2048), key=keys, value=small_values)
    def compact_the_oldest_then_rotate(self, max_bytes: int, key: bytes, value: bytes) -> None:
        """ENG-73: the outputs join the segments left between the inputs and the new ones."""
        self._compact(False, max_bytes)
        self.held_snapshots_match_their_frozen_models()
        self._write_until_rotation(key, value, 3)

    @rule(key=keys, value=small_values, rotations=st.integers(1, 4))
    def write_until_rotation(self, key: bytes, value: bytes, rotations: int) -> None:
        self._write_until_rotation(key, value, rotations)

    @precondition(lambda self: self.store is not None)
    @rule(segment_size=tiny_segment_sizes, policy=policies)
    def reopen(self, segment_size: int, policy: catlog.FsyncPolicy) -> None:
        """Closing the store ends the views on it: a snapshot refuses to read (ENG-19)."""
        self.db.close()
        for view in self.held:
            if view.snapshot is not None:
                assert_refuses_when_closed(view.snapshot, next(iter(view.frozen), b""))
        self.held.clear()
        self.store = self._open(policy, segment_size)

    @invariant()
    def held_snapshots_match_their_frozen_models(self) -> None:
        for view in self.held:
            if view.snapshot is not None:
                assert len(view.snapshot) == len(view.frozen)
                assert dict(view.snapshot.items()) == view.frozen, f"held {view.kind} changed"

    def teardown(self) -> None:
        for view in self.held:
            if view.snapshot is not None:
                view.snapshot.close()
        self.held.clear()
        super().teardown()


@pytest.mark.spec(
    "ENG-7",
    "ENG-12",
    "ENG-19",
    "ENG-38",
    "ENG-39",
    "ENG-40",
    "ENG-42",
    "ENG-48",
    "ENG-55",
    "ENG-72",
    "ENG-73",
)
class TestHeldViewsMatchFrozenModels(HeldViewsMatchFrozenModels.TestCase):  # type: ignore[valid-type,misc]
    """Under the ``ci`` profile: 200 programs of up to 50 steps, every one holding a snapshot.

    On the code before the fix of the slot check in ``Store._read`` it failed in the first ten
    programs, in each of twenty runs.
    """

    settings = settings(
        stateful_step_count=50,
        max_examples=max(200, settings().max_examples),
    )


@pytest.mark.spec("ENG-38", "ENG-48")
def test_the_program_the_machine_found_a_snapshot_across_two_compactions() -> None:
    """The machine's shrunk counterexample, pasted: the second compaction's rotation reused the
    first one's freed slot, and the snapshot read its key from the new, empty active segment
    ("incomplete header: 0 bytes left", a false CorruptionError)."""
    state = HeldViewsMatchFrozenModels()
    try:
        state.open_store(policy="always", segment_size=64, hints=False, first={b"": b""})
        state.held_snapshots_match_their_frozen_models()
        state.compact(background=False)
        state.held_snapshots_match_their_frozen_models()
        state.compact(background=False)
        state.held_snapshots_match_their_frozen_models()
    finally:
        state.teardown()


@pytest.mark.spec("ENG-38", "ENG-48")
@pytest.mark.parametrize("policy", ["always", "interval", "never"])
def test_a_snapshot_never_reads_the_segment_that_took_over_its_slot(
    policy: catlog.FsyncPolicy, data_dir: str
) -> None:
    """Issue 13's defect 2: after compact() a rotation gives a removed input's slot to the new
    active segment. A snapshot location in the removed segment must still read the removed
    segment, not the new one's buffer: under ``never`` and ``interval`` that buffer holds a later
    record of the same key at the same offset, returned silently; under ``always`` the offset is
    past its end, reported as corruption of a file that no longer exists."""
    with catlog.open(data_dir, fsync=policy, segment_size=256, clock=ManualClock()) as store:
        for n in range(4):
            store.put(b"k%d" % n, b"old-%d" % n)
        with store.snapshot() as snapshot:
            frozen = dict(snapshot.items())
            store.compact()
            active = store.stats().active_segment
            for n in range(MAX_PUTS_TO_ROTATE):
                store.put(b"k%d" % (n % 4), b"new-%d" % (n % 4))
                if store.stats().active_segment != active:
                    break
            assert snapshot.get(b"k0") == b"old-0"
            assert dict(snapshot.items()) == frozen
