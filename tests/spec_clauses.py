"""Read the clauses of spec/*.md and the citations in tests/, for the trace gate and its report.

A clause is a line starting ``**XXX-N** (MUST|SHOULD|MAY)``; a citation is a string argument of
``pytest.mark.spec(...)``, found by reading the test sources (not by importing them), so a test
that is skipped or fails to import still counts as citing what it names.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLAUSE = re.compile(r"^\*\*([A-Z]+-\d+)\*\* \((MUST|SHOULD|MAY)\)", re.MULTILINE)


@dataclass(frozen=True)
class Clause:
    id: str
    level: str
    document: str


def clauses() -> dict[str, Clause]:
    found: dict[str, Clause] = {}
    for doc in sorted((ROOT / "spec").glob("*.md")):
        for match in CLAUSE.finditer(doc.read_text()):
            clause_id = match.group(1)
            assert clause_id not in found, f"{clause_id} is defined twice"
            found[clause_id] = Clause(clause_id, match.group(2), doc.name)
    return found


def _is_spec_marker(node: ast.expr) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "spec"
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "mark"
    )


def citations() -> dict[str, list[str]]:
    """clause id -> the tests (``path::name``) that cite it."""
    cited: dict[str, list[str]] = {}
    for path in sorted((ROOT / "tests").rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef | ast.ClassDef):
                continue
            for decorator in node.decorator_list:
                if isinstance(decorator, ast.Call) and _is_spec_marker(decorator.func):
                    for arg in decorator.args:
                        assert isinstance(arg, ast.Constant), f"{path}: cite clauses literally"
                        assert isinstance(arg.value, str)
                        where = f"{path.relative_to(ROOT)}::{node.name}"
                        cited.setdefault(arg.value, []).append(where)
    return cited
