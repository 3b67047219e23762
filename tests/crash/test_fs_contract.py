"""One contract, two file systems: the simulation must behave like the OS wherever the engine looks.

Every test here runs against :class:`catlog.OsFileSystem` in a temporary directory and against
:class:`catlog.simfs.SimFileSystem`, the way trio's memory streams and zarr's stores are held to
one conformance suite. A crash test on the simulation proves something about the engine only if
the engine cannot tell the simulation from the disk (REC-1); a difference found here is a bug in
the simulation (or a surprise about the OS worth writing down).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import catlog
from catlog import FileSystem, OsFileSystem
from catlog.simfs import SimFileSystem


@dataclass(frozen=True)
class Mounted:
    fs: FileSystem
    root: str
    """An existing, empty directory to work in."""

    def path(self, *names: str) -> str:
        return "/".join((self.root, *names))


@pytest.fixture(params=["os", "sim"])
def mounted(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Mounted]:
    if request.param == "os":
        root = tmp_path / "root"
        root.mkdir()
        yield Mounted(OsFileSystem(), str(root))
    else:
        fs = SimFileSystem()
        fs.makedirs("/work/root")
        yield Mounted(fs, "/work/root")


def write_file(m: Mounted, name: str, data: bytes) -> None:
    file = m.fs.open(m.path(name), writable=True, create=True)
    try:
        file.append(data)
        file.sync()
    finally:
        file.close()


def read_file(m: Mounted, name: str) -> bytes:
    file = m.fs.open(m.path(name))
    try:
        return file.pread(file.size(), 0)
    finally:
        file.close()


@pytest.mark.spec("REC-1", "ENG-23")
def test_open_with_create_makes_an_empty_file(mounted: Mounted) -> None:
    file = mounted.fs.open(mounted.path("new"), writable=True, create=True)
    assert file.size() == 0
    assert file.path == mounted.path("new")
    file.close()
    assert mounted.fs.exists(mounted.path("new"))
    assert mounted.fs.listdir(mounted.root) == ["new"]


@pytest.mark.spec("REC-1")
@pytest.mark.parametrize("writable", [False, True])
def test_opening_a_missing_file_without_create_raises_file_not_found(
    mounted: Mounted, writable: bool
) -> None:
    with pytest.raises(FileNotFoundError):
        mounted.fs.open(mounted.path("missing"), writable=writable)
    assert not mounted.fs.exists(mounted.path("missing"))


@pytest.mark.spec("REC-1")
def test_opening_in_a_missing_directory_raises_file_not_found(mounted: Mounted) -> None:
    with pytest.raises(FileNotFoundError):
        mounted.fs.open(mounted.path("nowhere", "file"), writable=True, create=True)


@pytest.mark.spec("REC-1")
def test_open_with_create_keeps_an_existing_file(mounted: Mounted) -> None:
    write_file(mounted, "kept", b"old bytes")
    file = mounted.fs.open(mounted.path("kept"), writable=True, create=True)
    assert file.size() == 9
    assert file.append(b"!") == 9, "a writable open appends; it never truncates"
    file.close()
    assert read_file(mounted, "kept") == b"old bytes!"


@pytest.mark.spec("REC-1", "ENG-11")
def test_append_returns_the_offset_it_wrote_at(mounted: Mounted) -> None:
    file = mounted.fs.open(mounted.path("log"), writable=True, create=True)
    assert file.append(b"abc") == 0
    assert file.append(bytearray(b"defg")) == 3
    assert file.append(memoryview(b"xhi")[1:]) == 7
    assert file.append(b"") == 9
    assert file.size() == 9
    assert file.pread(9, 0) == b"abcdefghi"
    file.close()


@pytest.mark.spec("REC-1", "REC-3")
def test_pread_beyond_the_end_is_short(mounted: Mounted) -> None:
    write_file(mounted, "short", b"0123456789")
    file = mounted.fs.open(mounted.path("short"))
    assert file.pread(4, 3) == b"3456"
    assert file.pread(100, 6) == b"6789"
    assert file.pread(5, 10) == b""
    assert file.pread(5, 1000) == b""
    assert file.pread(0, 2) == b""
    file.close()


@pytest.mark.spec("REC-1")
def test_reads_see_appends_made_through_another_handle(mounted: Mounted) -> None:
    writer = mounted.fs.open(mounted.path("shared"), writable=True, create=True)
    reader = mounted.fs.open(mounted.path("shared"))
    writer.append(b"first ")
    writer.append(b"second")
    assert reader.pread(12, 0) == b"first second"
    writer.close()
    reader.close()


@pytest.mark.spec("REC-1", "ENG-56")
def test_a_reader_opened_on_data_sees_appends_made_through_another_handle(
    mounted: Mounted,
) -> None:
    """The reader maps the file as it was when opened (and keeps no descriptor of its own,
    ENG-56); a read past that map still sees what was appended since."""
    write_file(mounted, "grows", b"first ")
    reader = mounted.fs.open(mounted.path("grows"))
    writer = mounted.fs.open(mounted.path("grows"), writable=True)
    writer.append(b"second")
    assert reader.pread(12, 0) == b"first second"
    assert reader.pread(6, 6) == b"second"
    writer.close()
    reader.close()


@pytest.mark.spec("REC-1", "ENG-56")
def test_a_reader_keeps_reading_its_own_file_after_another_is_renamed_over_it(
    mounted: Mounted,
) -> None:
    write_file(mounted, "mine", b"old bytes")
    reader = mounted.fs.open(mounted.path("mine"))
    write_file(mounted, "other", b"new and longer bytes")
    mounted.fs.rename(mounted.path("other"), mounted.path("mine"))
    assert reader.pread(100, 0) == b"old bytes"
    reader.close()


@pytest.mark.spec("REC-1", "REC-4")
def test_truncate_cuts_the_file_and_appends_continue_at_the_new_end(mounted: Mounted) -> None:
    file = mounted.fs.open(mounted.path("cut"), writable=True, create=True)
    file.append(b"keep this|drop this")
    file.truncate(9)
    assert file.size() == 9
    assert file.pread(100, 0) == b"keep this"
    assert file.append(b"+new") == 9
    file.sync()
    file.close()
    assert read_file(mounted, "cut") == b"keep this+new"


@pytest.mark.spec("REC-1")
def test_truncate_to_zero_empties_the_file(mounted: Mounted) -> None:
    write_file(mounted, "empty", b"some bytes")
    file = mounted.fs.open(mounted.path("empty"), writable=True)
    file.truncate(0)
    assert file.size() == 0
    assert file.append(b"h") == 0
    file.close()


@pytest.mark.spec("REC-1")
def test_a_read_only_file_refuses_appends(mounted: Mounted) -> None:
    write_file(mounted, "ro", b"data")
    file = mounted.fs.open(mounted.path("ro"))
    with pytest.raises(OSError, match=r".") as caught:
        file.append(b"more")
    assert caught.value.errno == errno.EBADF
    file.close()
    assert read_file(mounted, "ro") == b"data"


@pytest.mark.spec("REC-1")
def test_a_closed_file_refuses_reads_and_writes_and_closes_twice(mounted: Mounted) -> None:
    """Not checked: ``sync`` of a closed OsFile raises ValueError (a negative descriptor), which
    no caller relies on; the engine never touches a file after closing it."""
    file = mounted.fs.open(mounted.path("closed"), writable=True, create=True)
    file.append(b"data")
    file.close()
    file.close()
    with pytest.raises(OSError, match=r"."):
        file.append(b"more")
    with pytest.raises(OSError, match=r"."):
        file.pread(1, 10)


@pytest.mark.spec("REC-1")
def test_rename_replaces_the_target_atomically(mounted: Mounted) -> None:
    write_file(mounted, "old", b"old contents")
    write_file(mounted, "new", b"new contents")
    mounted.fs.rename(mounted.path("new"), mounted.path("old"))
    assert sorted(mounted.fs.listdir(mounted.root)) == ["old"]
    assert read_file(mounted, "old") == b"new contents"


@pytest.mark.spec("REC-1")
def test_rename_to_a_fresh_name_moves_the_file(mounted: Mounted) -> None:
    write_file(mounted, "a", b"payload")
    mounted.fs.rename(mounted.path("a"), mounted.path("b"))
    assert not mounted.fs.exists(mounted.path("a"))
    assert read_file(mounted, "b") == b"payload"


@pytest.mark.spec("REC-1")
def test_rename_of_a_missing_file_raises_file_not_found(mounted: Mounted) -> None:
    with pytest.raises(FileNotFoundError):
        mounted.fs.rename(mounted.path("ghost"), mounted.path("b"))


@pytest.mark.spec("REC-1")
def test_an_open_file_outlives_its_removal(mounted: Mounted) -> None:
    write_file(mounted, "doomed", b"still readable")
    file = mounted.fs.open(mounted.path("doomed"))
    mounted.fs.remove(mounted.path("doomed"))
    assert not mounted.fs.exists(mounted.path("doomed"))
    assert mounted.fs.listdir(mounted.root) == []
    assert file.pread(100, 0) == b"still readable"
    file.close()


@pytest.mark.spec("REC-1")
def test_remove_of_a_missing_file_raises_file_not_found(mounted: Mounted) -> None:
    with pytest.raises(FileNotFoundError):
        mounted.fs.remove(mounted.path("ghost"))


@pytest.mark.spec("REC-1", "FMT-1")
def test_listdir_names_files_and_directories_only_once(mounted: Mounted) -> None:
    for name in ("segment-00001.log", "segment-00002.log", "LOCK"):
        write_file(mounted, name, b"")
    mounted.fs.makedirs(mounted.path("sub", "deeper"))
    assert sorted(mounted.fs.listdir(mounted.root)) == [
        "LOCK",
        "segment-00001.log",
        "segment-00002.log",
        "sub",
    ]
    assert mounted.fs.listdir(mounted.path("sub")) == ["deeper"]


@pytest.mark.spec("REC-1")
def test_listdir_of_a_missing_directory_raises_file_not_found(mounted: Mounted) -> None:
    with pytest.raises(FileNotFoundError):
        mounted.fs.listdir(mounted.path("missing"))


@pytest.mark.spec("REC-1")
def test_exists_tells_files_and_directories_from_nothing(mounted: Mounted) -> None:
    write_file(mounted, "file", b"x")
    mounted.fs.makedirs(mounted.path("dir"))
    assert mounted.fs.exists(mounted.path("file"))
    assert mounted.fs.exists(mounted.path("dir"))
    assert mounted.fs.exists(mounted.root)
    assert not mounted.fs.exists(mounted.path("nothing"))
    assert not mounted.fs.exists(mounted.path("file", "below a file"))


@pytest.mark.spec("REC-1", "ENG-25")
def test_makedirs_creates_parents_and_is_idempotent(mounted: Mounted) -> None:
    deep = mounted.path("a", "b", "c")
    mounted.fs.makedirs(deep)
    mounted.fs.makedirs(deep)
    mounted.fs.makedirs(mounted.path("a"))
    assert mounted.fs.listdir(deep) == []
    assert mounted.fs.listdir(mounted.path("a")) == ["b"]


@pytest.mark.spec("REC-1")
def test_makedirs_over_a_file_raises(mounted: Mounted) -> None:
    write_file(mounted, "plain", b"x")
    with pytest.raises(FileExistsError):
        mounted.fs.makedirs(mounted.path("plain"))


@pytest.mark.spec("REC-1", "REC-9")
def test_sync_and_sync_dir_keep_the_contents(mounted: Mounted) -> None:
    file = mounted.fs.open(mounted.path("durable"), writable=True, create=True)
    file.append(b"bytes")
    file.sync()
    file.sync()
    mounted.fs.sync_dir(mounted.root)
    assert file.pread(5, 0) == b"bytes"
    file.close()
    with pytest.raises(FileNotFoundError):
        mounted.fs.sync_dir(mounted.path("missing"))


@pytest.mark.spec("REC-1", "ENG-20")
def test_lock_is_exclusive_until_released(mounted: Mounted) -> None:
    path = mounted.path("LOCK")
    held = mounted.fs.lock(path)
    assert mounted.fs.exists(path), "lock creates its file"
    with pytest.raises(BlockingIOError):
        mounted.fs.lock(path)
    held.release()
    held.release()
    again = mounted.fs.lock(path)
    again.release()


@pytest.mark.spec("REC-1", "ENG-20")
def test_lock_file_holds_the_pid_of_its_holder(mounted: Mounted) -> None:
    held = mounted.fs.lock(mounted.path("LOCK"))
    assert read_file(mounted, "LOCK").strip() == str(os.getpid()).encode()
    held.release()


@pytest.mark.spec("REC-1", "ENG-20")
def test_locks_on_different_paths_are_independent(mounted: Mounted) -> None:
    first = mounted.fs.lock(mounted.path("one"))
    second = mounted.fs.lock(mounted.path("two"))
    first.release()
    second.release()


@pytest.mark.spec("REC-1", "ENG-25", "ENG-1", "REC-13")
def test_the_engine_sees_the_same_store_on_both(mounted: Mounted) -> None:
    """The contract's point: the engine's own walk (create, rotate, reopen) agrees on both."""
    directory = mounted.path("data")
    with catlog.open(directory, fs=mounted.fs, segment_size=100) as store:
        for i in range(6):
            store.put(b"k%d" % i, b"value %d" % i)
        assert store.delete(b"k1")
    names = sorted(mounted.fs.listdir(directory))
    with catlog.open(directory, fs=mounted.fs, segment_size=100) as store:
        assert dict(store.items()) == {b"k%d" % i: b"value %d" % i for i in (0, 2, 3, 4, 5)}
        with pytest.raises(catlog.LockedError, match=str(os.getpid())):
            catlog.open(directory, fs=mounted.fs)
    assert sorted(mounted.fs.listdir(directory)) == names
    assert names[0] == "LOCK"
    assert len(names) == 4, "30-byte puts, two to a 100-byte segment: three segments"
