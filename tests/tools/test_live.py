"""The read-only tools on a directory a store is using: ``dump`` and ``export`` while the store
compacts (TOOL-36, TOOL-37).

A store in a thread of this process writes and compacts in a bounded loop while the tool runs again
and again; each run must exit 0 and show a state the store really had.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

import catlog
from tests.tools.layout import run

SEGMENT_SIZE = 1024
ROUNDS = 40
"""Compactions the writer runs; each removes every segment the one before it wrote."""


@pytest.fixture
def compacting(data_dir: str) -> Iterator[threading.Event]:
    """A store writing and compacting ``data_dir`` until the test ends or ROUNDS are done."""
    stop = threading.Event()
    with catlog.open(data_dir, segment_size=SEGMENT_SIZE, fsync="never") as store:
        for i in range(200):
            store.put(b"key-%03d" % i, b"v" * 40)

        def churn() -> None:
            for round_ in range(ROUNDS):
                if stop.is_set():
                    return
                for i in range(0, 200, 7):
                    store.put(b"key-%03d" % i, b"%d" % round_ * 10)
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
    while not compacting.is_set() and runs < 200:
        status, out, err = run(["dump", data_dir], capsys)
        runs += 1
        assert (status, err) == (0, ""), f"run {runs}: {err}"
        assert out.count("key=b'key-") >= 200, "every key has a record in every state"
