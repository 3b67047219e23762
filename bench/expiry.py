"""The ``expiry`` workload: what a client waits while a server's keys all expire at once.

A store is filled (untimed, in this process) with ``fill_keys`` keys that expire at one instant a
few seconds ahead, then a catlog server opens it (fsync never, no automatic compaction, so that
opening forgets nothing). One client sends PINGs, one at a time, from before that instant until
``WINDOW`` seconds after it; half a second after it, a second connection asks DBSIZE, as a
monitoring tool would, then follows INFO's ``catlog_dead_bytes`` until every expired key has been
forgotten (ENG-63 counts each). Reported: the longest PING wait after the instant (issue 17: the
first DBSIZE used to forget every key in one go, 267 ms for 200,000), its 99th percentile, the
longest wait before the instant, DBSIZE's own time, and when the last key was forgotten.

Each checkout (``--compare-with``) gets its own store and its own server, started in the
checkout's directory so that ``python -m catlog`` imports that checkout's catlog.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from typing import Final

import catlog

from . import dataset
from .children import REPOSITORY, Checkout
from .compaction import _Client
from .report import Figure, Outcome, Target
from .servers import _free_port, _stop

LEAD_MS: Final = 3000
"""How long after the server is listening the keys expire: time for the PING loop to settle."""
WINDOW: Final = 4.0
"""Seconds of PINGs after the keys expire."""
DBSIZE_AFTER: Final = 0.5
TARGET_MS: Final = 20.0
"""No PING waits longer than this while the keys are forgotten (issue 17)."""


def _build(path: str, keys: list[bytes], values: list[bytes], expires_at_ms: int) -> int:
    """Fill ``path`` with every key expiring at ``expires_at_ms``; returns ENG-41's dead bytes
    their forgetting will add (the sum of their records' sizes)."""
    with catlog.open(path, fsync="never") as store:
        for key, value in zip(keys, values, strict=True):
            store.put(key, value, expires_at_ms=expires_at_ms)
    return sum(21 + len(key) + len(value) + 8 for key, value in zip(keys, values, strict=True))


def _start(checkout: Checkout, path: str, port: int) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [
            sys.executable,
            *("-m", "catlog", "serve", "--port", str(port), "--data-dir", path),
            *("--fsync", "never", "--compact-threshold", "0", "--log-level", "warning"),
        ],
        cwd=checkout.path or REPOSITORY,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None, "stdout is piped"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        if "[LISTENING]" in line:
            return process
    process.kill()
    raise RuntimeError(f"{checkout.label}'s server did not start")


def _dead_bytes(client: _Client) -> int:
    info = (client.call(b"INFO", b"persistence") or b"").decode()
    return int(info.split("catlog_dead_bytes:")[1].split()[0])


def _one(checkout: Checkout, root: str, keys_count: int) -> dict[str, float]:
    keys = dataset.keys(keys_count)
    values = [dataset.values(1)[0]] * keys_count  # one size, so each record's size is known
    path = os.path.join(root, f"expiry-{checkout.label}")
    per_key_us = 30  # a generous guess at a put's time; doubled while it proves too small
    for _ in range(4):
        started = time.time()
        expires_at = int(started * 1000) + per_key_us * keys_count // 1000 + 2000 + LEAD_MS
        dead_all = _build(path, keys, values, expires_at)
        if expires_at / 1000 - time.time() >= 2.0 + LEAD_MS / 1000 / 2:
            break
        shutil.rmtree(path)
        per_key_us *= 2
    port = _free_port()
    process = _start(checkout, path, port)
    client = _Client(port)
    control = _Client(port)
    found: dict[str, float] = {}

    def watch() -> None:
        time.sleep(max(0.0, expires_at / 1000 + DBSIZE_AFTER - time.time()))
        began = time.perf_counter()
        live = control.call(b"DBSIZE")
        found["dbsize_ms"] = (time.perf_counter() - began) * 1000
        found["dbsize"] = float(live or b"-1")
        while _dead_bytes(control) < dead_all and time.time() < expires_at / 1000 + WINDOW:
            time.sleep(0.05)
        found["forgotten_s"] = time.time() - expires_at / 1000

    try:
        lead = expires_at / 1000 - time.time()
        if lead < 1:
            raise RuntimeError(f"the store took too long to fill: {lead:.1f} s of lead left")
        watcher = threading.Thread(target=watch)
        watcher.start()
        before: list[float] = []
        during: list[float] = []
        end = expires_at / 1000 + WINDOW
        clock = time.perf_counter
        while (now := time.time()) < end:
            began = clock()
            client.call(b"PING")
            (during if now * 1000 > expires_at else before).append(clock() - began)
        watcher.join()
        found["dead_ok"] = float(_dead_bytes(control) == dead_all)
    finally:
        client.close()
        control.close()
        _stop(process)
    during.sort()
    found["max_ms"] = during[-1] * 1000
    found["p99_ms"] = during[int(len(during) * 0.99)] * 1000
    found["before_max_ms"] = max(before[len(before) // 2 :]) * 1000  # once the loop settled
    found["pings"] = float(len(during))
    return found


def workload(root: str, keys_count: int, checkouts: tuple[Checkout, ...]) -> list[Outcome]:
    results = {checkout.label: _one(checkout, root, keys_count) for checkout in checkouts}
    first, *others = results
    mine = results[first]
    peers = [
        Figure("p99 after expiry", mine["p99_ms"], "ms"),
        Figure("max before expiry", mine["before_max_ms"], "ms"),
        *(Figure(f"{label} max after expiry", results[label]["max_ms"], "ms") for label in others),
    ]
    notes = tuple(
        f"{label}: DBSIZE {found['dbsize']:.0f} in {found['dbsize_ms']:.1f} ms; every key "
        f"forgotten {found['forgotten_s']:.2f} s after the instant"
        f"{'' if found['dead_ok'] else ' (not all by the end)'}; {found['pings']:,.0f} PINGs "
        f"after it, p99 {found['p99_ms']:.2f} ms, max {found['max_ms']:.2f} ms"
        for label, found in results.items()
    )
    return [
        Outcome(
            f"server PING wait while {keys_count:,} keys expire at once",
            Figure("max after expiry", mine["max_ms"], "ms"),
            tuple(peers),
            None,
            Target(TARGET_MS, at_least=False, absolute=True),
            (*notes, "one client, one PING at a time; fsync never; --compact-threshold 0."),
        )
    ]
