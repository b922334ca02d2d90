"""A strategy in people's words: the one place a strategy is described for a reader.

The lower layers hand the bot a validated `Strategy`; the bot words it (the bot screens, the
designer's replies, agent and simulation cards) so the wording is written once and can be translated.
"""

from __future__ import annotations

from typing import Any

from engine.numbers import format_price
from engine.strategy import Strategy, parse_strategy


def _pct(v: float) -> str:
    return f"{v:g}%"


def describe_condition(cond: Any) -> str:
    """One condition in the user's terms, e.g. 'price drops 5% within 1h'."""
    if cond.type == "price_drop":
        return f"price drops {_pct(cond.threshold)} within {cond.timeframe}"
    if cond.type == "price_rise":
        return f"price rises {_pct(cond.threshold)} within {cond.timeframe}"
    if cond.type == "volume_spike":
        return f"volume jumps {_pct(cond.threshold)} above its {cond.timeframe} average"
    return f"price crosses {'above' if cond.direction == 'above' else 'below'} ${format_price(cond.price)}"


def describe_strategy(strategy: Strategy | dict[str, Any]) -> str:
    """Describe a strategy in one or two plain sentences."""
    s = parse_strategy(strategy)
    token = s.token.upper() + (f" on {s.chain}" if s.chain else "")
    joiner = " or " if s.match == "any" else " and "
    entries = joiner.join(describe_condition(c) for c in s.entry_conditions())
    text = f"Buy {_pct(s.buy.amount_percent)} of the balance in {token} when {entries}."
    exits: list[str] = []
    rm = s.risk_management
    if rm.stop_loss_percent is not None:
        exits.append(f"a {_pct(rm.stop_loss_percent)} stop-loss")
    if rm.take_profit_percent is not None:
        exits.append(f"a {_pct(rm.take_profit_percent)} take-profit")
    sell_conds = s.exit_conditions()
    if sell_conds:
        exits.append("selling when " + joiner.join(describe_condition(c) for c in sell_conds))
    if exits:
        text += " Exit with " + ", ".join(exits[:-1]) + (" and " if len(exits) > 1 else "") + exits[-1] + "."
    else:
        text += " No exit rule: positions stay open until you stop or add a stop-loss/take-profit."
    return text
