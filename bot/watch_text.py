"""What an agent waits for, in words: the token it watches and each entry condition's distance.

"👀 Watching PEPE (1h), now 0.0000125: buys when it drops 5% in 1h — down 1.2% now, 3.8% to go."
"""

from __future__ import annotations

from agents.autonomy.watch import Watch
from bot.i18n import t
from bot.render import esc
from engine.numbers import format_price
from engine.trigger import Gauge


def _pct(value: float) -> str:
    return f"{value:.1f}%"


def gauge_text(gauge: Gauge) -> str:
    """One entry condition: what it needs, where it stands, what is missing."""
    cond = gauge.condition
    if gauge.now is None:
        return t("{condition}: not enough price history yet", condition=_needs(gauge))
    if cond.type in ("price_drop", "price_rise"):
        move = -gauge.now if cond.type == "price_drop" else gauge.now  # positive: the price went up
        moved = (t("up {pct} over {timeframe}", pct=_pct(move), timeframe=cond.timeframe) if move > 0
                 else t("down {pct} over {timeframe}", pct=_pct(-move), timeframe=cond.timeframe))
    elif cond.type == "volume_spike":
        moved = t("volume {multiple}× its average", multiple=format(gauge.now, ".1f"))
    else:
        moved = t("price {price}", price=format_price(gauge.now))
    if gauge.fired:
        return t("{condition} — {now}: met on the last bar", condition=_needs(gauge), now=moved)
    missing = gauge.to_go
    rest = ("" if missing is None else
            t("{pct} to go", pct=_pct(missing)) if cond.type != "volume_spike"
            else t("{multiple}× more to go", multiple=format(missing, ".1f")))
    return t("{condition} — {now}, {rest}", condition=_needs(gauge), now=moved, rest=rest)


def _needs(gauge: Gauge) -> str:
    cond = gauge.condition
    if cond.type in ("price_drop", "price_rise"):
        pct = format(cond.threshold, "g") + "%"
        return (t("buys at a {pct} drop over {timeframe}", pct=pct, timeframe=cond.timeframe)
                if cond.type == "price_drop" else
                t("buys at a {pct} rise over {timeframe}", pct=pct, timeframe=cond.timeframe))
    if cond.type == "volume_spike":
        return t("buys at volume {multiple}× the average", multiple=format(gauge.trigger, "g"))
    if cond.direction == "above":
        return t("buys above {price}", price=format_price(cond.price))
    return t("buys below {price}", price=format_price(cond.price))


def watch_text(watch: Watch) -> str:
    """The card's "watching" block (HTML)."""
    price = format_price(watch.price) if watch.price is not None else t("unknown")
    head = t("👀 Watching <b>{symbol}</b> ({timeframe} candles), price now {price}",
             symbol=esc(watch.symbol), timeframe=watch.timeframe, price=price)
    lines = [head] + [f"• {esc(gauge_text(g))}" for g in watch.gauges]
    if len(watch.gauges) > 1:
        lines.append(t("(all of them must hold)") if watch.strategy.match == "all"
                     else t("(any one of them is enough)"))
    return "\n".join(lines)
