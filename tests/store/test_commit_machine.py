"""Group commit's pure machine (catlog.commit): unit tests, and an exhaustive model check.

The model check runs the machine the way ``Store.wait_durable`` drives it, as threads whose
steps are the store's critical sections, and explores every interleaving of those steps for a
few writers (breadth first, each state once, by a hashable canonical form). In every state it
reaches it checks ENG-58; on every step, that no write is acknowledged before an fsync covered it
and its effect was applied, and that effects are applied in ticket order, each once; in every
state where nothing but a signal could still move, that nobody sleeps (ENG-59).

What it explored when written (``-s`` prints it; in each configuration one write or fsync may
fail, and a close() and a signal may come, unless it says otherwise); the test asserts a floor
under each:

==========================================================  =======  ===========  ==========
configuration                                               states   transitions  profile
==========================================================  =======  ===========  ==========
2 writers, each writing twice                               16,318   33,525       default
3 writers                                                   48,488   119,423      default
2 writers and a sync()                                      5,982    14,412       default
3 writers and a sync()                                      196,434  593,422      nightly
3 writers writing twice, no close() and no signal           296,168  597,255      nightly
2 writers, each writing three times                         66,510   140,205      nightly
==========================================================  =======  ===========  ==========
"""

from __future__ import annotations

import os
import sys
from collections import deque
from dataclasses import dataclass, replace

import pytest

from catlog.commit import CommitMachine, Turn, weakly
from catlog.errors import StoreClosedError

# ----------------------------------------------------------------------------- unit tests


def lead_one_commit(machine: CommitMachine[str], ticket: int, target: int) -> Turn:
    """What a leader's term does when its fsync succeeds, as the store's driver calls it."""
    assert not machine.start_term()
    assert list(machine.due(target)) == list(range(machine.durable + 1, target + 1))
    machine.took_effect(target, leading=True)
    return machine.end_term(ticket)


@pytest.mark.spec("ENG-29")
def test_the_first_writer_leads_and_a_lone_writer_returns_after_its_own_commit() -> None:
    machine: CommitMachine[str] = CommitMachine()
    assert machine.arrive(1, "a") is Turn.LEAD
    assert lead_one_commit(machine, 1, 1) is Turn.RETURN
    assert machine.durable == 1
    assert not machine.leading
    assert machine.wake == []


@pytest.mark.spec("ENG-45")
def test_a_lone_writer_coming_back_never_waits_for_others() -> None:
    machine: CommitMachine[str] = CommitMachine()
    for ticket in range(1, 4):
        assert machine.arrive(ticket, "a") is Turn.LEAD
        assert lead_one_commit(machine, ticket, ticket) is Turn.RETURN  # start_term: no wait


@pytest.mark.spec("ENG-29", "ENG-58")
def test_a_writer_arriving_during_a_term_sleeps_and_the_commit_covering_it_wakes_it() -> None:
    machine: CommitMachine[str] = CommitMachine()
    assert machine.arrive(1, "a") is Turn.LEAD
    assert not machine.start_term()
    assert machine.arrive(2, "b") is Turn.SLEEP
    machine.took_effect(2, leading=True)  # the leader's flush took ticket 2 too
    assert machine.wake == ["b"]
    machine.wake.clear()
    assert machine.end_term(1) is Turn.RETURN
    assert not machine.leading, "nobody sleeps uncovered: the lead lapses"
    assert machine.woken(2, "b") is Turn.RETURN


@pytest.mark.spec("ENG-58")
def test_a_commit_wakes_only_its_first_covered_sleeper_and_each_wakes_the_next() -> None:
    machine: CommitMachine[str] = CommitMachine()
    assert machine.arrive(1, "a") is Turn.LEAD
    for ticket, token in [(2, "b"), (3, "c"), (4, "d")]:
        assert machine.arrive(ticket, token) is Turn.SLEEP
    machine.took_effect(4, leading=True)
    assert machine.wake == ["b"]
    machine.wake.clear()
    assert machine.woken(2, "b") is Turn.RETURN
    assert machine.wake == ["c"]
    machine.wake.clear()
    assert machine.woken(3, "c") is Turn.RETURN
    assert machine.wake == ["d"]
    machine.wake.clear()
    assert machine.woken(4, "d") is Turn.RETURN
    assert machine.wake == []


