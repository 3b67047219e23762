"""Group commit's state as a pure machine: events in, what to do out (ENG-29, ENG-45, ENG-58).

No threads, locks, files or clock here: :class:`catlog.store.Store` drives this machine from its
threads, holding its ``_commit_mutex`` around every call, and does what each call answers: wake
the sleepers in :attr:`CommitMachine.wake`, notify its condition when :attr:`CommitMachine.notify`
says so, lead, sleep, return or raise. Being pure, the machine can be explored exhaustively:
``tests/store/test_commit_machine.py`` runs every interleaving of a few writers' events through
it and checks ENG-58 and ENG-59 in every state it reaches, and on every path.

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
from dataclasses import dataclass, field
from enum import Enum
from typing import Final, Generic, TypeVar

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
