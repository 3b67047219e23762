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
import shutil
import tempfile

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    precondition,
    rule,
)

import catlog
from catlog.clock import ManualClock
from catlog.index import LARGE_VALUE

policies = st.sampled_from(["always", "interval", "never"])
segment_sizes = st.sampled_from([64, 100, 256, 1024, catlog.DEFAULT_SEGMENT_SIZE])
small_values = st.binary(max_size=64)


class StoreMatchesDict(RuleBasedStateMachine):
    keys = Bundle("keys")

    def __init__(self) -> None:
        super().__init__()
        self.directory = tempfile.mkdtemp(prefix="catlog-model-")
        self.model: dict[bytes, bytes] = {}
        self.expiries: dict[bytes, int] = {}
        self.clock = ManualClock()
        self.store: catlog.Store | None = None
        self.hints = False

    @initialize(policy=policies, segment_size=segment_sizes, hints=st.booleans())
    def open_store(self, policy: catlog.FsyncPolicy, segment_size: int, hints: bool) -> None:
        self.policy: catlog.FsyncPolicy = policy
        self.hints = hints
        self.store = self._open(policy, segment_size)

    def _open(self, policy: catlog.FsyncPolicy, segment_size: int) -> catlog.Store:
        return catlog.open(
            self.directory,
            fsync=policy,
            segment_size=segment_size,
            fsync_interval_ms=3_600_000,
            clock=self.clock,
            hints=self.hints,
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

    @rule(key=keys, value=st.binary(min_size=LARGE_VALUE - 2, max_size=LARGE_VALUE + 2))
    def put_large(self, key: bytes, value: bytes) -> None:
        self.db[key] = value
        self._set(key, value)

    @rule(key=keys, first=small_values, second=small_values)
    def overwrite(self, key: bytes, first: bytes, second: bytes) -> None:
        self.db.put(key, first)
        self.db.put(key, second)
        self._set(key, second)

    @rule(pairs=st.lists(st.tuples(keys, small_values), max_size=6))
    def put_many(self, pairs: list[tuple[bytes, bytes]]) -> None:
        self.db.wait_durable(self.db.put_many_nowait(pairs))  # ENG-44
        for key, value in pairs:
            self._set(key, value)

    @rule(key=keys)
    def delete(self, key: bytes) -> None:
        assert self.db.delete(key) == (key in self.model)
        self._remove(key)

    @rule(key=consumes(keys))
    def delete_and_forget(self, key: bytes) -> None:
        assert self.db.delete(key) == (key in self.model)
        self._remove(key)
        assert self.db.get(key) is None

    @rule(key=keys, value=small_values, ttl_ms=st.integers(1, 5000))
    def put_with_ttl(self, key: bytes, value: bytes, ttl_ms: int) -> None:
        ttl = ttl_ms / 1000
        self.db.put(key, value, ttl=ttl)
        # ENG-33 rounds ttl * 1000 up, in floats: 2047 / 1000 * 1000 is 2047.0000000000002,
        # so that ttl is 2048 ms.
        self._set(key, value, self.clock.now_ms() + math.ceil(ttl * 1000))

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

    @rule()
    def compact(self) -> None:
        """ENG-39: compaction changes no value; reading through a snapshot taken before it too."""
        with self.db.snapshot() as before:
            self.db.compact()
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

    @rule()
    def sync(self) -> None:
        self.db.sync()

    @rule()
    def flush(self) -> None:
        self.db.flush()

    @precondition(lambda self: self.store is not None)
    @rule(segment_size=segment_sizes, policy=policies)
    def reopen(self, segment_size: int, policy: catlog.FsyncPolicy) -> None:
        """Close and open again, maybe with other settings: the data must not notice."""
        self.db.close()
        self.store = self._open(policy, segment_size)
        assert self.db.stats().tail_repairs == (), "a clean close leaves no torn tail"

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
)
class TestStoreMatchesDict(StoreMatchesDict.TestCase):  # type: ignore[valid-type,misc]
    """Under the ``ci`` profile: 300 programs of up to 50 steps, about 20,000 steps in all."""

    settings = settings(
        stateful_step_count=50,
        max_examples=max(300, settings().max_examples),
    )
