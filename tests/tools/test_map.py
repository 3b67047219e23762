"""``catlog map DIR --html FILE``: the page's figures, its escaping, its caps and the command.

The figures are checked against the store itself: a directory is built by random writes, drawn,
then opened, and what the map said ``stats()`` would report is what ``stats()`` reports. The page
in a real browser is tests/tools/test_map_browser.py.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import shutil
from array import array
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import catlog
from catlog.cli import main
from catlog.datamap import (
    DirectoryMap,
    DirectoryMapper,
    Figures,
    HintState,
    SegmentMap,
    judge_hint,
    render_html,
    script_json,
)
from catlog.hint import Hint, decode_hint, encode_hint
from catlog.simfs import SimFileSystem
from catlog.tools.map import map_of
from tests.tools.layout import KEYS, NOW_MS, build, put, run, segment, snapshot

DATA = re.compile(r'<script type="application/json" id="catlog-data">(.*?)</script>', re.S)


def page_data(page: str) -> dict[str, object]:
    match = DATA.search(page)
    assert match is not None, "the page carries its data in #catlog-data"
    data: dict[str, object] = json.loads(match.group(1))
    return data


def one_segment_map(directory: str, lines: list[str]) -> DirectoryMap:
    seg = SegmentMap(name=segment(1), size=16, newest=True, hint=HintState.NONE, header=16)
    seg.lines.extend(lines)
    figures = Figures(keys=0, segments=1, disk_bytes=16, expiring_keys=0, dead_bytes=0)
    return DirectoryMap(directory, (seg,), figures, True, NOW_MS, 200, 20_000)


# --------------------------------------------------------------------------------- escaping


@pytest.mark.spec("TOOL-34")
def test_a_key_holding_a_script_end_tag_stays_inside_the_data() -> None:
    hostile = "@16 PUT key=b'</script><script>alert(1)</script><!--' & \u2028"
    page = render_html(one_segment_map("data", [hostile]))
    assert page.count("</script>") == 2  # the data element's own end and the script's
    assert "<!--" not in page
    assert page.isascii()
    segments = page_data(page)["segments"]
    assert isinstance(segments, list)
    assert segments[0]["lines"] == [hostile]
    assert script_json("</script>&") == '"\\u003c/script\\u003e\\u0026"'


@pytest.mark.spec("TOOL-34")
def test_the_directory_name_is_escaped_in_the_markup_and_kept_whole_in_the_data() -> None:
    name = 'd<i>r&"é'
    page = render_html(one_segment_map(name, []))
    assert "<title>catlog map of d&lt;i&gt;r&amp;&quot;&#233;</title>" in page
    assert "<i>" not in page
    assert page_data(page)["directory"] == name


@pytest.mark.spec("TOOL-30")
def test_the_page_loads_nothing_from_elsewhere() -> None:
    page = render_html(one_segment_map("data", ["@16 PUT"]))
    assert "default-src 'none'" in page
    for reference in ("src=", "href=", "http:", "https:", "@import", "url("):
        assert reference not in page


# --------------------------------------------------------------------------------- caps


def _lines(entry: object, data: bytes) -> list[str]:
    return ["entry"]


@pytest.mark.spec("TOOL-33")
def test_listings_stop_at_the_caps_and_count_what_they_left_out() -> None:
    mapper = DirectoryMapper("d", now_ms=NOW_MS, listed_lines=4, listed_lines_total=6)
    data = b"\0" * 16  # no records: the listing below is what describe says
    for number in (1, 2, 3):
        mapper.add(
            segment(number),
            data,
            [],
            newest=number == 3,
            hint=HintState.NONE,
            header_lines=["== header"] * 5,
            describe=_lines,
        )
    dmap = mapper.finish()
    listed = [len(s.lines) for s in dmap.segments]
    unlisted = [s.unlisted for s in dmap.segments]
    assert listed == [4, 2, 0]
    assert unlisted == [1, 3, 5]
    page = render_html(dmap)
    assert "more lines not listed here" in page  # the script's words, shown with the listing
    assert page_data(page)["listed_lines"] == 4


@pytest.mark.spec("TOOL-33")
def test_each_listing_is_what_dump_prints_for_that_segment(
    data_dir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    build(data_dir)
    with catlog.open(data_dir, segment_size=200) as store:
        store.write_batch([("put", b"b1", b"x"), ("delete", KEYS[0])])
    status, out, _ = run(["dump", data_dir], capsys)
    assert status == 0
    dumped = [line for line in out.splitlines() if not line.startswith("# ")]
    dmap = map_of(data_dir, fs=catlog.OsFileSystem(), now_ms=NOW_MS)
    assert [line for seg in dmap.segments for line in seg.lines] == dumped
    assert any(line.startswith("  @") and "member DELETE" in line for line in dumped)


# --------------------------------------------------------------------------------- figures


def store_figures(fs: SimFileSystem, directory: str, now_ms: int) -> Figures:
    """What the store says once opened: stats() as ``catlog stats`` opens it, then ENG-41's."""
    clock = catlog.ManualClock(now_ms)
    with catlog.open(directory, fs=fs, clock=clock) as store:
        stats = store.stats()
    with catlog.open(directory, fs=fs, clock=clock, compact_threshold=0.5) as store:
        dead = store.stats().dead_bytes
    return Figures(stats.keys, stats.segments, stats.disk_bytes, stats.expiring_keys, dead)


