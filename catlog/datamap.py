"""``catlog map``: a data directory drawn as one self-contained HTML page (TOOL-30 .. TOOL-35).

``check`` says whether a directory is sound and ``dump`` lists its bytes; neither shows at a
glance where the bytes go. The map draws each segment as a bar split into its header, its live
records (those the key index would point at), its dead records (superseded, deleted, batch
frames) and its damaged bytes, says whether its hint would be used, and lists its records as
``dump`` prints them when the bar is clicked.

Theory of operation. A :class:`DirectoryMapper` is fed the segments oldest first, each as the
entries :func:`catlog.scan.scan_segment` found in it; it applies every valid record to a key
index with :func:`catlog.index.apply_record`, as replay does (ENG-13), and keeps, for each key,
the segment and size of the record that holds its value, so that superseding a record moves its
bytes from live to dead in its own segment's tally. Nothing else is kept per record, so memory
grows with the number of keys, as the store's own index does, and not with the data; the listing
of each segment is cut at a fixed number of lines (TOOL-33). :meth:`DirectoryMapper.finish`
then derives the figures ``catlog stats`` would print after opening the directory (TOOL-32),
and :func:`render_html` turns the result into the page.

Everything here is pure: bytes and entries in, a string out. Reading the files and writing the
page is :mod:`catlog.cli`'s job, and so is the wording of a dump line, passed in as ``describe``.
The page carries its figures as JSON in a ``<script type="application/json">`` element, escaped
so that no byte of a key can end that element (TOOL-34); its script draws the bars from them and
writes what it drew, and any error it met, into ``#catlog-selfcheck`` for tests to read.
"""

from __future__ import annotations

import enum
import html
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

from .codec import (
    PACKED_VERSION,
    SEGMENT_HEADER_SIZE,
    HeaderStatus,
    Record,
    RecordType,
    decode_segment_header,
)
from .hint import HintProblem, apply_hint, decode_hint
from .index import Expiring, apply_record, live_expiries
from .scan import Entry, RegionKind

LISTED_LINES: Final = 200
"""TOOL-33: dump lines listed per segment; a page must stay small enough for a browser to open."""

LISTED_LINES_TOTAL: Final = 20_000
"""TOOL-33: dump lines listed on the whole page, however many segments there are."""

Describe = Callable[[Entry, bytes], list[str]]
"""How ``dump`` prints an entry (a record and its members, or a region): one string per line."""


class HintState(enum.Enum):
    """TOOL-31: what opening the store would do with a segment's hint. The value is the label."""

    NONE = "no hint"
    VALID = "valid"
    """It matches its segment (FMT-19) and applies (FMT-18): open uses it instead of a scan."""
    STALE = "stale"
    """It is readable but describes another state of the segment (FMT-19): open scans instead."""
    UNUSABLE = "unusable"
    """It is not a hint open can read (FMT-18): open scans instead (REC-15)."""
    UNREAD = "not read"
    """It belongs to the newest segment, which open always replays (ENG-32)."""


def judge_hint(number: int, data: bytes, hint: bytes | None, *, newest: bool) -> HintState:
    """TOOL-31: a segment's hint as the store judges it at open (ENG-32, REC-15)."""
    if hint is None:
        return HintState.NONE
    if newest:
        return HintState.UNREAD
    decoded = decode_hint(hint)
    if isinstance(decoded, HintProblem):
        return HintState.UNUSABLE
    if not decoded.matches(number, data):
        return HintState.STALE
    if apply_hint(decoded, 0, {}, {}) is not None:
        return HintState.UNUSABLE  # an offset out of range (FMT-18)
    return HintState.VALID


@dataclass(slots=True)
class SegmentMap:
    """TOOL-31: one segment's bytes by kind. ``header + live + dead + torn + damaged == size``."""

    name: str
    size: int
    newest: bool
    hint: HintState
    header: int = 0
    live: int = 0
    """Bytes of the records (or batch members) the index points at once every record is applied."""
    dead: int = 0
    """Bytes of the other valid records: superseded or deleted values, DELETEs, batch frames."""
    torn: int = 0
    """Bytes of a torn tail, which opening the store cuts (REC-4)."""
    damaged: int = 0
    """Bytes of every other region (TOOL-4): open refuses them."""
    records: int = 0
    """Valid records, a batch counted as its members (as check counts them, TOOL-7)."""
    live_records: int = 0
    lines: list[str] = field(default_factory=list)
    unlisted: int = 0
    """TOOL-33: dump lines of this segment left out of the page."""
    packed: bool = False
    """Whether the segment has a packed header (FMT-26)."""
    refused: bool = False
    """Whether it holds a region open refuses: anything but a torn tail (TOOL-4)."""


