"""The gate: plain ``nox`` runs lint, typecheck and the suite under branch coverage.

``tests`` runs the same suite without coverage; nightly, crash, fuzz, mutation, bench and soak
run on request.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Final

import nox

nox.options.sessions = ["lint", "typecheck", "coverage"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check over the whole tree."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict (plus the stricter flags in pyproject.toml) over catlog/ and tests/."""
    session.install("-e", ".[dev]")
    session.run("mypy", "catlog", "tests", "bench", "noxfile.py")


@nox.session
def tests(session: nox.Session) -> None:
    """The default suite with the bounded ``ci`` hypothesis profile."""
    session.install("-e", ".[test]")
    session.run("pytest", "-q", *session.posargs, env={"HYPOTHESIS_PROFILE": "ci"})


def _pythons(versions: tuple[str, ...]) -> list[str]:
    """The ``versions`` of Python this machine can run. Where pyenv installed them, its shims
    find only the versions it is told of, so all of the wanted ones are named to it first."""
    if shutil.which("pyenv") and "PYENV_VERSION" not in os.environ:
        listed = subprocess.run(
            ["pyenv", "versions", "--bare"], capture_output=True, text=True, check=False
        ).stdout.split()
        wanted = [name for name in listed if name.rsplit(".", 1)[0] in versions]
        if wanted:
            os.environ["PYENV_VERSION"] = ":".join(wanted)
    found = []
    for version in versions:
        command = shutil.which(f"python{version}")
        if command is not None:
            ran = subprocess.run([command, "--version"], capture_output=True, check=False)
            if ran.returncode == 0:
                found.append(version)
    return found


PYTHONS: Final = _pythons(("3.11", "3.12", "3.13"))
"""The Pythons from 3.11 (the least catlog supports) to 3.13 that this machine has."""


@nox.session(python=PYTHONS)
def pythons(session: nox.Session) -> None:
    """The default suite (``ci`` profile) on every Python of :data:`PYTHONS`, one after another:
    ``nox -s pythons`` (all) or ``nox -s pythons-3.13`` (one). Not part of plain ``nox``."""
    session.install("-e", ".[test]")
    session.run("pytest", "-q", *session.posargs, env={"HYPOTHESIS_PROFILE": "ci"})


@nox.session
def coverage(session: nox.Session) -> None:
    """The default suite (``ci`` profile) under branch coverage of catlog/; fails below 95%.

    Runs the suite once, as ``tests`` does. The settings are in pyproject.toml
    (``[tool.coverage.*]``): ``patch = ["subprocess"]`` also measures the ``python -m catlog``
    servers and tools the tests start, each writing its own data file, combined here. A child
    stopped with SIGKILL writes none, so what only such children run is not counted.
    """
    session.install("-e", ".[test]")
    session.run("coverage", "erase")
    session.run(
        "coverage",
        "run",
        "-m",
        "pytest",
        "-q",
        *session.posargs,
        env={"HYPOTHESIS_PROFILE": "ci"},
    )
    session.run("coverage", "combine", "--quiet")
    session.run("coverage", "report")


