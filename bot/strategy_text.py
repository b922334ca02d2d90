"""A strategy in people's words: the one place a strategy is described for a reader.

The lower layers hand the bot a validated `Strategy`; the bot words it (the bot screens, the
designer's replies, agent and simulation cards) so the wording is written once and can be translated.
"""

from __future__ import annotations

from typing import Any

from bot.i18n import t
from engine.numbers import format_price
from engine.strategy import Strategy, parse_strategy


def _pct(v: float) -> str:
    return f"{v:g}"


def describe_condition(cond: Any) -> str:
    """One condition in the user's terms, e.g. 'price drops 5% within 1h'."""
    if cond.type == "price_drop":
        return t("price drops {percent}% within {timeframe}", percent=_pct(cond.threshold), timeframe=cond.timeframe)
    if cond.type == "price_rise":
        return t("price rises {percent}% within {timeframe}", percent=_pct(cond.threshold), timeframe=cond.timeframe)
    if cond.type == "volume_spike":
        return t("volume jumps {percent}% above its {timeframe} average", percent=_pct(cond.threshold),
                 timeframe=cond.timeframe)
    if cond.direction == "above":
        return t("price crosses above ${price}", price=format_price(cond.price))
    return t("price crosses below ${price}", price=format_price(cond.price))


def _joiner(strategy: Strategy) -> str:
    """' or ' when any condition is enough, else ' and '."""
    return " " + (t("or") if strategy.match == "any" else t("and")) + " "


def _exit_sentence(s: Strategy, joiner: str) -> str:
    """'Exit with a 3% stop-loss and a 6% take-profit.', or that there is no exit rule."""
    exits: list[str] = []
    rm = s.risk_management
    if rm.stop_loss_percent is not None:
        exits.append(t("a {percent}% stop-loss", percent=_pct(rm.stop_loss_percent)))
    if rm.take_profit_percent is not None:
        exits.append(t("a {percent}% take-profit", percent=_pct(rm.take_profit_percent)))
    sell_conds = s.exit_conditions()
    if sell_conds:
        exits.append(t("selling when {conditions}", conditions=joiner.join(describe_condition(c) for c in sell_conds)))
    if not exits:
        return t("No exit rule: positions stay open until you stop or add a stop-loss/take-profit.")
    listed = ", ".join(exits[:-1]) + (" " + t("and") + " " if len(exits) > 1 else "") + exits[-1]
    return t("Exit with {exits}.", exits=listed)


def describe_strategy(strategy: Strategy | dict[str, Any]) -> str:
    """Describe a strategy in one or two plain sentences."""
    s = parse_strategy(strategy)
    token = t("{token} on {chain}", token=s.token.upper(), chain=s.chain) if s.chain else s.token.upper()
    joiner = _joiner(s)
    entries = joiner.join(describe_condition(c) for c in s.entry_conditions())
    text = t("Buy {percent}% of the balance in {token} when {conditions}.", percent=_pct(s.buy.amount_percent),
             token=token, conditions=entries)
    return f"{text} {_exit_sentence(s, joiner)}"