@pytest.mark.spec("ENG-29", "ENG-58")
def test_the_lead_passes_to_the_oldest_sleeper_the_commit_did_not_cover() -> None:
    machine: CommitMachine[str] = CommitMachine()
    assert machine.arrive(1, "a") is Turn.LEAD
    machine.took_effect(1, leading=True)  # b and c appended after the leader's flush
    for ticket, token in [(2, "b"), (3, "c")]:
        assert machine.arrive(ticket, token) is Turn.SLEEP
    assert machine.end_term(1) is Turn.RETURN
    assert machine.wake == ["b"]
    machine.wake.clear()
    assert machine.leading, "the term goes on, with the baton on its way to b"
    assert machine.woken(2, "b") is Turn.LEAD
    assert machine.arrive(4, "a") is Turn.SLEEP, "a term runs while b leads"


@pytest.mark.spec("ENG-45")
def test_a_leader_waits_for_the_writers_the_last_commit_covered_until_the_last_is_back() -> None:
    machine: CommitMachine[str] = CommitMachine()
    assert machine.arrive(1, "a") is Turn.LEAD
    assert machine.arrive(2, "b") is Turn.SLEEP
    machine.took_effect(2, leading=True)
    machine.wake.clear()
    assert machine.end_term(1) is Turn.RETURN
    assert machine.woken(2, "b") is Turn.RETURN
    assert machine.away == 2, "the leader and b"
    assert machine.arrive(3, "a") is Turn.LEAD  # a is back first and leads
    assert machine.start_term(), "b is still away"
    assert (machine.leader_waits, machine.notify) == (True, False)
    assert machine.arrive(4, "b") is Turn.SLEEP  # b is back
    assert (machine.leader_waits, machine.notify) == (False, True), "the leader is notified"


@pytest.mark.spec("ENG-45")
def test_a_leader_waiting_for_two_writers_is_not_notified_when_only_one_is_back() -> None:
    machine: CommitMachine[str] = CommitMachine()
    assert machine.arrive(1, "a") is Turn.LEAD
    assert machine.arrive(2, "b") is Turn.SLEEP
    assert machine.arrive(3, "c") is Turn.SLEEP
    machine.took_effect(3, leading=True)
    machine.wake.clear()
    assert machine.end_term(1) is Turn.RETURN
    assert machine.woken(2, "b") is Turn.RETURN
    machine.wake.clear()
    assert machine.woken(3, "c") is Turn.RETURN
    assert machine.away == 3
    assert machine.arrive(4, "a") is Turn.LEAD
    assert machine.start_term(), "b and c are away"
    assert machine.arrive(5, "b") is Turn.SLEEP
    assert (machine.leader_waits, machine.notify) == (True, False), "c is still away"
    assert machine.arrive(6, "c") is Turn.SLEEP
    assert (machine.leader_waits, machine.notify) == (False, True), "the last one is back"


@pytest.mark.spec("ENG-45", "ENG-58")
def test_a_sync_that_leaves_no_writer_away_ends_the_leaders_wait() -> None:
    """Found by the model check: sync() (or a rotation, or close()) commits too, and covers the
    writers the leader waits for; it used to leave the leader waiting out its whole bound."""
    machine = one_writer_away()
    machine.took_effect(3, leading=False)  # sync() made ticket 3 durable: nobody is awaited
    assert (machine.leader_waits, machine.notify) == (False, True)


