"""The gate: plain ``nox`` runs lint, typecheck and the suite under branch coverage.

``tests`` runs the same suite without coverage; nightly, crash, fuzz and bench run on request.
"""

from __future__ import annotations

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
    """The same suite with the long ``nightly`` hypothesis profile (hours, not minutes)."""
    session.install("-e", ".[test]")
    session.run(
        "pytest", "-q", "-p", "no:timeout", *session.posargs, env={"HYPOTHESIS_PROFILE": "nightly"}
    )


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks against peers measured in the same run; prints the table for bench/README.md."""
    session.install("-e", ".[bench]")
    session.run("python", "-m", "bench", *session.posargs)


@nox.session
def crash(session: nox.Session) -> None:
    """The crash suites at long depth: more workloads, crash states, faults and kill -9 trials."""
    session.install("-e", ".[test]")
    session.run(
        "pytest",
        "-q",
        "-p",
        "no:timeout",
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
        "-p",
        "no:timeout",
        "tests/fuzz",
        "tests/tools/test_repair_property.py",
        *session.posargs,
        env={"HYPOTHESIS_PROFILE": "nightly"},
    )
