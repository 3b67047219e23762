"""A FileSystem that passes every call to the real one and writes down what was called.

Used to check the order of durability steps (ENG-10), the number of reads per get (ENG-11) and
that every file operation goes through the interface (ENG-23).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from catlog.fs import File, FileLock
from tests.passthrough_fs import PassThroughFile, PassThroughFileSystem


def _name(path: str) -> str:
    return path.rsplit("/", 1)[-1]


@dataclass
class RecordingFileSystem(PassThroughFileSystem):
    calls: list[tuple[str, str]] = field(default_factory=list)

    def ops(self, op: str) -> list[str]:
        """Names of the files ``op`` was applied to, in order."""
        return [name for done, name in self.calls if done == op]

    def open(self, path: str, *, writable: bool = False, create: bool = False) -> File:
        self.calls.append(("open+create" if create else "open", _name(path)))
        return RecordingFile(self.inner.open(path, writable=writable, create=create), self)

    def exists(self, path: str) -> bool:
        self.calls.append(("exists", _name(path)))
        return super().exists(path)

    def listdir(self, path: str) -> list[str]:
        self.calls.append(("listdir", _name(path)))
        return super().listdir(path)

    def makedirs(self, path: str) -> None:
        self.calls.append(("makedirs", _name(path)))
        super().makedirs(path)

    def rename(self, src: str, dst: str) -> None:
        self.calls.append(("rename", f"{_name(src)}->{_name(dst)}"))
        super().rename(src, dst)

    def remove(self, path: str) -> None:
        self.calls.append(("remove", _name(path)))
        super().remove(path)

    def sync_dir(self, path: str) -> None:
        self.calls.append(("sync_dir", _name(path)))
        super().sync_dir(path)

    def lock(self, path: str) -> FileLock:
        self.calls.append(("lock", _name(path)))
        return super().lock(path)


class RecordingFile(PassThroughFile):
    def __init__(self, inner: File, fs: RecordingFileSystem) -> None:
        super().__init__(inner)
        self._fs = fs
        self._name = _name(inner.path)

    def pread(self, size: int, offset: int) -> bytes:
        self._fs.calls.append(("pread", self._name))
        return super().pread(size, offset)

    def append(self, data: bytes | bytearray | memoryview) -> int:
        self._fs.calls.append(("append", self._name))
        return super().append(data)

    def truncate(self, size: int) -> None:
        self._fs.calls.append(("truncate", self._name))
        super().truncate(size)

    def sync(self) -> None:
        self._fs.calls.append(("sync", self._name))
        super().sync()

    def close(self) -> None:
        self._fs.calls.append(("close", self._name))
        super().close()
