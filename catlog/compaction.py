"""Compaction: copy the live records of the sealed segments into new ones, then remove the old.

ENG-39 is the procedure, ENG-40 its report and its failures, ENG-41 the dead-byte estimate that
starts one, ENG-42 the background thread; ENG-72 .. ENG-75 which segments one compaction takes
and the slots it keeps in reserve, and ENG-76 the trigger by segment count (the arithmetic of
both is :mod:`catlog.compactionplan`), ENG-77 the write amplification. In three steps:

1. under the store's lock, rotate past a gap of segment numbers reserved for the outputs, so
   that every input is sealed and every later write lands after the outputs in number order;
2. walk each input, copying each record the index still points at (and that has not expired)
   into the next output (:class:`Outputs`); each finished output is fsynced, hinted, renamed
   into place, and only then do the index entries move to it (``install``);
3. once nothing live points into an input, remove the inputs one by one, oldest first, each
   removal durable before the next.

The copy loops, one for each segment version (FMT-4, FMT-27), are in :mod:`catlog.walk`, beside
the other loops over a segment's records that are written out for speed (the compaction
benchmark, bench/README.md, needs them).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from . import walk
from .codec import (
    SEGMENT_HEADER_SIZE,
)
from .compactionoutputs import Outputs, check_writable
from .compactionplan import choose_inputs, due_by, output_bound
from .errors import CatlogError, CompactionError, CorruptionError, StoreClosedError
from .hint import hint_name
from .index import SLOT_SHIFT, unpack_location
from .keyspace import PURGE_STEP
from .rotation import rotate
from .segment import Segment, segment_name

if TYPE_CHECKING:
    from .writer import Writer

log = logging.getLogger("catlog")

RETRY_FIRST: Final = 1.0
RETRY_MOST: Final = 300.0
"""ENG-57: after a failed compaction, the next background one waits 1 s, doubling up to 5 min."""

_CLOCK_CHECK_EVERY: Final = walk.PAUSE_EVERY
_WORK_BETWEEN_PAUSES: Final = 0.001
_PAUSE: Final = 0.0001
"""ENG-99: the copy loop and the final check sleep this long after each turn of work (checked
every ``_CLOCK_CHECK_EVERY`` records): ``_WORK_BETWEEN_PAUSES`` in the caller's thread, the
store's ``compaction_yield_ms`` in a background compaction. Sleeping releases the GIL long enough
for a thread waiting for it, such as a server's event loop, to take it; otherwise that thread
waits for the interpreter's 5 ms switch interval at every turn. The latency and soak benchmarks
(bench/README.md) need them; a millisecond's turns add at most a tenth to the copy's own time."""

_compactor = threading.local()
"""``background`` is set in the thread of a background compaction (ENG-42)."""


@dataclass(frozen=True, slots=True)
class CompactionReport:
    """ENG-40: what one compaction did."""

    input_bytes: int
    output_bytes: int
    records_copied: int
    segments_removed: int
    segments_written: int
    seconds: float

    @property
    def reclaimed_bytes(self) -> int:
        return self.input_bytes - self.output_bytes


class Compaction:
    """One store's compactions: at most one runs at a time (ENG-40), maybe in a thread (ENG-42).

    Holds no reference to the store, which is passed to each call: a store dropped without
    ``close()`` must still be collected at once (ENG-27).
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        """ENG-40: held for the whole of a compaction; ``close()`` takes it to wait for one."""
        self.thread: threading.Thread | None = None
        """ENG-42: the background compaction last started."""
        self.error: str | None = None
        """ENG-57: why the last compaction failed, or ``None`` if it succeeded (or none ran)."""
        self._retry_at: float | None = None
        """ENG-57: no background compaction starts before this reading of the store's clock."""
        self._backoff = RETRY_FIRST
        self.written_bytes = 0
        """ENG-77: the bytes appended to outputs since the store was opened. Lock: ``lock``."""
        self._plan: tuple[list[Segment], int, int] | None = None
        """ENG-73: the inputs the trigger chose at a rotation, the first output number, ``G``."""
        self._through = 0
        self._total = 0
        self._finished = True
        """A full compaction's rounds (ENG-75): the newest segment it takes, the bytes of those
        that existed when it began, and whether the last round took the newest."""

    def run(
        self,
        writer: Writer,
        progress: Callable[[int, int], None] | None,
        max_bytes: int | None = None,
        *,
        trigger: bool = False,
    ) -> CompactionReport:
        """ENG-39, ENG-40: one compaction of ``store``; a second waits for the first.

        With ``max_bytes`` it takes the inputs ENG-73 chooses, or for the ``trigger``'s
        compaction those its rotation chose (:meth:`plan`); without, every segment (ENG-39),
        in as many rounds as the free slots call for (ENG-75), each round's inputs the oldest
        segments left of those that existed when it began.
        """
        with self.lock:
            if max_bytes is not None:
                return self._run(writer, progress, max_bytes, None, trigger=trigger)
            started = writer.clock.monotonic()
            report = self._run(writer, progress, None, None)
            through, done = self._through, report.input_bytes
            while not self._finished:
                more = self._run(writer, progress, None, through, done)
                done += more.input_bytes
                report = CompactionReport(
                    input_bytes=report.input_bytes + more.input_bytes,
                    output_bytes=report.output_bytes + more.output_bytes,
                    records_copied=report.records_copied + more.records_copied,
                    segments_removed=report.segments_removed + more.segments_removed,
                    segments_written=report.segments_written + more.segments_written,
                    seconds=writer.clock.monotonic() - started,
                )
            return report

    def _run(
        self,
        writer: Writer,
        progress: Callable[[int, int], None] | None,
        max_bytes: int | None,
        through: int | None,
        before: int = 0,
        *,
        trigger: bool = False,
    ) -> CompactionReport:
        """One round: choose the inputs, then ENG-39's three steps. ``through`` is the number of
        the newest segment a full compaction takes (``None`` in its first round, which sets
        :attr:`_through` and the total progress reports); :attr:`_finished` says whether this
        round took it. Only the ``trigger``'s compaction takes the plan its rotation made
        (ENG-73); every compaction drops it, so one that runs first makes the trigger's choose
        anew."""
        started = writer.clock.monotonic()
        with writer.lock:
            if writer.closed:
                raise StoreClosedError(f"{writer.path} is closed")
            if writer.refusal is not None:
                raise writer.refused()
            planned, self._plan = self._plan, None
            if trigger and planned is not None:
                inputs, first, gap = self._sealed(writer, planned)
                self._finished = True
            else:
                inputs, first, gap = self._choose_and_seal(writer, max_bytes, through)
            if not inputs:
                return CompactionReport(0, 0, 0, 0, 0, 0.0)
            if not gap:
                return self._remove_only(writer, inputs, started)
        total = sum(segment.size() for segment in inputs)
        whole = self._total if max_bytes is None else total
        return self._copy_and_remove(
            writer,
            progress,
            inputs,
            first=first,
            gap=gap,
            whole=whole,
            started=started,
            before=before,
        )

    def _choose_and_seal(
        self, writer: Writer, max_bytes: int | None, through: int | None
    ) -> tuple[list[Segment], int, int]:
        """ENG-39 step 1, ENG-73, ENG-75: choose a round's inputs and seal them, rotating past
        ``G`` numbers; returns the sealed inputs, the first output number and ``G`` (0: remove
        the inputs, copy nothing). Lock held."""
        candidates = writer.segments.order if max_bytes is None else writer.segments.order[:-1]
        if through is None:
            self._through = writer.active.number
            self._total = sum(segment.size() for segment in writer.segments.order)
        else:
            candidates = [segment for segment in candidates if segment.number <= through]
        free = writer.segments.max_segments - writer.segments.in_use()
        if free < 2:
            inputs = dead_prefix(writer, candidates)
            self._finished = max_bytes is not None or inputs == candidates
        else:
            dead = writer.keyspace.slot_dead
            disk = writer.segments.disk_bytes()
            count = choose_inputs(
                [(segment.size(), dead[segment.slot]) for segment in candidates],
                segment_size=writer.segment_size,
                free_slots=free,
                max_bytes=max_bytes,
                worth=writer.keyspace.dead / disk if disk else 0.0,
            )
            inputs = candidates[:count]
            self._finished = max_bytes is not None or inputs == candidates
        if not inputs or free < 2:
            return inputs, 0, 0
        total = sum(segment.size() for segment in inputs)
        gap = output_bound(total, writer.segment_size)
        newest_sealed = writer.segments.order[-2].number if len(writer.segments.order) > 1 else 0
        if (
            writer.active not in inputs
            and writer.active.number - newest_sealed > gap
            and (max_bytes is not None or newest_sealed >= self._through)  # ENG-75
        ):
            writer.flush_and_sync()  # ENG-39: as a seal would, without sealing
            return inputs, newest_sealed + 1, gap  # in numbers an earlier compaction left free
        first = writer.active.number + 1
        rotate(writer, gap=gap)
        return (
            [writer.segments.slots[segment.slot] for segment in inputs],
            first,
            gap,
        )  # sealed views

    def plan(self, writer: Writer) -> int:
        """ENG-41, ENG-73: choose the trigger's inputs at the rotation that made it due, before
        the new active segment is created, and return ``G``, the numbers that rotation skips
        for the outputs (0: nothing to take). The compaction then needs no rotation of its own,
        which would seal an almost empty segment each time. It forgets no expired key first
        (ENG-63): it runs in a write, which forgets no more than ENG-61 allows. Lock held."""
        candidates = list(
            writer.segments.order
        )  # the active one among them: this rotation seals it
        dead = writer.keyspace.slot_dead
        disk = writer.segments.disk_bytes()
        count = choose_inputs(
            [(segment.size(), dead[segment.slot]) for segment in candidates],
            segment_size=writer.segment_size,
            free_slots=writer.segments.max_segments
            - writer.segments.in_use()
            - 1,  # the new segment's
            max_bytes=writer.options.compact_max_bytes,
            worth=writer.keyspace.dead / disk if disk else 0.0,
        )
        if not count:
            return 0
        gap = output_bound(
            sum(segment.size() for segment in candidates[:count]), writer.segment_size
        )
        self._plan = (candidates[:count], writer.active.number + 1, gap)
        return gap

    @staticmethod
    def _sealed(
        writer: Writer, plan: tuple[list[Segment], int, int]
    ) -> tuple[list[Segment], int, int]:
        """The plan :meth:`plan` made, with the sealed views of its inputs. Every input is
        still there, sealed: the rotation that made the plan sealed the one that was active
        and started the trigger's thread (or failed the store, REC-10, and nothing runs); no
        other plan is made while that thread lives (:meth:`due`); only a compaction removes
        segments, and every compaction drops the plan first. Lock held."""
        inputs, first, gap = plan
        return [writer.segments.slots[segment.slot] for segment in inputs], first, gap

    def _copy_and_remove(
        self,
        writer: Writer,
        progress: Callable[[int, int], None] | None,
        inputs: list[Segment],
        *,
        first: int,
        gap: int,
        whole: int,
        started: float,
        before: int,
    ) -> CompactionReport:
        """ENG-39's steps 2 and 3, the inputs sealed and ``first .. first + gap`` free."""
        total = sum(segment.size() for segment in inputs)
        # ENG-43: hints queued for inputs are written now, none once an input is removed; no
        # input can be queued after this point, since every later rotation seals a later segment.
        writer.hints.join()
        outputs = Outputs(writer, first, first + gap)
        done = before
        try:
            for segment in inputs:
                check_writable(writer)
                data = segment.pread(segment.size(), 0)
                copy_live(writer, segment, data, outputs)
                done += len(data)
                if progress is not None:
                    progress(done, whole)
            outputs.finish()
        except CompactionError as exc:
            outputs.abandon()
            self.written_bytes += outputs.appended
            self.error = str(exc)
            self._retry_at = writer.clock.monotonic() + self._backoff
            self._backoff = min(2 * self._backoff, RETRY_MOST)
            raise
        self.written_bytes += outputs.appended
        check_nothing_left(writer, inputs, outputs.skipped)
        settle_writes(writer)
        for segment in inputs:
            remove_segment(writer, segment)
        self.error, self._retry_at, self._backoff = None, None, RETRY_FIRST
        return CompactionReport(
            input_bytes=total,
            output_bytes=outputs.bytes,
            records_copied=outputs.records,
            segments_removed=len(inputs),
            segments_written=outputs.written,
            seconds=writer.clock.monotonic() - started,
        )

    def _remove_only(
        self, writer: Writer, inputs: list[Segment], started: float
    ) -> CompactionReport:
        """ENG-75: a round with no slot to spare removes the oldest segments that hold no live
        record, with no rotation and no output: step 3 of ENG-39 alone, safe for the reason
        step 3 is. Called with the store's lock held; releases it while removing."""
        total = sum(segment.size() for segment in inputs)
        writer.lock.release()
        try:
            writer.hints.join()
            check_nothing_left(writer, inputs, [])
            settle_writes(writer)
            for segment in inputs:
                remove_segment(writer, segment)
        finally:
            writer.lock.acquire()
        self.error, self._retry_at, self._backoff = None, None, RETRY_FIRST
        return CompactionReport(total, 0, 0, len(inputs), 0, writer.clock.monotonic() - started)

    def due(self, writer: Writer) -> bool:
        """ENG-41, ENG-76: whether the dead bytes, or the segments open, call for a compaction
        now. Lock held."""
        threshold = writer.options.compact_threshold
        if threshold is None or self.running():
            return False
        if self._retry_at is not None and writer.clock.monotonic() < self._retry_at:
            return False  # ENG-57: the last one failed; wait out the backoff
        return due_by(
            writer.keyspace.dead,
            writer.segments.disk_bytes(),
            threshold,
            writer.segment_size,
            in_use=writer.segments.in_use(),
            max_segments=writer.segments.max_segments,
        )

    def running(self) -> bool:
        """ENG-42: whether a compaction runs, in the caller's thread or the background one."""
        compactor = self.thread
        return self.lock.locked() or (compactor is not None and compactor.is_alive())

    def running_in_background(self) -> bool:
        """ENG-98: whether a background compaction runs in a thread other than the caller's."""
        compactor = self.thread
        return (
            compactor is not None
            and compactor.is_alive()
            and compactor is not threading.current_thread()
        )

    def wait_in_background(self, timeout: float) -> None:
        """ENG-98: wait for the background compaction to end, at most ``timeout`` seconds."""
        compactor = self.thread
        if compactor is not None and compactor is not threading.current_thread():
            compactor.join(timeout)

    def wait(self, writer: Writer, deadline: float | None) -> bool:
        """ENG-83: block until no compaction runs; ``False`` if ``time.monotonic()`` passed
        ``deadline`` first. Takes the write lock to look, and none while it waits."""
        while True:
            with writer.lock:
                if writer.closed:
                    raise StoreClosedError(f"{writer.path} is closed")
                if not self.running():
                    return True
                compactor = self.thread
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            if compactor is not None and compactor.is_alive():
                compactor.join(left)
            elif self.lock.acquire(timeout=-1 if left is None else left):
                self.lock.release()  # a compact() call in another thread ended

    def start(self, writer: Writer, max_bytes: int | None = None) -> None:
        """ENG-41, ENG-42: compact ``store`` in a background thread (the store's lock held):
        bounded by ``max_bytes`` when the trigger starts it (ENG-73), whole when asked to."""
        self.thread = threading.Thread(
            target=self._background,
            args=(writer, max_bytes),
            name=f"catlog-compact {writer.path}",
            daemon=True,
        )
        self.thread.start()

    def _background(self, writer: Writer, max_bytes: int | None) -> None:
        _compactor.background = True
        try:
            report = self.run(writer, None, max_bytes, trigger=max_bytes is not None)
        except StoreClosedError:
            return
        except CatlogError:
            log.exception("%s: background compaction failed", writer.path)
            return
        log.info(
            "%s: compacted %d segments into %d, reclaiming %d bytes in %.1f s",
            writer.path,
            report.segments_removed,
            report.segments_written,
            report.reclaimed_bytes,
            report.seconds,
        )


