"""The read-only tools on a directory a store is using: ``dump`` and ``export`` while the store
compacts (TOOL-36, TOOL-37).

A store in a thread of this process writes and compacts in a bounded loop while the tool runs again
and again; each run must exit 0 and show a state the store really had.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import catlog
from catlog.cli import main
from catlog.tools.export import export
from tests.tools.layout import NOW_MS, build, run, segment
from tests.tools.test_export import parse_stream

SEGMENT_SIZE = 1024
ROUNDS = 25
"""Compactions the writer runs; each removes every segment the one before it wrote."""


@pytest.fixture
def compacting(data_dir: str) -> Iterator[threading.Event]:
    """A store writing and compacting ``data_dir`` until the test ends or ROUNDS are done.

    It flushes each round's writes before compacting: a reader outside the store sees only what
    has been handed to the OS (ENG-16), and the tests check that every key is always there.
    """
    stop = threading.Event()
    with catlog.open(data_dir, segment_size=SEGMENT_SIZE, fsync="never") as store:
        for i in range(200):
            store.put(b"key-%03d" % i, b"v" * 40)
        store.flush()

        def churn() -> None:
            for round_ in range(ROUNDS):
                if stop.is_set():
                    return
                for i in range(0, 200, 7):
                    store.put(b"key-%03d" % i, b"%d" % round_ * 10)
                store.flush()
                store.compact()
            stop.set()

        writer = threading.Thread(target=churn)
        writer.start()
        try:
            yield stop
        finally:
            stop.set()
            writer.join(timeout=60)
            assert not writer.is_alive(), "the compacting writer finished"


@pytest.mark.spec("TOOL-36")
def test_dump_of_a_directory_being_compacted_exits_0_every_time(
    data_dir: str, compacting: threading.Event, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = 0
    while not compacting.is_set() and runs < 100:
        status, out, err = run(["dump", data_dir], capsys)
        runs += 1
        assert (status, err) == (0, ""), f"run {runs}: {err}"
        assert out.count("key=b'key-") >= 200, "every key has a record in every state"


@pytest.mark.spec("TOOL-36", "TOOL-45")
def test_export_of_a_directory_being_compacted_holds_every_key_every_time(
    data_dir: str, compacting: threading.Event
) -> None:
    written = {b"v" * 40} | {b"%d" % round_ * 10 for round_ in range(ROUNDS)}
    runs = 0
    while not compacting.is_set() and runs < 100:
        out = io.BytesIO()
        assert export(data_dir, fs=catlog.OsFileSystem(), now_ms=NOW_MS, out=out) == 0
        runs += 1
        commands = parse_stream(out.getvalue())
        assert [words[1] for words in commands] == [b"key-%03d" % i for i in range(200)]
        assert {words[2] for words in commands} <= written


@pytest.mark.spec("TOOL-36", "TOOL-30")
def test_map_of_a_directory_being_compacted_exits_0_every_time(
    data_dir: str, tmp_path: Path, compacting: threading.Event, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = 0
    while not compacting.is_set() and runs < 50:
        status, _, err = run(["map", data_dir, "--html", str(tmp_path / "map.html")], capsys)
        runs += 1
        assert (status, err) == (0, ""), f"run {runs}: {err}"


class RestlessFileSystem(catlog.OsFileSystem):
    """Lists one more segment each time it is asked, as a store rotating without end would."""

    def __init__(self) -> None:
        self.listings = 0

    def listdir(self, path: str) -> list[str]:
        self.listings += 1
        return [*super().listdir(path), segment(100 + self.listings)]

    def open(self, path: str, *, writable: bool = False, create: bool = False) -> catlog.File:
        if path.endswith(".log") and int(path[-9:-4]) > 100:
            path = path[: -len(segment(1))] + segment(1)
        return super().open(path, writable=writable, create=create)


@pytest.mark.spec("TOOL-37", "TOOL-40")
def test_a_directory_that_never_holds_still_is_given_up_on_with_status_2(
    data_dir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    build(data_dir)
    fs = RestlessFileSystem()
    for argv in (["dump", data_dir], ["export", data_dir]):
        fs.listings = 0
        assert main(argv, fs=fs) == 2
        out, err = capsys.readouterr()
        assert "changed under each of 20 listings" in err
        assert fs.listings == 40, "two listings per attempt, 20 attempts"
        assert argv[0] == "dump" or out == ""
