"""A test helper for stores a test makes fail: leaving the block, ``close()`` must raise.

ENG-46: a store that refuses writes (REC-10) cannot make its buffered writes durable, so its
``close()`` closes everything and then raises :class:`catlog.StoreFailedError` rather than
returning as if it had. Tests that drive a store into failure use this in place of the store's
own ``with`` block, so each of them also checks that promise.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

import catlog

CLOSED_FAILED = "closed without making its buffered writes durable"
"""ENG-46: the words of the error ``close()`` raises on a failed store."""


@contextmanager
def failing(store: catlog.Store) -> Iterator[catlog.Store]:
    """Yield ``store``; on the way out, check that ``close()`` raises and still closes."""
    try:
        yield store
    finally:
        with pytest.raises(catlog.StoreFailedError, match=CLOSED_FAILED):
            store.close()
        assert store.closed, "ENG-46: a close that raises still closes"
        store.close()  # a second close does nothing
