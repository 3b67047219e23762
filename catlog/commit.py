"""Group commit: its state as a pure machine, and the driver that runs it from the writers'
threads (ENG-14, ENG-28, ENG-29, ENG-44, ENG-45, ENG-58, ENG-59, REC-10); and the interval
flusher's loop (ENG-15, ENG-16).

:class:`CommitMachine` has no threads, locks, files or clock: events in, what to do out.
:class:`GroupCommit`, which the store owns, drives it, holding its commit mutex around every call,
and does what each call answers: wake the sleepers in :attr:`CommitMachine.wake`, notify its
condition when :attr:`CommitMachine.notify` says so, lead, sleep, return or raise. Being pure, the
machine can be explored exhaustively: ``tests/store/test_commit_machine.py`` runs every
interleaving of a few writers' events through it and checks ENG-58 and ENG-59 in every state it
reaches, and on every path.

Theory of operation. A writer under ``fsync="always"`` appends its record, which gets a
*ticket* (ENG-28), then waits for that ticket to be durable: it *arrives*. The first to arrive
with no term running *leads*: its term is one fsync of everything appended so far, then the
effects of the writes it covered, in ticket order, then the hand-over. Writers who arrive during
a term *sleep*, each on a token of its own (the store's: a held lock, which waking releases).

Waking is what costs, not the fsync (the group-commit benchmark): so a commit wakes only the
first sleeper it covered, and puts the others in the *relay*; each woken sleeper wakes the next
as it starts, so woken writers do not all queue for the GIL at once. At the end of its term the
leader hands the *baton* to the oldest sleeper not covered, which leads next; with none asleep
the lead lapses, and the next writer to arrive leads. A leader first waits for the writers the
last commit covered (those *away*) to come back, so that one fsync covers them all (ENG-45); the
store bounds that wait by the last fsync's duration, a clock this machine does not hold.

=================  =================================  =========================================
event              when                               answer
=================  =================================  =========================================
``arrive``         a writer waits for its ticket      RETURN if durable, RAISE if failed,
                   (and offers a token to sleep on)   SLEEP if a term runs, else LEAD
``woken``          a sleeper's token was released     LEAD if it holds the baton, RETURN if
                                                      durable, else RAISE; wakes the relay's next
``abandon``        a sleeper leaves unwoken (signal)  does what its waking owed
``start_term``     a leader begins                    whether to wait for writers away
``stop_waiting``   that wait timed out
``due``            a commit's fsync returned          the tickets whose effects to apply
``took_effect``    ... and they were applied          durable advances; wakes the relay's first
``end_term``       a leader ends, however             hands the baton or lapses; RETURN or RAISE
``fail``           a write or fsync failed (REC-10)   wakes every sleeper, which will RAISE
``closing``        close() waits for a term to end    whether to wait (again)
=================  =================================  =========================================
"""

from __future__ import annotations

import collections
import logging
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Final, Generic, TypeVar

from .errors import CatlogError, StoreClosedError, fresh_copy
from .fs import File

if TYPE_CHECKING:
    from .store import Store

log = logging.getLogger("catlog")

W = TypeVar("W")
"""A sleeper's token, told apart by identity: the store's is a held ``threading.Lock``; the
model check's, an interned name."""


class Turn(Enum):
    """What a waiting writer does next."""

    RETURN = "its ticket is durable and has taken effect: return"
    RAISE = "the store refuses writes and its ticket is not durable: raise the refusal"
    SLEEP = "a term runs: sleep on a token of its own until it is released"
    LEAD = "lead the next term"


# An Enum member's attribute access costs 0.1 us in CPython 3.11, here on the group-commit
# benchmark's path: module constants cost a global lookup.
_RETURN: Final = Turn.RETURN
_RAISE: Final = Turn.RAISE
_SLEEP: Final = Turn.SLEEP
_LEAD: Final = Turn.LEAD