def dead_prefix(writer: Writer, candidates: list[Segment]) -> list[Segment]:
    """ENG-75: the oldest sealed segments that no index entry points into. Lock held.

    ``candidates`` is never empty: with fewer than 2 slots free at least 31 segments are open,
    so a bounded compaction has sealed ones; a full one's first round has the active segment,
    and a later round comes only after one that left some of its candidates, which nothing but
    this run (holding the compaction lock) removes.
    """
    live = {unpack_location(location)[0] for location in writer.index.values()}
    live.add(writer.active.slot)
    inputs: list[Segment] = []
    for segment in candidates:
        if segment.slot in live:
            break
        inputs.append(segment)
    if not inputs:
        raise CompactionError(
            f"{writer.path}/{segment_name(candidates[0].number)}",
            f"all {writer.segments.max_segments} segment slots are in use and the oldest"
            " segment holds live records: there is no slot for an output",
        )
    return inputs


def copy_live(writer: Writer, segment: Segment, data: bytes, outputs: Outputs) -> None:
    """ENG-39 step 2 for one input: copy each live record (or member) it holds, packed.

    The walk is :func:`catlog.walk.copy_plain`, or :func:`catlog.walk.copy_packed` for a packed
    input (an earlier compaction's output). Every record's crc is checked, as replay checks it,
    so that a walk through a segment damaged since it was opened stops with an error instead of
    losing its way.
    """
    copy = walk.copy_packed if segment.packed else walk.copy_plain
    damage = copy(
        data,
        SEGMENT_HEADER_SIZE,
        segment.slot,
        index=writer.index,
        expires=writer.expires,
        expired=writer.expired,
        copies=outputs,
        pause=pauser(writer),
    )
    if damage is not None:
        raise CorruptionError(segment.file.path, damage.offset, damage.reason)