@pytest.mark.spec("ENG-45")
def test_a_sync_that_covers_a_sleeper_keeps_the_leader_waiting_for_it() -> None:
    """The writers a sync() covered are away in their turn (ENG-45): the leader waiting for
    the writers of the last commit goes on waiting, now for the one the sync covered."""
    machine: CommitMachine[str] = CommitMachine()
    assert machine.arrive(1, "a") is Turn.LEAD
    assert machine.arrive(2, "b") is Turn.SLEEP
    assert machine.arrive(3, "c") is Turn.SLEEP
    machine.took_effect(3, leading=True)
    machine.wake.clear()
    assert machine.end_term(1) is Turn.RETURN
    assert machine.woken(2, "b") is Turn.RETURN
    machine.wake.clear()
    assert machine.woken(3, "c") is Turn.RETURN
    assert machine.arrive(4, "a") is Turn.LEAD
    assert machine.start_term(), "b and c are away"
    assert machine.arrive(5, "b") is Turn.SLEEP
    machine.took_effect(5, leading=False)  # sync() made tickets 4 and 5 durable: b is away
    assert machine.away == 1
    assert (machine.leader_waits, machine.notify) == (True, False)


@pytest.mark.spec("REC-10", "ENG-59")
def test_a_failure_wakes_every_sleeper_to_raise_and_the_leader_raises_too() -> None:
    machine: CommitMachine[str] = CommitMachine()
    assert machine.arrive(1, "a") is Turn.LEAD
    for ticket, token in [(2, "b"), (3, "c")]:
        assert machine.arrive(ticket, token) is Turn.SLEEP
    machine.fail()
    assert machine.wake == ["b", "c"]
    machine.wake.clear()
    assert machine.woken(2, "b") is Turn.RAISE
    assert machine.woken(3, "c") is Turn.RAISE
    assert machine.end_term(1) is Turn.RAISE
    assert machine.arrive(4, "a") is Turn.RAISE
    assert not machine.leading


@pytest.mark.spec("ENG-29")
def test_an_abandoning_sleeper_passes_on_what_its_waking_owed() -> None:
    machine: CommitMachine[str] = CommitMachine()
    assert machine.arrive(1, "a") is Turn.LEAD
    for ticket, token in [(2, "b"), (3, "c")]:
        assert machine.arrive(ticket, token) is Turn.SLEEP
    machine.took_effect(3, leading=True)
    assert machine.wake == ["b"]
    machine.wake.clear()
    machine.abandon(2, "b")  # b's lock was released, but a signal's exception came first
    assert machine.wake == ["c"]
    machine.wake.clear()
    machine.abandon(3, "c")
    assert machine.wake == []


@pytest.mark.spec("ENG-59")
def test_close_waits_while_a_term_runs_and_is_notified_when_it_lapses() -> None:
    machine: CommitMachine[str] = CommitMachine()
    assert not machine.closing()
    assert machine.arrive(1, "a") is Turn.LEAD
    assert machine.closing()
    assert lead_one_commit(machine, 1, 1) is Turn.RETURN
    assert machine.notify
    assert not machine.closing()


def one_writer_away() -> CommitMachine[str]:
    """a led a commit that covered b; a is back and leads, waiting for b (ENG-45)."""
    machine: CommitMachine[str] = CommitMachine()
    assert machine.arrive(1, "a") is Turn.LEAD
    assert machine.arrive(2, "b") is Turn.SLEEP
    machine.took_effect(2, leading=True)
    machine.wake.clear()
    assert machine.end_term(1) is Turn.RETURN
    assert machine.woken(2, "b") is Turn.RETURN
    assert machine.arrive(3, "a") is Turn.LEAD
    assert machine.start_term()
    return machine


@pytest.mark.spec("ENG-45")
def test_a_leader_whose_wait_reached_its_bound_is_waited_on_by_nobody() -> None:
    """The whole state is compared after each event: a flag left set would have the writer
    coming back, or the next commit, notify a wait that no longer runs."""
    machine = one_writer_away()
    machine.stop_waiting()
    assert machine == CommitMachine(durable=2, leading=True, away=1)
    machine.took_effect(3, leading=True)
    assert machine == CommitMachine(durable=3, leading=True, away=1)
    assert machine.end_term(3) is Turn.RETURN
    assert machine == CommitMachine(durable=3, away=1)
    assert machine.arrive(4, "b") is Turn.LEAD
    assert machine == CommitMachine(durable=3, leading=True)


