"""``modify_many_nowait`` (ENG-90, ENG-91): a run of ``modify`` calls under one hold of the lock.

The reference is the same pairs given to ``modify_nowait`` one at a time, on a store of their own
in another directory with the same clock: the outcomes, the tickets, the values, the expiries and
the dead-byte estimate must agree.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from itertools import islice

import pytest

import catlog
from catlog.codec import MAX_KEY_SIZE
from catlog.simfs import SimFileSystem
from tests.crash.faulty_fs import FaultyFileSystem
from tests.failing_store import failing

NOW_MS = 1_700_000_000_000

Change = Callable[[bytes | None], bytes | None]


def plus_one(old: bytes | None) -> bytes:
    return b"%d" % (int(old or b"0") + 1)


def nothing(old: bytes | None) -> None:
    return None


def boom(old: bytes | None) -> bytes:
    raise ZeroDivisionError


def text(old: bytes | None) -> bytes:
    return "text"  # type: ignore[return-value]


BIG_KEY = b"k" * (MAX_KEY_SIZE + 1)

RUN: list[tuple[bytes, Change]] = [
    (b"n", plus_one),  # missing: shown None
    (b"n", plus_one),  # shown the 1 just written in this run
    (b"k", boom),
    (b"k", plus_one),  # the exception spoiled only its own pair
    (b"t", plus_one),  # keeps its expiry
    (b"gone", plus_one),  # expired: shown None, and the new value has no expiry
    (b"k", nothing),
    (BIG_KEY, plus_one),
    (b"k", text),
    (b"n", plus_one),
]


def prepare(store: catlog.Store, clock: catlog.ManualClock) -> None:
    store.put(b"k", b"41")
    store.put(b"t", b"5", ttl=10)
    store.put(b"gone", b"7", ttl=1)
    store.put(b"n", b"overwritten")
    store.delete(b"n")
    clock.advance(2)


def one_by_one(store: catlog.Store, run: list[tuple[bytes, Change]]) -> list[object]:
    outcomes: list[object] = []
    for key, change in run:
        try:
            outcomes.append(store.modify_nowait(key, change)[0])
        except Exception as exc:
            outcomes.append(exc)
    return outcomes


def kinds(outcomes: list[object]) -> list[object]:
    return [type(o) if isinstance(o, Exception) else o for o in outcomes]


@pytest.mark.spec("ENG-90", "ENG-80", "ENG-51", "ENG-41")
@pytest.mark.parametrize("policy", ["always", "interval", "never"])
def test_a_run_leaves_what_the_same_modifies_one_by_one_leave(
    tmp_path_factory: pytest.TempPathFactory, policy: catlog.FsyncPolicy
) -> None:
    results = []
    for how in ("run", "one by one"):
        clock = catlog.ManualClock(NOW_MS)
        path = str(tmp_path_factory.mktemp(how.replace(" ", "-")))
        with catlog.open(path, fsync=policy, clock=clock) as store:
            prepare(store, clock)
            before = store.last_ticket
            if how == "run":
                outcomes, ticket = store.modify_many_nowait(RUN)
                found: list[object] = list(outcomes)
            else:
                found = one_by_one(store, RUN)
                ticket = store.last_ticket
            store.wait_durable(ticket)
            state = {key: (store.get(key), store.expires_at(key)) for key in (b"n", b"k", b"t")}
            state[b"gone"] = (store.get(b"gone"), store.expires_at(b"gone"))
            results.append((kinds(found), ticket - before, state, store.stats().dead_bytes))
    assert results[0] == results[1]
    found_kinds, written, state, _ = results[0]
    assert found_kinds == [
        *(b"1", b"2", ZeroDivisionError, b"42", b"6", b"1", None),
        *(catlog.KeyTooLargeError, catlog.InvalidTypeError, b"3"),
    ]
    assert written == 6, "one ticket per value written"
    assert state[b"t"] == (b"6", NOW_MS + 10_000)
    assert state[b"gone"] == (b"1", None)


@pytest.mark.spec("ENG-90", "ENG-51", "ENG-14", "ENG-28")
def test_a_run_is_shown_puts_waiting_for_their_fsync_and_takes_effect_with_its_own(
    data_dir: str,
) -> None:
    with catlog.open(data_dir, fsync="always") as store:
        put = store.put_nowait(b"k", b"1")
        outcomes, ticket = store.modify_many_nowait([(b"k", plus_one), (b"k", plus_one)])
        assert (outcomes, ticket) == ([b"2", b"3"], put + 2)
        assert b"k" not in store, "nothing has taken effect before its fsync"
        store.wait_durable(ticket)
        assert store[b"k"] == b"3"
        outcomes, nothing_written = store.modify_many_nowait([(b"k", nothing)])
        assert (outcomes, nothing_written) == ([None], ticket)


@pytest.mark.spec("ENG-90")
def test_an_empty_run_appends_nothing_and_returns_the_latest_ticket(store: catlog.Store) -> None:
    store.put(b"a", b"1")
    assert store.modify_many_nowait([]) == ([], store.last_ticket)
    assert store.last_ticket == 1


@pytest.mark.spec("ENG-91", "ENG-19", "REC-10")
def test_a_failed_or_closed_store_refuses_before_any_change_is_called(data_dir: str) -> None:
    called: list[bytes | None] = []

    def change(old: bytes | None) -> bytes:
        called.append(old)
        return b"v"

    fs = FaultyFileSystem()
    with failing(catlog.open(data_dir, fs=fs)) as store:
        fs.fail("sync")
        with pytest.raises(catlog.StoreFailedError):
            store.put(b"k", b"v")
        with pytest.raises(catlog.StoreFailedError):
            store.modify_many_nowait([(b"k", change), (b"j", change)])
    with pytest.raises(catlog.StoreClosedError):
        store.modify_many_nowait([(b"k", change)])
    assert called == []


@pytest.mark.spec("ENG-91", "REC-10")
def test_a_write_that_fails_while_appending_the_run_raises_and_the_store_refuses(
    data_dir: str,
) -> None:
    fs = FaultyFileSystem()
    with failing(catlog.open(data_dir, fs=fs, fsync="never")) as store:
        fs.fail("append")
        big = b"v" * 40_000  # two of these fill the 64 KiB write buffer: it is handed to the OS
        with pytest.raises(catlog.StoreFailedError, match=r": write failed \(\[Errno 5\] "):
            store.modify_many_nowait([(b"a", lambda old: big), (b"b", lambda old: big)])
        assert store.get(b"a") is None
        with pytest.raises(catlog.StoreFailedError):
            store.modify_many_nowait([(b"c", plus_one)])


class Interrupted(BaseException):
    pass


@pytest.mark.spec("ENG-91")
def test_an_exception_that_is_no_exception_propagates_with_nothing_of_the_run_written(
    store: catlog.Store,
) -> None:
    def interrupt(old: bytes | None) -> bytes:
        raise Interrupted

    store.put(b"n", b"1")
    before = store.last_ticket
    with pytest.raises(Interrupted):
        store.modify_many_nowait([(b"n", plus_one), (b"m", interrupt), (b"n", plus_one)])
    assert store.last_ticket == before
    assert store[b"n"] == b"1"
    assert store.modify_many_nowait([(b"n", plus_one)]) == ([b"2"], before + 1), "lock let go"


@pytest.mark.spec("ENG-90", "ENG-9", "ENG-13")
def test_a_run_that_would_overfill_the_segment_rotates_and_reads_back(data_dir: str) -> None:
    with catlog.open(data_dir, fsync="never", segment_size=256) as store:
        run = [(b"counter%d" % (i % 3), plus_one) for i in range(30)]
        outcomes, _ = store.modify_many_nowait(run)
        assert outcomes == [b"%d" % (i // 3 + 1) for i in range(30)]
        assert store.stats().segments > 1
        values = {key: store[key] for key in (b"counter0", b"counter1", b"counter2")}
    assert values == dict.fromkeys((b"counter0", b"counter1", b"counter2"), b"10")
    with catlog.open(data_dir) as reopened:
        assert {key: reopened[key] for key in values} == values


@pytest.mark.spec("ENG-90", "ENG-82")
def test_runs_from_many_threads_lose_no_increment(data_dir: str) -> None:
    threads, runs, size = 4, 50, 8
    with catlog.open(data_dir, fsync="never", segment_size=4096) as store:

        def work() -> None:
            for _ in range(runs):
                store.modify_many_nowait([(b"c", plus_one)] * size)
                store.modify(b"c", plus_one)

        workers = [threading.Thread(target=work) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=60)
        assert store[b"c"] == b"%d" % (threads * runs * (size + 1))


@pytest.mark.spec("ENG-90", "ENG-14", "REC-2")
def test_a_run_made_durable_under_always_survives_every_crash() -> None:
    fs = SimFileSystem()
    store = catlog.open("/db", fs=fs, fsync="always", clock=catlog.ManualClock(NOW_MS))
    store.put(b"n", b"41")
    outcomes, ticket = store.modify_many_nowait([(b"n", plus_one), (b"m", plus_one)])
    assert outcomes == [b"42", b"1"]
    store.wait_durable(ticket)
    for state in islice(fs.crash_states(tears=1), 100):
        with catlog.open("/db", fs=fs.crash(state), clock=catlog.ManualClock(NOW_MS)) as crashed:
            assert (crashed.get(b"n"), crashed.get(b"m")) == (b"42", b"1"), state
    store.close()
