"""``python -m tests.trace``: print each spec clause with the tests that cite it."""

from __future__ import annotations

from tests.spec_clauses import citations, clauses


def main() -> None:
    cited = citations()
    for clause in clauses().values():
        tests = cited.get(clause.id, [])
        print(f"{clause.id:8} {clause.level:6} {clause.document:12} {len(tests)} test(s)")
        for test in tests:
            print(f"{'':28}{test}")


if __name__ == "__main__":
    main()
