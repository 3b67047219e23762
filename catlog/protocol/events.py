"""The one event both request readers share: "I need more bytes" (spec/protocol.md, PROTO-3)."""

from __future__ import annotations

import enum
from typing import Final


class NeedData(enum.Enum):
    NEED_DATA = "NEED_DATA"


NEED_DATA: Final = NeedData.NEED_DATA
"""Returned by a reader when nothing more can be parsed until more bytes arrive."""
