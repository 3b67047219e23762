"""How the tools write bytes, times and counts for people (TOOL-10, TOOL-11).

Keys and values are arbitrary bytes, so a line shows them as Python bytes literals, cut after a
few dozen bytes; JSON shows them whole as hex, plus text when they are printable UTF-8. Times are
FMT-10's milliseconds, written as ISO-8601 UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

KEY_SHOWN: Final = 48
"""TOOL-10: key bytes shown in text dumps before the truncation marker."""
VALUE_SHOWN: Final = 64
"""TOOL-20: value bytes shown by ``dump --values``."""


def show_bytes(data: bytes, limit: int) -> str:
    """A printable Python repr of ``data``, cut after ``limit`` bytes with a marker saying so."""
    if len(data) <= limit:
        return repr(data)
    return f"{data[:limit]!r}...(+{len(data) - limit} bytes)"


def text_form(data: bytes) -> str | None:
    """``data`` as text when it is printable UTF-8, else ``None`` (the hex form is always there)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text if text.isprintable() else None


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def iso_utc(timestamp_ms: int) -> str:
    """FMT-10's milliseconds as ISO-8601 UTC, ``2023-11-14T22:13:20.000Z``."""
    try:
        moment = _EPOCH + timedelta(milliseconds=timestamp_ms)
    except OverflowError:
        return "out-of-range"
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def count(n: int, noun: str) -> str:
    """``1 segment``, ``3 segments``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"
