"""Why a signal fired, as data: each fired condition with what it measured, and their one stored form.

The engine never words a signal. `engine.signals.explain_bar` hands out `SignalReason` records
(the strategy's own condition model plus the value measured on the bar); the `SignalFired` event
carries them to the bot, and the signals table stores them as a compact JSON list in its one
text column, e.g. ``[{"type":"price_drop","value":3.1,"threshold":3,"timeframe":"1h"}]``.
`encode_reasons` and `decode_reasons` are the only code that knows that form; rows written
before it hold a plain sentence, which `decode_reasons` leaves to the caller to show as it is.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import TypeAdapter, ValidationError

from engine.strategy import Condition
from storage.signals_repo import REASON_CHARS

STORED_CHARS = REASON_CHARS  # the signals table cuts longer reasons, which would break the JSON

# What a record keeps of its condition, per type: what the reason is about. The token, the chain
# and the side are the signal row's own columns, so they are not repeated in every record.
_FIELDS: dict[str, tuple[str, ...]] = {
    "price_drop": ("threshold", "timeframe"),
    "price_rise": ("threshold", "timeframe"),
    "volume_spike": ("threshold", "timeframe"),
    "price_level": ("price", "direction", "timeframe"),
}
_CONDITION: TypeAdapter[Any] = TypeAdapter(Condition)


@dataclass(frozen=True)
class SignalReason:
    """One condition that fired on a bar and what it measured there.

    `condition` is the strategy's condition model (`engine.strategy`); `value` is in its own
    terms: the move in percent for `price_drop` / `price_rise` (positive, compared with the
    threshold), the volume as a multiple of the previous window's mean for `volume_spike`, and
    the close that crossed the level for `price_level`.
    """

    condition: Any
    value: float

    @property
    def side(self) -> Literal["buy", "sell"]:
        """The side the condition signals: `buy` (entry) or `sell` (exit)."""
        return self.condition.signal


def measured(cond: Any, value: float) -> SignalReason:
    """The record of a fired condition from its series value (`engine.signals.ConditionSeries.value`)."""
    if cond.type == "price_drop":
        return SignalReason(cond, abs(value) * 100)
    if cond.type == "price_rise":
        return SignalReason(cond, value * 100)
    return SignalReason(cond, value)


def _record(reason: SignalReason, short: bool) -> dict[str, Any]:
    cond = reason.condition
    record = {"type": cond.type, "value": reason.value, **{name: getattr(cond, name) for name in _FIELDS[cond.type]}}
    if short:  # 6 significant digits: what the words show of a threshold or a level anyway
        record = {k: float(f"{v:.6g}") if isinstance(v, float) else v for k, v in record.items()}
    return record


def encode_reasons(reasons: Sequence[SignalReason]) -> str:
    """The stored form of a signal's reasons: a compact JSON list, at most `STORED_CHARS` long.

    Numbers keep full precision so the stored words equal the pushed ones; only a list that would
    not fit is shortened (numbers to 6 significant digits, then the last records dropped).
    """
    text = json.dumps([_record(r, False) for r in reasons], separators=(",", ":"))
    if len(text) <= STORED_CHARS:
        return text
    records = [_record(r, True) for r in reasons]
    while records:
        text = json.dumps(records, separators=(",", ":"))
        if len(text) <= STORED_CHARS:
            return text
        records.pop()
    return "[]"


def decode_reasons(stored: str, *, side: str, token: str) -> tuple[SignalReason, ...] | None:
    """The records of a stored signal reason, or None when it is not in the stored form.

    `side` and `token` are the signal row's: each condition is rebuilt (and validated) with them.
    None means the row predates the stored form (a plain sentence, shown as it is) or is unreadable.
    """
    if not stored.startswith("["):
        return None
    try:
        records = json.loads(stored)
        if not isinstance(records, list):
            return None
        return tuple(_reason(item, side, token) for item in records)
    except (ValueError, TypeError, KeyError, ValidationError):
        return None


def _reason(item: Any, side: str, token: str) -> SignalReason:
    if not isinstance(item, dict):
        raise TypeError("a stored reason is an object")
    fields = {k: v for k, v in item.items() if k != "value"}
    value = item["value"]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError("a stored reason's value is a number")
    return SignalReason(_CONDITION.validate_python({**fields, "token": token, "signal": side}), float(value))
