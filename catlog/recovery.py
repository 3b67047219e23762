"""The recovery decision: given what a scan of a segment found, accept, cut a torn tail, or refuse.

This module is pure (spec/recovery.md, REC-4 .. REC-7, REC-19): it takes the scan's findings and
returns a :class:`Verdict`; the store carries the verdict out (quarantine, truncate, raise).
Keeping the decision apart from the I/O lets the tests walk every branch of it without a file;
spec/recovery.md's decision table is checked against these functions row by row.

The rule in one paragraph: only the newest segment can have been cut short by a crash, because a
segment is fsynced before the next one is created (ENG-10). So damage in an older segment is
corruption. In the newest segment, damage is a torn tail (the bytes the last writer did not finish)
only if no valid record follows it; a valid record after the damage means the damage is not at the
tail, and it is reported as corruption rather than cut off together with good records.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .codec import WRITTEN_WHOLE, Damage, HeaderStatus


class Action(enum.Enum):
    ACCEPT = "accept"
    TRUNCATE_TAIL = "truncate tail"
    CORRUPT = "corrupt"
    UNSUPPORTED = "unsupported version"


@dataclass(frozen=True, slots=True)
class Verdict:
    action: Action
    offset: int = 0
    reason: str = ""


ACCEPT = Verdict(Action.ACCEPT)


def judge_header(
    status: HeaderStatus, *, size: int, newest: bool, next_record: int | None
) -> Verdict:
    """REC-5: what to do with a segment whose first bytes are ``status``.

    ``next_record`` is the offset of the first valid record after the header's place, if any.
    """
    if status is HeaderStatus.OK:
        return ACCEPT
    if status is HeaderStatus.UNSUPPORTED_VERSION:
        return Verdict(Action.UNSUPPORTED, 0, status.value)
    if newest and next_record is None:
        detail = "empty segment" if size == 0 else status.value
        return Verdict(Action.TRUNCATE_TAIL, 0, detail)
    return Verdict(Action.CORRUPT, 0, _with_follower(status.value, next_record))


def judge_damage(
    damage: Damage, *, newest: bool, next_record: int | None, packed: bool = False
) -> Verdict:
    """REC-4, REC-6, REC-7, REC-19: what to do when replay of a segment stopped at ``damage``.

    ``packed`` says the segment is a packed one (FMT-26), fsynced whole before it was named, so
    that no crash explains damage in it.
    """
    if newest and not packed and next_record is None and damage.kind not in WRITTEN_WHOLE:
        return Verdict(Action.TRUNCATE_TAIL, damage.offset, damage.reason)
    return Verdict(Action.CORRUPT, damage.offset, _with_follower(damage.reason, next_record))


def _with_follower(reason: str, next_record: int | None) -> str:
    if next_record is None:
        return reason
    return f"{reason} (a valid record follows at offset {next_record}, so this is not a torn tail)"