@dataclass(slots=True)
class CommitMachine(Generic[W]):
    """The group-commit state. Every method requires the caller's commit mutex held.

    Afterwards the caller releases each token in :attr:`wake` and clears the list, and if
    :attr:`notify` is set, clears it and notifies the threads waiting in :meth:`start_term`'s
    wait or in :meth:`closing`.
    """

    durable: int = 0
    """The highest ticket durable *and* taken effect. Changed only by :meth:`took_effect`, which
    the store calls holding its write lock too: so holding either lock, it may be read."""
    leading: bool = False
    """A term runs: a leader leads, or the baton is on its way to a sleeper."""
    sleepers: list[tuple[int, W]] = field(default_factory=list)
    """Writers asleep, not yet covered, oldest first: ``(ticket, token)``."""
    relay: collections.deque[W] = field(default_factory=collections.deque)
    """Sleepers a commit covered, not woken yet: each woken sleeper wakes the next."""
    baton: W | None = None
    """The token released to make its sleeper the next leader, until that sleeper starts."""
    away: int = 0
    """ENG-45: writers the last commit covered that have not arrived again."""
    leader_waits: bool = False
    """The leader waits for the writers away (ENG-45)."""
    closer_waits: bool = False
    """close() waits for the running term to end."""
    failed: bool = False
    """A write or fsync failed (REC-10): no ticket not yet durable will ever be."""
    wake: list[W] = field(default_factory=list)
    """Output: the tokens to release, in order."""
    notify: bool = False
    """Output: notify the threads waiting for :attr:`leader_waits` or :attr:`closer_waits`."""

    def arrive(self, ticket: int, token: W) -> Turn:
        """A writer waits for ``ticket``; on SLEEP it is to sleep on ``token`` until the token
        is released (then :meth:`woken`), or leave (then :meth:`abandon`)."""
        if self.away:
            self.away -= 1
            if not self.away and self.leader_waits:
                self.leader_waits = False  # the last one the leader waited for is back
                self.notify = True
        if self.durable >= ticket:
            return _RETURN
        if self.failed:
            return _RAISE
        if self.leading:
            self.sleepers.append((ticket, token))
            return _SLEEP
        self.leading = True
        return _LEAD

    def woken(self, ticket: int, token: W) -> Turn:
        """The sleeper on ``token`` woke: pass the relay on (at most one token to wake), then
        lead, return or raise."""
        if self.relay:
            self.wake.append(self.relay.popleft())
        if self.baton is token:
            self.baton = None
            return _LEAD
        if self.durable >= ticket:
            return _RETURN
        assert self.failed, "only fail() wakes a sleeper its ticket's commit did not cover"
        return _RAISE

    def abandon(self, ticket: int, token: W) -> None:
        """The sleeper on ``token`` leaves without waiting for its wake (a signal's exception):
        take it out, or, if it was woken already, do what its waking owed the others."""
        if (ticket, token) in self.sleepers:
            self.sleepers.remove((ticket, token))
        elif token in self.relay:
            self.relay.remove(token)
        else:
            if self.relay:
                self.wake.append(self.relay.popleft())
            if self.baton is token:
                self.baton = None
                self.end_term(ticket)  # it ends the term it was handed and never began

    def start_term(self) -> bool:
        """A leader begins its term: True if it is to wait for the writers away (ENG-45), until
        :attr:`leader_waits` is clear or the wait's bound passes (then :meth:`stop_waiting`).
        A lone writer never waits: it is the one that came back."""
        assert self.leading, "only the leader starts a term"
        assert self.baton is None, "the leader took the baton when it woke"
        self.leader_waits = self.away > 0
        return self.leader_waits

    def stop_waiting(self) -> None:
        """ENG-45: the leader's wait reached its bound with writers still away."""
        self.leader_waits = False

    def due(self, target: int) -> range:
        """The fsync that began after ticket ``target`` was appended returned: the tickets whose
        effects the caller applies, in order, before :meth:`took_effect`. Changes nothing."""
        return range(self.durable + 1, target + 1)

    def took_effect(self, target: int, *, leading: bool) -> None:
        """The writes up to ``target`` are durable and have taken effect: the covered sleepers
        join the relay, and its first is woken. They, and the leader if ``leading`` (a sync()
        or a rotation commits too, not leading), are the writers ENG-45's next leader awaits."""
        self.durable = max(self.durable, target)  # a sync() may have gone further meanwhile
        self.away = 1 if leading else 0
        sleepers = self.sleepers
        if sleepers:
            durable = self.durable
            covered = [token for ticket, token in sleepers if ticket <= durable]
            if covered:
                self.sleepers = [entry for entry in sleepers if entry[0] > durable]
                self.away += len(covered)
                self.relay.extend(covered)
            if self.relay:
                self.wake.append(self.relay.popleft())
        if self.leader_waits and not self.away:  # a sync() covered no sleeper: none to await
            self.leader_waits = False
            self.notify = True

    def end_term(self, ticket: int) -> Turn:
        """The leader of ``ticket`` ends its term, whether its commit succeeded, failed or
        had nothing to do: RETURN if its ticket is durable, else RAISE."""
        self.leader_waits = False  # set still if a signal's exception cut the leader's wait
        if self.sleepers:  # the lead goes to the oldest sleeper, or lapses
            _, baton = self.sleepers.pop(0)
            self.baton = baton
            self.wake.append(baton)
        else:
            self.leading = False
            if self.closer_waits:
                self.closer_waits = False
                self.notify = True
        return _RETURN if self.durable >= ticket else _RAISE

    def fail(self) -> None:
        """REC-10: a write or fsync failed. Every sleeper is woken, to raise the refusal; the
        relay and the baton go on, as the tickets they carry are durable or their leader's
        commit will find the refusal."""
        self.failed = True
        self.wake.extend(token for _, token in self.sleepers)
        self.sleepers = []

    def closing(self) -> bool:
        """close() asks whether a term runs; True: it waits for :attr:`notify`, then asks again."""
        self.closer_waits = self.leading
        return self.leading


