"""Snapshots: a consistent, read-only view of a store while writes go on (ENG-38, ENG-48).

A snapshot holds a copy of the key index and the list of segments it points into, nothing else;
the store keeps the segments compaction removes open for as long as a snapshot may read them
(ENG-40). The store serves the snapshot through the two calls of :class:`SnapshotSource`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from .errors import StoreClosedError
from .segment import Segment


class SnapshotSource(Protocol):
    """What a snapshot needs of its store (:class:`catlog.store.Store` is the one there is)."""

    @property
    def path(self) -> str: ...

    @property
    def closed(self) -> bool: ...

    def _read_located(self, key: bytes, location: int, slots: list[Segment]) -> bytes:
        """The value at ``location`` for ``key``, reading ``slots``; typed errors (ENG-22)."""

    def _snapshot_closed(self, snapshot: Snapshot) -> None:
        """The snapshot lets go: segments only it read may be closed now (ENG-40)."""


class Snapshot:
    """ENG-38: the store's keys and values as they were when :meth:`Store.snapshot` returned.

    Taking one copies the index (a ``dict`` copy, which runs in C)
    and nothing else: a snapshot reads its values from the segments when asked, at the locations
    the copy holds. That is sound because records are never changed in place (ENG-9): a location
    names the same bytes for as long as its segment exists. Expiry is judged once, when the
    snapshot is taken; a key that expires later stays in it.
    """

    __slots__ = ("__weakref__", "_index", "_slots", "_store")

    def __init__(
        self, store: SnapshotSource, index: dict[bytes, int], slots: list[Segment]
    ) -> None:
        self._store = store
        self._index = index
        self._slots = slots

    def _check_open(self) -> None:
        """ENG-38, ENG-19: a snapshot answers only while its store is open."""
        store = self._store
        if store.closed:
            raise StoreClosedError(f"{store.path} is closed")

    def __len__(self) -> int:
        self._check_open()
        return len(self._index)

    def __contains__(self, key: object) -> bool:
        self._check_open()
        return key in self._index

    def __iter__(self) -> Iterator[bytes]:
        self._check_open()
        return self._keys(self._index)

    def _keys(self, index: dict[bytes, int]) -> Iterator[bytes]:
        for key in index:
            self._check_open()
            yield key

    def get(self, key: bytes, default: bytes | None = None) -> bytes | None:
        self._check_open()
        location = self._index.get(key)
        if location is None:
            return default
        return self._value(key, location)

    def __getitem__(self, key: bytes) -> bytes:
        self._check_open()
        location = self._index.get(key)
        if location is None:
            raise KeyError(key)
        return self._value(key, location)

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        """Every key of the snapshot with its value, one positional read each."""
        self._check_open()
        return self._items(self._index)

    def _items(self, index: dict[bytes, int]) -> Iterator[tuple[bytes, bytes]]:
        for key, location in index.items():
            yield key, self._value(key, location)

    def _value(self, key: bytes, location: int) -> bytes:
        self._check_open()
        return self._store._read_located(key, location, self._slots)

    def __enter__(self) -> Snapshot:
        return self

    def close(self) -> None:
        """Let go of the view: the segments only it still reads can be closed (ENG-40)."""
        self._index = {}
        self._slots = []
        self._store._snapshot_closed(self)

    def __exit__(self, *exc_info: object) -> None:
        self.close()
