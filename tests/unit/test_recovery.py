"""The recovery decision on its own: every branch, no files (catlog/recovery.py)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from catlog.codec import WRITTEN_WHOLE, Damage, DamageKind, HeaderStatus
from catlog.recovery import ACCEPT, Action, Verdict, judge_damage, judge_header

TORN_KINDS = [
    DamageKind.INCOMPLETE_HEADER,
    DamageKind.INCOMPLETE_RECORD,
    DamageKind.CRC_MISMATCH,
    DamageKind.BAD_LENGTH,
]


@pytest.mark.spec("REC-4")
@pytest.mark.parametrize("kind", TORN_KINDS)
def test_damage_at_the_end_of_the_newest_segment_is_a_torn_tail(kind: DamageKind) -> None:
    verdict = judge_damage(Damage(100, kind), newest=True, next_record=None)
    assert verdict.action is Action.TRUNCATE_TAIL
    assert verdict.offset == 100


@pytest.mark.spec("REC-6")
@pytest.mark.parametrize("kind", list(DamageKind))
def test_damage_in_an_older_segment_is_corruption(kind: DamageKind) -> None:
    verdict = judge_damage(Damage(100, kind), newest=False, next_record=None)
    assert verdict.action is Action.CORRUPT
    assert verdict.offset == 100


@pytest.mark.spec("REC-6")
def test_damage_followed_by_a_valid_record_is_corruption_even_in_the_newest_segment() -> None:
    verdict = judge_damage(Damage(100, DamageKind.CRC_MISMATCH), newest=True, next_record=180)
    assert verdict.action is Action.CORRUPT
    assert "180" in verdict.reason


@pytest.mark.spec("REC-7")
@pytest.mark.parametrize("kind", [DamageKind.UNKNOWN_TYPE, DamageKind.BAD_DELETE])
def test_a_whole_but_invalid_record_is_never_a_torn_tail(kind: DamageKind) -> None:
    verdict = judge_damage(Damage(16, kind), newest=True, next_record=None)
    assert verdict.action is Action.CORRUPT


@pytest.mark.spec("REC-5")
@pytest.mark.parametrize(
    "status", [HeaderStatus.INCOMPLETE, HeaderStatus.CRC_MISMATCH, HeaderStatus.BAD_MAGIC]
)
def test_a_bad_header_of_the_newest_segment_is_a_torn_tail_at_zero(status: HeaderStatus) -> None:
    verdict = judge_header(status, size=9, newest=True, next_record=None)
    assert (verdict.action, verdict.offset) == (Action.TRUNCATE_TAIL, 0)
    assert judge_header(status, size=9, newest=False, next_record=None).action is Action.CORRUPT
    assert judge_header(status, size=90, newest=True, next_record=16).action is Action.CORRUPT


@pytest.mark.spec("REC-5", "FMT-3")
def test_header_verdicts_for_good_empty_and_future_segments() -> None:
    assert judge_header(HeaderStatus.OK, size=16, newest=False, next_record=None).action is (
        Action.ACCEPT
    )
    empty = judge_header(HeaderStatus.INCOMPLETE, size=0, newest=True, next_record=None)
    assert (empty.action, empty.reason) == (Action.TRUNCATE_TAIL, "empty segment")
    for newest in (True, False):
        future = judge_header(
            HeaderStatus.UNSUPPORTED_VERSION, size=16, newest=newest, next_record=None
        )
        assert future.action is Action.UNSUPPORTED


@pytest.mark.spec("REC-4", "REC-5", "REC-6", "ENG-22")
def test_each_verdict_carries_the_offset_and_reason_the_store_reports() -> None:
    """The reason becomes the TailRepair's reason or the CorruptionError's (ENG-22)."""
    crc = Damage(100, DamageKind.CRC_MISMATCH)
    cut = Damage(100, DamageKind.INCOMPLETE_HEADER, "5 bytes left")
    follows = "(a valid record follows at offset 180, so this is not a torn tail)"
    assert judge_damage(cut, newest=True, next_record=None) == Verdict(
        Action.TRUNCATE_TAIL, 100, "incomplete header: 5 bytes left"
    )
    assert judge_damage(crc, newest=False, next_record=None) == Verdict(
        Action.CORRUPT, 100, "crc mismatch"
    )
    assert judge_damage(crc, newest=True, next_record=180) == Verdict(
        Action.CORRUPT, 100, f"crc mismatch {follows}"
    )
    short = HeaderStatus.INCOMPLETE
    assert judge_header(short, size=9, newest=True, next_record=None) == Verdict(
        Action.TRUNCATE_TAIL, 0, "incomplete segment header"
    )
    assert judge_header(short, size=9, newest=False, next_record=None) == Verdict(
        Action.CORRUPT, 0, "incomplete segment header"
    )
    assert judge_header(HeaderStatus.CRC_MISMATCH, size=90, newest=True, next_record=180) == (
        Verdict(Action.CORRUPT, 0, f"segment header crc mismatch {follows}")
    )
    future = HeaderStatus.UNSUPPORTED_VERSION
    assert judge_header(future, size=16, newest=True, next_record=None) == Verdict(
        Action.UNSUPPORTED, 0, "unsupported segment format version"
    )


RECOVERY = Path(__file__).resolve().parents[2] / "spec" / "recovery.md"
COLUMNS = ("newest", "packed", "header", "damage", "after", "verdict", "clause")


def decision_table() -> list[dict[str, str]]:
    """The rows of recovery.md's decision table, as the spec prints them."""
    text = RECOVERY.read_text().split("### The decision table", 1)[1]
    rows = []
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == len(COLUMNS) and cells[0] in ("yes", "no", "-"):
            rows.append(dict(zip(COLUMNS, cells, strict=True)))
    return rows