Effects = list[tuple[int, bytes, int | None, int]]
"""Writes appended under "always" whose effects wait for their fsync, in ticket order:
``(ticket, key, location or None for a delete, expiry or 0)`` (ENG-58)."""

Owner = TypeVar("Owner")
Arg = TypeVar("Arg")
R = TypeVar("R")


def weakly(function: Callable[[Owner, Arg], R], owner: Owner) -> Callable[[Arg], R]:
    """``function`` bound to ``owner`` (a method of one argument), without keeping ``owner``
    alive.

    The store owns its :class:`GroupCommit`; were the driver to hold the store's bound methods,
    the two would form a cycle, and a store dropped without ``close()`` would wait for the cycle
    collector to be closed rather than be closed at once (ENG-27). Once the owner is gone the
    call raises :class:`StoreClosedError`. One argument, spelled out, and a plain weak reference
    rather than ``weakref.WeakMethod``: the durable-put benchmark pays for two calls per fsync.
    """
    ref = weakref.ref(owner)

    def call(argument: Arg) -> R:
        target = ref()
        if target is None:
            raise StoreClosedError("the store was closed when it was collected")
        return function(target, argument)

    return call


class GroupCommit:
    """The threads' side of group commit: drives a :class:`CommitMachine` (ENG-14, ENG-28,
    ENG-29, ENG-44, ENG-45, ENG-58, ENG-59, REC-10).

    It holds the machine and the *commit mutex* that guards it (the store's lock order places
    it after the write lock: a thread holding the mutex takes no other lock), a condition on
    that mutex for the two waits (ENG-45's leader, and ``close()`` waiting for a term to end),
    and each sleeper's own lock. What it needs of the store it is given, not taken: the write
    lock, the list of effects waiting for their fsync, and three callbacks, each called with
    the write lock held: ``flush(durable)`` flushes the active segment and returns the newest
    ticket and the file to fsync, or ``None`` if there is nothing to commit or writes are
    refused; ``fail(exc)`` makes the store refuse writes after a failed fsync and returns the
    error (REC-10); ``apply(effects)`` makes durable writes' effects visible, in order. The
    store tells it why writes are refused, by :meth:`fail` and :meth:`close`: a writer left
    waiting raises a copy of that error.
    """

    def __init__(
        self,
        write_lock: threading.Lock,
        pending: Effects,
        *,
        flush: Callable[[int], tuple[int, File] | None],
        fail: Callable[[OSError], CatlogError],
        apply: Callable[[Effects], None],
    ) -> None:
        self._write_lock = write_lock
        self._pending = pending
        """The store's effects waiting for their fsync (ENG-58). Lock: the write lock."""
        self._flush = flush
        self._fail = fail
        self._apply = apply
        self._mutex = threading.Lock()
        """The commit mutex: guards ``_group``. Taken directly (a C-level ``with``), not
        through ``_condition``, whose Python-level enter and exit the durable-put benchmark
        measures."""
        self._condition = threading.Condition(self._mutex)
        """For the two waits on ``_group``: ENG-45's leader, and close() for a term to end."""
        self._group: CommitMachine[threading.Lock] = CommitMachine()
        """Group commit's state; its tokens are held locks, released to wake. Lock: ``_mutex``;
        its ``durable`` may be read holding the write lock instead."""
        self._last_fsync = 0.0
        """How long the last group commit's fsync took, in seconds: the bound of ENG-45's wait."""
        self._closed = False
        """The store closed (ENG-19): a writer arriving raises at once. Lock: set holding the
        write lock, read holding ``_mutex``; a late reader meets the refusal in the machine."""
        self._refusal: CatlogError | None = None
        """Why writes are refused, as the store last said: its failure (REC-10), then its
        closing. Lock: set holding the write lock, before the machine can answer RAISE."""

    @property
    def durable(self) -> int:
        """The highest ticket durable and taken effect; read holding the write lock."""
        return self._group.durable

    def wait_durable(self, ticket: int) -> None:
        """ENG-14, ENG-29: return once the write with ``ticket`` is durable and has taken effect.

        The first waiter to find no fsync in flight leads; the others sleep, each on a lock of
        its own, until a commit covers them or the lead passes to them. The state and its rules
        are the machine's; this thread only does what each of its answers says, releasing the
        locks it names.

        In the main thread a signal handler's exception may come between any two steps, and
        while it waits for a lock: ``turn`` is what the machine last answered, so
        :meth:`_leave` knows what this writer owes the others at that moment (ENG-29).
        """
        group = self._group
        sleeper = threading.Lock()  # made outside the mutex: most writers sleep (group benchmark)
        sleeper.acquire()
        turn: Turn | None = None
        try:
            with self._mutex:
                if self._closed:
                    raise self._refused()  # ENG-19
                turn = group.arrive(ticket, sleeper)
                if group.notify:
                    self._wake()
            if turn is _SLEEP:
                sleeper.acquire()  # released exactly once, by whichever event answered SLEEP
                with self._mutex:
                    turn = group.woken(ticket, sleeper)
                    if group.wake:  # the relay's next, alone: _wake() inline (group benchmark)
                        group.wake.pop().release()
            if turn is _LEAD:  # a term: one group commit, then the lead passes on or lapses
                self._await_returning()
                self._lead_commit()
                with self._mutex:
                    turn = group.end_term(ticket)
                    if group.wake or group.notify:
                        self._wake()
        except BaseException:
            self._leave(ticket, sleeper, turn)
            raise
        if turn is _RAISE:
            raise self._refused()

    def _leave(self, ticket: int, sleeper: threading.Lock, turn: Turn | None) -> None:
        """A writer leaves on an exception, a signal's or a failed commit's: first it does what
        its last ``turn`` owed. A sleeper leaves the machine, passing on a wake it was given
        (:meth:`CommitMachine.abandon`); a leader ends its term, so the lead passes on
        (:meth:`CommitMachine.end_term`); any other owes only the wakes the machine named."""
        group = self._group
        with self._mutex:
            if turn is _SLEEP:
                group.abandon(ticket, sleeper)
            elif turn is _LEAD:
                group.end_term(ticket)
            self._wake()

    def _await_returning(self) -> None:
        """ENG-45: give the writers the last commit covered up to that commit's fsync time to
        come back. The bound is real time (a Condition's timeout), not the store's clock."""
        group = self._group
        with self._mutex:
            if not group.start_term():
                return
            deadline = time.monotonic() + self._last_fsync
            while group.leader_waits:
                left = deadline - time.monotonic()
                if left <= 0:
                    group.stop_waiting()
                    return
                self._condition.wait(left)

    def _wake(self) -> None:
        """Do what the machine's last event answered: release the sleepers' locks it names and
        notify the waits on ``_condition`` (``_mutex`` held)."""
        group = self._group
        for sleeper in group.wake:
            sleeper.release()
        group.wake.clear()
        if group.notify:
            group.notify = False
            self._condition.notify_all()

    def _lead_commit(self) -> None:
        """One group commit: flush under the write lock, fsync outside it, then take effect."""
        with self._write_lock:
            begun = self._flush(self._group.durable)
            if begun is None:
                return
            target, file = begun
        began = time.monotonic()
        try:
            file.sync()
        except OSError as exc:
            with self._write_lock:
                raise self._fail(exc) from exc
        with self._write_lock:
            self._last_fsync = time.monotonic() - began
            self.take_effect(target, leading=True)

    def take_effect(self, target: int, *, leading: bool = False) -> None:
        """Apply the deferred effects of the writes up to ``target``, now durable, in order.

        Called with the write lock held, which is what lets it read the machine's ``durable``
        without the mutex; a ``sync()`` or a rotation calls it too, not ``leading``. Writes are
        applied in ticket order, which is append order, so the index ends where replay after a
        crash would (REC-2); only then does the machine learn of it and wake the sleepers
        covered (ENG-58).
        """
        pending = self._pending
        if pending and self._group.due(target):
            done = len(pending)
            if pending[-1][0] > target:
                done = next(i for i, entry in enumerate(pending) if entry[0] > target)
            self._apply(pending[:done] if done < len(pending) else pending)
            del pending[:done]
        with self._mutex:
            group = self._group
            group.took_effect(target, leading=leading)
            if group.wake or group.notify:
                self._wake()

    def _refused(self) -> CatlogError:
        refusal = self._refusal
        assert refusal is not None, "RAISE is answered only once the store refuses writes"
        return fresh_copy(refusal)

    def fail(self, error: CatlogError) -> None:
        """REC-10: writes are refused from now on, with ``error``; each sleeper wakes to raise
        it. The store clears the effects waiting first (write lock held)."""
        self._refusal = error
        with self._mutex:
            self._group.fail()
            self._wake()

    def close(self, error: CatlogError) -> None:
        """ENG-19: the store is closed (write lock held); a writer arriving now raises
        ``error``. Called after :meth:`wait_for_term`."""
        self._refusal = error
        self._closed = True

    def wait_for_term(self) -> None:
        """ENG-59: close() waits for a running term to end before the files close."""
        with self._mutex:
            while self._group.closing():
                self._condition.wait()


class Flusher:
    """ENG-15, ENG-16: the thread that runs a store's :meth:`Store.tick` every ``interval``
    seconds under "interval" and "never", named ``catlog-flush <path>``."""

    def __init__(self, store: Store, interval: float) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=flush_in_background,
            args=(weakref.ref(store), self._stop, interval),
            name=f"catlog-flush {store.path}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """End the thread and wait for it (unless this is it: a store dropped in its tick)."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()


def flush_in_background(
    ref: weakref.ReferenceType[Store], stop: threading.Event, interval: float
) -> None:
    """ENG-15, ENG-16: the flusher thread's loop under "interval" and "never", one
    :meth:`Store.tick` per interval.

    It holds the store only during a tick, so that a store dropped without ``close()`` is still
    collected, and closed, at once (ENG-27); a bound method as the thread's target would keep
    it alive until the interpreter exits.
    """
    while not stop.wait(interval):
        store = ref()
        if store is None:
            return
        try:
            store.tick()
        except StoreClosedError:
            return
        except CatlogError:
            log.exception("%s: background flush failed", store.path)
        del store
