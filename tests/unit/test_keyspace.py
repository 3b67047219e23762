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


def check_against(order: ExpiryOrder, model: list[tuple[int, bytes]]) -> None:
    order.check()
    assert list(order) == model
    assert len(order) == len(model)
    assert order.soonest == (model[0][0] if model else NEVER)
    for now in (0, 1, 500, 1000, 1001, 5000):
        assert order.count_before(now) == sum(at < now for at, _ in model)


@pytest.mark.spec("ENG-60")
@pytest.mark.parametrize("size", [1, 127, 128, 511, 512, 513, 640, 1024, 1025, 1151, 1152, 3000])
def test_an_expiry_order_built_at_once_holds_bounded_blocks(size: int) -> None:
    """The lone last block of fewer than 128 pairs is merged into the one before it."""
    pairs = [(i // 3, b"k%05d" % i) for i in range(size)]
    check_against(ExpiryOrder(pairs), pairs)


@pytest.mark.spec("ENG-60", "ENG-61")
@pytest.mark.parametrize("pattern", ["front", "back", "middle", "stride", "firsts"])
def test_removing_expiries_one_by_one_keeps_the_blocks_bounded_and_the_count_exact(
    pattern: str,
) -> None:
    """Removing pairs from 3,000 empties, shrinks and merges blocks (a first block, a last,
    one between): after each removal the order still agrees with a sorted list, and its
    soonest expiry is the first pair's, however many blocks the removals went through."""
    size = 3000
    pairs = [(i // 3, b"k%05d" % i) for i in range(size)]
    order = ExpiryOrder(pairs)
    if pattern == "front":
        doomed = pairs[:]
    elif pattern == "back":
        doomed = pairs[::-1]
    elif pattern == "middle":
        doomed = sorted(pairs, key=lambda pair: abs(pair[0] - 500))
    elif pattern == "stride":
        doomed = pairs[::2] + pairs[1::2]
    else:  # the first pair of each block of 512, over and over: i > 0 and j == 0
        doomed = sorted(pairs, key=lambda pair: (int(pair[1][1:]) % 512, pair))
    model = pairs[:]
    for step, (at, key) in enumerate(doomed):
        order.remove(at, key)
        model.remove((at, key))
        assert order.soonest == (model[0][0] if model else NEVER)
        if step % 97 == 0 or len(model) < 5:
            check_against(order, model)
    check_against(order, [])


@pytest.mark.spec("ENG-60", "ENG-61")
def test_adding_expiries_anywhere_splits_blocks_and_pops_take_them_in_order() -> None:
    """Pairs added before, between and after the ones held (not only later expiries, the
    common case) split blocks past 1,024; popping them all in steps leaves it empty."""
    order = ExpiryOrder([])
    model: list[tuple[int, bytes]] = []
    for i in range(2600):
        at = (i * 7919) % 1000
        key = b"k%05d" % i
        order.add(at, key)
        model.append((at, key))
        if i % 173 == 0:
            model.sort()
            check_against(order, model)
    model.sort()
    check_against(order, model)
    for now, limit in [(0, 5), (3, 2), (300, 700), (300, 700), (1001, 10), (1001, 2000)]:
        due = [key for at, key in model if at < now][:limit]
        assert order.pop_before(now, limit) == due
        model = model[len(due) :]
        check_against(order, model)
    assert not model


@pytest.mark.spec("ENG-33", "ENG-41", "ENG-60", "ENG-73")
def test_the_keyspace_check_refuses_each_broken_state_it_names() -> None:
    """The model tests trust :meth:`Keyspace.check` (through ``Store._check_invariants``) to
    catch a keyspace whose parts disagree: each broken state here must raise, with its reason."""

    def broken(keyspace: Keyspace, reason: str) -> None:
        with pytest.raises(AssertionError) as caught:
            keyspace.check()
        assert str(caught.value).partition("\n")[0] == reason

    def fresh() -> Keyspace:
        keyspace = Keyspace({b"a": 5, b"b": 7}, {b"a": 100})
        keyspace.check()
        return keyspace

    broken(Keyspace({b"a": 5}, {b"a": 100, b"gone": 50}), "ENG-33: expiries only of indexed keys")
    keyspace = fresh()
    keyspace.order.add(200, b"b")
    broken(keyspace, "ENG-60: one expiry pair for each expiry, and no other")
    keyspace = fresh()
    keyspace.expires[b"b"] = 300
    broken(keyspace, "ENG-60: one expiry pair for each expiry, and no other")
    keyspace = fresh()
    keyspace.dead = -1
    broken(keyspace, "ENG-41: dead bytes are never negative")
    keyspace = fresh()
    keyspace.slot_dead[3] = -1
    broken(keyspace, "ENG-73: nor are a segment's")
    keyspace = fresh()
    keyspace.order.soonest = 99
    broken(keyspace, "soonest is the first expiry")
    unsorted = ExpiryOrder([(5, b"x"), (3, b"y")])
    with pytest.raises(AssertionError) as caught:
        unsorted.check()
    assert str(caught.value).partition("\n")[0] == "expiry entries in order"
    keyspace = fresh()
    keyspace.dead = 0
    keyspace.slot_dead[0] = 0
    keyspace.check()  # zero is not negative


@pytest.mark.spec("ENG-61", "ENG-62")
@pytest.mark.parametrize("limit", [1, 7, 130])
def test_popping_a_few_at_a_time_keeps_the_first_block_bounded(limit: int) -> None:
    """Purging takes pairs off the front a few at a time (ENG-61's 20 per write): the first
    block shrinks past 128 pairs and must be merged into the next, every time."""
    pairs = [(i // 3, b"k%05d" % i) for i in range(1700)]
    order = ExpiryOrder(pairs)
    model = pairs[:]
    while model:
        taken = order.pop_before(2000, limit)
        assert taken == [key for _, key in model[:limit]]
        model = model[limit:]
        check_against(order, model)


@pytest.mark.spec("ENG-60")
def test_an_expiry_order_refuses_to_remove_a_pair_it_does_not_hold_and_fills_a_block() -> None:
    """Removing a pair that is not there is a broken keyspace, said as such; a block may grow
    to exactly 1,024 pairs (it splits past that) and is still a sound one."""
    order = ExpiryOrder([(1, b"a"), (3, b"c")])
    with pytest.raises(AssertionError) as caught:
        order.remove(2, b"b")
    assert str(caught.value).partition("\n")[0] == (
        "every expiry has its pair (see the module's docstring)"
    )
    pairs = [(i, b"k%05d" % i) for i in range(640)]
    order = ExpiryOrder(pairs)  # blocks of 512 and 128
    for i in range(640, 1536):
        order.add(i, b"k%05d" % i)
        pairs.append((i, b"k%05d" % i))
    check_against(order, pairs)  # 512 and 1,024
    order.add(1536, b"k01536")
    pairs.append((1536, b"k01536"))
    check_against(order, pairs)  # 512, 512 and 513
