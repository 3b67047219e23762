"""``catlog dump``: every record and damaged region of a directory or one segment, as text or JSON
Lines (TOOL-10 .. TOOL-12, TOOL-20, TOOL-23), read from a directory a server may be using (TOOL-36).

The functions that turn a record into a line are pure, so tests and the map (TOOL-33) use them
without files.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from functools import partial
from typing import Final

from catlog.codec import (
    PACKED_LONG,
    PACKED_LONG_BIT,
    PACKED_LONG_SIZE,
    PACKED_SHORT,
    PACKED_SHORT_SIZE,
    PACKED_VERSION,
    RECORD_HEADER,
    RECORD_HEADER_SIZE,
    SEGMENT_HEADER,
    SEGMENT_HEADER_SIZE,
    HeaderStatus,
    Record,
    RecordType,
    decode_segment_header,
)
from catlog.fs import FileSystem
from catlog.scan import Entry, Region, RegionKind, read_file, scan_segment
from catlog.segment import parse_segment_name

from .listing import open_listing
from .status import EXIT_OK
from .text import KEY_SHOWN, VALUE_SHOWN, count, iso_utc, show_bytes, text_form

Segment = tuple[str, bool, Callable[[], bytes]]
"""A segment to print: its name, whether it is the newest, and how to read its bytes."""


def dump(
    path: str,
    *,
    fs: FileSystem,
    as_json: bool = False,
    values: bool = False,
    limit: int | None = None,
) -> int:
    """TOOL-10 .. TOOL-12, TOOL-36: print a directory's segments, or one segment file; lock-free."""
    path = path.rstrip("/") or "/"
    try:
        listing = open_listing(fs, path)
    except NotADirectoryError:
        directory, _, name = path.rpartition("/")
        one = (name, _is_newest(fs, directory or ".", name), partial(read_file, fs, path))
        return _print_segments(path, [one], as_json=as_json, values=values, limit=limit)
    with listing:
        names = listing.names
        title = f"{path}: {count(len(names), 'segment')}"
        segments = [
            (name, name == names[-1], partial(listing.read, i)) for i, name in enumerate(names)
        ]
        return _print_segments(title, segments, as_json=as_json, values=values, limit=limit)


def _print_segments(
    title: str, segments: Sequence[Segment], *, as_json: bool, values: bool, limit: int | None
) -> int:
    if not as_json:
        print(DUMP_PREAMBLE.format(title=title))
    shown = 0
    for name, newest, read in segments:
        data = read()
        print(json.dumps(header_json(name, data)) if as_json else header_text(name, data))
        for entry in scan_segment(data, newest=newest):
            if limit is not None and shown >= limit:
                if not as_json:
                    print(f"# stopped after {limit} records and regions (--limit {limit})")
                return EXIT_OK
            shown += 1
            members, batch_at = (
                (entry.members, entry.offset) if isinstance(entry, Record) else ((), 0)
            )
            if as_json:
                print(json.dumps(entry_json(name, entry, data, values=values)))
                for member in members:
                    obj = entry_json(name, member, data, values=values)
                    print(json.dumps({**obj, "entry": "member", "batch": batch_at}))
            else:
                print(entry_text(entry, data, values=values))
                for member in members:
                    print("  " + entry_text(member, data, values=values))
    return EXIT_OK


def _is_newest(fs: FileSystem, directory: str, name: str) -> bool:
    """Whether a segment given by path is its directory's newest, so a torn tail shows as one."""
    number = parse_segment_name(name)
    if number is None:
        return False
    numbers = map(parse_segment_name, fs.listdir(directory))
    later = [n for n in numbers if n is not None and n > number]
    return not later


DUMP_PREAMBLE: Final = """\
# catlog dump of {title}
# Read it beside spec/format.md. A segment starts with a 16-byte header (FMT-2: magic, version,
# crc); records follow back to back from offset 16 (FMT-11). Each record line shows the fields of
# FMT-4: @offset, type (FMT-6), size, timestamp_ms (FMT-10, also as UTC), key_len, value_len,
# crc (FMT-5: CRC-32C of everything after the crc field), key. A packed segment (version 2,
# FMT-26) holds packed records (FMT-27), which have no timestamp. Bytes that are not a valid
# record are shown as one range; their lengths are never believed (REC-3)."""


def header_text(name: str, data: bytes) -> str:
    """TOOL-10: the segment's first line: its size, then the header's fields and status."""
    first = f"== {name}: {count(len(data), 'byte')}\n@0 header "
    if not data:
        return first + "none: empty segment (open writes it if this is the newest, REC-5)"
    if len(data) < SEGMENT_HEADER_SIZE:
        return first + f"incomplete: {count(len(data), 'byte')} of {SEGMENT_HEADER_SIZE}"
    status, version = decode_segment_header(data)
    magic, _, crc = SEGMENT_HEADER.unpack_from(data)
    verdict = "ok" if status is HeaderStatus.OK else f"bad ({status.value})"
    return first + f"magic={magic!r} version={version} crc=0x{crc:08x} {verdict}"