@pytest.mark.spec("ENG-45", "ENG-59")
def test_a_term_cut_during_the_leaders_wait_ends_the_wait() -> None:
    """A signal's exception in the leader's wait ends its term at once (the driver's
    ``finally``): nobody waits any more, and b coming back notifies nobody."""
    machine = one_writer_away()
    assert machine.end_term(3) is Turn.RAISE
    assert machine == CommitMachine(durable=2, away=1)
    assert machine.arrive(4, "b") is Turn.LEAD
    assert machine == CommitMachine(durable=2, leading=True)


@pytest.mark.spec("ENG-59")
def test_the_term_close_waited_for_leaves_close_waiting_no_more() -> None:
    machine: CommitMachine[str] = CommitMachine()
    assert machine.arrive(1, "a") is Turn.LEAD
    assert machine.closing()
    assert machine == CommitMachine(leading=True, closer_waits=True)
    assert lead_one_commit(machine, 1, 1) is Turn.RETURN
    assert machine == CommitMachine(durable=1, away=1, notify=True)


@pytest.mark.spec("ENG-58", "ENG-29")
def test_an_event_out_of_the_drivers_protocol_fails_the_assertion_naming_its_rule() -> None:
    """The machine's asserts are its protocol: a driver that breaks it is told which rule."""
    with pytest.raises(AssertionError) as caught:
        CommitMachine[str]().start_term()
    assert str(caught.value) == "only the leader starts a term"

    handed: CommitMachine[str] = CommitMachine()
    assert handed.arrive(1, "a") is Turn.LEAD
    assert handed.arrive(2, "b") is Turn.SLEEP
    assert handed.end_term(1) is Turn.RAISE
    assert handed.baton == "b"
    with pytest.raises(AssertionError) as caught:
        handed.start_term()  # b leads only once it has woken and taken the baton
    assert str(caught.value) == "the leader took the baton when it woke"

    uncovered: CommitMachine[str] = CommitMachine()
    assert uncovered.arrive(1, "a") is Turn.LEAD
    assert uncovered.arrive(2, "b") is Turn.SLEEP
    with pytest.raises(AssertionError) as caught:
        uncovered.woken(2, "b")  # released by neither a commit, the baton nor fail()
    assert str(caught.value) == "only fail() wakes a sleeper its ticket's commit did not cover"


# ----------------------------------------------------------------------------- the model


@dataclass(frozen=True, slots=True)
class Config:
    writers: int
    writes: int = 1
    """Writes per writer, each appended and then waited for: a second one comes back (ENG-45)."""
    fsync_fails: bool = True
    """One fsync, a leader's or close()'s, may fail instead of returning."""
    close: bool = True
    """A thread calls close() once, at any point."""
    signal: bool = True
    """One sleeper may leave on a signal's exception, woken or not."""
    sync: bool = False
    """A thread calls sync() once, at any point: a commit by no leader, as a rotation's."""


@dataclass(frozen=True, slots=True)
class Thread:
    pc: str
    write: int = 0
    """How many of its writes this writer has begun."""
    ticket: int = 0
    target: int = 0
    notified: bool = False
    """Waiting on the store's condition, it was notified."""


LEADING = frozenset({"lead_start", "lead_wait", "lead_flush", "lead_fsync", "lead_fail"})
LEADING_PCS = LEADING | {"lead_apply", "lead_end"}
SLEEPING = "sleeping"


class InvariantError(AssertionError):
    pass