def pauser(writer: Writer) -> Callable[[], None]:
    """ENG-99: what the copy walks and the final check call every :data:`_CLOCK_CHECK_EVERY`
    records: a sleep of ``_PAUSE`` once a turn of work has passed since the last one."""
    clock = time.perf_counter
    paused = clock()
    work = (
        writer.options.compaction_yield_ms / 1000
        if getattr(_compactor, "background", False)
        else _WORK_BETWEEN_PAUSES
    )

    def pause() -> None:
        nonlocal paused
        if clock() - paused >= work:
            time.sleep(_PAUSE)
            paused = clock()

    return pause


def check_nothing_left(
    writer: Writer, inputs: list[Segment], skipped: list[tuple[bytes, int]]
) -> None:
    """ENG-39, ENG-55: before any input is removed, no key may still point into one.

    The keys copying ``skipped`` as expired are forgotten first, as purging would forget them
    (ENG-34), if the index still points at the record skipped: left in the index, they would
    point into a removed segment, and a clock set back would make them read as damage (ENG-55).
    They are forgotten ``PURGE_STEP`` at a time, taking the write lock for each step (ENG-63).
    Copying judged every other record of every input, so the rest holds unless something outside
    the rules changed them meanwhile; it is checked anyway, because the next step deletes data,
    on copies of the index's keys and locations taken in one hold of the lock (two C-level list
    copies: a list of ``items()`` would build a tuple per key and hold the interpreter ten times
    as long), then walked with the copy loops' pauses (ENG-39), so that a server's event loop
    is not kept waiting for the whole index (the latency and soak benchmarks).
    """
    slots = {segment.slot for segment in inputs}
    for start in range(0, len(skipped), PURGE_STEP):
        with writer.lock:
            index = writer.index
            for key, location in skipped[start : start + PURGE_STEP]:
                if index.get(key) == location:
                    writer.keyspace.forget(key)  # ENG-41: its record becomes dead
    with writer.lock:
        keys = list(writer.index)
        locations = list(writer.index.values())
    pause = pauser(writer)
    for number, location in enumerate(locations):
        if not number % _CLOCK_CHECK_EVERY:
            pause()
        # inline unpack_location: its slot, once per key of the index (the latency benchmark)
        if location >> SLOT_SHIFT in slots:
            slot, offset, _ = unpack_location(location)
            raise CorruptionError(
                writer.segments.slots[slot].file.path,
                offset,
                f"compaction did not copy the live record of key {keys[number]!r:.60}; "
                "no segment was removed",
            )