keys = st.sampled_from([b"a", b"bb", b"ccc", b"</script>", bytes(range(6))])
operations = st.lists(
    st.one_of(
        st.tuples(st.just("put"), keys, st.binary(max_size=40)),
        # ENG-41: values about the 65,535 bytes the index records, the largest a packed
        # record's short form holds (FMT-27) and what open reads the length of
        st.tuples(
            st.just("put"), keys, st.sampled_from([bytes(65_534), bytes(65_535), b"v" * 70_000])
        ),
        st.tuples(st.just("delete"), keys),
        st.tuples(st.just("expire"), keys, st.integers(1, 5_000)),
        st.tuples(st.just("batch"), st.lists(st.tuples(keys, st.booleans()), max_size=3)),
        st.tuples(st.just("compact")),
        st.tuples(st.just("reopen")),
    ),
    max_size=25,
)


@pytest.mark.spec("TOOL-31", "TOOL-32")
@given(
    operations=operations,
    torn=st.binary(max_size=30),
    hints=st.booleans(),
    later=st.integers(0, 6_000),
)
def test_the_figures_are_what_the_store_reports_once_opened(
    operations: list[tuple[object, ...]], torn: bytes, hints: bool, later: int
) -> None:
    fs = SimFileSystem()
    clock = catlog.ManualClock(NOW_MS)
    store = catlog.open("/d", fs=fs, clock=clock, segment_size=160, hints=hints)
    for op in operations:
        if op[0] == "put":
            store.put(op[1], op[2])  # type: ignore[arg-type]
        elif op[0] == "delete":
            store.delete(op[1])  # type: ignore[arg-type]
        elif op[0] == "expire":
            store.put(op[1], b"e", expires_at_ms=NOW_MS + op[2])  # type: ignore[arg-type, operator]
        elif op[0] == "batch":
            store.write_batch(
                [("put", k, b"m") if p else ("delete", k) for k, p in op[1]]  # type: ignore[attr-defined]
            )
        elif op[0] == "compact":
            store.compact()
        else:
            store.close()
            store = catlog.open("/d", fs=fs, clock=clock, segment_size=160, hints=hints)
    store.close()
    newest = max(name for name in fs.listdir("/d") if name.endswith(".log"))
    file = fs.open(f"/d/{newest}", writable=True)
    file.append(torn)
    file.close()
    now = NOW_MS + later
    before = {name: _read(fs, f"/d/{name}") for name in fs.listdir("/d")}
    dmap = map_of("/d", fs=fs, now_ms=now)
    assert {name: _read(fs, f"/d/{name}") for name in fs.listdir("/d")} == before

    for seg in dmap.segments:
        assert seg.header + seg.live + seg.dead + seg.torn + seg.damaged == seg.size
        assert seg.damaged == 0
    assert dmap.opens
    # A record stays live in its segment until its expired key is forgotten; keys counts such
    # keys out at once (ENG-60).
    assert sum(seg.live_records for seg in dmap.segments) >= dmap.figures.keys
    assert dmap.figures == store_figures(fs, "/d", now)


def _read(fs: SimFileSystem, path: str) -> bytes:
    file = fs.open(path)
    try:
        return file.pread(file.size(), 0)
    finally:
        file.close()