@nox.session
def nightly(session: nox.Session) -> None:
    """The same suite with the long ``nightly`` hypothesis profile (about an hour, not minutes).

    ``--timeout=0`` lifts the per-test limit of the default runs (pyproject.toml), which long
    properties would pass."""
    session.install("-e", ".[test]")
    session.run(
        "pytest", "-q", "--timeout=0", *session.posargs, env={"HYPOTHESIS_PROFILE": "nightly"}
    )


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks against peers measured in the same run; prints the table for bench/README.md."""
    session.install("-e", ".[bench]")
    session.run("python", "-m", "bench", *session.posargs)


@nox.session
def soak(session: nox.Session) -> None:
    """Sustained random overwrite with automatic compaction (bench/soak.py): disk over live
    bytes, write amplification, p99 during compaction and outside; ``-- --seconds 600`` for
    longer, ``-- --server`` to run it through a server with redis-benchmark too."""
    session.install("-e", ".")
    session.run("python", "-m", "bench.soak", *session.posargs)


@nox.session
def crash(session: nox.Session) -> None:
    """The crash suites at long depth: more workloads, crash states, faults and kill -9 trials."""
    session.install("-e", ".[test]")
    session.run(
        "pytest",
        "-q",
        "--timeout=0",
        "tests/crash",
        *session.posargs,
        env={"CATLOG_CRASH_DEPTH": "long", "HYPOTHESIS_PROFILE": "nightly"},
    )


@nox.session
def fuzz(session: nox.Session) -> None:
    """The torn-write, corruption and repair fuzzers with the long ``nightly`` profile."""
    session.install("-e", ".[test]")
    session.run(
        "pytest",
        "-q",
        "--timeout=0",
        "tests/fuzz",
        "tests/tools/test_repair_property.py",
        *session.posargs,
        env={"HYPOTHESIS_PROFILE": "nightly"},
    )


STORE_TESTS: tuple[str, ...] = (
    "tests/store",
    "tests/crash/test_torn_tail.py",
    "tests/crash/test_corruption.py",
    "tests/crash/test_failing_fs.py",
    "tests/crash/test_lock.py",
    "tests/crash/test_hint_crash.py",
)
"""The tests of the store and of the modules split out of it (issue 15)."""

MUTATION_TESTS: dict[str, tuple[str, ...]] = {
    "codec": ("tests/unit", "tests/fuzz"),
    "recovery": (
        "tests/unit/test_recovery.py",
        "tests/crash/test_torn_tail.py",
        "tests/crash/test_corruption.py",
        "tests/fuzz",
    ),
    "index": (
        "tests/unit/test_index.py",
        "tests/unit/test_packed.py",
        "tests/unit/test_hint.py",
        "tests/fuzz",
        "tests/model",
    ),
    "segment": (
        "tests/unit/test_segment_names.py",
        "tests/store",
        "tests/crash/test_crash_points.py",
    ),
    "store": STORE_TESTS,
    "opening": STORE_TESTS,
    "reading": STORE_TESTS,
    "writer": (*STORE_TESTS, "tests/crash/test_background_faults.py"),
    "rotation": (*STORE_TESTS, "tests/crash/test_background_faults.py"),
    "maintenance": (*STORE_TESTS, "tests/crash/test_background_faults.py"),
    "updates": STORE_TESTS,
    "segmentset": (*STORE_TESTS, "tests/unit/test_segmentset.py"),
    "options": ("tests/store",),
    "compaction": (
        *STORE_TESTS,
        "tests/crash/test_background_faults.py",
        "tests/crash/test_compaction_races.py",
    ),
    "compactionplan": ("tests/store/test_bounded_compaction.py", "tests/store/test_compaction.py"),
    "compactionoutputs": (*STORE_TESTS, "tests/crash/test_background_faults.py"),
    "snapshot": ("tests/store", "tests/model/test_store_model.py"),
    "batch": ("tests/store", "tests/unit"),
    "transaction": ("tests/store",),
    "hintwriter": ("tests/store/test_hints.py", "tests/crash/test_hint_crash.py"),
    "hint": (
        "tests/unit/test_hint.py",
        "tests/unit/test_packed.py",
        "tests/store/test_hints.py",
        "tests/crash/test_hint_crash.py",
        "tests/tools/test_hint_files.py",
    ),
    "keyspace": ("tests/unit/test_keyspace.py", *STORE_TESTS, "tests/model/test_store_model.py"),
    "commit": ("tests/store/test_commit_machine.py", *STORE_TESTS),
    "filecache": ("tests/store/test_descriptors.py", *STORE_TESTS),
    "walk": (
        "tests/unit/test_walk.py",
        "tests/unit/test_index.py",
        "tests/unit/test_packed.py",
        "tests/unit/test_hint.py",
    ),
}
"""Each mutated module of ``catlog/`` and the tests run on its mutants (see tests/MUTANTS.md)."""

MUTATION_FAIL_UNDER = 90.0
"""The least share of mutants, over all modules, that the tests must kill (timeouts count)."""


@nox.session
def mutation(session: nox.Session) -> None:
    """Mutation testing (mutmut) of the storage core: one module at a time, with its own tests.

    For each module of ``MUTATION_TESTS`` (or those named: ``nox -s mutation -- codec index``) the
    session copies the project into its temporary directory, adds a ``[tool.mutmut]`` table that
    mutates only that module and runs only that module's tests, runs ``mutmut run`` there with
    the repeatable ``mutation`` hypothesis profile, and prints each survivor. It ends with a table
    of killed, survived and timed-out mutants per module, and fails when fewer than
    ``MUTATION_FAIL_UNDER`` percent are killed. ``CATLOG_MUTATION_WORKERS`` sets mutmut's workers
    (default 2). The surviving mutants we accept, and why, are listed in tests/MUTANTS.md.

    Each mutant's tests run fastest first (``CATLOG_MUTATION_STATS``, see tests/conftest.py),
    a test that overruns its clean duration (3 times, plus 5 s) ends the run as a timeout, and
    the tests' files go to memory (``TMPDIR`` in /dev/shm) where there is one: an fsync there
    returns at once, which halves the store's tests (most run with ``fsync="always"``). No test
    result depends on the disk: what durability means is checked on the simulated file systems.
    """
    session.install(".[test]", "mutmut>=3.8,<4")
    modules = session.posargs or list(MUTATION_TESTS)
    unknown = sorted(set(modules) - set(MUTATION_TESTS))
    if unknown:
        session.error(
            f"no mutation set-up for {', '.join(unknown)}; known: {', '.join(MUTATION_TESTS)}"
        )
    workers = os.environ.get("CATLOG_MUTATION_WORKERS", "2")
    here = Path.cwd()
    scratch = Path(session.create_tmp()).resolve() / "mutation"
    memory = Path("/dev/shm")
    tests_tmp = Path(
        tempfile.mkdtemp(prefix="catlog-mutation-", dir=memory if memory.is_dir() else None)
    )
    env = {"HYPOTHESIS_PROFILE": "mutation", "TMPDIR": str(tests_tmp)}
    rows: list[tuple[str, dict[str, int]]] = []
    try:
        for module in modules:
            work = scratch / module
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir(parents=True)
            for tree in ("catlog", "tests", "spec"):
                shutil.copytree(
                    here / tree,
                    work / tree,
                    ignore=shutil.ignore_patterns("__pycache__", ".hypothesis"),
                )
            config = (here / "pyproject.toml").read_text() + _mutmut_table(module)
            (work / "pyproject.toml").write_text(config)
            env["CATLOG_MUTATION_STATS"] = str(work / "mutants" / "mutmut-stats.json")
            with session.chdir(work):
                session.run(
                    "python",
                    "-c",
                    _MUTMUT_WITHOUT_AUTOMATIC_GC,
                    "run",
                    "--max-children",
                    workers,
                    env=env,
                )
                session.run("mutmut", "results", env=env)
                session.run("mutmut", "export-cicd-stats", silent=True)
            found = work / "mutants" / "mutmut-cicd-stats.json"
            if not found.exists():  # ``nox --install-only`` skips every session.run
                continue
            stats = json.loads(found.read_text())
            rows.append((module, {key: int(value) for key, value in stats.items()}))
    finally:
        shutil.rmtree(tests_tmp, ignore_errors=True)
    session.log(_mutation_table(rows))
    killed = sum(row["killed"] + row["timeout"] for _, row in rows)
    total = sum(row["total"] - row["skipped"] for _, row in rows)
    if total and 100 * killed / total < MUTATION_FAIL_UNDER:
        session.error(
            f"{100 * killed / total:.1f}% of mutants killed; at least {MUTATION_FAIL_UNDER}%"
        )


_MUTMUT_WITHOUT_AUTOMATIC_GC = "import gc; gc.disable(); from mutmut.__main__ import cli; cli()"
"""``mutmut`` with the cyclic garbage collector off (``gc.collect()`` still works).

