"""``catlog dump DIR|SEGMENT``: every header and record as a learner reads it, or as JSON Lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import catlog
from catlog.cli import main
from catlog.tools.text import iso_utc, show_bytes, text_form
from tests.store.recording_fs import RecordingFileSystem
from tests.tools.layout import (
    FULL_SIZE,
    KEYS,
    NOW_MS,
    OFFSETS,
    build,
    craft_record,
    flip,
    put,
    run,
    segment,
    segment_header,
    snapshot,
)

PUT_K0 = (
    "@16 PUT size=43 time=2023-11-14T22:13:20.000Z ms=1700000000000 key_len=2 value_len=20 "
    "crc=0x{crc} ok key=b'k0'"
)


def crc_of(path: Path, offset: int) -> str:
    return f"{int.from_bytes(path.read_bytes()[offset : offset + 4], 'little'):08x}"


@pytest.mark.spec("TOOL-10", "FMT-2", "FMT-4")
def test_text_dump_starts_with_the_clauses_then_a_header_line_per_segment(
    data_dir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    build(data_dir)
    before = snapshot(data_dir)
    status, out, err = run(["dump", data_dir], capsys)
    assert (status, err) == (0, "")
    lines = out.splitlines()
    preamble = [line for line in lines if line.startswith("# ")]
    assert preamble[0] == f"# catlog dump of {data_dir}: 3 segments"
    for clause in ("FMT-2", "FMT-4", "FMT-5", "FMT-6", "FMT-10", "FMT-11"):
        assert clause in "\n".join(preamble)
    body = lines[len(preamble) :]
    assert body[0] == f"== {segment(1)}: {FULL_SIZE} bytes"
    assert body[1] == "@0 header magic=b'CATLOGSG' version=1 crc=0xa1c5d1b7 ok"
    assert body[2] == PUT_K0.format(crc=crc_of(Path(data_dir, segment(1)), 16))
    assert [line.split()[0] for line in body if line.startswith("@") and "PUT" in line] == [
        f"@{o}" for o in OFFSETS * 2 + OFFSETS[:2]
    ]
    assert len([line for line in body if line.startswith("==")]) == 3
    assert snapshot(data_dir) == before


@pytest.mark.spec("TOOL-10", "REC-3")
def test_a_damaged_region_is_shown_as_its_byte_range_and_decoding_goes_on(
    data_dir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    build(data_dir)
    flip(Path(data_dir, segment(1)), OFFSETS[1] + 30)
    flip(Path(data_dir, segment(1)), 3)
    _, out, _ = run(["dump", data_dir], capsys)
    lines = out.splitlines()
    header = lines.index(f"== {segment(1)}: {FULL_SIZE} bytes") + 1
    assert lines[header].startswith("@0 header magic=b'CAT")
    assert lines[header].endswith("bad (segment header crc mismatch)")
    assert lines[header + 1] == (
        "@0 DAMAGED 16 bytes (0..16): segment header crc mismatch; corrupt"
    )
    assert lines[header + 2].startswith("@16 PUT ")
    assert lines[header + 3].startswith(
        "@59 DAMAGED 43 bytes (59..102): crc mismatch; corrupt; header says type=1 key_len=2 "
        "value_len=20 crc=0x"
    )
    assert lines[header + 3].endswith("(not believed)")
    assert lines[header + 4].startswith("@102 PUT ")


@pytest.mark.spec("TOOL-10", "TOOL-12", "REC-4")
def test_a_single_segment_path_is_dumped_alone_even_while_a_store_holds_the_directory(
    data_dir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    build(data_dir)
    newest = Path(data_dir, segment(3))
    newest.write_bytes(newest.read_bytes() + b"\0" * 7)
    with catlog.open(data_dir) as store:  # cuts the tail; put it back while the store runs
        newest.write_bytes(newest.read_bytes() + b"\0" * 7)
        status, out, _ = run(["dump", str(newest)], capsys)
        assert store.get(b"k9") is not None
    assert status == 0
    lines = [line for line in out.splitlines() if not line.startswith("# ")]
    assert lines[0] == f"== {segment(3)}: 109 bytes"
    assert (
        lines[-1]
        == "@102 TORN 7 bytes (102..109): incomplete header: 7 bytes left; torn tail, open cuts it"
    )
    status, out, _ = run(["dump", str(Path(data_dir, segment(2)))], capsys)
    assert status == 0
    assert "TORN" not in out
    assert "DAMAGED" not in out


@pytest.mark.spec("TOOL-12")
def test_dump_exits_zero_with_damage_and_two_for_a_wrong_path(
    data_dir: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    build(data_dir)
    flip(Path(data_dir, segment(2)), OFFSETS[0] + 25)
    assert run(["dump", data_dir], capsys)[0] == 0
    status, out, err = run(["dump", str(tmp_path / "nothing")], capsys)
    assert (status, out) == (2, "")
    assert "nothing" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run(["dump", str(empty)], capsys)[0] == 2


@pytest.mark.spec("TOOL-12", "TOOL-1")
def test_dump_takes_no_lock_and_writes_nothing(
    data_dir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    build(data_dir)
    fs = RecordingFileSystem()
    assert main(["dump", "--json", data_dir], fs=fs) == 0
    capsys.readouterr()
    assert fs.ops("lock") == fs.ops("append") == fs.ops("open+create") == []
    assert set(fs.ops("pread")) == {segment(1), segment(2), segment(3)}


@pytest.mark.spec("TOOL-11", "FMT-4", "FMT-10")
def test_json_lines_parse_and_carry_every_field(
    data_dir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    build(data_dir)
    flip(Path(data_dir, segment(2)), OFFSETS[3] + 25)
    status, out, _ = run(["dump", "--json", data_dir], capsys)
    assert status == 0
    objects = [json.loads(line) for line in out.splitlines()]
    assert all(isinstance(obj, dict) for obj in objects)
    headers = [o for o in objects if o["entry"] == "header"]
    records = [o for o in objects if o["entry"] == "record"]
    regions = [o for o in objects if o["entry"] == "region"]
    assert [h["segment"] for h in headers] == [segment(1), segment(2), segment(3)]
    assert headers[0] == {
        "segment": segment(1),
        "entry": "header",
        "offset": 0,
        "file_size": FULL_SIZE,
        "status": "ok",
        "magic_hex": b"CATLOGSG".hex(),
        "version": 1,
        "crc": "0xa1c5d1b7",
    }
    assert [bytes.fromhex(r["key_hex"]) for r in records] == [k for k in KEYS if k != b"k7"]
    first = records[0]
    assert first == {
        "segment": segment(1),
        "entry": "record",
        "offset": 16,
        "size": 43,
        "type": "PUT",
        "type_code": 1,
        "timestamp_ms": NOW_MS,
        "time": "2023-11-14T22:13:20.000Z",
        "key_len": 2,
        "value_len": 20,
        "crc": "0x" + crc_of(Path(data_dir, segment(1)), 16),
        "crc_ok": True,
        "key_hex": "6b30",
        "key_text": "k0",
    }
    assert regions == [
        {
            "segment": segment(2),
            "entry": "region",
            "offset": 145,
            "end": 188,
            "length": 43,
            "reason": "crc mismatch",
            "verdict": "corrupt",
            "crc_ok": False,
        }
    ]


@pytest.mark.spec("TOOL-11", "TOOL-20")
def test_keys_that_are_not_text_have_only_hex_and_values_come_with_values(
    data_dir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with catlog.open(data_dir) as store:
        store.put(b"\xff\x00bin", b"\x01\x02")
        store.put(b"", b"text value")
    _, out, _ = run(["dump", "--json", "--values", data_dir], capsys)
    records = [o for o in map(json.loads, out.splitlines()) if o["entry"] == "record"]
    assert (records[0]["key_hex"], records[0]["key_text"]) == ("ff0062696e", None)
    assert (records[0]["value_hex"], records[0]["value_text"]) == ("0102", None)
    assert (records[1]["key_hex"], records[1]["key_text"]) == ("", "")
    assert records[1]["value_text"] == "text value"
    _, out, _ = run(["dump", "--json", data_dir], capsys)
    assert "value_hex" not in out


@pytest.mark.spec("TOOL-10", "TOOL-20")
def test_long_keys_and_values_are_cut_with_a_marker(
    data_dir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with catlog.open(data_dir) as store:
        store.put(b"K" * 100, b"V" * 1000)
        store.delete(b"K" * 100)
    _, out, _ = run(["dump", "--values", data_dir], capsys)
    [put_line, delete_line] = [
        line for line in out.splitlines() if line.startswith("@16 ") or line.startswith("@1137 ")
    ]
    assert f"key={b'K' * 48!r}...(+52 bytes)" in put_line
    assert put_line.endswith(f"value={b'V' * 64!r}...(+936 bytes)")
    assert delete_line.startswith("@1137 DELETE size=121 ")
    assert delete_line.endswith("value=b''")
    _, out, _ = run(["dump", data_dir], capsys)
    assert "value=" not in out.replace("value_len=", "")


@pytest.mark.spec("TOOL-20")
def test_limit_stops_after_n_records_and_regions(
    data_dir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    build(data_dir)
    flip(Path(data_dir, segment(1)), OFFSETS[1] + 25)
    _, out, _ = run(["dump", "--limit", "3", data_dir], capsys)
    entries = [x for x in out.splitlines() if x.startswith("@") and not x.startswith("@0 header")]
    assert [e.split()[:2] for e in entries] == [["@16", "PUT"], ["@59", "DAMAGED"], ["@102", "PUT"]]
    assert out.splitlines()[-1] == "# stopped after 3 records and regions (--limit 3)"
    _, out, _ = run(["dump", "--json", "--limit", "2", data_dir], capsys)
    assert [json.loads(line)["entry"] for line in out.splitlines()] == [
        "header",
        "record",
        "region",
    ]
    with pytest.raises(SystemExit):
        run(["dump", "--limit", "0", data_dir], capsys)


@pytest.mark.spec("TOOL-10", "TOOL-11", "REC-7")
def test_a_record_of_a_reserved_type_is_shown_with_its_header_as_invalid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    odd = craft_record(9, b"future", b"v")
    path = tmp_path / segment(1)
    path.write_bytes(segment_header() + put(b"a", b"1") + odd)
    _, out, _ = run(["dump", str(path)], capsys)
    line = out.splitlines()[-1]
    assert line.startswith(
        f"@39 INVALID {len(odd)} bytes (39..{39 + len(odd)}): unknown record type"
    )
    assert line.endswith(
        "header says type=9 key_len=6 value_len=1 crc=0x"
        + f"{int.from_bytes(odd[:4], 'little'):08x} (crc ok)"
    )
    _, out, _ = run(["dump", "--json", str(path)], capsys)
    region = json.loads(out.splitlines()[-1])
    assert (region["verdict"], region["crc_ok"]) == ("format_violation", True)


@pytest.mark.spec("TOOL-10", "REC-5")
def test_empty_and_short_segments_have_header_lines_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / segment(1)).write_bytes(segment_header() + put(b"a", b"1"))
    (tmp_path / segment(2)).write_bytes(b"CATL")
    (tmp_path / segment(3)).write_bytes(b"")
    _, out, _ = run(["dump", str(tmp_path)], capsys)
    assert "== segment-00002.log: 4 bytes\n@0 header incomplete: 4 bytes of 16\n" in out
    assert "@0 DAMAGED 4 bytes (0..4): incomplete segment header; corrupt" in out
    assert out.endswith(
        "== segment-00003.log: 0 bytes\n"
        "@0 header none: empty segment (open writes it if this is the newest, REC-5)\n"
    )
    _, out, _ = run(["dump", "--json", str(tmp_path)], capsys)
    statuses = [
        o.get("status") for o in map(json.loads, out.splitlines()) if o["entry"] == "header"
    ]
    assert statuses == ["ok", "incomplete segment header", "empty"]


def test_rendering_helpers() -> None:
    assert iso_utc(0) == "1970-01-01T00:00:00.000Z"
    assert iso_utc(NOW_MS + 7) == "2023-11-14T22:13:20.007Z"
    assert iso_utc(2**64 - 1) == "out-of-range"
    assert show_bytes(b"abc", 3) == "b'abc'"
    assert show_bytes(b"abcd", 3) == "b'abc'...(+1 bytes)"
    assert text_form(b"caf\xc3\xa9") == "café"
    assert text_form(b"tab\there") is None
    assert text_form(b"\xff") is None


@pytest.mark.spec("TOOL-10", "TOOL-11", "FMT-21", "FMT-22", "FMT-23")
def test_expiring_puts_and_batches_show_their_expiry_and_members(
    data_dir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    clock = catlog.ManualClock(now_ms=NOW_MS)
    with catlog.open(data_dir, clock=clock) as store:
        store.put(b"t", b"v", ttl=2)
        store.write_batch([("put", b"a", b"1"), ("delete", b"t")])
    status, out, _ = run(["dump", data_dir], capsys)
    assert status == 0
    body = [line for line in out.splitlines() if line.startswith(("@16", "@", "  @"))]
    expiring, batch, put_member, delete_member = body[1:5]
    assert expiring.startswith("@16 PUT_EXPIRING size=31 ")
    assert "value_len=9 " in expiring, "the field, expiry included"
    assert expiring.endswith(
        f"key=b't' expires={iso_utc(NOW_MS + 2000)} expires_ms={NOW_MS + 2000}"
    )
    assert batch.startswith("@47 BATCH size=66 ")
    assert batch.endswith("key=b'' members=2")
    assert put_member.startswith("  @68 member PUT size=23 ")
    assert delete_member.startswith("  @91 member DELETE size=22 ")
    status, out, _ = run(["dump", "--json", "--values", data_dir], capsys)
    objects = [json.loads(line) for line in out.splitlines()]
    assert objects[1]["expires_at_ms"] == NOW_MS + 2000
    assert objects[1]["value_hex"] == b"v".hex()
    assert objects[2]["members"] == 2
    assert [(o["entry"], o["batch"], o["offset"], o["type"]) for o in objects[3:]] == [
        ("member", 47, 68, "PUT"),
        ("member", 47, 91, "DELETE"),
    ]
