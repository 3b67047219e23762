"""Many threads on one store (ENG-21): one order of writes, reads that never see a mix.

The readers yield the GIL after each read. A get never releases it (reads slice a memory map),
so readers spinning without a pause starve writers that contend for the write lock: each hand-off
of the lock then waits out other threads' 5 ms GIL intervals, and this test took minutes.
"""

from __future__ import annotations

import threading
import time

import pytest

import catlog


@pytest.mark.spec("ENG-21", "ENG-1")
@pytest.mark.parametrize("policy", ["always", "never"])
def test_readers_see_whole_values_while_writers_overwrite(
    data_dir: str, policy: catlog.FsyncPolicy
) -> None:
    values = [bytes([i]) * (50 + i) for i in range(8)]
    errors: list[str] = []
    stop = threading.Event()
    with catlog.open(data_dir, fsync=policy, segment_size=4096) as store:
        store.put(b"shared", values[0])

        def write(worker: int) -> None:
            for n in range(150 if policy == "always" else 1000):
                store.put(b"shared", values[(worker + n) % len(values)])
                store.put(b"own%d-%d" % (worker, n), b"x")

        def read() -> None:
            while not stop.is_set():
                value = store.get(b"shared")
                if value not in values:
                    errors.append(repr(value)[:80])
                time.sleep(0)

        readers = [threading.Thread(target=read) for _ in range(3)]
        writers = [threading.Thread(target=write, args=(w,)) for w in range(4)]
        for thread in readers + writers:
            thread.start()
        for thread in writers:
            thread.join()
        stop.set()
        for thread in readers:
            thread.join()
        assert errors == []
        count = 150 if policy == "always" else 1000
        assert len(store) == 1 + 4 * count
        final = store[b"shared"]
    with catlog.open(data_dir) as again:
        assert again[b"shared"] == final
        assert len(again) == 1 + 4 * count
