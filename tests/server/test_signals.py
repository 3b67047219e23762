"""A signal that arrives the instant the server says it listens stops it cleanly (SRV-3, SRV-4).

A supervisor may signal a server as soon as it reads ``[LISTENING]``; the server must by then
handle SIGTERM and SIGINT as SRV-4 says (stop, sync, exit 0), not die of the default action
(SIGTERM: killed, nothing synced) or of Python's (SIGINT: a KeyboardInterrupt traceback).

Two ways: ``serve()``'s ``ready`` hook, called as the line is printed, raises the signal inside
the server process, which hits the moment exactly; and a real ``python -m catlog`` is signalled
by this process the moment it reads the line, several times over, which is what a supervisor does
(the window is narrow, so that way alone would find a regression only now and then).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import catlog
from tests.server.conftest import Serve, send_and_read

SIGNALS = pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
TRIES = 5

RAISE_WHEN_READY = textwrap.dedent(
    """
    import asyncio, signal, sys
    from catlog.server import serve
    from catlog.serverconfig import ServerConfig

    def ready(host: str, port: int) -> None:
        signal.raise_signal(int(sys.argv[2]))

    config = ServerConfig(port=0, data_dir=sys.argv[1], fsync="never", idle_timeout=0)
    asyncio.run(serve(config, ready=ready))
    print("[EXITED] cleanly", flush=True)
    """
)


def _write_before(data_dir: str) -> None:
    with catlog.open(data_dir, fsync="never") as store:
        store.put(b"before", b"yes")


@pytest.mark.spec("SRV-3", "SRV-4")
@SIGNALS
def test_a_signal_raised_as_the_server_announces_itself_stops_it_cleanly(
    tmp_path: Path, sig: int
) -> None:
    data_dir = str(tmp_path / "data")
    _write_before(data_dir)
    done = subprocess.run(
        [sys.executable, "-c", RAISE_WHEN_READY, data_dir, str(int(sig))],
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    said = done.stdout + done.stderr
    assert (done.returncode, "Traceback" in said) == (0, False), said
    assert "[LISTENING]" in said, said
    assert "[EXITED] cleanly" in said, said
    with catlog.open(data_dir) as store:
        assert store.get(b"before") == b"yes"


@pytest.mark.spec("SRV-3", "SRV-4")
@SIGNALS
def test_a_signal_sent_on_reading_listening_stops_the_server_cleanly(
    serve: Serve, sig: int
) -> None:
    first = serve("--fsync", "never")
    with first.connect() as sock:
        assert send_and_read(sock, b"PUT before yes\n", 1) == [b"OK"]
    assert first.stop() == 0
    problems: list[str] = []
    for attempt in range(TRIES):
        server = serve("--fsync", "never", data_dir=first.data_dir)
        status = server.stop(sig)  # at once: serve() returned on reading [LISTENING]
        said = "\n".join(server.output)
        if status != 0 or "Traceback" in said or not any("[SHUTDOWN]" in x for x in server.output):
            problems.append(f"try {attempt}: exit status {status}, output:\n{said}")
    assert problems == [], "\n".join(problems)
    with catlog.open(first.data_dir) as store:
        assert store.get(b"before") == b"yes"
