"""Money's one representation: integer micro-USDC inside, `Decimal` USDC outside, never float.

This is the bottom layer, so every layer converts through here. Each rounding has one named
purpose:

* `floor_usdc`: amounts we compute (a fill times a size, a percent budget, a spawn amount):
  paper money never rounds in the trader's favour.
* `nearest_usdc`: amounts another service reports to more than six decimals (round half-even,
  the banker's rule, so repeated syncs do not drift one way).
* `to_micro` itself never rounds: an amount off the micro-USDC grid is a programming error.

Parsing what a person typed (with its refusals) is the ledger's job (`agents.ledger.amounts`).
"""

from __future__ import annotations

import math
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal

MICRO = 1_000_000
USDC_STEP = Decimal("0.000001")  # one micro-USDC


def to_micro(amount: Decimal | int) -> int:
    """USDC (Decimal, or int whole USDC) -> integer micro-USDC; exact or ValueError."""
    if isinstance(amount, bool) or not isinstance(amount, Decimal | int):
        raise TypeError("money must be a Decimal or an int")
    value = Decimal(amount)
    if not value.is_finite():
        raise ValueError("money must be finite")
    micro = value * MICRO
    if micro != micro.to_integral_value():
        raise ValueError(f"{amount} USDC is not a whole number of micro-USDC; round it first")
    return int(micro)


def from_micro(micro: int) -> Decimal:
    """Integer micro-USDC -> Decimal USDC with exactly six decimal places."""
    return (Decimal(int(micro)) / MICRO).quantize(USDC_STEP)


def floor_usdc(value: Decimal) -> Decimal:
    """An amount we computed, rounded down to the micro-USDC grid."""
    return value.quantize(USDC_STEP, rounding=ROUND_DOWN)


def nearest_usdc(value: Decimal) -> Decimal:
    """An amount someone else reported, rounded half-even to the micro-USDC grid."""
    return value.quantize(USDC_STEP, rounding=ROUND_HALF_EVEN)


def usdc_down(value: float) -> Decimal:
    """A float amount of USDC (a fill price times a size) as Decimal, by `floor_usdc`."""
    if not math.isfinite(value):
        raise ValueError("non-finite amount")
    return floor_usdc(Decimal(repr(float(value))))


def percent_of(amount: Decimal, percent: float) -> Decimal:
    """`percent` % of `amount` by `floor_usdc` (a strategy's buy budget)."""
    return floor_usdc(amount * Decimal(repr(float(percent))) / 100)


def largest_remainder(total: int, weights: list[int]) -> list[int]:
    """Split integer `total` proportionally to non-negative integer `weights`, exactly.

    Each part is floor(total*w/W); the leftover units go to the largest fractional
    remainders (ties: earlier index first). Parts sum to `total`, and no part exceeds its
    weight when total <= sum(weights).
    """
    whole = sum(weights)
    if total < 0 or whole <= 0 or total > whole:
        raise ValueError("cannot split: total outside 0..sum(weights)")
    floors = [total * w // whole for w in weights]
    rema = [(total * w % whole, -i) for i, w in enumerate(weights)]
    left = total - sum(floors)
    for _, neg_i in sorted(rema, reverse=True)[:left]:
        floors[-neg_i] += 1
    return floors
