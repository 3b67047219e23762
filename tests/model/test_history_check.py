"""The history checker itself (tests/model/history.py), on histories written out by hand.

Each linearizable history here must pass (the checker may never raise a false alarm: the
concurrency tests would then fail at random), and each history that breaks ENG-50 in one way
must be reported, so the checker is known to see each kind of violation.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.model.history import History, SnapshotView, check

K = b"k"


def history(*writes: tuple[bytes | None, int, int]) -> History:
    made = History()
    for value, start, end in writes:
        made.wrote(K, value, start, end, "put" if value is not None else "delete")
    return made


def test_reads_that_overlap_writes_may_return_either_value() -> None:
    made = history((b"a", 0, 10), (b"b", 5, 20))
    made.read(K, None, 1, 2, "get")  # before either took effect
    made.read(K, b"b", 6, 7, "get")
    made.read(K, b"a", 8, 9, "get")  # b took effect first, then a
    made.found(K, True, 11, 12, "in")
    assert check(made) == []
    made.read(K, b"a", 21, 22, "get")
    assert check(made) == []
    made.read(K, b"b", 23, 24, "get")  # but then b cannot come back
    assert "not linearizable" in check(made)[0]


def test_a_read_after_a_write_returned_must_see_it() -> None:
    made = history((b"a", 0, 1), (b"b", 2, 3))
    made.read(K, b"a", 4, 5, "get")
    assert "already overwritten" in check(made)[0]


def test_a_read_cannot_see_a_write_called_after_it_returned() -> None:
    made = history((b"a", 10, 11))
    made.read(K, b"a", 4, 5, "get")
    assert "written only after it returned" in check(made)[0]


def test_a_value_never_written_is_reported() -> None:
    made = history((b"a", 0, 1))
    made.read(K, b"torn", 4, 5, "get")
    assert "never written" in check(made)[0]


def test_a_miss_while_the_key_certainly_had_a_value_is_reported() -> None:
    made = history((b"a", 0, 1), (None, 2, 3), (b"b", 4, 5))
    made.read(K, None, 6, 7, "get")
    made.found(K, False, 8, 9, "in")
    problems = check(made)
    assert "found no value" in problems[0]
    assert "'in'" not in problems[0]
    assert "in found no value" in problems[1]


def test_a_read_of_a_new_value_then_of_the_one_it_replaced_is_not_linearizable() -> None:
    # Each read alone could be right (b is slow, so a may still be current), but not both in
    # this order: once b was seen, a was replaced for good.
    made = history((b"a", 0, 1), (b"b", 2, 30))
    made.read(K, b"b", 3, 4, "get")
    made.read(K, b"a", 5, 6, "get")
    problems = check(made)
    assert len(problems) == 1
    assert "not linearizable" in problems[0]


def test_a_snapshot_that_changes_is_reported_with_the_writes_around_it() -> None:
    made = history((b"a", 0, 1), (b"b", 10, 11))
    view = SnapshotView(2, 3, "snapshot #1")
    made.snapshots.append(view)
    made.snapshot_read(view, K, b"a")
    made.snapshot_read(view, K, b"a")
    assert check(made) == []
    made.snapshot_read(view, K, b"b")
    (problem,) = check(made)
    assert "snapshot changed" in problem
    assert "b'b'" in problem  # the value it showed later
    assert "put of b'k'" in problem  # the writes around it


def test_a_snapshot_shows_one_instant_of_its_call() -> None:
    made = History()
    made.wrote(b"x", b"x1", 0, 1, "put")
    made.wrote(b"y", b"y1", 2, 3, "put")
    made.wrote(b"x", b"x2", 4, 5, "put")
    view = SnapshotView(0, 10, "snapshot #1")
    made.snapshots.append(view)
    made.snapshot_read(view, b"x", b"x1")  # current from 0 to 5
    made.snapshot_read(view, b"y", b"y1")  # current from 2 on: both at 3, fine
    assert check(made) == []
    late = SnapshotView(0, 10, "snapshot #2")
    made.snapshots.append(late)
    made.wrote(b"y", b"y2", 6, 7, "put")
    made.snapshot_read(late, b"x", b"x1")  # replaced by 5
    made.snapshot_read(late, b"y", b"y2")  # called at 6
    assert any("never current together" in problem for problem in check(made))


@pytest.mark.parametrize(("a", "b"), [(b"v1", b"v1"), (None, None), (b"v1", None)])
def test_keys_written_only_together_are_shown_together(a: bytes | None, b: bytes | None) -> None:
    made = History(pairs=[(b"p-a", b"p-b")])
    for key in (b"p-a", b"p-b"):
        made.wrote(key, b"v1", 0, 1, "batch")
    view = SnapshotView(0, 3, "snapshot #1")
    made.snapshots.append(view)
    made.snapshot_read(view, b"p-a", a)
    made.snapshot_read(view, b"p-b", b)
    assert bool(check(made)) == (a != b)


@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(["put", "delete", "get", "in", "snapshot"]),
            st.sampled_from([b"k1", b"k2"]),
            st.integers(0, 30),
            st.integers(0, 30),
        ),
        max_size=40,
    )
)
def test_every_linearizable_history_passes(steps: list[tuple[str, bytes, int, int]]) -> None:
    """No false alarms: operations applied in order to a dict at instants 300, 600, ..., each
    stretched to an interval reaching up to 271 ticks either side (so intervals overlap freely),
    make a linearizable history, which must pass. As in a real history, no operation returns
    at the tick another is called (calls fall on ticks 2 mod 3, returns on 1 mod 3)."""
    made = History()
    state: dict[bytes, bytes] = {}
    for n, (kind, key, before, after) in enumerate(steps):
        at = 300 * (n + 1)
        start, end = at - 9 * before - 1, at + 9 * after + 1
        if kind == "put":
            value = b"v%d" % n
            state[key] = value
            made.wrote(key, value, start, end, "put")
        elif kind == "delete":
            made.found(key, key in state, start, end, "delete")
            state.pop(key, None)
            made.wrote(key, None, start, end, "delete")
        elif kind == "get":
            made.read(key, state.get(key), start, end, "get")
        elif kind == "in":
            made.found(key, key in state, start, end, "in")
        else:
            view = SnapshotView(start, end, f"snapshot at {at}")
            made.snapshots.append(view)
            for shown in (b"k1", b"k2", b"k1"):
                made.snapshot_read(view, shown, state.get(shown))
    assert check(made) == []
