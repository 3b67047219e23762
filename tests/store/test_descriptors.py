"""A store of more segments than the process may hold descriptors (ENG-65 .. ENG-71).

Each sealed segment is read through a memory map, and a map keeps a descriptor of its own, so a
store that held every segment open could not open at all once it had more segments than
``ulimit -n``. These tests build such stores (the segment files written directly with the codec,
one record each, so that thousands take a second) and open them in a child process whose
``RLIMIT_NOFILE`` is lowered, counting its descriptors in ``/proc/self/fd``.
"""

from __future__ import annotations

import errno
import json
import os
import random
import resource
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Final

import pytest

import catlog
from catlog.filecache import FileCache, default_max_open_files
from catlog.segment import Segment, parse_segment_name
from catlog.simfs import SimFileSystem
from tests.crash.faulty_fs import FaultyFileSystem
from tests.store.segments import key_of, value_of, write_segments

BIG_SEGMENTS: Final = 20_000
"""Issue 17: 20,000 segments under ``ulimit -n 1024``, more than the 16,384 a slot of 14 bits
could name before FMT-12 gave it a 15th (ENG-74)."""
BIG_LIMIT: Final = 1024

needs_proc = pytest.mark.skipif(
    not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc/self/fd"
)


CHILD: Final = textwrap.dedent(
    """
    import json, os, resource, sys
    import catlog

    path, limit, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    options = json.loads(sys.argv[4])
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    peak = 0
    with catlog.open(path, **options) as store:
        peak = len(os.listdir("/proc/self/fd"))
        for number in range(1, count + 1):
            key = b"key-%06d" % number
            assert store.get(key) == b"value-%06d" % number, key
            if number % 97 == 0:
                peak = max(peak, len(os.listdir("/proc/self/fd")))
        for number in range(1, 301):
            store.put(b"new-%06d" % number, b"x" * 40)
        for number in range(1, 301):
            assert store.get(b"new-%06d" % number) == b"x" * 40
        peak = max(peak, len(os.listdir("/proc/self/fd")))
        segments = store.stats().segments
    print(json.dumps({"peak": peak, "segments": segments}))
    """
)


def run_child(path: Path, limit: int, count: int, **options: object) -> dict[str, int]:
    """Open ``path`` under ``ulimit -n limit``, read every key, write; the child's report."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), str(limit), str(count), json.dumps(options)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(catlog.__file__).parent.parent)},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report: dict[str, int] = json.loads(done.stdout)
    return report


@needs_proc
@pytest.mark.spec("ENG-65", "ENG-66", "ENG-67", "ENG-56", "ENG-69", "ENG-74")
def test_a_store_of_more_segments_than_the_descriptor_limit_opens_reads_and_writes(
    tmp_path: Path,
) -> None:
    write_segments(tmp_path / "data", BIG_SEGMENTS)
    report = run_child(tmp_path / "data", BIG_LIMIT, BIG_SEGMENTS, segment_size=1024, fsync="never")
    assert report["segments"] > BIG_SEGMENTS + 1  # the writes rotated
    assert report["peak"] < BIG_LIMIT


def opened_segments(fs: FaultyFileSystem) -> list[int]:
    """The numbers of the segment files opened, in order, by the calls traced so far."""
    names = [path.rsplit("/", 1)[-1] for operation, path in fs.trace if operation == "open"]
    return [number for number in map(parse_segment_name, names) if number is not None]


class ClockModel:
    """ENG-67 written out: the queue of open segments, each with its mark, oldest first."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.queue: dict[int, bool] = {}
        self.opened: list[int] = []

    def insert(self, number: int) -> None:
        self.queue[number] = True
        while len(self.queue) > self.budget:
            oldest, marked = next(iter(self.queue.items()))
            del self.queue[oldest]
            if marked:
                self.queue[oldest] = False

    def read(self, number: int) -> None:
        if number not in self.queue:
            self.opened.append(number)
            self.insert(number)
        elif not self.queue[number]:
            del self.queue[number]
            self.queue[number] = True


@pytest.mark.spec("ENG-66", "ENG-67", "ENG-69")
@pytest.mark.parametrize("budget", [1, 2, 3, 5])
def test_segments_are_opened_when_read_and_the_least_recently_used_closed(
    tmp_path: Path, budget: int
) -> None:
    """The files the store opens for a random sequence of reads are those the clause's CLOCK
    queue opens, from a state opening left: every sealed segment opened once, in order."""
    count = 12
    write_segments(tmp_path / "data", count)
    fs = FaultyFileSystem()
    model = ClockModel(budget)
    rng = random.Random(budget)
    with catlog.open(tmp_path / "data", fs=fs, max_open_files=budget) as store:
        assert opened_segments(fs)[:count] == list(range(1, count + 1))  # ENG-69: one pass
        for number in range(1, count + 1):
            model.insert(number)
        fs.trace.clear()
        hot = rng.sample(range(1, count + 1), budget)
        reads = [
            rng.choice(hot) if rng.random() < 0.7 else rng.randint(1, count) for _ in range(300)
        ]
        for number in reads:
            model.read(number)
            assert store.get(key_of(number)) == value_of(number)
        assert opened_segments(fs) == model.opened
        assert len(model.opened) < len(reads)


