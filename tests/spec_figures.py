"""The byte-layout figures of spec/overview.md, drawn from the codec's own ``struct`` formats.

``python -m tests.spec_figures`` prints them; ``tests/test_spec_reading.py`` fails when the figures
in the spec are not exactly these, so a change to a layout in the code shows up in the pictures.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from catlog import codec, hint

Field = tuple[str, int | str]
"""A field's name and its size: bytes, or the name of the field that gives its length."""


def fields_of(layout: struct.Struct, names: list[str]) -> list[Field]:
    """Pair ``names`` with the sizes of ``layout``'s fields, in order."""
    codes = [c for c in layout.format.lstrip("<>=!@") if not c.isdigit()]
    counts: list[int] = []
    digits = ""
    for c in layout.format.lstrip("<>=!@"):
        if c.isdigit():
            digits += c
        else:
            counts.append(int(digits) if digits else 1)
            digits = ""
    sizes = [
        count if code == "s" else struct.calcsize("<" + code)
        for code, count in zip(codes, counts, strict=True)
    ]
    assert len(sizes) == len(names), (layout.format, names)
    return list(zip(names, sizes, strict=True))


def draw(title: str, fields: list[Field]) -> str:
    """A LevelDB-style box: offsets above, names inside, sizes below."""
    widths = [max(len(name), len(str(size))) + 2 for name, size in fields]
    rule = "+" + "+".join("-" * w for w in widths) + "+"
    names = (
        "|"
        + "|".join(f" {name}".ljust(w) for (name, _), w in zip(fields, widths, strict=True))
        + "|"
    )
    sizes = " " + " ".join(f" {size}".ljust(w) for (_, size), w in zip(fields, widths, strict=True))
    offsets, at, known = "", 0, True
    for (_, size), w in zip(fields, widths, strict=True):
        offsets += (str(at) if known else "").ljust(w + 1)
        if isinstance(size, int):
            at += size
        else:
            known = False
    offsets += str(at) if known else ""
    lines = [title, offsets.rstrip(), rule, names, rule, sizes.rstrip() + "   (bytes)"]
    return "\n".join(lines)


def record() -> str:
    names = ["crc", "type", "timestamp_ms", "key_len", "value_len"]
    fields = [*fields_of(codec.RECORD_HEADER, names), ("key", "key_len"), ("value", "value_len")]
    return draw(f"a record: {codec.RECORD_HEADER_SIZE}-byte header, key, value", fields)


def segment_header() -> str:
    fields = fields_of(codec.SEGMENT_HEADER, ["magic", "version", "crc"])
    return draw(f"a segment header: {codec.SEGMENT_HEADER_SIZE} bytes", fields)


def packed_short() -> str:
    names = ["crc", "type", "key_len", "value_len"]
    fields = [*fields_of(codec.PACKED_SHORT, names), ("key", "key_len"), ("value", "value_len")]
    return draw(
        f"a packed record, short form: {codec.PACKED_SHORT_SIZE}-byte header, key, value", fields
    )


def packed_long() -> str:
    names = ["crc", "type", "key_len", "value_len"]
    fields = [*fields_of(codec.PACKED_LONG, names), ("key", "key_len"), ("value", "value_len")]
    return draw(
        f"a packed record, long form: {codec.PACKED_LONG_SIZE}-byte header, key, value", fields
    )


def hint_header() -> str:
    names = ["magic", "version", "P", "E", "D", "segment_crc", "segment_number", "segment_size"]
    return draw(
        f"a hint header: {hint.HINT_HEADER_SIZE} bytes, then the columns",
        fields_of(hint.HINT_HEADER, names),
    )


Figure = Callable[[], str]
FIGURES: tuple[Figure, ...] = (segment_header, record, packed_short, packed_long, hint_header)


if __name__ == "__main__":
    for figure in FIGURES:
        print(figure(), end="\n\n")
