"""Why a signal fired, in people's words: the one place a signal's reasons are worded.

The engine hands the bot typed reasons (`engine.signal_reasons.SignalReason`: the condition and
what it measured), live in the `SignalFired` event and stored with every signal row. They are
worded here, next to the strategy's own description (`bot.strategy_text`), e.g. "price dropped
3.1% in 1h ≥ your 3%"; rows stored before the typed form hold that sentence already and are
shown as they are.
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.numbers import format_price
from engine.signal_reasons import SignalReason, decode_reasons


def reason_words(reason: SignalReason) -> str:
    """One fired condition in the user's own terms, with what it measured."""
    cond, value = reason.condition, reason.value
    if cond.type == "price_drop":
        return f"price dropped {value:.1f}% in {cond.timeframe} ≥ your {cond.threshold:g}%"
    if cond.type == "price_rise":
        return f"price rose {value:.1f}% in {cond.timeframe} ≥ your {cond.threshold:g}%"
    if cond.type == "volume_spike":
        return f"volume {value:.1f}× the {cond.timeframe} average ≥ your +{cond.threshold:g}%"
    return f"price crossed {cond.direction} ${format_price(cond.price)} (your level)"


def explanation_text(reasons: Sequence[SignalReason], side: str) -> str:
    """A signal's reasons joined into one line; a signal without any is just "buy signal" / "sell signal"."""
    return "; ".join(reason_words(r) for r in reasons) or f"{side} signal"


def stored_explanation(stored: str, side: str, token: str) -> str:
    """A stored signal's reason in words (plain text; the caller escapes it).

    `side` and `token` are the signal row's (`storage.signals_repo.SignalRecord`). A reason stored
    before the typed form (a sentence) is shown as it is.
    """
    reasons = decode_reasons(stored, side=side, token=token)
    return stored if reasons is None else explanation_text(reasons, side)