def entry_text(entry: Entry, data: bytes, *, values: bool = False) -> str:
    """TOOL-10: one line per record or damaged region."""
    if isinstance(entry, Record):
        crc = int.from_bytes(data[entry.offset : entry.offset + 4], "little")
        what = f"member {entry.type.name}" if entry.in_batch else entry.type.name
        when = f"time={iso_utc(entry.timestamp_ms)} ms={entry.timestamp_ms}"
        if entry.packed:
            what, when = f"{what} packed", "time=- ms=-"  # TOOL-23: FMT-28, no timestamp
        line = (
            f"@{entry.offset} {what} size={entry.size} {when} "
            f"key_len={len(entry.key)} value_len={entry.value_len} crc=0x{crc:08x} ok "
            f"key={show_bytes(entry.key, KEY_SHOWN)}"
        )
        if entry.type is RecordType.PUT_EXPIRING:
            line += f" expires={iso_utc(entry.expires_at_ms)} expires_ms={entry.expires_at_ms}"
        if entry.type is RecordType.BATCH:
            line += f" members={len(entry.members)}"
        if values and entry.type is not RecordType.BATCH:
            line += f" value={show_bytes(entry.value, VALUE_SHOWN)}"
        return line
    label = _REGION_LABELS[entry.kind]
    line = (
        f"@{entry.start} {label} {count(entry.length, 'byte')} ({entry.start}..{entry.end}): "
        f"{entry.reason}; {entry.kind.value}"
    )
    claims = _claimed_header(entry, data)
    return line if claims is None else f"{line}; {claims}"


_REGION_LABELS: Final = {
    RegionKind.CORRUPT: "DAMAGED",
    RegionKind.TORN_TAIL: "TORN",
    RegionKind.FORMAT_VIOLATION: "INVALID",
    RegionKind.UNSUPPORTED: "UNREADABLE",
}


def _claimed_header(region: Region, data: bytes) -> str | None:
    """What a damaged record header says, for learners, marked as not believed (REC-3)."""
    if region.kind is RegionKind.UNSUPPORTED or region.start < SEGMENT_HEADER_SIZE:
        return None
    packed = decode_segment_header(data) == (HeaderStatus.OK, PACKED_VERSION)
    head = RECORD_HEADER_SIZE
    if packed:
        head = PACKED_LONG_SIZE if data[region.start + 4] & PACKED_LONG_BIT else PACKED_SHORT_SIZE
    if region.end - region.start < head:
        return None
    if not packed:
        crc, rtype, _ts, key_len, value_len = RECORD_HEADER.unpack_from(data, region.start)
    else:
        layout = PACKED_LONG if head == PACKED_LONG_SIZE else PACKED_SHORT
        crc, rtype, key_len, value_len = layout.unpack_from(data, region.start)
    trust = "crc ok" if region.kind is RegionKind.FORMAT_VIOLATION else "not believed"
    fields = f"type={rtype} key_len={key_len} value_len={value_len} crc=0x{crc:08x}"
    return f"header says {fields} ({trust})"


def header_json(name: str, data: bytes) -> dict[str, object]:
    """TOOL-11: the segment header as one JSON object."""
    obj: dict[str, object] = {"segment": name, "entry": "header", "offset": 0}
    obj["file_size"] = len(data)
    if len(data) < SEGMENT_HEADER_SIZE:
        obj["status"] = "empty" if not data else HeaderStatus.INCOMPLETE.value
        return obj
    status, version = decode_segment_header(data)
    magic, _, crc = SEGMENT_HEADER.unpack_from(data)
    obj.update(
        status=status.value, magic_hex=bytes(magic).hex(), version=version, crc=f"0x{crc:08x}"
    )
    return obj


def entry_json(name: str, entry: Entry, data: bytes, *, values: bool = False) -> dict[str, object]:
    """TOOL-11: a record or a region as one JSON object; bytes as hex, plus text when printable."""
    if isinstance(entry, Record):
        crc = int.from_bytes(data[entry.offset : entry.offset + 4], "little")
        obj: dict[str, object] = {
            "segment": name,
            "entry": "record",
            "offset": entry.offset,
            "size": entry.size,
            "type": entry.type.name,
            "type_code": int(entry.type),
            "timestamp_ms": None if entry.packed else entry.timestamp_ms,
            "time": None if entry.packed else iso_utc(entry.timestamp_ms),
            "key_len": len(entry.key),
            "value_len": entry.value_len,
            "crc": f"0x{crc:08x}",
            "crc_ok": True,
            "key_hex": entry.key.hex(),
            "key_text": text_form(entry.key),
        }
        if entry.packed:
            obj["packed"] = True  # TOOL-23
        if entry.type is RecordType.PUT_EXPIRING:
            obj["expires_at_ms"] = entry.expires_at_ms
            obj["expires"] = iso_utc(entry.expires_at_ms)
        if entry.type is RecordType.BATCH:
            obj["members"] = len(entry.members)
        if values:
            obj["value_hex"] = entry.value.hex()
            obj["value_text"] = text_form(entry.value)
        return obj
    return {
        "segment": name,
        "entry": "region",
        "offset": entry.start,
        "end": entry.end,
        "length": entry.length,
        "reason": entry.reason,
        "verdict": entry.kind.name.lower(),
        "crc_ok": entry.kind is RegionKind.FORMAT_VIOLATION,
    }


def dump_lines(entry: Entry, data: bytes) -> list[str]:
    """TOOL-10: an entry's lines as ``catlog dump`` prints them, a batch's members indented."""
    members = entry.members if isinstance(entry, Record) else ()
    return [entry_text(entry, data)] + ["  " + entry_text(m, data) for m in members]
