"""The trace gate: every MUST clause is checked by a test, and every citation names a clause."""

from __future__ import annotations

from tests.spec_clauses import ROOT, citations, clauses
from tests.trace import (
    TRACE_PATH,
    WRITE_COMMAND,
    clause_ids_named,
    implementing_modules,
    render,
    rows,
)


def test_every_must_clause_is_cited_by_a_test() -> None:
    cited = citations()
    missing = [c.id for c in clauses().values() if c.level == "MUST" and c.id not in cited]
    assert not missing, f"MUST clauses no test cites: {', '.join(sorted(missing))}"


def test_every_citation_names_an_existing_clause() -> None:
    known = clauses()
    unknown = {cid: tests for cid, tests in citations().items() if cid not in known}
    assert not unknown, f"tests cite clauses that spec/ does not define: {unknown}"


def test_the_spec_defines_clauses() -> None:
    assert len(clauses()) >= 40


def test_the_generated_trace_in_spec_is_up_to_date() -> None:
    """spec/TRACE.md is what ``python -m tests.trace --write`` would write now."""
    written = TRACE_PATH.read_text() if TRACE_PATH.exists() else ""
    assert written == render(), f"spec/TRACE.md is out of date: run `{WRITE_COMMAND}`"


def test_code_names_a_clause_only_by_its_whole_id() -> None:
    """``FMT-14`` and ``PROTO-10`` do not name ``FMT-1`` or ``PROTO-1``; ``(REC-4)`` names REC-4."""
    named = clause_ids_named("records (FMT-14), lines (PROTO-10, see REC-4.); CRC-32C; xENG-2")
    assert named == {"FMT-14", "PROTO-10", "REC-4"}


def test_the_trace_lists_as_code_the_modules_that_name_each_clause() -> None:
    code = implementing_modules()
    for row in rows():
        assert list(row.code) == code.get(row.clause.id, [])
        for module in row.code:
            assert row.clause.id in clause_ids_named((ROOT / module).read_text()), module
    assert "catlog/codec.py" in code["FMT-2"], "codec.py's docstring names the header clause"