mutmut 3.8 collects which tests call which function by running them once in its own process, and
its call-tracking context is corrupted when the collector finalises a Store (``__del__`` closes
it) in the middle of a tracked call: a test then fails with a TypeError inside mutmut. Without
automatic collection that never happens, and a Store a test drops is still finalised at once by
reference counting; a test that needs a cycle collected calls ``gc.collect()`` itself.
"""


def _mutmut_table(module: str) -> str:
    selection = ", ".join(json.dumps(path) for path in MUTATION_TESTS[module])
    return f"""
[tool.mutmut]
source_paths = ["catlog"]
only_mutate = ["catlog/{module}.py"]
also_copy = ["spec"]
pytest_add_cli_args = ["-p", "no:cacheprovider"]
# mutmut 3.8's call-graph tracking puts an unhashable Store (a mapping) into a set: off.
track_dependencies = false
# A mutant's run times out after 5 times (2 s more than) its tests' clean run, not mutmut's 15
# times (1 s more); tests/conftest.py's watchdog ends it sooner, in the one test that hangs.
timeout_multiplier = 5.0
timeout_constant = 2.0
pytest_add_cli_args_test_selection = [{selection}]
"""


def _mutation_table(rows: list[tuple[str, dict[str, int]]]) -> str:
    columns = ("total", "killed", "survived", "timeout", "no_tests")
    lines = [f"{'module':<10}" + "".join(f"{name:>10}" for name in columns) + f"{'score':>8}"]
    for module, row in rows:
        tested = row["total"] - row["skipped"]
        score = 100 * (row["killed"] + row["timeout"]) / tested if tested else 0.0
        lines.append(
            f"{module:<10}" + "".join(f"{row[name]:>10}" for name in columns) + f"{score:>7.1f}%"
        )
    return "\n".join(["mutation results:", *lines])