class World:
    """One state of the store as group commit sees it: the machine, each thread's program
    counter, and what the file and the index hold."""

    __slots__ = (
        "abandoned",
        "applied",
        "closed",
        "failed",
        "fails",
        "last_ticket",
        "machine",
        "released",
        "signals",
        "synced",
        "threads",
    )

    def __init__(self, config: Config) -> None:
        self.machine: CommitMachine[str] = CommitMachine()
        self.threads: list[Thread] = [Thread("append") for _ in range(config.writers)]
        if config.sync:
            self.threads.append(Thread("sync"))
        if config.close:
            self.threads.append(Thread("close_start"))
        self.last_ticket = 0
        self.synced = 0
        """The highest ticket a returned fsync covered."""
        self.applied = 0
        """The highest ticket whose effect was applied."""
        self.failed = False
        self.closed = False
        self.released: set[str] = set()
        """Sleepers' tokens released and not yet seen by their sleeper."""
        self.fails = 1 if config.fsync_fails else 0
        self.signals = 1 if config.signal else 0
        self.abandoned = 0

    def clone(self) -> World:
        other = World.__new__(World)
        m = self.machine
        other.machine = replace(m, sleepers=list(m.sleepers), relay=deque(m.relay), wake=[])
        other.threads = list(self.threads)
        other.last_ticket = self.last_ticket
        other.synced = self.synced
        other.applied = self.applied
        other.failed = self.failed
        other.closed = self.closed
        other.released = set(self.released)
        other.fails = self.fails
        other.signals = self.signals
        other.abandoned = self.abandoned
        return other

    def key(self) -> tuple[object, ...]:
        m = self.machine
        return (
            m.durable,
            m.leading,
            tuple(m.sleepers),
            tuple(m.relay),
            m.baton,
            m.away,
            m.leader_waits,
            m.closer_waits,
            m.failed,
            tuple(self.threads),
            self.last_ticket,
            self.synced,
            self.applied,
            self.failed,
            self.closed,
            tuple(sorted(self.released)),
            self.fails,
            self.signals,
        )


def token(index: int, thread: Thread) -> str:
    """The token writer ``index`` sleeps on in its current write: interned, as the machine
    tells tokens apart by identity."""
    return sys.intern(f"w{index}.{thread.write}")


