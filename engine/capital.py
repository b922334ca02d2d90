"""The paper capital a backtest or a simulation may start with (one rule for both)."""

from __future__ import annotations

import math
from decimal import Decimal

MIN_CAPITAL, MAX_CAPITAL = 10, 10**6  # USDC
DEFAULT_CAPITAL = 1000  # without an agent (or a chosen amount): a round, stated figure


def capital_ok(value: float | Decimal) -> bool:
    """True when `value` USDC is a finite amount within the limits."""
    number = float(value)
    return math.isfinite(number) and MIN_CAPITAL <= number <= MAX_CAPITAL
