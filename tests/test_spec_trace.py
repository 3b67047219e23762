"""The trace gate: every MUST clause is checked by a test, and every citation names a clause."""

from __future__ import annotations

from tests.spec_clauses import citations, clauses


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
