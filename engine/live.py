"""Live bars for the trading core: closed bars of a strategy's own timeframe, plus the forming one.

Both live paths (simulations and the agent loop) trade exactly like the backtest because they
feed `engine.core.TradingCore` the same bars the backtest would see:

* **Closed bars** come from the market's candles of the strategy's timeframe (AVE's own OHLCV:
  true highs, lows and volume, which sampled prices cannot give), asked for up to the start of
  the forming bar and put on the regular time grid (`engine.bars`), so a quiet interval is a
  flat zero-volume bar here exactly as in a backtest.
* **The forming bar** is read only when a decision can be taken early: an order waiting for the
  next open, or a position whose stop (or, without a stop, target) the polled price has reached.
  Its open is final once it exists, and a touched stop wins over the target in the full bar
  too, so acting on it early never changes a decision, only makes it timely.

`advance` runs one account's core over what is new; the bars it traded on are what the caller
stores for the parity replay (`engine.parity`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine.bars import CandleError, grid_candles
from engine.core import Fill, TradingCore
from engine.market.base import CANDLE_FIELDS, Candles, LiveBarSource, MarketData, PermanentMarketError
from engine.signals import lookback_bars
from engine.strategy import Strategy


class BadCandlesError(PermanentMarketError):
    """The provider's candles failed the checks of `engine.bars` (a high below the close, …)."""


# AVE may still be aggregating a bar's last trades for a few seconds after its end: a bar counts
# as closed only this long after its end, so a cached, still-incomplete bar is never traded on.
SETTLE_SECONDS = 10


@dataclass(frozen=True)
class FormingBar:
    """The bar still forming: its start, its (final) open and its extremes so far."""

    time: int
    open: float
    high: float
    low: float
    seconds: int  # the bar's length


def bar_start(now: float, interval_minutes: int) -> int:
    """Start time of the bar that is forming at `now`."""
    period = interval_minutes * 60
    return int(math.floor(now / period) * period)


def settled_start(now: float, interval_minutes: int) -> int:
    """Start of the first bar that does not count as closed yet (see `SETTLE_SECONDS`)."""
    return bar_start(now - SETTLE_SECONDS, interval_minutes)


def warmup_bars(strategy: Strategy, interval_minutes: int) -> int:
    """Closed bars needed so the last bar's signals equal those over the whole history."""
    need = max((lookback_bars(c.timeframe, interval_minutes) if c.type != "price_level" else 1)
               for c in strategy.conditions)
    return need + 2


async def closed_bars(market: MarketData, token_id: str, interval_minutes: int, count: int,
                      now: float) -> Candles:
    """The last closed bars on the regular grid, reaching the last closed interval.

    At least `count` bars when the token has that much history (AVE may return sparse or extra
    points; the forming bar is dropped even if the source returns it).
    """
    live = settled_start(now, interval_minutes)
    period = interval_minutes * 60
    raw = await market.get_klines(token_id, interval_minutes, limit=max(2, count), to_time=live - 1)
    keep = raw.time < live
    if not bool(keep.all()):
        raw = Candles(*(raw[f][keep] for f in CANDLE_FIELDS))
    if len(raw) == 0:
        return raw
    try:
        bars = grid_candles(raw, interval_minutes, end_time=live - period)
    except CandleError as exc:  # one token's bad candles must not stop everyone else's tick
        raise BadCandlesError("market.bad_candles", interval=interval_minutes, problem=exc) from None
    return bars.tail(max(count, 1))


async def forming_bar(market: MarketData, token_id: str, interval_minutes: int, now: float
                      ) -> FormingBar | None:
    """The forming bar from the market, or None while nothing has traded in it yet."""
    live = bar_start(now, interval_minutes)
    if isinstance(market, LiveBarSource):
        pushed = await market.live_bar(token_id, interval_minutes, live)
        if pushed is not None:
            return FormingBar(live, *pushed, seconds=interval_minutes * 60)
    raw = await market.get_klines(token_id, interval_minutes, limit=2, to_time=int(now))
    if len(raw) == 0 or int(raw.time[-1]) != live:
        return None
    i = len(raw) - 1
    values = (float(raw.open[i]), float(raw.high[i]), float(raw.low[i]))
    if not all(math.isfinite(v) and v > 0 for v in values):
        return None
    return FormingBar(live, *values, seconds=interval_minutes * 60)


def new_bar_slice(core: TradingCore, bars: Candles) -> int:
    """Index of the first bar of `bars` the core has not closed yet."""
    last = core.state.last_close
    n = len(bars)
    if last is None or n == 0 or last >= bars.time[-1]:
        return n
    if n > 1 and bars.time[-2] == last:  # the usual case: one new bar since the last tick
        return n - 1
    return int(np.searchsorted(bars.time, last, side="right"))


def start_after(core: TradingCore, bars: Candles) -> None:
    """A fresh core starts trading after the last closed bar (history only warms lookbacks up)."""
    if len(bars):
        t = int(bars.time[-1])
        core.state.last_close = t
        core.state.bar_time = t


def advance(core: TradingCore, bars: Candles, buy: np.ndarray | None, sell: np.ndarray | None,
            forming: FormingBar | None = None) -> list[Fill]:
    """Feed `core` every closed bar it has not seen, then the forming bar; returns the fills in order.

    `buy` / `sell` align with `bars` (None: signals are not traded, e.g. a paused agent whose
    stops still run).
    """
    fills: list[Fill] = []
    start = new_bar_slice(core, bars)
    for i in range(start, len(bars)):
        t = int(bars.time[i])
        fills += core.on_bar(t, float(bars.open[i]), float(bars.high[i]), float(bars.low[i]),
                             bool(buy[i]) if buy is not None else False,
                             bool(sell[i]) if sell is not None else False)
    last = core.state.last_close
    # only the bar right after the last closed one: were a closed bar missing (its candles failed,
    # or it is still settling), acting on a later bar's open would skip that bar's decisions
    if forming is not None and (last is None or forming.time == last + forming.seconds):
        fills += core.on_open(forming.time, forming.open)
        fills += core.on_extremes(forming.time, forming.high, forming.low, final=False)
    return fills


def wants_forming_bar(core: TradingCore, price: float | None) -> bool:
    """Whether the forming bar can change anything now: an order waits for the open, or the
    polled price reached a level that the partial bar may already settle."""
    pos = core.state.position
    return can_settle_now(core.state.pending, None if pos is None else pos.stop,
                          None if pos is None else pos.target, pos is not None, price)


def can_settle_now(pending: str | None, stop: float | None, target: float | None, holding: bool,
                   price: float | None) -> bool:
    """`wants_forming_bar` on plain values, so a caller can skip building a core when it is False."""
    if pending is not None:
        return True
    if not holding or price is None:
        return False
    if stop is not None:
        return price <= stop
    return target is not None and price >= target
