"""The spec read as a learner reads it, in spec/README.md's order, naming nothing that is absent.

Every clause ID that any spec document mentions is defined somewhere; every file of the repository
a document names (`catlog/...`, `tests/...`, `bench/...`) exists; the documents edited for readers
say at their top which modules implement them and keep to 100 columns; and the byte layouts drawn in
overview.md are exactly the ones :mod:`tests.spec_figures` draws from the codec's constants.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests import spec_figures
from tests.spec_clauses import clauses
from tests.trace import READING_ORDER_ITEM

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "spec"
MENTION = re.compile(r"\b(?:FMT|ENG|REC|TOOL|PROTO|SRV)-\d+\b")
CODE_PATH = re.compile(r"(?<![\w/.-])((?:catlog|tests|bench)/[\w./-]*)")
READER_DOCUMENTS = (
    "overview.md",
    "format.md",
    "engine.md",
    "recovery.md",
    "tools.md",
    "protocol.md",
    "server.md",
)
"""The documents in a reader's order (issue 16), each saying what implements it, wrapped."""


def documents() -> list[Path]:
    return sorted(p for p in SPEC.glob("*.md") if p.name != "TRACE.md")


def prose(path: Path) -> str:
    return path.read_text()


def test_every_clause_a_document_names_exists() -> None:
    known = set(clauses())
    missing = [
        f"{doc.name}: {name}"
        for doc in documents()
        for name in sorted(set(MENTION.findall(prose(doc))))
        if name not in known
    ]
    assert missing == []


def test_every_file_a_document_names_exists() -> None:
    missing = []
    for doc in documents():
        for match in CODE_PATH.finditer(prose(doc)):
            named = match.group(1).rstrip(".")
            if not (ROOT / named).exists():
                missing.append(f"{doc.name}: {named}")
    assert missing == []


def test_the_reading_order_lists_every_document_overview_first() -> None:
    listed = READING_ORDER_ITEM.findall((SPEC / "README.md").read_text())
    assert listed[0] == "overview.md"
    assert sorted(listed) == sorted(d.name for d in documents() if d.name != "README.md")


def test_the_overview_defines_no_clause() -> None:
    assert [c for c in clauses().values() if c.document == "overview.md"] == []


@pytest.mark.parametrize("name", READER_DOCUMENTS)
def test_a_document_says_at_its_top_which_modules_implement_it(name: str) -> None:
    top = "\n".join(prose(SPEC / name).split("\n## ", 1)[0].splitlines())
    assert "Implemented by" in top
    named = [m.group(1) for m in CODE_PATH.finditer(top)]
    assert any(path.startswith("catlog/") for path in named)


@pytest.mark.parametrize("name", READER_DOCUMENTS)
def test_a_document_is_wrapped_at_100_columns(name: str) -> None:
    long_lines = []
    in_code = False
    for number, line in enumerate(prose(SPEC / name).splitlines(), 1):
        if line.startswith("```"):
            in_code = not in_code
        elif len(line) > 100 and not in_code and not line.startswith("|"):
            long_lines.append(f"{name}:{number}: {len(line)} columns")
    assert long_lines == []


@pytest.mark.parametrize("figure", spec_figures.FIGURES, ids=lambda f: f.__name__)
def test_each_byte_layout_in_the_overview_is_drawn_from_the_codec(
    figure: spec_figures.Figure,
) -> None:
    assert figure() in prose(SPEC / "overview.md"), f"run python -m tests.spec_figures: {figure}"