@pytest.mark.spec("ENG-66")
def test_reads_of_segments_held_open_open_nothing(tmp_path: Path) -> None:
    write_segments(tmp_path / "data", 20)
    fs = FaultyFileSystem()
    with catlog.open(tmp_path / "data", fs=fs, max_open_files=20) as store:
        fs.trace.clear()
        for _ in range(3):
            for number in range(1, 21):
                assert store.get(key_of(number)) == value_of(number)
        assert [op for op, _ in fs.trace if op != "pread"] == []


def descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


@needs_proc
@pytest.mark.spec("ENG-68", "ENG-65", "ENG-21")
def test_reads_under_a_tiny_budget_stay_right_while_writes_rotate_and_compaction_runs(
    tmp_path: Path,
) -> None:
    """Readers in threads open and close segments all the time (a budget of 2 over about a
    hundred segments) while a writer rotates and compactions remove what the readers read."""
    path = tmp_path / "data"
    before = descriptors()
    with catlog.open(path, segment_size=256, fsync="never", max_open_files=2) as store:
        keys = [b"k%03d" % i for i in range(120)]
        for key in keys:
            store.put(key, key + b":0" + b"." * 40)
        frozen = store.snapshot()
        expected = dict(frozen.items())
        stop = threading.Event()
        failures: list[str] = []

        def read(seed: int) -> None:
            rng = random.Random(seed)
            for _ in range(4000):
                key = rng.choice(keys)
                try:
                    value = store.get(key)
                    old = frozen.get(key)
                except Exception as exc:  # any error at all is the failure
                    failures.append(f"{key!r}: {exc!r}")
                    return
                if value is None or not value.startswith(key + b":"):
                    failures.append(f"{key!r} read {value!r}")
                if old != expected[key]:
                    failures.append(f"the snapshot's {key!r} read {old!r}")
                if stop.is_set():
                    return

        def write() -> None:
            rng = random.Random(7)
            for version in range(1, 600):
                key = rng.choice(keys)
                store.put(key, key + b":%d" % version + b"." * 40)
                if version % 150 == 0:
                    store.compact()

        readers = [threading.Thread(target=read, args=(seed,)) for seed in range(3)]
        for thread in readers:
            thread.start()
        try:
            write()
        finally:
            stop.set()
            for thread in readers:
                thread.join(timeout=60)
        assert not any(thread.is_alive() for thread in readers)
        assert failures == []
        assert dict(frozen.items()) == expected
        frozen.close()
        store.compact()
        assert descriptors() - before <= 2 + 4, "the budget, the active segment and the lock"
    assert descriptors() == before


REMEDIES: Final = {
    errno.EMFILE: "raise the descriptor limit (ulimit -n) or lower max_open_files",
    errno.ENFILE: "the system's table of open files is full (fs.file-max); lower max_open_files",
    errno.ENOMEM: "out of memory maps (vm.max_map_count) or address space; lower max_open_files"
    " or raise vm.max_map_count",
    errno.EACCES: "check the owner and permissions of the data directory and its files",
    errno.EPERM: "check the owner and permissions of the data directory and its files",
}


@pytest.mark.spec("ENG-70", "ENG-22")
@pytest.mark.parametrize("error", [*sorted(REMEDIES), errno.EIO])  # EIO: no remedy to add
def test_a_segment_that_cannot_be_opened_for_a_read_is_a_read_error_saying_what_to_do(
    tmp_path: Path, error: int
) -> None:
    write_segments(tmp_path / "data", 4)
    fs = FaultyFileSystem()
    with catlog.open(tmp_path / "data", fs=fs, max_open_files=1) as store:
        fs.fail("open", error=error)
        with pytest.raises(catlog.ReadError) as caught:
            store.get(key_of(1))  # opening left segment 3 open, the last it read
        path = f"{tmp_path / 'data'}/segment-00001.log"
        remedy = f"; {REMEDIES[error]}" if error in REMEDIES else ""
        assert str(caught.value) == (
            f"{path}@16: cannot open the segment to read it: {os.strerror(error)}{remedy}"
        )
        assert isinstance(caught.value, catlog.CatlogError)
        assert store.get(key_of(1)) == value_of(1), "the next read tries again"