@pytest.mark.spec("TOOL-31")
def test_live_and_dead_bytes_follow_the_newest_record_of_each_key(data_dir: str) -> None:
    build(data_dir)  # ten 43-byte puts of distinct keys: four, four and two per segment
    with catlog.open(data_dir, segment_size=200, clock=catlog.ManualClock(NOW_MS)) as store:
        store.put(KEYS[0], b"x" * 20)  # supersedes the first record of segment 1
        store.delete(KEYS[5])  # a 23-byte DELETE; the PUT of k5 in segment 2 dies too
    dmap = map_of(data_dir, fs=catlog.OsFileSystem(), now_ms=NOW_MS)
    first, second, third = dmap.segments
    assert (first.live, first.dead, first.live_records, first.records) == (129, 43, 3, 4)
    assert (second.live, second.dead, second.live_records, second.records) == (129, 43, 3, 4)
    assert (third.live, third.dead, third.header) == (3 * 43, 23, 16)
    assert dmap.figures.dead_bytes == 43 + 43 + 23


@pytest.mark.spec("TOOL-32")
def test_open_refusing_the_directory_is_said_and_its_bytes_are_drawn_as_damaged(
    data_dir: str,
) -> None:
    build(data_dir)
    path = Path(data_dir, segment(1))
    data = bytearray(path.read_bytes())
    data[70] ^= 1  # inside the value of the record at 59
    path.write_bytes(bytes(data))
    dmap = map_of(data_dir, fs=catlog.OsFileSystem(), now_ms=NOW_MS)
    assert not dmap.opens
    assert dmap.segments[0].damaged == 43
    assert dmap.figures.keys == 9
    assert page_data(render_html(dmap))["opens"] is False


@pytest.mark.spec("TOOL-32")
def test_an_empty_newest_segment_counts_as_the_header_open_writes(data_dir: str) -> None:
    build(data_dir)
    Path(data_dir, segment(4)).write_bytes(b"")
    figures = map_of(data_dir, fs=catlog.OsFileSystem(), now_ms=NOW_MS).figures
    with catlog.open(data_dir) as store:
        stats = store.stats()
    assert (figures.segments, figures.disk_bytes) == (stats.segments, stats.disk_bytes)


@pytest.mark.spec("TOOL-32")
def test_a_packed_newest_segment_counts_the_segment_open_starts_after_it(data_dir: str) -> None:
    with catlog.open(data_dir, segment_size=200) as store:
        for key in KEYS:
            store.put(key, b"v" * 30)
        store.compact()
    names = sorted(n for n in os.listdir(data_dir) if n.endswith(".log"))
    packed = names[-2]  # the newest compaction output; the segment after it is empty
    Path(data_dir, names[-1]).unlink()
    dmap = map_of(data_dir, fs=catlog.OsFileSystem(), now_ms=NOW_MS)
    assert dmap.segments[-1].packed
    assert dmap.segments[-1].name == packed
    with catlog.open(data_dir) as store:
        stats = store.stats()
    assert (dmap.figures.segments, dmap.figures.disk_bytes) == (stats.segments, stats.disk_bytes)


@pytest.mark.spec("TOOL-31", "TOOL-7")
def test_the_page_gives_checks_notes_on_the_other_files(data_dir: str) -> None:
    build(data_dir)
    with Path(data_dir, segment(3)).open("ab") as file:
        file.write(b"torn")
    catlog.open(data_dir).close()  # cuts the tail and keeps it in segment-00003.log.torn-102
    Path(data_dir, segment(4)).write_bytes(b"")
    dmap = map_of(data_dir, fs=catlog.OsFileSystem(), now_ms=NOW_MS)
    assert dmap.notes == (
        f"note: {segment(4)}: empty newest segment; open writes its header (REC-5)",
        f"note: {segment(3)}.torn-102: quarantine file, 4 bytes (REC-12)",
    )
    assert page_data(render_html(dmap))["notes"] == list(dmap.notes)


# --------------------------------------------------------------------------------- hints


@pytest.mark.spec("TOOL-31", "REC-15", "ENG-32")
def test_each_hint_is_judged_as_open_judges_it(
    data_dir: str, caplog: pytest.LogCaptureFixture
) -> None:
    build(data_dir, hints=True)
    with catlog.open(data_dir, segment_size=200, hints=True) as store:
        for i in range(11):  # segments 3, 4 and 5 fill and get their hints; 6 is the newest
            store.put(KEYS[i % 10], b"y" * 20)
    hint = [Path(data_dir, f"segment-{n:05d}.hint") for n in range(1, 7)]
    assert [h.exists() for h in hint] == [True] * 5 + [False]
    hint[4].unlink()
    shutil.copy(hint[0], hint[1])  # names segment 1: stale beside segment 2
    hint[2].write_bytes(b"not a hint at all" * 4)
    shutil.copy(hint[0], hint[5])  # the newest segment's: never read
    states = [s.hint for s in map_of(data_dir, fs=catlog.OsFileSystem(), now_ms=NOW_MS).segments]
    assert states == [
        HintState.VALID,
        HintState.STALE,
        HintState.UNUSABLE,
        HintState.VALID,
        HintState.NONE,
        HintState.UNREAD,
    ]
    with caplog.at_level(logging.WARNING, logger="catlog"):
        catlog.open(data_dir).close()
    warned = " ".join(record.getMessage() for record in caplog.records)
    assert f"stale hint (it describes another state of {segment(2)})" in warned
    assert "bad hint magic" in warned
    assert len(caplog.records) == 2