class Model:
    """Every step a thread can take from a world, as the store's driver would take it."""

    def __init__(self, config: Config) -> None:
        self.config = config

    # Each step returns the successor worlds (a copy per branch) of thread ``i``; none if the
    # thread cannot move.

    def steps(self, world: World, i: int) -> list[World]:
        thread = world.threads[i]
        handler = getattr(self, "step_" + thread.pc, None)
        if handler is None:
            return []
        nexts: list[World] = handler(world, i, thread)
        return nexts

    def outputs(self, world: World) -> None:
        """Do what the driver does with the machine's outputs: release tokens, notify."""
        m = world.machine
        for released in m.wake:
            owners = [
                n
                for n, t in enumerate(world.threads)
                if t.pc == SLEEPING and token(n, t) == released
            ]
            if not owners or released in world.released:
                raise InvariantError(f"ENG-59: {released} released, but nobody sleeps on it now")
            world.released.add(released)
        m.wake.clear()
        if m.notify:
            m.notify = False
            for n, t in enumerate(world.threads):
                if t.pc in ("lead_wait", "close_wait"):
                    world.threads[n] = replace(t, notified=True)

    def finish(self, world: World, i: int, thread: Thread, turn: Turn) -> None:
        if turn is Turn.RETURN:
            if thread.ticket > world.synced:
                raise InvariantError(f"ENG-14: ticket {thread.ticket} acknowledged, not fsynced")
            if thread.ticket > world.applied:
                raise InvariantError(f"ENG-14: ticket {thread.ticket} acknowledged, not in effect")
        else:
            assert turn is Turn.RAISE, turn
            if not (world.failed or world.closed):
                raise InvariantError(f"REC-10: ticket {thread.ticket} refused by an open store")
            if thread.ticket <= world.machine.durable:
                raise InvariantError(f"ENG-59: ticket {thread.ticket} refused, though durable")
            world.threads[i] = replace(thread, pc="done")
            return
        if thread.write < self.config.writes:
            world.threads[i] = replace(thread, pc="append", ticket=0)
        else:
            world.threads[i] = replace(thread, pc="done")

    def step_append(self, world: World, i: int, thread: Thread) -> list[World]:
        w = world.clone()
        if w.failed or w.closed:
            w.threads[i] = replace(thread, pc="done")  # the append itself raises
            return [w]
        w.last_ticket += 1
        w.threads[i] = replace(thread, pc="arrive", write=thread.write + 1, ticket=w.last_ticket)
        if not world.fails:
            return [w]
        failed = world.clone()  # the write itself fails (REC-10), under the write lock
        failed.fails -= 1
        failed.failed = True
        failed.machine.fail()
        self.outputs(failed)
        failed.threads[i] = replace(thread, pc="done")
        return [w, failed]

    def step_arrive(self, world: World, i: int, thread: Thread) -> list[World]:
        w = world.clone()
        if w.closed:  # ENG-19: refused whatever the ticket, before the machine is asked
            w.threads[i] = replace(thread, pc="done")
            return [w]
        turn = w.machine.arrive(thread.ticket, token(i, thread))
        self.outputs(w)
        if turn is Turn.SLEEP:
            w.threads[i] = replace(thread, pc=SLEEPING)
        elif turn is Turn.LEAD:
            w.threads[i] = replace(thread, pc="lead_start")
        else:
            self.finish(w, i, thread, turn)
        return [w]

    def step_sleeping(self, world: World, i: int, thread: Thread) -> list[World]:
        mine = token(i, thread)
        nexts = []
        if mine in world.released:
            w = world.clone()
            w.released.discard(mine)
            turn = w.machine.woken(thread.ticket, mine)
            self.outputs(w)
            if turn is Turn.LEAD:
                w.threads[i] = replace(thread, pc="lead_start")
            else:
                self.finish(w, i, thread, turn)
            nexts.append(w)
        if world.signals:
            w = world.clone()
            w.signals -= 1
            w.abandoned += 1
            w.released.discard(mine)
            w.machine.abandon(thread.ticket, mine)
            self.outputs(w)
            w.threads[i] = replace(thread, pc="done")
            nexts.append(w)
        return nexts

    def step_lead_start(self, world: World, i: int, thread: Thread) -> list[World]:
        w = world.clone()
        waits = w.machine.start_term()
        w.threads[i] = replace(thread, pc="lead_wait" if waits else "lead_flush", notified=False)
        return [w]

    def step_lead_wait(self, world: World, i: int, thread: Thread) -> list[World]:
        # Notified or timed out, the leader goes on; only a timeout finds writers still away.
        w = world.clone()
        if w.machine.leader_waits:
            w.machine.stop_waiting()
        w.threads[i] = replace(thread, pc="lead_flush", notified=False)
        return [w]

    def step_lead_flush(self, world: World, i: int, thread: Thread) -> list[World]:
        w = world.clone()
        if w.failed or w.closed or w.machine.durable >= w.last_ticket:
            w.threads[i] = replace(thread, pc="lead_end")
        else:
            w.threads[i] = replace(thread, pc="lead_fsync", target=w.last_ticket)
        return [w]

    def step_lead_fsync(self, world: World, i: int, thread: Thread) -> list[World]:
        ok = world.clone()
        ok.synced = max(ok.synced, thread.target)
        ok.threads[i] = replace(thread, pc="lead_apply")
        nexts = [ok]
        if world.fails:
            failed = world.clone()
            failed.fails -= 1
            failed.failed = True  # the refusal, under the write lock; the machine learns next
            failed.threads[i] = replace(thread, pc="lead_fail")
            nexts.append(failed)
        return nexts

    def step_lead_fail(self, world: World, i: int, thread: Thread) -> list[World]:
        w = world.clone()
        w.machine.fail()
        self.outputs(w)
        w.threads[i] = replace(thread, pc="lead_end")
        return [w]

    def apply(self, world: World, target: int, *, leading: bool) -> None:
        """Take effect up to ``target``, as ``GroupCommit.take_effect`` does (write lock held)."""
        if target > world.synced:
            raise InvariantError(f"ENG-14: effects up to {target} applied, not fsynced")
        due = world.machine.due(target)
        if due and due.start != world.applied + 1:
            raise InvariantError(f"ENG-29: effects {due} applied after {world.applied}")
        if due:
            world.applied = due[-1]
        world.machine.took_effect(target, leading=leading)
        self.outputs(world)

    def step_lead_apply(self, world: World, i: int, thread: Thread) -> list[World]:
        w = world.clone()
        self.apply(w, thread.target, leading=True)
        w.threads[i] = replace(thread, pc="lead_end")
        return [w]

    def step_lead_end(self, world: World, i: int, thread: Thread) -> list[World]:
        w = world.clone()
        turn = w.machine.end_term(thread.ticket)
        self.outputs(w)
        self.finish(w, i, thread, turn)
        return [w]

    def step_close_start(self, world: World, i: int, thread: Thread) -> list[World]:
        w = world.clone()
        waits = w.machine.closing()
        if not waits and any(t.pc in LEADING_PCS for t in w.threads):
            raise InvariantError("ENG-59: close() goes on while a leader's term runs")
        w.threads[i] = replace(thread, pc="close_wait" if waits else "close_sync", notified=False)
        return [w]

    def step_close_wait(self, world: World, i: int, thread: Thread) -> list[World]:
        if not thread.notified:
            return []
        return self.step_close_start(world, i, thread)

    def sync(self, world: World, i: int, thread: Thread, *, close: bool) -> list[World]:
        """Store._flush_and_sync under the write lock (the fsync may fail), as sync(), a
        rotation and close() run it; then close() closes."""
        if world.failed or world.closed:
            w = world.clone()
            w.closed = w.closed or close
            w.threads[i] = replace(thread, pc="done")
            return [w]
        ok = world.clone()
        ok.synced = ok.last_ticket
        self.apply(ok, ok.last_ticket, leading=False)
        nexts = [ok]
        if world.fails:
            failed = world.clone()
            failed.fails -= 1
            failed.failed = True
            failed.machine.fail()
            self.outputs(failed)
            nexts.append(failed)
        for w in nexts:
            w.closed = close
            w.threads[i] = replace(thread, pc="done")
        return nexts

    def step_sync(self, world: World, i: int, thread: Thread) -> list[World]:
        return self.sync(world, i, thread, close=False)

    def step_close_sync(self, world: World, i: int, thread: Thread) -> list[World]:
        return self.sync(world, i, thread, close=True)


