"""Why a signal fired, in people's words: the one place a signal's reasons are worded.

The engine hands the bot typed reasons (`engine.signal_reasons.SignalReason`: the condition and
what it measured), live in the `SignalFired` event and stored with every signal row. They are
worded here, next to the strategy's own description (`bot.strategy_text`), e.g. "price dropped
3.1% in 1h ≥ your 3%"; rows stored before the typed form hold that sentence already and are
shown as they are.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.i18n import t
from engine.numbers import format_price
from engine.signal_reasons import SignalReason, decode_reasons


def reason_words(reason: SignalReason) -> str:
    """One fired condition in the user's own terms, with what it measured."""
    cond, value = reason.condition, reason.value
    if cond.type == "price_level":
        if cond.direction == "above":
            return t("price crossed above ${price} (your level)", price=format_price(cond.price))
        return t("price crossed below ${price} (your level)", price=format_price(cond.price))
    params = {"value": f"{value:.1f}", "timeframe": cond.timeframe, "threshold": f"{cond.threshold:g}"}
    if cond.type == "price_drop":
        return t("price dropped {value}% in {timeframe} ≥ your {threshold}%", **params)
    if cond.type == "price_rise":
        return t("price rose {value}% in {timeframe} ≥ your {threshold}%", **params)
    return t("volume {value}× the {timeframe} average ≥ your +{threshold}%", **params)


def _side_signal(side: str) -> str:
    """"buy signal" / "sell signal" (another side is shown as it is)."""
    if side == "buy":
        return t("buy signal")
    if side == "sell":
        return t("sell signal")
    return f"{side} signal"


def explanation_text(reasons: Sequence[SignalReason], side: str) -> str:
    """A signal's reasons joined into one line; a signal without any is just "buy signal" / "sell signal"."""
    return "; ".join(reason_words(r) for r in reasons) or _side_signal(side)


def stored_explanation(stored: str, side: str, token: str) -> str:
    """A stored signal's reason in words (plain text; the caller escapes it).

    `side` and `token` are the signal row's (`storage.signals_repo.SignalRecord`). A reason stored
    before the typed form (a sentence) is shown as it is.
    """
    reasons = decode_reasons(stored, side=side, token=token)
    return stored if reasons is None else explanation_text(reasons, side)