@pytest.mark.spec("TOOL-31", "FMT-18")
def test_a_matching_hint_whose_offset_is_out_of_range_is_unusable(
    data_dir: str, caplog: pytest.LogCaptureFixture
) -> None:
    build(data_dir, hints=True)
    hint_path = Path(data_dir, "segment-00001.hint")
    hint = decode_hint(hint_path.read_bytes())
    assert isinstance(hint, Hint)
    offsets = array("I", hint.put_offsets)
    offsets[0] = 4  # inside the segment header: FMT-18 forbids it
    hint_path.write_bytes(encode_hint(dataclasses.replace(hint, put_offsets=offsets)))
    data = Path(data_dir, segment(1)).read_bytes()
    assert judge_hint(1, data, hint_path.read_bytes(), newest=False) is HintState.UNUSABLE
    with caplog.at_level(logging.WARNING, logger="catlog"):
        catlog.open(data_dir).close()
    assert "hint counts or entries out of range" in caplog.text


# --------------------------------------------------------------------------------- the command


@pytest.mark.spec("TOOL-30")
def test_map_writes_the_page_and_changes_nothing_even_beside_an_open_store(
    data_dir: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    build(data_dir)
    with Path(data_dir, segment(3)).open("ab") as file:
        file.write(put(b"k", b"v")[:9])  # a torn tail
    os.remove(Path(data_dir, "LOCK"))
    before = snapshot(data_dir)
    out_file = tmp_path / "map.html"
    out_file.write_text("an older page, longer than nothing" * 1000)
    status, out, err = run(["map", data_dir, "--html", str(out_file)], capsys)
    page = out_file.read_text()
    assert (status, err) == (0, "")
    assert out == f"{out_file}: map of {data_dir}, 3 segments, {len(page)} bytes\n"
    assert page.startswith("<!DOCTYPE html>")
    assert page.endswith("</html>\n")
    assert snapshot(data_dir) == before  # no LOCK file made, the torn tail not cut
    with catlog.open(data_dir) as store:  # the store holds the lock now
        assert main(["map", data_dir, "--html", str(out_file)]) == 0
        assert store.stats().keys == 10


@pytest.mark.spec("TOOL-30")
def test_map_of_no_data_directory_or_to_an_unwritable_file_is_a_usage_error(
    data_dir: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    os.mkdir(data_dir)
    status, out, err = run(["map", data_dir, "--html", str(tmp_path / "m.html")], capsys)
    assert (status, out) == (2, "")
    assert err.startswith(f"catlog map: {data_dir} holds no segment files")
    build(data_dir)
    status, out, err = run(["map", data_dir, "--html", str(tmp_path / "no" / "m.html")], capsys)
    assert (status, out) == (2, "")
    assert err.startswith("catlog map: ")
    assert "m.html" in err
    for name in (segment(1), "segment-00001.hint", "LOCK", f"{segment(1)}.torn-16"):
        before = snapshot(data_dir)
        status, out, err = run(["map", data_dir, "--html", f"{data_dir}/{name}"], capsys)
        assert (status, out) == (2, "")
        assert err == (
            f"catlog map: {data_dir}/{name} has the name of a data directory's file; "
            "the map will not overwrite it\n"
        )
        assert snapshot(data_dir) == before
    with pytest.raises(SystemExit) as raised:
        main(["map", data_dir])  # --html is required
    assert raised.value.code == 2


@pytest.mark.spec("TOOL-30")
def test_a_directory_of_more_segments_than_a_store_opens_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    fs = SimFileSystem()
    fs.makedirs("/d")
    for number in range(1, 32_770):
        fs.open(f"/d/{segment(number)}", writable=True, create=True).close()
    assert main(["map", "/d", "--html", "/m.html"], fs=fs) == 2
    assert capsys.readouterr().err == (
        "catlog map: /d holds 32769 segments; a store opens at most 32768\n"
    )
    assert not fs.exists("/m.html")
