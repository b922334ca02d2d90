"""Parsing an amount a person (or a caller on their behalf) gave: the ledger's one refusal rule.

Refusals are `InvalidAmountError` with a code and the parameter `what` (which amount), worded
in `bot/`. Conversion itself is `storage.money`.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from agents.errors import InsufficientFundsError, InvalidAmountError
from storage.money import floor_usdc, from_micro, to_micro

MAX_TEXT = 40
MAX_EXPONENT = 15  # at most 10**15 USDC: far beyond any limit, well inside Decimal's precision


def parse_amount(amount: object, *, what: str = "amount", allow_negative: bool = False,
                 allow_zero: bool = False) -> int:
    """A USDC amount (Decimal, int, float or numeric string) as integer micro-USDC.

    Refuses non-numbers, NaN, infinities, more than 6 decimals, zero and negatives (unless
    allowed); `what` names the amount in the refusal.
    """
    value = _decimal(amount, what)
    if not value.is_finite():
        raise InvalidAmountError("amount.not_finite", what=what)
    # Size first: quantize() of a many-digit value exceeds the context precision and would
    # raise decimal.InvalidOperation instead of a clear refusal.
    if value.adjusted() > MAX_EXPONENT:
        raise InvalidAmountError("amount.too_large", what=what)
    if value.as_tuple().exponent < -6 and value != floor_usdc(value):
        raise InvalidAmountError("amount.too_precise", what=what)
    micro = to_micro(value)
    if micro == 0:
        if allow_zero:
            return 0
        raise InvalidAmountError("amount.zero", what=what)
    if micro < 0 and not allow_negative:
        raise InvalidAmountError("amount.negative", what=what)
    return micro


def withdrawal_amount(available: int, micro: int | None) -> int:
    """What a withdrawal of `micro` (None: everything) takes from `available` micro-USDC, or the
    refusal: nothing available, or more than is available. The confirmation screen and the
    withdrawal itself both ask this."""
    if available <= 0:
        raise InsufficientFundsError("funds.nothing_to_withdraw")
    if micro is None:
        return available
    if micro > available:
        raise InsufficientFundsError("funds.withdraw_above_available", available=from_micro(available))
    return micro


def _decimal(amount: object, what: str) -> Decimal:
    if isinstance(amount, bool):
        raise InvalidAmountError("amount.not_a_number", what=what)
    if isinstance(amount, float):
        # Floats are accepted only through their shortest repr, so 10.1 means 10.1.
        amount = repr(amount)
    if isinstance(amount, str):
        text = amount.strip().replace("_", "")
        if not text or len(text) > MAX_TEXT:
            raise InvalidAmountError("amount.not_a_number", what=what)
        try:
            return Decimal(text)
        except InvalidOperation:
            raise InvalidAmountError("amount.not_a_number", what=what) from None
    if isinstance(amount, int):
        return Decimal(amount)
    if isinstance(amount, Decimal):
        return amount
    raise InvalidAmountError("amount.not_a_number", what=what)