def remove_segment(writer: Writer, segment: Segment) -> None:
    """ENG-39 step 3: remove one input, durably, before the next (see the clause's note)."""
    name = segment_name(segment.number)
    segment.keep_open()  # ENG-68: a snapshot may read it once its name is gone
    try:
        writer.fs.remove(f"{writer.path}/{name}")
        hint = f"{writer.path}/{hint_name(segment.number)}"
        if writer.fs.exists(hint):
            writer.fs.remove(hint)
        writer.fs.sync_dir(writer.path)
    except OSError as exc:
        with writer.lock:
            raise writer.fail(f"removing {name} after compaction", exc) from exc
    with writer.lock:
        keyspace = writer.keyspace
        keyspace.dead -= keyspace.slot_dead[segment.slot]  # ENG-41: its share goes with it
        writer.segments.remove(segment)


def settle_writes(writer: Writer) -> None:
    """ENG-78: make every write appended so far durable before an input is removed.

    Called after :func:`check_nothing_left`, so every write that made an input's record dead
    (an overwrite or a delete the copy saw and skipped for) was appended before it. Under
    ``interval`` and ``never`` such a write may be in the active segment's buffer only, while
    the input holds the one durable copy of the value it replaced. Under ``always`` a write takes
    effect only once durable, so nothing is owed. A failing fsync fails the writer (REC-10)
    before anything is removed.
    """
    if writer.options.fsync == "always":
        return
    with writer.lock:
        if writer.refusal is not None:
            raise writer.refused()
        writer.flush_and_sync()
