"""``catlog map``'s page in a real browser: it loads without errors and shows what stats prints.

Debian's ``chromium`` loads the page headless, once, and prints the DOM its script left
(``--dump-dom``); the script writes the figures it displayed and any error it met into
``#catlog-selfcheck`` (TOOL-35), and chromium's own log (``--enable-logging=stderr``) shows any
console message, a Content-Security-Policy refusal included. Without chromium the test skips,
unless ``CATLOG_REQUIRE_BROWSER=1`` (set by .ci/run once it installed chromium) makes that a
failure.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import catlog
from catlog.tools.text import KEY_SHOWN, show_bytes

BROWSER_TIMEOUT_S = 90
"""One page load takes about a second here; the margin is for a loaded CI machine."""

HOSTILE_KEY = b"</script><script>document.title='owned'</script><!--"

SELFCHECK = re.compile(r'<pre id="catlog-selfcheck"[^>]*>(.*?)</pre>', re.S)


def chromium() -> str:
    """The browser's path; skip without it, or fail when CI said it must be there."""
    path = shutil.which("chromium")
    if path is None:
        message = "chromium is not installed (apt-get install chromium)"
        if os.environ.get("CATLOG_REQUIRE_BROWSER") == "1":
            pytest.fail(message + ", and CATLOG_REQUIRE_BROWSER=1")
        pytest.skip(message)
    return path


def build_directory(directory: str) -> None:
    """Several segments with dead data, hints, a batch, an expiry, a hostile key, a torn tail."""
    clock = catlog.ManualClock(1_700_000_000_000)
    with catlog.open(directory, segment_size=300, hints=True, clock=clock) as store:
        for round_ in range(3):
            for i in range(8):
                store.put(b"key-%d" % i, b"value %d of round %d" % (i, round_))
        store.delete(b"key-3")
        store.put(HOSTILE_KEY, b"<b>value</b>")
        store.put(b"expiring", b"soon", ttl=3_600_000)
        store.write_batch([("put", b"batch-a", b"1"), ("delete", b"key-4")])
    newest = max(p for p in Path(directory).iterdir() if p.suffix == ".log")
    with newest.open("ab") as file:
        file.write(b"\x07torn!")  # a record cut short by a crash: open cuts it (REC-4)


def catlog_cli(*argv: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    done = subprocess.run(
        [sys.executable, "-m", "catlog", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    return done.stdout


def stats_of(directory: str) -> dict[str, int]:
    """``catlog stats`` as a user runs it, and ENG-41's estimate from an open that makes it."""
    printed = catlog_cli("stats", directory)
    fields = dict(
        re.findall(r"^(keys|segments|bytes on disk|expiring keys) +(\d+)$", printed, re.M)
    )
    with catlog.open(directory, compact_threshold=0.5) as store:
        dead = store.stats().dead_bytes
    return {
        "keys": int(fields["keys"]),
        "segments": int(fields["segments"]),
        "disk_bytes": int(fields["bytes on disk"]),
        "expiring_keys": int(fields["expiring keys"]),
        "dead_bytes": dead,
    }


@pytest.mark.spec("TOOL-30", "TOOL-32", "TOOL-33", "TOOL-34", "TOOL-35")
def test_the_page_loads_in_a_browser_and_shows_what_stats_prints(tmp_path: Path) -> None:
    browser = chromium()
    data = tmp_path / "data"
    build_directory(str(data))
    assert len(list(data.glob("*.hint"))) >= 2
    page = tmp_path / "map.html"
    catlog_cli("map", str(data), "--html", str(page))
    sizes = [p.stat().st_size for p in sorted(data.glob("segment-*.log"))]

    done = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=BROWSER_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []
    found = SELFCHECK.search(done.stdout)
    assert found is not None, done.stdout[-2000:]
    selfcheck = json.loads(html.unescape(found.group(1)))
    assert selfcheck["errors"] == []
    shown = selfcheck["figures"]
    assert (shown["segments_drawn"], shown["bytes_drawn"]) == (len(sizes), sum(sizes))
    assert "<title>catlog map of " in done.stdout  # the hostile key did not end the script early
    listing = html.unescape(done.stdout)
    assert f"key={show_bytes(HOSTILE_KEY, KEY_SHOWN)}" in listing  # as dump shows it
    assert " TORN 6 bytes " in listing

    copy = tmp_path / "copy"
    shutil.copytree(data, copy)  # stats cuts the torn tail; the map's directory stays as it was
    expected = stats_of(str(copy))
    assert {name: shown[name] for name in expected} == expected
    assert expected["disk_bytes"] == sum(sizes) - 6
