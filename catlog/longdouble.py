"""INCRBYFLOAT's arithmetic, exactly as Redis does it in C's ``long double`` (PROTO-94).

Redis parses the stored value and the increment with ``strtold``, adds them in ``long double``
and prints the sum with ``"%.17Lf"``, trailing zeros removed (src/util.c: ``string2ld``,
``ld2string``). On x86-64 Linux, where Redis is usually built, ``long double`` is the x87 80-bit
format: a 64-bit significand and exponents from -16382 (numbers below 2**-16382 are subnormal)
to 16383. Python has no such type, so values here are exact :class:`fractions.Fraction` numbers
rounded to that format, which is what IEEE arithmetic does: each operation's exact result,
rounded to nearest, ties to even.
"""

from __future__ import annotations

import math
import re
from decimal import ROUND_HALF_EVEN, Context, Decimal
from fractions import Fraction
from typing import Final

SIGNIFICAND_BITS: Final = 64
MIN_EXPONENT: Final = -16382
MAX_EXPONENT: Final = 16383
MAX_CHARS: Final = 5 * 1024
"""Redis's MAX_LONG_DOUBLE_CHARS: longer text is not a number to INCRBYFLOAT."""

INFINITY: Final = "inf"

_DECIMAL: Final = re.compile(rb"([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?")
_HEX: Final = re.compile(rb"([+-]?)0[xX]([0-9a-fA-F]*)(?:\.([0-9a-fA-F]*))?(?:[pP]([+-]?\d+))?")
_INF: Final = re.compile(rb"([+-]?)(?:inf|infinity)", re.IGNORECASE)

LongDouble = Fraction | str
"""A finite value as an exact fraction, or ``"inf"``/``"-inf"``."""


def round_to_format(exact: Fraction) -> LongDouble:
    """``exact`` rounded to the nearest long double (ties to even), or infinity on overflow."""
    if exact == 0:
        return Fraction(0)
    sign = -1 if exact < 0 else 1
    magnitude = abs(exact)
    exponent = magnitude.numerator.bit_length() - magnitude.denominator.bit_length()
    if Fraction(2) ** exponent > magnitude:
        exponent -= 1
    exponent = max(exponent, MIN_EXPONENT)  # subnormals keep the smallest quantum
    quantum = Fraction(2) ** (exponent - SIGNIFICAND_BITS + 1)
    steps = magnitude / quantum
    whole = math.floor(steps)
    rest = steps - whole
    if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and whole % 2 == 1):
        whole += 1
    rounded = whole * quantum
    if rounded >= Fraction(2) ** (MAX_EXPONENT + 1):
        return INFINITY if sign > 0 else "-" + INFINITY
    return sign * rounded


def parse(text: bytes) -> LongDouble | None:
    """What Redis's ``string2ld`` accepts, as a value; ``None`` for "not a valid float"."""
    if not text or len(text) >= MAX_CHARS or text[0] in b" \t\n\v\f\r":
        return None
    infinite = _INF.fullmatch(text)
    if infinite:
        return "-" + INFINITY if infinite.group(1) == b"-" else INFINITY
    hexadecimal = _HEX.fullmatch(text)
    if hexadecimal:
        sign, whole, fraction, power = hexadecimal.groups()
        digits = whole + (fraction or b"")
        if not digits:
            return None
        scale = -4 * len(fraction or b"")
        exponent2 = _exponent(power)
        value = _scaled(int(digits, 16), 2, exponent2 + scale)
    else:
        found = _DECIMAL.fullmatch(text)
        if not found:
            return None
        sign, whole, fraction, power = found.groups()
        digits = whole + (fraction or b"")
        if not digits:
            return None
        value = _scaled(_decimal(digits), 10, _exponent(power) - len(fraction or b""))
    if value is None:
        return None
    rounded = round_to_format(value)
    if isinstance(rounded, str) or (rounded == 0 and value != 0):
        return None  # ERANGE: overflow to HUGE_VAL, or underflow to zero
    return -rounded if sign == b"-" else rounded


_CHUNK_DIGITS: Final = 4000
"""Below Python's limit on the digits one ``int()`` of a decimal string may convert
(``sys.get_int_max_str_digits``, 4,300), which a 5 KiB value passes."""

_EXPONENT_LIMIT: Final = 1 << 20
"""Beyond every exponent that leaves a value of MAX_CHARS digits in range, either way."""


def _decimal(digits: bytes) -> int:
    """``int(digits)`` for a string of decimal digits of any length."""
    value = 0
    for start in range(0, len(digits), _CHUNK_DIGITS):
        chunk = digits[start : start + _CHUNK_DIGITS]
        value = value * 10 ** len(chunk) + int(chunk)
    return value


def _exponent(power: bytes | None) -> int:
    """A decimal exponent, held within +-_EXPONENT_LIMIT: however many digits it has, one that
    large already puts every mantissa out of range (or keeps zero zero)."""
    if not power:
        return 0
    negative = power[:1] == b"-"
    magnitude = min(_decimal(power.lstrip(b"+-")), _EXPONENT_LIMIT)
    return -magnitude if negative else magnitude


def _scaled(mantissa: int, base: int, exponent: int) -> Fraction | None:
    """``mantissa * base**exponent`` exactly, or None when it is certainly out of range (so a
    ``1e999999999`` is never computed)."""
    if mantissa == 0:
        return Fraction(0)
    bits = mantissa.bit_length() + exponent * math.log2(base)
    if bits > MAX_EXPONENT + 2 or bits < MIN_EXPONENT - SIGNIFICAND_BITS - 2:
        return None
    if exponent >= 0:
        return Fraction(mantissa * base**exponent)
    return Fraction(mantissa, base**-exponent)


def add(left: LongDouble, right: LongDouble) -> LongDouble | None:
    """The long double sum, ``None`` for NaN (infinity minus infinity)."""
    if isinstance(left, str) or isinstance(right, str):
        if isinstance(left, str) and isinstance(right, str) and left != right:
            return None
        return left if isinstance(left, str) else right
    return round_to_format(left + right)


def format_human(value: Fraction) -> bytes:
    """``"%.17Lf"`` of ``value`` with trailing zeros (and a bare point) removed, ``-0`` as
    ``0``: Redis's LD_STR_HUMAN."""
    numerator, denominator = value.numerator, value.denominator
    # Digits enough for the exact quotient (n / 2**k has at most k digits after the point);
    # counted from bit lengths, since str() of a 5,000-digit int is refused.
    digits = numerator.bit_length() * 30103 // 100_000 + denominator.bit_length() + 40
    context = Context(prec=digits, Emax=digits, Emin=-digits)
    exact = context.divide(Decimal(numerator), Decimal(denominator))  # n / 2**k: exact
    fixed = exact.quantize(Decimal(1).scaleb(-17), rounding=ROUND_HALF_EVEN, context=context)
    text = format(fixed, "f").rstrip("0").rstrip(".")
    if text in ("-0", "-"):
        text = "0"
    return text.encode()
