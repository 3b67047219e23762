"""The keyspace's pure core: the sorted expiry order against a sorted list, and dead_size."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from catlog.index import LARGE_VALUE
from catlog.keyspace import NEVER, ExpiryOrder, Keyspace, dead_size

times = st.integers(0, 40)
keys = st.binary(min_size=0, max_size=3)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("set"), keys, times),
        st.tuples(st.just("clear"), keys),
        st.tuples(st.just("purge"), times, st.integers(0, 300)),
        st.tuples(st.just("many"), times, st.integers(0, 1500)),
    ),
    max_size=30,
)


@pytest.mark.spec("ENG-60", "ENG-61", "ENG-62")
@given(initial=st.dictionaries(keys, times, max_size=40), steps=steps)
def test_the_expiry_order_counts_and_pops_as_a_sorted_list_does(
    initial: dict[bytes, int], steps: list[tuple[object, ...]]
) -> None:
    """Blocks split, merge and empty as the steps go (``many`` adds enough keys to split
    several); after each step the count before every time agrees with a plain sorted list."""
    index = dict.fromkeys(initial, 0)
    keyspace = Keyspace(index, dict(initial))
    model = dict(initial)
    for number, step in enumerate(steps):
        if step[0] == "set":
            key, at = step[1], step[2]
            assert isinstance(key, bytes)
            assert isinstance(at, int)
            index[key] = 0
            keyspace.set_expiry(key, at)
            model[key] = at
        elif step[0] == "clear":
            assert isinstance(step[1], bytes)
            keyspace.clear_expiry(step[1])
            model.pop(step[1], None)
        elif step[0] == "many":
            at, count = step[1], step[2]
            assert isinstance(at, int)
            assert isinstance(count, int)
            for i in range(count):
                key = b"m%d-%d" % (number, i)
                index[key] = 0
                keyspace.set_expiry(key, at + i % 7)
                model[key] = at + i % 7
        else:
            now, limit = step[1], step[2]
            assert isinstance(now, int)
            assert isinstance(limit, int)
            due = sorted((at, key) for key, at in model.items() if at < now)[:limit]
            assert keyspace.purge(now, limit) == len(due)
            for _, key in due:
                del model[key]
                assert key not in index, "purging forgot it"
        keyspace.check()
        ordered = sorted((at, key) for key, at in model.items())
        assert list(keyspace.order) == ordered
        assert keyspace.order.soonest == (ordered[0][0] if ordered else NEVER)
        for now in range(0, 50, 3):
            assert keyspace.expired(now) == sum(at < now for at, _ in ordered)
            assert keyspace.live_keys(now) == len(index) - keyspace.expired(now)


@pytest.mark.spec("ENG-41")
def test_dead_size_counts_a_header_the_key_and_the_recorded_value_length() -> None:
    assert dead_size(3, 0) == 21 + 3
    assert dead_size(3, (7 << 16) | 100) == 21 + 3 + 100
    assert dead_size(0, LARGE_VALUE) == 21 + 65_535
    assert ExpiryOrder([]).count_before(10) == 0