@pytest.mark.spec("ENG-70", "ENG-49")
@pytest.mark.parametrize("error", sorted(REMEDIES))
def test_a_segment_that_cannot_be_opened_at_open_is_an_open_error_saying_what_to_do(
    tmp_path: Path, error: int
) -> None:
    write_segments(tmp_path / "data", 4)
    fs = FaultyFileSystem()
    fs.fail("open", nth=3, error=error)
    with pytest.raises(catlog.OpenError) as caught:
        catlog.open(tmp_path / "data", fs=fs)
    assert str(caught.value).endswith(f"{os.strerror(error)}; {REMEDIES[error]}")
    assert "segment-0000" in str(caught.value)


@pytest.mark.spec("ENG-69", "ENG-65")
def test_catlog_stats_opens_a_store_of_more_segments_than_its_limit(tmp_path: Path) -> None:
    """``catlog stats`` opens the store with the default budget (it used to fail with EMFILE)."""
    write_segments(tmp_path / "data", 600)
    limit = 128
    script = textwrap.dedent(
        f"""
        import resource, sys
        from catlog import cli
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, ({limit}, hard))
        sys.exit(cli.main(["stats", sys.argv[1]]))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(catlog.__file__).parent.parent)},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "segments        601" in done.stdout


@pytest.mark.spec("ENG-65")
@pytest.mark.parametrize(
    ("soft", "budget"),
    [
        (1024, 480),  # (1024 - 64) // 2
        (1025, 480),
        (1026, 481),
        (82, 9),
        (81, 8),
        (80, 8),
        (64, 8),  # nothing left after the reserve: still the least
        (0, 8),
        (20_064, 10_000),
        (20_066, 10_000),  # one past: the most
        (1 << 40, 10_000),
        (resource.RLIM_INFINITY, 10_000),  # unlimited
    ],
)
def test_the_default_budget_is_half_of_what_the_descriptor_limit_leaves(
    soft: int, budget: int
) -> None:
    assert default_max_open_files(soft) == budget


@pytest.mark.spec("ENG-65")
def test_the_default_budget_reads_the_process_limit_when_the_store_opens(tmp_path: Path) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowered = min(soft, 1000) - 1  # the soft limit, not the hard one, and read at each open
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowered, hard))
    try:
        assert default_max_open_files() == (lowered - 64) // 2
        with catlog.open(tmp_path / "data") as store:
            assert store.max_open_files == (lowered - 64) // 2
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    with catlog.open(tmp_path / "data") as store:
        assert store.max_open_files == default_max_open_files(soft)


@needs_proc
@pytest.mark.spec("ENG-65", "ENG-67", "ENG-68")
def test_the_segments_a_compaction_held_open_leave_the_budget_as_they_were(
    tmp_path: Path,
) -> None:
    """Inputs that were open when compaction took them are held outside the budget (ENG-68)
    and then closed: afterwards the budget is the same, neither smaller (four hot segments
    would be opened again on every pass) nor larger (more files open than it allows)."""
    write_segments(tmp_path / "data", 12)
    fs = FaultyFileSystem()
    budget = 4
    with catlog.open(tmp_path / "data", fs=fs, max_open_files=budget) as store:
        for number in range(1, 13):
            assert store.get(key_of(number)) == value_of(number)
        held = descriptors()
        for number in (1, 2):  # open now, and the oldest: a bounded compaction's inputs
            assert store.get(key_of(number)) == value_of(number)
        report = store.compact(max_bytes=2 * 59)  # 16 + 43 bytes each
        assert report.segments_removed == 2
        for number in range(3, 13):
            assert store.get(key_of(number)) == value_of(number)
        assert descriptors() <= held, "no more files open than before, the budget the same"
        hot = (4, 6, 8, 11)
        for number in hot:
            assert store.get(key_of(number)) == value_of(number)
        fs.trace.clear()
        for _ in range(3):
            for number in hot:
                assert store.get(key_of(number)) == value_of(number)
        assert opened_segments(fs) == [], "four segments fit a budget of four"


def sealed_segment(fs: SimFileSystem, cache: FileCache) -> Segment:
    """Segment 1 of ``/db``, ten bytes, sealed and handed to ``cache`` without an open file."""
    fs.makedirs("/db")
    file = fs.open("/db/segment-00001.log", writable=True, create=True)
    file.append(b"0123456789")
    file.sync()
    file.close()
    segment = Segment(fs.open("/db/segment-00001.log"), 1, 0)
    cache.adopt(segment, None)
    return segment


@pytest.mark.spec("ENG-66", "ENG-10")
def test_a_sealed_segments_file_refuses_writes_and_opens_when_first_read() -> None:
    """The cache's stand-in for a sealed segment's file: read-only (a sealed segment never
    changes, ENG-10), opened by the first read (ENG-66), and saying which it is."""
    fs = SimFileSystem()
    segment = sealed_segment(fs, FileCache(fs, 2))
    sealed = segment.file
    assert repr(sealed) == "SealedFile('/db/segment-00001.log', open=False)"
    assert (sealed.path, sealed.size()) == ("/db/segment-00001.log", 10)
    fs.trace.clear()
    for refused in (lambda: sealed.append(b"x"), lambda: sealed.truncate(3)):
        with pytest.raises(
            OSError, match=r"^\[Errno 9\] /db/segment-00001\.log is sealed: "
        ) as caught:
            refused()
        assert caught.value.errno == errno.EBADF
    sealed.sync()  # durable already: nothing to do, nothing called
    assert fs.trace == []
    assert segment.pread(4, 2) == b"2345"
    assert repr(sealed) == "SealedFile('/db/segment-00001.log', open=True)"
    assert [operation for operation, _ in fs.trace] == ["open", "pread"]


@pytest.mark.spec("ENG-56", "ENG-65", "ENG-67")
@pytest.mark.parametrize(("budget", "opened"), [(1, []), (4, [1])])
def test_a_segment_the_store_sealed_counts_two_descriptors_against_the_budget(
    tmp_path: Path, budget: int, opened: list[int]
) -> None:
    """Three rotations seal three segments the store keeps open, two descriptors each
    (ENG-56). A budget of four holds the newest two (the oldest, read last, is opened again);
    a budget of one still holds the one just sealed, alone, in each rotation (ENG-65's note)."""
    fs = FaultyFileSystem()
    with catlog.open(
        tmp_path / "data", fs=fs, segment_size=256, fsync="never", max_open_files=budget
    ) as store:
        for i in range(13):
            store.put(b"k%02d" % i, b"v" * 30)  # 53 bytes: four to a segment
        assert store.stats().active_segment == "segment-00004.log"
        fs.trace.clear()
        newest_first = range(11, -1, -1) if budget > 1 else range(11, 7, -1)
        for i in newest_first:
            assert store.get(b"k%02d" % i) == b"v" * 30
        assert opened_segments(fs) == opened


@pytest.mark.spec("ENG-68", "ENG-70")
def test_a_closed_sealed_file_is_never_opened_again_and_one_kept_open_says_where_it_failed() -> (
    None
):
    """Once a removed segment's file is let go (ENG-68), a read that still reaches it fails as
    a closed descriptor would, so that the reader looks again (the index moved); it is not
    reopened by name. Holding a file open for removal that cannot be opened is ENG-70's error,
    at the segment's start."""
    fs = SimFileSystem()
    segment = sealed_segment(fs, FileCache(fs, 2))
    assert segment.pread(2, 0) == b"01"
    segment.file.close()
    fs.trace.clear()
    with pytest.raises(OSError, match=r"^\[Errno 9\] Bad file descriptor$") as caught:
        segment.pread(2, 0)
    assert caught.value.errno == errno.EBADF
    assert [operation for operation, _ in fs.trace] == [], "not opened again"

    fs = SimFileSystem()
    segment = sealed_segment(fs, FileCache(fs, 2))
    fs.fail("open", error=errno.EMFILE)
    with pytest.raises(catlog.ReadError) as refused:
        segment.keep_open()
    assert str(refused.value) == (
        "/db/segment-00001.log@0: cannot open the segment to read it: Too many open files;"
        " raise the descriptor limit (ulimit -n) or lower max_open_files"
    )


@pytest.mark.spec("ENG-65")
def test_a_file_cache_refuses_a_budget_of_nothing() -> None:
    with pytest.raises(AssertionError) as caught:
        FileCache(SimFileSystem(), 0)
    assert str(caught.value) == "ENG-65: the store checks max_open_files"


@pytest.mark.spec("ENG-68", "ENG-38", "ENG-40")
def test_an_input_a_snapshot_still_reads_stays_open_whatever_the_budget_closes(
    tmp_path: Path,
) -> None:
    """The inputs were open, in the budget's queue, when compaction removed them; a snapshot
    taken before still reads them after reads of every other segment made the budget close
    all it could: once their names are gone they could not be opened again."""
    write_segments(tmp_path / "data", 12)
    with catlog.open(tmp_path / "data", max_open_files=4) as store:
        for number in (1, 2):
            assert store.get(key_of(number)) == value_of(number)
        with store.snapshot() as frozen:
            report = store.compact(max_bytes=2 * 59)
            assert report.segments_removed == 2
            assert not (tmp_path / "data" / "segment-00002.log").exists()
            for _ in range(2):
                for number in range(3, 13):
                    assert store.get(key_of(number)) == value_of(number)
            for number in range(1, 13):
                assert frozen.get(key_of(number)) == value_of(number)
