"""What ``catlog.open`` says when the operating system fails it (ENG-49).

A server once reported a data directory that was a file as ``cannot serve on 127.0.0.1:0:
[Errno 17] File exists``, which reads like a network problem. Each error here names the
directory, the step and the file, and a failed open leaves nothing behind that a retry trips on.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

import catlog
from tests.crash.faulty_fs import FaultyFileSystem


@pytest.mark.spec("ENG-49", "ENG-22")
def test_a_data_directory_that_is_a_file_is_named_as_such(tmp_path: Path) -> None:
    path = tmp_path / "data"
    path.write_text("not a directory")
    with pytest.raises(catlog.OpenError) as caught:
        catlog.open(path)
    assert str(caught.value).startswith(
        f"cannot open {path}: data directory {path} is a file, not a directory: "
    )
    assert caught.value.errno == errno.EEXIST
    assert isinstance(caught.value, OSError)
    assert isinstance(caught.value, catlog.CatlogError)
    assert caught.value.path == str(path)


@pytest.mark.spec("ENG-49")
def test_a_parent_that_is_a_file_is_named_as_such(tmp_path: Path) -> None:
    (tmp_path / "parent").write_text("a file")
    path = tmp_path / "parent" / "data"
    with pytest.raises(catlog.OpenError, match=r"a parent of the data directory .* is a file"):
        catlog.open(path)


@pytest.mark.spec("ENG-49", "REC-4")
@pytest.mark.parametrize("operation", ["append", "sync"])
def test_no_space_to_quarantine_a_torn_tail_says_so_and_leaves_no_copy(
    data_dir: str, operation: str
) -> None:
    with catlog.open(data_dir) as store:
        store.put(b"kept", b"v")
    segment = f"{data_dir}/segment-00001.log"
    with open(segment, "ab") as file:
        file.write(b"\x01\x02\x03torn")
    size = os.path.getsize(segment)
    fs = FaultyFileSystem()
    fs.fail("append" if operation == "append" else "sync", error=errno.ENOSPC)
    with pytest.raises(catlog.OpenError) as caught:
        catlog.open(data_dir, fs=fs)
    assert str(caught.value).startswith(
        f"cannot open {data_dir}: no space left on device while quarantining the torn tail of"
        f" {segment}: [Errno {errno.ENOSPC}] "
    )
    assert caught.value.errno == errno.ENOSPC
    assert [name for name in os.listdir(data_dir) if ".torn-" in name] == []
    assert os.path.getsize(segment) == size, "nothing was cut before the copy was kept"
    with catlog.open(data_dir) as store:  # the disk has room again: the open repairs
        assert dict(store.items()) == {b"kept": b"v"}
        (repair,) = store.stats().tail_repairs
        assert repair.quarantine is not None
    assert [name for name in os.listdir(data_dir) if ".torn-" in name] == [repair.quarantine]


@pytest.mark.spec("ENG-49")
def test_an_unreadable_segment_is_named(data_dir: str) -> None:
    with catlog.open(data_dir, segment_size=64) as store:
        for i in range(4):
            store.put(b"k%d" % i, b"v" * 40)
    fs = FaultyFileSystem()
    fs.fail("pread", error=errno.EIO)
    with pytest.raises(catlog.OpenError) as caught:
        catlog.open(data_dir, fs=fs)
    assert str(caught.value).startswith(
        f"cannot open {data_dir}: reading {data_dir}/segment-00001.log: [Errno {errno.EIO}] "
    )


def _built(data_dir: str, **options: object) -> None:
    with catlog.open(data_dir, segment_size=64, **options) as store:  # type: ignore[arg-type]
        for i in range(4):
            store.put(b"k%d" % i, b"v" * 40)


@pytest.mark.spec("ENG-49")
@pytest.mark.parametrize(
    ("prepare", "operation", "nth", "step"),
    [
        ("fresh", "lock", 1, "locking {dir}/LOCK"),
        ("fresh", "open", 1, "creating {dir}/segment-00001.log"),
        ("built", "sync_dir", 1, "fsyncing the directory {dir}"),
        ("leftover", "remove", 1, "removing compaction leftovers in {dir}"),
        ("hinted", "open", 2, "reading the hint {dir}/segment-00001.hint"),
        ("torn", "truncate", 1, "cutting the torn tail off {dir}/segment-00001.log"),
    ],
)
def test_each_step_of_opening_is_named_when_the_os_fails_it(
    data_dir: str, prepare: str, operation: str, nth: int, step: str
) -> None:
    if prepare == "built":
        _built(data_dir)
    elif prepare == "hinted":
        _built(data_dir, hints=True)
    elif prepare == "leftover":
        _built(data_dir)
        Path(data_dir, "segment-00099.log.compacting").write_bytes(b"copies")
    elif prepare == "torn":
        with catlog.open(data_dir) as store:
            store.put(b"k", b"v")
        with open(f"{data_dir}/segment-00001.log", "ab") as file:
            file.write(b"torn")
    fs = FaultyFileSystem()
    fs.fail(operation, nth=nth, error=errno.EIO)  # type: ignore[arg-type]
    with pytest.raises(catlog.OpenError) as caught:
        catlog.open(data_dir, fs=fs)
    expected = step.format(dir=data_dir)
    assert str(caught.value).startswith(f"cannot open {data_dir}: {expected}: "), caught.value
    assert caught.value.errno == errno.EIO
    assert caught.value.doing == expected
