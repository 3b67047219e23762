"""The recovery decision on its own: every branch, no files (catlog/recovery.py)."""

from __future__ import annotations

import pytest

from catlog.codec import Damage, DamageKind, HeaderStatus
from catlog.recovery import Action, Verdict, judge_damage, judge_header

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