def check_state(world: World) -> None:
    """ENG-58, ENG-59: what must hold in every reachable state."""
    m = world.machine
    assert not m.wake, "outputs are taken within the step"
    assert not m.notify, "outputs are taken within the step"
    leaders = [n for n, t in enumerate(world.threads) if t.pc in LEADING_PCS]
    baton = 0 if m.baton is None else 1
    if len(leaders) + baton > 1:
        raise InvariantError(f"ENG-58: two leaders at once: threads {leaders}, baton {m.baton}")
    if m.leading != (len(leaders) + baton == 1):
        raise InvariantError(f"ENG-58: leading={m.leading} with leaders {leaders}, baton {m.baton}")
    if m.durable != world.applied:
        raise InvariantError(f"ENG-58: durable {m.durable}, but effects applied to {world.applied}")
    if m.durable > world.synced:
        raise InvariantError(f"ENG-58: durable {m.durable}, but fsynced only to {world.synced}")
    tickets = [ticket for ticket, _ in m.sleepers]
    if any(ticket <= m.durable for ticket in tickets):
        raise InvariantError(f"ENG-58: sleepers {m.sleepers} include one already durable")
    for n, t in enumerate(world.threads):
        if t.pc == "lead_wait" and not t.notified and not (m.leader_waits and m.away):
            raise InvariantError(f"ENG-45: leader {n} waits for nobody and was not notified")


