"""Opening a data directory: lock it, clear what a crash left, and rebuild the key index.

The steps, in order (spec/engine.md ENG-25, ENG-20; spec/recovery.md REC-3 .. REC-19):

1. create the directory if it is missing, and take the lock on ``LOCK`` (ENG-20);
2. remove the outputs of an interrupted compaction (REC-18);
3. for each segment, oldest first: apply its hint if there is a valid one (ENG-32, REC-15),
   else replay its records into the index (ENG-13); damage is judged by :mod:`catlog.recovery`
   (a pure verdict), and a torn tail of the newest segment is copied aside and cut (REC-4);
4. fsync the directory and its parent, so every name relied on is durable (REC-9).

What the OS fails on the way is raised as :class:`~catlog.errors.OpenError`, naming the step
(ENG-49). The result is an :class:`Opened`, which the store takes over.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import posixpath
from dataclasses import dataclass, field
from typing import Final

from . import codec
from .codec import (
    PACKED_VERSION,
    SEGMENT_HEADER_SIZE,
    decode_segment_header,
    encode_segment_header,
    find_next_record,
)
from .errors import (
    CatlogError,
    CorruptionError,
    LockedError,
    OpenError,
    UnsupportedFormatError,
)
from .filecache import FileCache, remedy
from .fs import File, FileLock, FileSystem
from .hint import HintProblem, apply_hint, decode_hint, hint_name, segment_crc_of
from .index import FORMER_MAX_SEGMENT_SIZE, MAX_SEGMENT_SIZE, MAX_SLOTS, Expiring, older_segment
from .recovery import Action, Verdict, judge_damage, judge_header
from .segment import COMPACTING_SUFFIX, ActiveSegment, Segment, parse_segment_name, segment_name
from .walk import replay_packed, replay_plain

log = logging.getLogger("catlog")

LOCK_NAME: Final = "LOCK"


@dataclass(frozen=True, slots=True)
class TailRepair:
    """A torn tail cut off at open (REC-4): where, how many bytes, why, and where they were kept."""

    segment: str
    offset: int
    length: int
    reason: str
    quarantine: str | None


@dataclass(slots=True)
class Opened:
    """What opening found: the store starts from it (ENG-13)."""

    lock: FileLock
    slots: list[Segment]
    """Every segment by slot (catlog.index), oldest first, the active one last."""
    active: ActiveSegment
    index: dict[bytes, int]
    expiring: Expiring
    """The expiry of each key whose newest record found is an expiring PUT (ENG-33)."""
    files: FileCache
    """ENG-65: the open files of the sealed segments, which the store goes on using."""
    tail_repairs: list[TailRepair] = field(default_factory=list)


def _parent(path: str) -> str:
    return posixpath.dirname(path) or "."


def open_directory(fs: FileSystem, path: str, max_open_files: int) -> Opened:
    """ENG-25, ENG-13: create and lock ``path``, then recover what it holds; see the module.

    At most ``max_open_files`` sealed segments are held open at once, on the way too (ENG-65).
    """
    opening = _Opening(fs, path, FileCache(fs, max_open_files))
    try:
        return opening.run()
    except OSError as exc:
        if isinstance(exc, CatlogError):
            raise
        raise opening.failed(exc) from exc


class _Opening:
    """One open of one directory: the state its steps share, and the step under way."""

    def __init__(self, fs: FileSystem, path: str, files: FileCache) -> None:
        self._fs = fs
        self.path = path
        self._files = files
        self._index: dict[bytes, int] = {}
        self._expiring: Expiring = {}
        self._slots: list[Segment] = []
        self._tail_repairs: list[TailRepair] = []
        self._doing = f"creating the data directory {path}"
        """ENG-49: the step under way, named by the error if the OS fails it."""

    def run(self) -> Opened:
        created = self._missing_directories()
        self._fs.makedirs(self.path)
        self._doing = f"locking {self.path}/{LOCK_NAME}"
        lock = self._take_lock()
        try:
            self._doing = f"removing compaction leftovers in {self.path}"
            self._remove_compaction_leftovers()
            active = self._recover()
            # REC-9: every name relied on, the directories' own included, is durable from here.
            for directory in dict.fromkeys([self.path, *map(_parent, [self.path, *created])]):
                self._doing = f"fsyncing the directory {directory}"
                self._fs.sync_dir(directory)
        except BaseException:
            for segment in self._slots:
                segment.file.close()
            lock.release()
            raise
        return Opened(
            lock,
            self._slots,
            active,
            self._index,
            self._expiring,
            self._files,
            self._tail_repairs,
        )

    def failed(self, exc: OSError) -> OpenError:
        """ENG-49: say which step of opening the OS failed, on which path, in words."""
        doing = self._doing
        if doing.startswith("creating the data directory"):
            if isinstance(exc, FileExistsError):
                doing = f"data directory {self.path} is a file, not a directory"
            elif isinstance(exc, NotADirectoryError):
                doing = f"a parent of the data directory {self.path} is a file, not a directory"
        if exc.errno == errno.ENOSPC:
            doing = f"no space left on device while {doing}"
        return OpenError(self.path, doing, exc, remedy(exc))

    def _missing_directories(self) -> list[str]:
        """The data directory and those of its ancestors that do not exist yet (ENG-25)."""
        missing: list[str] = []
        directory = self.path
        while not self._fs.exists(directory):
            missing.append(directory)
            parent = _parent(directory)
            if parent == directory:
                break
            directory = parent
        return missing

    def _take_lock(self) -> FileLock:
        """ENG-20: one open store per directory, across processes and within one."""
        lock_path = f"{self.path}/{LOCK_NAME}"
        try:
            return self._fs.lock(lock_path)
        except BlockingIOError:
            holder = ""
            try:
                file = self._fs.open(lock_path)
                try:
                    pid = file.pread(32, 0).decode("ascii", "replace").strip()
                finally:
                    file.close()
                holder = f" (pid {pid})" if pid else ""
            except OSError:
                pass
            raise LockedError(
                f"{self.path} is already open in another store{holder}; close it first"
            ) from None

    def _remove_compaction_leftovers(self) -> None:
        """REC-18: outputs of an interrupted compaction hold only copies; remove them first."""
        leftovers = [n for n in self._fs.listdir(self.path) if n.endswith(COMPACTING_SUFFIX)]
        for name in leftovers:
            if parse_segment_name(name.removesuffix(COMPACTING_SUFFIX)) is not None:
                log.warning("%s: removing %s, left by an interrupted compaction", self.path, name)
                self._fs.remove(f"{self.path}/{name}")
        if leftovers:
            self._fs.sync_dir(self.path)

    def _recover(self) -> ActiveSegment:
        """ENG-13, REC-3 .. REC-7: replay segments oldest first; make the newest writable."""
        numbers = sorted(
            n for n in map(parse_segment_name, self._fs.listdir(self.path)) if n is not None
        )
        if len(numbers) > MAX_SLOTS:
            raise CatlogError(f"{self.path} holds {len(numbers)} segments; at most {MAX_SLOTS}")
        if not numbers:
            self._doing = f"creating {self.path}/{segment_name(1)}"
            active = ActiveSegment.create(self._fs, self.path, 1, slot=0)
            self._slots.append(active)
            return active
        names = set(self._fs.listdir(self.path)) if len(numbers) > 1 else set()
        for slot, number in enumerate(numbers[:-1]):
            self._doing = f"reading {self.path}/{segment_name(number)}"
            file = self._fs.open(f"{self.path}/{segment_name(number)}")
            segment = Segment(file, number, slot)
            self._slots.append(segment)
            packed = self._apply_hint(file, number, slot) if hint_name(number) in names else None
            segment.packed = self._replay(file, slot, newest=False) if packed is None else packed
            self._files.adopt(segment, file)  # ENG-69: may close an older one to make room
        number, slot = numbers[-1], len(numbers) - 1
        self._doing = f"reading {self.path}/{segment_name(number)}"
        file = self._fs.open(f"{self.path}/{segment_name(number)}", writable=True)
        newest = Segment(file, number, slot)
        self._slots.append(newest)
        if self._replay(file, slot, newest=True):
            # REC-19: never append to a packed segment; start the next one after it.
            newest.packed = True
            self._files.adopt(newest, None)  # ENG-66: opened for reading when read
            file.close()  # no reader can hold it yet
            self._doing = f"creating {self.path}/{segment_name(number + 1)}"
            active = ActiveSegment.create(self._fs, self.path, number + 1, slot=slot + 1)
            self._slots.append(active)
            return active
        active = ActiveSegment(file, number, slot)
        self._slots[slot] = active
        return active

    def _apply_hint(self, segment: File, number: int, slot: int) -> bool | None:
        """ENG-32, REC-15: apply the segment's hint if it is valid and matches; else ``None``.

        Returns whether the hinted segment is packed (FMT-26). Never writes: a hint that does not
        serve is ignored with a warning (REC-13 holds).
        """
        path = f"{self.path}/{hint_name(number)}"
        size = segment.size()
        if size > MAX_SEGMENT_SIZE:
            return None  # replay reports it (FMT-12, FMT-36)
        self._doing = f"reading the hint {path}"
        file = self._fs.open(path)
        try:
            hint = decode_hint(file.pread(file.size(), 0))
        finally:
            file.close()
        if isinstance(hint, HintProblem):
            log.warning("%s: %s; scanning %s instead", path, hint.value, segment_name(number))
            return None
        header = segment.pread(SEGMENT_HEADER_SIZE, 0)
        if not (
            hint.names(number, size, header)
            and hint.segment_crc == segment_crc_of(segment.pread, size)
        ):
            log.warning(
                "%s: stale hint (it describes another state of %s); scanning the segment instead",
                path,
                segment_name(number),
            )
            return None
        problem = apply_hint(hint, slot, self._index, self._expiring)
        if problem is not None:
            log.warning("%s: %s; scanning %s instead", path, problem.value, segment_name(number))
            return None
        return hint.packed

    def _replay(self, file: File, slot: int, *, newest: bool) -> bool:
        """Apply one segment to the index, repairing a torn tail of the newest one.

        Returns whether the segment is packed (FMT-26); damage in a packed one is never a torn
        tail (REC-19).
        """
        size = file.size()
        if size > FORMER_MAX_SEGMENT_SIZE:
            raise CorruptionError(
                file.path, FORMER_MAX_SEGMENT_SIZE, "segment longer than the format allows"
            )
        if size > MAX_SEGMENT_SIZE:
            raise CatlogError(f"{file.path}: {older_segment(size, self.path)}")
        data = file.pread(size, 0)
        status, version = decode_segment_header(data)
        packed = status is codec.HeaderStatus.OK and version == PACKED_VERSION
        newest = newest and not packed
        follower = None
        if status is not codec.HeaderStatus.OK and size > SEGMENT_HEADER_SIZE:
            follower = codec.find_follower_of_header(data)[0]
        verdict = judge_header(status, size=size, newest=newest, next_record=follower)
        if verdict.action is Action.ACCEPT:
            replay = replay_packed if packed else replay_plain
            result = replay(data, SEGMENT_HEADER_SIZE, slot, self._index, self._expiring)
            if result.damage is None:
                return packed
            follower = find_next_record(data, result.damage.offset + 1, packed=packed)
            verdict = judge_damage(result.damage, newest=newest, next_record=follower)
        if verdict.action is Action.UNSUPPORTED:
            raise UnsupportedFormatError(file.path, version)
        if verdict.action is Action.CORRUPT:
            raise CorruptionError(file.path, verdict.offset, verdict.reason)
        assert verdict.action is Action.TRUNCATE_TAIL, "judge_* returns one of four actions"
        self._cut_tail(file, data, verdict)
        return False

    def _cut_tail(self, file: File, data: bytes, verdict: Verdict) -> None:
        """REC-4: copy the torn bytes aside, then truncate; a lost header is written anew."""
        name = file.path.rsplit("/", 1)[-1]
        torn = data[verdict.offset :]
        quarantine = None
        if torn:
            self._doing = f"quarantining the torn tail of {file.path}"
            quarantine = self._quarantine(name, verdict.offset, torn)
            log.warning(
                "%s@%d: torn tail of %d bytes cut off (%s); kept in %s",
                name,
                verdict.offset,
                len(torn),
                verdict.reason,
                quarantine,
            )
        self._doing = f"cutting the torn tail off {file.path}"
        file.truncate(verdict.offset)
        if verdict.offset == 0:
            file.append(encode_segment_header())
        file.sync()
        self._tail_repairs.append(
            TailRepair(name, verdict.offset, len(torn), verdict.reason, quarantine)
        )

    def _quarantine(self, segment: str, offset: int, torn: bytes) -> str:
        """REC-4: the cut bytes go to ``<segment>.torn-<offset>``, made durable before the cut."""
        existing = set(self._fs.listdir(self.path))
        name = f"{segment}.torn-{offset}"
        suffix = 1
        while name in existing:
            suffix += 1
            name = f"{segment}.torn-{offset}.{suffix}"
        path = f"{self.path}/{name}"
        file = self._fs.open(path, writable=True, create=True)
        try:
            file.append(torn)
            file.sync()
        except OSError:
            file.close()
            with contextlib.suppress(OSError):  # ENG-49: leave no empty or partial copy
                self._fs.remove(path)
            raise
        file.close()
        self._fs.sync_dir(self.path)
        return name
