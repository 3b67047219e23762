"""What the API takes: keys, values, expiry times and ttls, checked before anything is written.

ENG-2 (bytes, bytes-like copied), ENG-3 (the size limits of FMT-9), ENG-33 (expiries and ttls).
Each check returns the argument as the store keeps it, or raises the typed error the clause names.
"""

from __future__ import annotations

from .codec import MAX_KEY_SIZE, MAX_VALUE_SIZE
from .errors import InvalidTypeError, KeyTooLargeError, ValueTooLargeError


def check_key(key: object) -> bytes:
    """ENG-2, ENG-3: a key is bytes (bytes-like is copied), no longer than MAX_KEY_SIZE."""
    if type(key) is not bytes:
        if not isinstance(key, bytes | bytearray | memoryview):
            raise InvalidTypeError(f"keys must be bytes, not {type(key).__name__}")
        key = bytes(key)
    if len(key) > MAX_KEY_SIZE:
        raise KeyTooLargeError(f"key of {len(key)} bytes exceeds the limit of {MAX_KEY_SIZE}")
    return key


def check_value(value: object, limit: int = MAX_VALUE_SIZE) -> bytes:
    if type(value) is not bytes:
        if not isinstance(value, bytes | bytearray | memoryview):
            raise InvalidTypeError(f"values must be bytes, not {type(value).__name__}")
        value = bytes(value)
    if len(value) > limit:
        what = "value" if limit == MAX_VALUE_SIZE else "value with an expiry"
        raise ValueTooLargeError(f"{what} of {len(value)} bytes exceeds the limit of {limit}")
    return value


def check_expiry(expires_at_ms: object) -> int:
    """ENG-33: an absolute expiry is an int of milliseconds since the epoch, 1 .. 2**63-1."""
    if type(expires_at_ms) is not int:
        raise InvalidTypeError(f"expiry times must be int, not {type(expires_at_ms).__name__}")
    if not 0 < expires_at_ms < 1 << 63:
        raise ValueError(f"expiry time {expires_at_ms} ms is out of range 1 .. 2**63-1")
    return expires_at_ms


def ttl_ms(ttl: object) -> int:
    """ENG-33: a relative ttl in seconds (int or float, > 0) as whole milliseconds, rounded up."""
    if isinstance(ttl, bool) or not isinstance(ttl, int | float):
        raise InvalidTypeError(f"ttl must be a number of seconds, not {type(ttl).__name__}")
    if not 0 < ttl < 1 << 53:
        raise ValueError(f"ttl must be a positive number of seconds, not {ttl!r}")
    return -int(-ttl * 1000 // 1)
