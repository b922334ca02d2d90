"""Money as integer micro-USDC inside, `Decimal` USDC outside. Never float."""

from __future__ import annotations

import math
from decimal import ROUND_DOWN, Decimal, InvalidOperation

from agents.errors import InvalidAmountError

MICRO = 1_000_000
_Q6 = Decimal("0.000001")


def to_micro(amount: object, *, what: str = "Amount", allow_negative: bool = False,
             allow_zero: bool = False) -> int:
    """Parse a USDC amount (Decimal, int or numeric string) into micro-USDC.

    Rejects NaN, infinities, more than 6 decimals, zero, and negatives (unless allowed),
    with a message that says what is wrong.
    """
    if isinstance(amount, bool):
        raise InvalidAmountError(f"{what} must be a number.")
    if isinstance(amount, float):
        # Floats are accepted only through their shortest repr, so 10.1 means 10.1.
        amount = repr(amount)
    if isinstance(amount, str):
        text = amount.strip().replace("_", "")
        if not text or len(text) > 40:
            raise InvalidAmountError(f"{what} must be a number, like 25 or 12.5.")
        try:
            amount = Decimal(text)
        except InvalidOperation:
            raise InvalidAmountError(f"{what} must be a number, like 25 or 12.5.") from None
    if isinstance(amount, int):
        amount = Decimal(amount)
    if not isinstance(amount, Decimal):
        raise InvalidAmountError(f"{what} must be a number.")
    if not amount.is_finite():
        raise InvalidAmountError(f"{what} must be a finite number.")
    # Size first: quantize() of a many-digit value exceeds the context precision and would
    # raise decimal.InvalidOperation instead of a clear InvalidAmountError.
    if amount.adjusted() > 15:
        raise InvalidAmountError(f"{what} is far too large.")
    if amount.as_tuple().exponent < -6 and amount != amount.quantize(_Q6, rounding="ROUND_DOWN"):
        raise InvalidAmountError(f"{what} can have at most 6 decimal places (micro-USDC).")
    micro = int((amount * MICRO).to_integral_value())
    if micro == 0 and allow_zero:
        return 0
    if micro == 0 and not allow_zero:
        raise InvalidAmountError(f"{what} must not be zero.")
    if micro < 0 and not allow_negative:
        raise InvalidAmountError(f"{what} must be positive.")
    return micro


def from_micro(micro: int) -> Decimal:
    """micro-USDC -> Decimal USDC with exactly 6 decimal places."""
    return (Decimal(int(micro)) / MICRO).quantize(_Q6)


def usdc_down(value: float) -> Decimal:
    """A float amount of USDC (a fill times a size) as Decimal, rounded down to micro-USDC:
    paper money never rounds in the trader's favour."""
    if not math.isfinite(value):
        raise ValueError("non-finite amount")
    return Decimal(repr(float(value))).quantize(_Q6, rounding=ROUND_DOWN)


def percent_of(amount: Decimal, percent: float) -> Decimal:
    """`percent` % of `amount`, rounded down to micro-USDC (a strategy's buy budget)."""
    return (amount * Decimal(repr(float(percent))) / 100).quantize(_Q6, rounding=ROUND_DOWN)


def fmt_usdc(value: Decimal | int, *, places: int = 2) -> str:
    """Human formatting: '1,234.50'. Accepts Decimal USDC (int is taken as micro)."""
    dec = from_micro(value) if isinstance(value, int) else value
    return f"{dec:,.{places}f}"


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