@dataclass(frozen=True, slots=True)
class Figures:
    """TOOL-32: what ``catlog stats`` prints for the directory once open has recovered it."""

    keys: int
    segments: int
    disk_bytes: int
    expiring_keys: int
    dead_bytes: int
    """ENG-41's estimate as a store opened with ``compact_threshold`` computes it at open."""


@dataclass(frozen=True, slots=True)
class DirectoryMap:
    """Everything the page shows; :func:`render_html` adds nothing but layout."""

    directory: str
    segments: tuple[SegmentMap, ...]
    figures: Figures
    opens: bool
    """Whether opening the store would succeed: no region but a torn tail (TOOL-8)."""
    now_ms: int
    listed_lines: int
    listed_lines_total: int
    notes: tuple[str, ...] = ()
    """TOOL-31: check's notes on the directory's other files (TOOL-7), as check prints them."""


class DirectoryMapper:
    """TOOL-31 .. TOOL-33: fed each segment's scan oldest first, keeps only per-key state."""

    def __init__(
        self,
        directory: str,
        *,
        now_ms: int,
        listed_lines: int = LISTED_LINES,
        listed_lines_total: int = LISTED_LINES_TOTAL,
    ) -> None:
        self._directory = directory
        self._now_ms = now_ms
        self._listed_lines = listed_lines
        self._listed_lines_total = listed_lines_total
        self._budget = listed_lines_total
        self._segments: list[SegmentMap] = []
        self._index: dict[bytes, int] = {}
        self._expiring: Expiring = {}
        self._holder: dict[bytes, tuple[SegmentMap, int]] = {}
        """For each key with a value: the segment and the size of the record that holds it."""

    def add(
        self,
        name: str,
        data: bytes,
        entries: Iterable[Entry],
        *,
        newest: bool,
        hint: HintState,
        header_lines: list[str],
        describe: Describe,
    ) -> None:
        """One segment: its bytes, what the scan found in them, and how dump prints each entry."""
        packed = decode_segment_header(data) == (HeaderStatus.OK, PACKED_VERSION)
        seg = SegmentMap(name=name, size=len(data), newest=newest, hint=hint, packed=packed)
        slot = len(self._segments)
        self._segments.append(seg)
        self._list(seg, header_lines)
        covered = 0
        for entry in entries:
            self._list(seg, describe(entry, data))
            if not isinstance(entry, Record):
                covered += entry.length
                if entry.kind is RegionKind.TORN_TAIL:
                    seg.torn += entry.length
                else:
                    seg.damaged += entry.length
                    seg.refused = True
                continue
            covered += entry.size
            seg.dead += entry.size
            apply_record(entry, slot, self._index, self._expiring)
            for member in entry.members or (entry,):
                seg.records += 1
                before = self._holder.pop(member.key, None)
                if before is not None:
                    holder, size = before
                    holder.live -= size
                    holder.dead += size
                    holder.live_records -= 1
                if member.type is not RecordType.DELETE:
                    self._holder[member.key] = (seg, member.size)
                    seg.live += member.size
                    seg.dead -= member.size
                    seg.live_records += 1
        seg.header = seg.size - covered
        assert seg.header in (0, SEGMENT_HEADER_SIZE), "scan entries tile the segment (TOOL-3)"

    def _list(self, seg: SegmentMap, lines: list[str]) -> None:
        room = min(self._listed_lines - len(seg.lines), self._budget)
        shown = lines[: max(room, 0)]
        seg.lines.extend(shown)
        self._budget -= len(shown)
        seg.unlisted += len(lines) - len(shown)

    def finish(self, notes: Sequence[str] = ()) -> DirectoryMap:
        """TOOL-32: the figures ``catlog stats`` would print once open has recovered the bytes."""
        segments = tuple(self._segments)
        opens = not any(seg.refused for seg in segments)
        count = len(segments)
        disk = sum(seg.size - seg.torn for seg in segments)
        if segments:
            newest = segments[-1]
            if newest.size - newest.torn == 0:
                disk += SEGMENT_HEADER_SIZE  # REC-4, REC-5: open writes a lost header anew
            elif newest.packed:
                # REC-19: open never appends to a packed segment; it starts a new one.
                count += 1
                disk += SEGMENT_HEADER_SIZE
        expiries = live_expiries(self._index, self._expiring)
        # ENG-41: with compact_threshold set, open forgets expired keys, then counts as dead
        # everything on disk but the segment headers and the bytes the indexed records take.
        kept = [key for key in self._index if expiries.get(key, self._now_ms) >= self._now_ms]
        live = sum(self._holder[key][1] for key in kept)
        figures = Figures(
            keys=len(kept),  # ENG-60: stats() counts expired keys out, forgotten or not
            segments=count,
            disk_bytes=disk,
            expiring_keys=sum(key in expiries for key in kept),
            dead_bytes=max(0, disk - SEGMENT_HEADER_SIZE * count - live),
        )
        return DirectoryMap(
            directory=self._directory,
            segments=segments,
            figures=figures,
            opens=opens,
            now_ms=self._now_ms,
            listed_lines=self._listed_lines,
            listed_lines_total=self._listed_lines_total,
            notes=tuple(notes),
        )


