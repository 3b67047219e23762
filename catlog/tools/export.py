"""``catlog export DIR``: the live keys as Redis's mass-insertion stream, for ``redis-cli --pipe``
(TOOL-43 .. TOOL-45).

Reading is ``dump``'s (TOOL-36): no lock, every segment of one listing, so a server may keep
running. The store's value of each key is worked out as FMT-14 defines it, by applying every valid
record in segment-then-offset order, judging expiry by the clock; only then is anything written,
so damage that opening the store refuses stops the export before a single command is out (TOOL-44).

The stream is pure: :func:`set_command` turns one key into the bytes of one RESP array, and tests
read it without files.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from catlog.codec import Record, RecordType
from catlog.errors import CorruptionError
from catlog.fs import FileSystem
from catlog.scan import RegionKind, scan_segment

from .listing import Listing, open_listing
from .status import EXIT_OK


def set_command(key: bytes, value: bytes, expires_at_ms: int = 0) -> bytes:
    """TOOL-43: ``SET key value``, with ``PXAT expires_at_ms`` when the key expires, in RESP."""
    words = [b"SET", key, value]
    if expires_at_ms:
        words += [b"PXAT", b"%d" % expires_at_ms]
    parts = [b"*%d\r\n" % len(words)]
    for word in words:
        parts += [b"$%d\r\n" % len(word), word, b"\r\n"]
    return b"".join(parts)


def live_keys(records: Iterable[Record], *, now_ms: int) -> dict[bytes, tuple[bytes, int]]:
    """FMT-14: each key's value and expiry (0 for none) once ``records`` are applied in order,
    without the keys whose expiry is before ``now_ms`` (ENG-34)."""
    live: dict[bytes, tuple[bytes, int]] = {}
    for record in records:
        for member in record.members or (record,):
            if member.type is RecordType.DELETE:
                live.pop(member.key, None)
            else:
                live[member.key] = (member.value, member.expires_at_ms)
    return {
        key: (value, expires)
        for key, (value, expires) in live.items()
        if not expires or expires >= now_ms
    }


def export(directory: str, *, fs: FileSystem, now_ms: int, out: BinaryIO | None = None) -> int:
    """TOOL-43 .. TOOL-45: write every live key of ``directory`` to ``out`` (stdout's bytes)."""
    directory = directory.rstrip("/") or "/"
    with open_listing(fs, directory) as listing:
        live = live_keys(_records(listing), now_ms=now_ms)
    stream = out if out is not None else sys.stdout.buffer
    for key in sorted(live):
        value, expires_at_ms = live[key]
        stream.write(set_command(key, value, expires_at_ms))
    stream.flush()
    return EXIT_OK


def _records(listing: Listing) -> Iterator[Record]:
    """TOOL-44: every valid record in FMT-14's order; damage open refuses raises, as open does."""
    for i, name in enumerate(listing.names):
        data = listing.read(i)
        for entry in scan_segment(data, newest=name == listing.names[-1]):
            if isinstance(entry, Record):
                yield entry
            elif entry.kind is not RegionKind.TORN_TAIL:  # open cuts a torn tail (REC-4)
                path = f"{listing.directory}/{name}"
                raise CorruptionError(path, entry.start, f"{entry.reason} ({entry.kind.value})")