def explore(config: Config) -> tuple[int, int, set[str]]:
    """Breadth first over every interleaving; returns (states, transitions, the program
    counters some thread reached)."""
    model = Model(config)
    first = World(config)
    parents: dict[tuple[object, ...], tuple[tuple[object, ...], str] | None] = {first.key(): None}
    frontier = [first]
    transitions = 0
    reached: set[str] = set()
    while frontier:
        following: list[World] = []
        for world in frontier:
            reached.update(thread.pc for thread in world.threads)
            key = world.key()
            try:
                check_state(world)
                moved = False
                for i, thread in enumerate(world.threads):
                    for successor in model.steps(world, i):
                        transitions += 1
                        if successor.abandoned == world.abandoned:
                            moved = True
                        following_key = successor.key()
                        if following_key not in parents:
                            parents[following_key] = (
                                key,
                                f"thread {i} {thread.pc}, ticket {thread.ticket}",
                            )
                            following.append(successor)
                if not moved:
                    stuck = [(n, t) for n, t in enumerate(world.threads) if t.pc != "done"]
                    if stuck:
                        raise InvariantError(f"ENG-59: nothing moves, yet {stuck} never returned")
            except InvariantError as error:
                raise InvariantError(f"{error}\n{trace(parents, key)}") from None
        frontier = following
    return len(parents), transitions, reached


def trace(
    parents: dict[tuple[object, ...], tuple[tuple[object, ...], str] | None],
    key: tuple[object, ...],
) -> str:
    """The steps from the first state to ``key``, one a line, for a failure's message."""
    steps: list[str] = []
    link = parents[key]
    while link is not None:
        key, step = link
        steps.append(step)
        link = parents[key]
    return "\n".join(f"{n:3} {step}" for n, step in enumerate(reversed(steps), 1))


NIGHTLY = os.environ.get("HYPOTHESIS_PROFILE") == "nightly"

CONFIGS = [
    (Config(writers=2, writes=2), 15_000),
    (Config(writers=3), 45_000),
    (Config(writers=2, sync=True), 5_000),
]
if NIGHTLY:  # about a minute more
    CONFIGS += [
        (Config(writers=3, sync=True), 190_000),
        (Config(writers=3, writes=2, close=False, signal=False), 290_000),
        (Config(writers=2, writes=3), 65_000),
    ]


@pytest.mark.spec("ENG-58", "ENG-59", "ENG-29", "ENG-45", "ENG-14", "REC-10")
@pytest.mark.parametrize(("config", "at_least"), CONFIGS, ids=str)
def test_every_interleaving_keeps_group_commit_correct(config: Config, at_least: int) -> None:
    states, transitions, reached = explore(config)
    print(f"{config}: {states} states, {transitions} transitions")
    assert states >= at_least, "the enumeration explored too little to prove anything"
    expected = {"sleeping", "lead_fsync", "lead_apply", "lead_end", "done"}
    expected |= {"lead_wait"} if config.writes > 1 else set()
    expected |= {"lead_fail"} if config.fsync_fails else set()
    expected |= {"close_wait"} if config.close else set()
    assert expected <= reached, f"never reached: {expected - reached}"


@pytest.mark.spec("ENG-27")
def test_a_callback_bound_weakly_raises_closed_once_its_store_is_collected() -> None:
    """The group commit holds its store's methods weakly, so that a store dropped without
    close() is collected (and closed) at once; a call after that says the store is closed."""

    class Owner:
        def double(self, value: int) -> int:
            return 2 * value

    owner = Owner()
    call = weakly(Owner.double, owner)
    assert call(4) == 8
    del owner
    with pytest.raises(StoreClosedError) as caught:
        call(4)
    assert str(caught.value) == "the store was closed when it was collected"
