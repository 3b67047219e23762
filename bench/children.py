"""The parent's side of the child processes that run each contender's timed loop.

A loop timed in the harness's own process is measured inside a heap that every earlier contender
left its garbage in, with their modules imported, their caches warm and the garbage collector's
generations full of their objects; issue 15 saw that move catlog's fill by a fifth against
semidbm, more than the gap the target is about. So every store-driving loop runs in a child
started for it, which imports one catlog, makes its keys and values from the seed, times its
loop with ``time.perf_counter`` and answers with the figures (see :mod:`bench.child` and
:mod:`bench.tasks`). The parent keeps the order: contenders and repetitions stay round-robin.

A child is started with a *checkout*: the catlog beside ``bench/`` or another directory holding a
``catlog`` package (``--compare-with``), put first on the child's ``sys.path``. The child says
which ``catlog/__init__.py`` it imported and the parent checks it, so a before/after table cannot
quietly measure the same code twice.

Wire format, one JSON object per line: the child's first line is ``{"catlog": FILE}``; then each
request ``{"task": NAME, "args": {...}}`` gets ``{"reply": {...}}`` or ``{"error": TRACEBACK}``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, cast

REPOSITORY: Final = Path(__file__).resolve().parent.parent

Scalar = str | int | float | bool | None
Reply = dict[str, float | str]
"""What a task answers: figures (seconds, counts, bytes) and the odd name."""


@dataclass(frozen=True, slots=True)
class Checkout:
    """A catlog to measure: ``label`` names it in the tables (``catlog``, ``catlog@before``);
    ``path`` is the directory holding its ``catlog`` package, ``None`` for the one beside bench/."""

    label: str
    path: str | None = None

    def owns(self, label: str) -> str:
        """``label`` (a catlog contender's, such as ``catlog scan only``) for this checkout."""
        return label.replace("catlog", self.label, 1)


HERE: Final = Checkout("catlog")


class Child:
    """One child process with one checkout's catlog imported; ``call`` runs a task in it."""

    def __init__(self, checkout: Checkout) -> None:
        self.checkout = checkout
        self._process = subprocess.Popen(
            [sys.executable, "-m", "bench.child", checkout.path or ""],
            cwd=REPOSITORY,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        hello = self._read()
        imported = os.path.realpath(str(hello["catlog"]))
        expected = os.path.realpath(os.path.join(checkout.path or REPOSITORY, "catlog"))
        if os.path.dirname(imported) != expected:
            self.close()
            raise RuntimeError(f"{checkout.label}: the child imported {imported}, not {expected}")

    def _read(self) -> dict[str, object]:
        assert self._process.stdout is not None, "stdout is piped"
        line = self._process.stdout.readline()
        if not line:
            code = self._process.wait()
            raise RuntimeError(f"{self.checkout.label}: the child exited ({code}) without a reply")
        return cast(dict[str, object], json.loads(line))

    def call(self, task: str, **args: Scalar) -> Reply:
        assert self._process.stdin is not None, "stdin is piped"
        self._process.stdin.write(json.dumps({"task": task, "args": args}) + "\n")
        self._process.stdin.flush()
        answer = self._read()
        if "error" in answer:
            raise RuntimeError(
                f"{self.checkout.label}: {task} failed in the child:\n{answer['error']}"
            )
        return cast(Reply, answer["reply"])

    def close(self) -> None:
        if self._process.stdin is not None and not self._process.stdin.closed:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


@dataclass(slots=True)
class InProcess:
    """The old way, for ``--in-process``: the task runs in the harness's own process.

    Kept to show what the harness did to the figures, not to measure by. Only the catlog beside
    bench/ can be measured this way (a process imports one ``catlog``).
    """

    checkout: Checkout
    _session: object = field(default=None)

    def call(self, task: str, **args: Scalar) -> Reply:
        from . import tasks  # noqa: PLC0415 - imports catlog and the peers: only when asked

        if self._session is None:
            self._session = tasks.Session()
        assert isinstance(self._session, tasks.Session), "made above"
        reply = tasks.run(self._session, task, args)
        return cast(Reply, json.loads(json.dumps(reply)))

    def close(self) -> None:
        pass

    def __enter__(self) -> InProcess:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


Worker = Child | InProcess


def start(checkout: Checkout, *, in_process: bool = False) -> Worker:
    """A fresh child for ``checkout`` (or, with ``in_process``, this process)."""
    if in_process:
        if checkout.path is not None:
            raise ValueError("--in-process measures only the catlog beside bench/")
        return InProcess(checkout)
    return Child(checkout)


def once(checkout: Checkout, task: str, *, in_process: bool = False, **args: Scalar) -> Reply:
    """Run ``task`` in a child started for it, then let the child exit."""
    with start(checkout, in_process=in_process) as worker:
        return worker.call(task, **args)
