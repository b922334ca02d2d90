"""How far a strategy is from buying: each entry condition as it stands on the last closed bar.

The agent card shows it ("down 1.2% over 1h; buys at 5%: 3.8% to go"), so a user can see the
agent is watching and what it waits for. Measured with `engine.signals.evaluate`, the code that
decides the trades, so the card and the agent cannot disagree.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.signals import evaluate
from engine.strategy import Strategy


@dataclass(frozen=True)
class Gauge:
    """One entry condition on the last closed bar.

    `now` is in the condition's own units: the move in percent for price_drop (positive: the price
    fell) and price_rise (positive: it rose), the volume as a multiple of the previous window's
    mean for volume_spike, the close for price_level; None without enough history. `to_go` is what
    is missing, in the same units as the trigger (percent for a level: how far the price must
    move); 0 when the condition holds now.
    """

    condition: Any
    now: float | None
    fired: bool

    @property
    def trigger(self) -> float:
        """The level the condition compares with (percent, multiple or price)."""
        cond = self.condition
        if cond.type == "price_level":
            return float(cond.price)
        if cond.type == "volume_spike":
            return 1.0 + cond.threshold / 100.0
        return float(cond.threshold)

    @property
    def to_go(self) -> float | None:
        if self.now is None:
            return None
        if self.fired:
            return 0.0
        cond = self.condition
        if cond.type == "price_level":
            if self.now <= 0:
                return None
            gap = (self.trigger - self.now) if cond.direction == "above" else (self.now - self.trigger)
            return max(0.0, gap / self.now * 100.0)
        return max(0.0, self.trigger - self.now)


def entry_gauges(strategy: Strategy, candles: Mapping[str, np.ndarray], interval_minutes: float) -> tuple[Gauge, ...]:
    """The strategy's entry conditions measured on the last bar of `candles` (assumed closed)."""
    if len(candles["close"]) == 0:
        return tuple(Gauge(c, None, False) for c in strategy.entry_conditions)
    evaluated = evaluate(strategy, candles, interval_minutes)
    last = len(candles["close"]) - 1
    out = []
    for series in evaluated.conditions:
        cond = series.condition
        if cond.signal == "sell":
            continue
        raw = float(series.value[last])
        now = None if not math.isfinite(raw) else (
            -raw * 100 if cond.type == "price_drop" else raw * 100 if cond.type == "price_rise" else raw)
        out.append(Gauge(cond, now, bool(series.fired[last])))
    return tuple(out)