# --------------------------------------------------------------------------------- the page


def page_data(dmap: DirectoryMap) -> dict[str, object]:
    """The JSON the page's script draws from; tests read it too."""
    f = dmap.figures
    return {
        "directory": dmap.directory,
        "opens": dmap.opens,
        "now_ms": dmap.now_ms,
        "listed_lines": dmap.listed_lines,
        "listed_lines_total": dmap.listed_lines_total,
        "notes": list(dmap.notes),
        "figures": {
            "keys": f.keys,
            "segments": f.segments,
            "disk_bytes": f.disk_bytes,
            "expiring_keys": f.expiring_keys,
            "dead_bytes": f.dead_bytes,
        },
        "segments": [
            {
                "name": seg.name,
                "size": seg.size,
                "newest": seg.newest,
                "hint": seg.hint.value,
                "header": seg.header,
                "live": seg.live,
                "dead": seg.dead,
                "torn": seg.torn,
                "damaged": seg.damaged,
                "records": seg.records,
                "live_records": seg.live_records,
                "lines": seg.lines,
                "unlisted": seg.unlisted,
            }
            for seg in dmap.segments
        ],
    }


def script_json(data: object) -> str:
    """TOOL-34: JSON that is safe inside a ``<script>`` element, whatever bytes a key holds.

    ``<``, ``>`` and ``&`` are written as ``\\u003c`` and so on, which JSON reads back as the same
    characters; the HTML parser then never sees ``</script>`` or ``<!--`` in the element. Every
    other non-ASCII character is escaped too, so the page is ASCII whatever the directory's name.
    """
    text = json.dumps(data, ensure_ascii=True, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_html(dmap: DirectoryMap) -> str:
    """TOOL-30, TOOL-34: the whole page, one string; nothing in it loads anything else."""
    title = html.escape(f"catlog map of {dmap.directory}").encode("ascii", "xmlcharrefreplace")
    return _PAGE.format(
        title=title.decode("ascii"),
        style=_STYLE,
        data=script_json(page_data(dmap)),
        script=_SCRIPT,
    )


_PAGE: Final = """\
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" \
content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'">
<title>{title}</title>
<style>{style}</style>
</head>
<body>
<h1>{title}</h1>
<p id="verdict"></p>
<table id="figures"><caption>What <code>catlog stats</code> prints once open has recovered the \
directory</caption><tbody></tbody></table>
<p class="legend"><span class="k header"></span> segment header <span class="k live"></span> live \
records <span class="k dead"></span> dead records (compaction drops them) <span class="k torn">\
</span> torn tail (open cuts it) <span class="k damaged"></span> damaged (open refuses)</p>
<ul id="notes"></ul>
<p id="caps"></p>
<div id="segments"></div>
<noscript><p>This page draws the map with its own inline script; allow scripts for this file to \
see it. <code>catlog dump</code> and <code>catlog check</code> print the same facts as text.</p>\
</noscript>
<pre id="catlog-selfcheck" hidden></pre>
<script type="application/json" id="catlog-data">{data}</script>
<script>{script}</script>
</body>
</html>
"""

_STYLE: Final = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.3em; word-break: break-all; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
caption { text-align: left; font-weight: bold; padding-bottom: 0.3em; }
td, th { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.segment { margin: 0.4em 0; }
.segment > button { all: unset; cursor: pointer; display: block; width: 100%; }
.segment > button:focus-visible { outline: 2px solid #36c; }
.name { font-family: monospace; }
.bar { display: flex; height: 18px; background: #f4f4f4; border: 1px solid #bbb; }
.bar > span { display: block; height: 100%; min-width: 0; }
.header { background: #888; } .live { background: #2a9d4b; } .dead { background: #c9b458; }
.torn { background: #e07b39; } .damaged { background: #c0392b; }
.k { display: inline-block; width: 0.9em; height: 0.9em; vertical-align: middle; }
.hint { font-size: 0.9em; padding: 0 0.4em; border-radius: 3px; background: #eee; }
.hint.valid { background: #cdeccf; } .hint.stale, .hint.unusable { background: #f6d2c9; }
.about { font-size: 0.9em; color: #444; }
pre.records { background: #fafafa; border: 1px solid #ddd; padding: 0.5em; overflow-x: auto;
  font-size: 12px; }
"""

_SCRIPT: Final = r"""
"use strict";
(function () {
  var errors = [];
  var shown = {};
  function report() {
    var out = document.getElementById("catlog-selfcheck");
    out.textContent = JSON.stringify({errors: errors, figures: shown});
  }
  window.onerror = function (message, source, line) {
    errors.push(String(message) + " (line " + line + ")");
    report();
  };
  var original = console.error;
  console.error = function () {
    errors.push(Array.prototype.join.call(arguments, " "));
    return original.apply(console, arguments);
  };
  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined) { node.textContent = text; }
    return node;
  }
  function bytes(n) { return n + (n === 1 ? " byte" : " bytes"); }
  var data = JSON.parse(document.getElementById("catlog-data").textContent);
  var f = data.figures;
  var verdict = data.opens
    ? "Opening the store succeeds" + (data.segments.some(function (s) { return s.torn > 0; })
      ? " after cutting a torn tail (REC-4)." : ".")
    : "Opening the store refuses this directory (damage, REC-6): catlog stats fails; the " +
      "figures are those of its valid records, what catlog repair would leave.";
  var now = data.segments.reduce(function (acc, s) { return acc + s.size; }, 0);
  document.getElementById("verdict").textContent = verdict + " Its " +
    data.segments.length + " segment files hold " + bytes(now) + " now.";
  var rows = [
    ["keys", "keys", f.keys],
    ["segments", "segments", f.segments],
    ["disk_bytes", "bytes on disk", f.disk_bytes],
    ["expiring_keys", "expiring keys", f.expiring_keys],
    ["dead_bytes", "dead bytes (ENG-41's estimate: what compaction would reclaim)", f.dead_bytes]
  ];
  var body = document.querySelector("#figures tbody");
  rows.forEach(function (row) {
    var tr = el("tr");
    tr.appendChild(el("th", "", row[1]));
    var td = el("td", "n", String(row[2]));
    td.setAttribute("data-figure", row[0]);
    tr.appendChild(td);
    body.appendChild(tr);
  });
  var notes = document.getElementById("notes");
  data.notes.forEach(function (note) { notes.appendChild(el("li", "", note)); });
  document.getElementById("caps").textContent =
    "Click a segment to list its records as catlog dump prints them (at most " +
    data.listed_lines + " lines per segment and " + data.listed_lines_total +
    " on this page; catlog dump lists them all).";
  var widest = Math.max.apply(null, data.segments.map(function (s) { return s.size; }).concat([1]));
  var parts = ["header", "live", "dead", "torn", "damaged"];
  var holder = document.getElementById("segments");
  var totalSize = 0;
  data.segments.forEach(function (s) {
    totalSize += s.size;
    var sum = parts.reduce(function (acc, p) { return acc + s[p]; }, 0);
    if (sum !== s.size) { errors.push(s.name + ": parts add up to " + sum + " of " + s.size); }
    var box = el("div", "segment");
    var button = el("button");
    button.setAttribute("aria-expanded", "false");
    var line = el("div");
    line.appendChild(el("span", "name", s.name + (s.newest ? " (newest)" : "")));
    line.appendChild(document.createTextNode(" " + bytes(s.size) + " "));
    var hint = el("span", "hint " + s.hint.replace(" ", "-"), "hint: " + s.hint);
    line.appendChild(hint);
    button.appendChild(line);
    var bar = el("div", "bar");
    bar.style.width = Math.max(2, 100 * s.size / widest) + "%";
    parts.forEach(function (p) {
      if (s[p] === 0) { return; }
      var part = el("span", p);
      part.style.flexGrow = String(s[p]);
      part.title = s.name + ": " + p + " " + bytes(s[p]);
      bar.appendChild(part);
    });
    button.appendChild(bar);
    var about = s.live_records + " of " + s.records + " records live; " + bytes(s.live) +
      " live, " + bytes(s.dead) + " dead";
    if (s.torn) { about += ", " + bytes(s.torn) + " torn"; }
    if (s.damaged) { about += ", " + bytes(s.damaged) + " damaged"; }
    about += "; compaction drops " + bytes(s.size - s.live);
    button.appendChild(el("div", "about", about));
    box.appendChild(button);
    var listing = el("pre", "records");
    var text = s.lines.join("\n");
    if (s.unlisted) {
      text += "\n# " + s.unlisted + " more lines not listed here; catlog dump " + data.directory +
        " lists them all";
    }
    listing.textContent = text;
    listing.hidden = true;
    box.appendChild(listing);
    button.addEventListener("click", function () {
      listing.hidden = !listing.hidden;
      button.setAttribute("aria-expanded", String(!listing.hidden));
    });
    holder.appendChild(box);
  });
  document.querySelectorAll("[data-figure]").forEach(function (td) {
    shown[td.getAttribute("data-figure")] = Number(td.textContent);
  });
  shown.segments_drawn = holder.querySelectorAll(".segment").length;
  shown.bytes_drawn = totalSize;
  shown.lines_listed = data.segments.reduce(function (acc, s) {
    return acc + s.lines.length;
  }, 0);
  report();
})();
"""