def cases() -> list[dict[str, str]]:
    """Every combination of the table's inputs that a segment can present."""
    found = []
    for newest, packed, header in itertools.product(
        ("yes", "no"), ("yes", "no"), ("valid", "unknown version", "empty", "damaged")
    ):
        damages = ("none", "torn", "whole") if header == "valid" else ("n/a",)
        for damage in damages:
            nothing_after = header == "empty" or damage == "none" or header == "unknown version"
            for after in ("n/a",) if nothing_after else ("yes", "no"):
                found.append(
                    {"newest": newest, "packed": packed, "header": header}
                    | {"damage": damage, "after": after}
                )
    return found


def verdicts(case: dict[str, str]) -> list[Verdict]:
    """What recovery.py's judges say of ``case``, once per status or damage kind it covers."""
    newest, packed = case["newest"] == "yes", case["packed"] == "yes"
    follower = 180 if case["after"] == "yes" else None
    if case["header"] == "empty":
        return [judge_header(HeaderStatus.INCOMPLETE, size=0, newest=newest, next_record=None)]
    if case["header"] == "damaged":
        statuses = [(HeaderStatus.INCOMPLETE, 9), (HeaderStatus.CRC_MISMATCH, 300)]
        statuses.append((HeaderStatus.BAD_MAGIC, 300))
        return [
            judge_header(status, size=size, newest=newest, next_record=follower)
            for status, size in statuses
        ]
    if case["header"] == "unknown version":
        status = HeaderStatus.UNSUPPORTED_VERSION
        return [judge_header(status, size=300, newest=newest, next_record=None)]
    assert judge_header(HeaderStatus.OK, size=300, newest=newest, next_record=None) == ACCEPT
    if case["damage"] == "none":
        return [ACCEPT]
    kinds = TORN_KINDS if case["damage"] == "torn" else sorted(WRITTEN_WHOLE, key=str)
    return [
        judge_damage(Damage(100, kind), newest=newest, next_record=follower, packed=packed)
        for kind in kinds
    ]


VERDICT_WORDS = {
    "accept": Action.ACCEPT,
    "refuse": Action.UNSUPPORTED,
    "torn tail": Action.TRUNCATE_TAIL,
    "corrupt": Action.CORRUPT,
}


@pytest.mark.spec("REC-4", "REC-5", "REC-6", "REC-7", "REC-19", "REC-22", "REC-23", "FMT-3")
def test_the_decision_table_of_recovery_md_is_what_the_judges_decide_row_by_row() -> None:
    rows = decision_table()
    assert len(rows) >= 10, "the table was found"
    used: set[int] = set()
    for case in cases():
        matching = [
            i
            for i, row in enumerate(rows)
            if all(row[c] in ("-", case[c]) for c in ("newest", "packed", "header", "damage"))
            and row["after"] in ("-", case["after"])
        ]
        assert len(matching) == 1, f"{case} falls in rows {matching}: exactly one must decide it"
        row = rows[matching[0]]
        used.add(matching[0])
        (word,) = [w for w in VERDICT_WORDS if row["verdict"].startswith(w)]
        for verdict in verdicts(case):
            assert verdict.action is VERDICT_WORDS[word], (case, row, verdict)
            if "at 0" in row["verdict"] or "of 0 bytes" in row["verdict"]:
                assert verdict.offset == 0, (case, verdict)
            if "at the damage" in row["verdict"]:
                assert verdict.offset == 100, (case, verdict)
    assert used == set(range(len(rows))), "every row decides some case"
