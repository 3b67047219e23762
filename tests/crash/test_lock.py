"""One open store per data directory, across processes, and a dead holder frees it (ENG-20).

The other processes are real ones started with ``sys.executable``: the lock is ``flock``, and
what matters is how the operating system treats it between processes and when a holder dies.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import catlog

TRY_OPEN = """
import sys, time, catlog
started = time.monotonic()
try:
    catlog.open(sys.argv[1]).close()
except catlog.LockedError as error:
    print("locked", round(time.monotonic() - started, 3), error, sep="|")
else:
    print("opened", round(time.monotonic() - started, 3), "", sep="|")
"""

HOLD_UNTIL_KILLED = """
import sys, time, catlog
store = catlog.open(sys.argv[1])
store.put(b"written by", b"the killed process")
print("holding", flush=True)
time.sleep(60)
"""


def try_open_elsewhere(directory: str) -> tuple[str, float, str]:
    """Open ``directory`` in a new process; returns its outcome, seconds taken and message."""
    done = subprocess.run(
        [sys.executable, "-c", TRY_OPEN, directory],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    outcome, seconds, message = done.stdout.strip().split("|", 2)
    return outcome, float(seconds), message


@pytest.mark.spec("ENG-20")
def test_second_process_is_refused_at_once_and_told_who_holds_the_lock(data_dir: str) -> None:
    with catlog.open(data_dir) as store:
        store.put(b"k", b"v")
        outcome, seconds, message = try_open_elsewhere(data_dir)
        assert outcome == "locked"
        assert seconds < 2, "the lock must not be waited for"
        assert f"pid {os.getpid()}" in message
        assert store.get(b"k") == b"v", "the refused open disturbed nothing"
    assert Path(data_dir, "LOCK").read_text().strip() == str(os.getpid())
    assert try_open_elsewhere(data_dir)[0] == "opened"


@pytest.mark.spec("ENG-20")
def test_second_open_in_the_same_process_is_refused(data_dir: str) -> None:
    with catlog.open(data_dir) as store:
        with pytest.raises(catlog.LockedError, match=f"pid {os.getpid()}"):
            catlog.open(data_dir)
        store.put(b"still", b"writable")
    with catlog.open(data_dir) as store:
        assert store.get(b"still") == b"writable"


@pytest.mark.spec("ENG-20", "ENG-22")
def test_locked_error_is_a_catlog_error(data_dir: str) -> None:
    with catlog.open(data_dir), pytest.raises(catlog.CatlogError):
        catlog.open(data_dir)


@pytest.mark.spec("ENG-20", "REC-8")
def test_lock_of_a_killed_holder_is_released(data_dir: str) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_UNTIL_KILLED, data_dir],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "holding"
        with pytest.raises(catlog.LockedError, match=f"pid {holder.pid}"):
            catlog.open(data_dir)
        os.kill(holder.pid, signal.SIGKILL)
        assert holder.wait(timeout=30) == -signal.SIGKILL
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
    with catlog.open(data_dir) as store:
        assert store.get(b"written by") == b"the killed process"
    assert Path(data_dir, "LOCK").read_text().strip() == str(os.getpid())
