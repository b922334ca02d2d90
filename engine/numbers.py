"""How prices and token quantities are written: one rule for every screen, push and chart axis.

Meme-coin prices run from 0.00000001 to 100,000, so exponent notation (`1.137e-05`, what `:g`
and `:.8g` print) is never used: prices are written out to 6 significant digits (0.0000113707,
144.144, 3,100.5, 65,000), the precision signal reasons are stored with
(`engine.signal_reasons`), so a stored reason reads exactly like the live one. Quantities are the
same below 1,000 and whole numbers above (123,456,789). Thousands are grouped with commas. No
words here: only digits, so charts (engine) and texts (bot) share it.
"""

from __future__ import annotations

import math

import numpy as np

SIGNIFICANT = 6
NOT_A_NUMBER = "n/a"


def _positional(value: float) -> str:
    return np.format_float_positional(value, precision=SIGNIFICANT, unique=True, fractional=False, trim="-")


def _grouped(text: str) -> str:
    whole, dot, fraction = text.partition(".")
    return f"{int(whole):,}{dot}{fraction}"


def format_price(value: float) -> str:
    """A price without exponent notation, 6 significant digits: 0.0000113707, 144.144, 65,000."""
    value = float(value)
    if not math.isfinite(value):
        return NOT_A_NUMBER
    sign, size = ("-" if value < 0 else ""), abs(value)
    return sign + _grouped(_positional(size))


def format_quantity(value: float) -> str:
    """A token quantity without exponent notation: 0.00123, 12.3456, 123,456,789."""
    value = float(value)
    if not math.isfinite(value):
        return NOT_A_NUMBER
    sign, size = ("-" if value < 0 else ""), abs(value)
    if size >= 1000:
        return f"{sign}{size:,.0f}"
    return sign + _positional(size)
