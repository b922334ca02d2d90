"""The backtest engine: numpy, vectorised, long-only, one position at a time.

The trading rules (entry at the next open, stop-loss first, fills at the level or the gap open,
no stale re-entry, exit reasons) are those of `engine.core`, whose price functions this module
calls; `/simulate` and the agents run the same rules incrementally through `TradingCore`, and a
property test replays both bar by bar. What is specific to a backtest:

* Candles are checked and put on a regular time grid first (`engine.bars`): empty intervals
  become flat zero-volume bars, so lookbacks are wall time.
* Size: the buy spends ``amount_percent`` % of current equity *including the fee*, so at 100%
  the account never goes negative: ``units = budget / (fill * (1 + fee))``, fractional units.
  This is also how backtesting.py sizes a relative order.
* End: a position still open after the last bar is sold at the last close (reason ``end``),
  with slippage and fee like any sell.
* Equity is marked to market at each bar's close (before exit costs), except that an exit
  bar shows the realised cash; so ``equity[-1] == final_equity == initial + sum(trade pnl)``.

Implementation: signals are whole-array numpy operations. The trade simulation loops over
*trades*, not bars: the next entry and the next exit signal are binary searches, and the first
stop-loss/take-profit bar is found by scanning forward windows that grow geometrically, so the
work per trade is proportional to its length and the total stays ~O(bars).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from engine.bars import CandleError, infer_interval_seconds, to_grid, validate_candles
from engine.core import Costs, ExitReason, levels, stop_price, target_price
from engine.metrics import compute_metrics, finite_or_none
from engine.signals import evaluate, lookback_bars
from engine.strategy import Strategy, parse_strategy

_FIRST_WINDOW = 256  # numpy call overhead dominates below a few hundred bars
_GROWTH = 4


class BacktestInputError(CandleError):
    """The candles or settings cannot be backtested; `code` names it, the message is plain words."""

    def __init__(self, code: str, message: str | None = None) -> None:
        if message is None:  # BacktestInputError("plain words") keeps working
            code, message = "invalid", code
        super().__init__(code, message)


@dataclass(slots=True)
class Trade:
    """One round trip. Prices are fills (slippage included); `pnl` is net of both fees.

    `return_pct` is pnl relative to the cash spent on the entry (notional + entry fee).
    """

    entry_index: int
    exit_index: int
    entry_time: int
    exit_time: int
    entry_price: float
    exit_price: float
    size: float
    pnl: float
    return_pct: float
    fees: float
    exit_reason: ExitReason

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BacktestResult:
    """Metrics, trades, the per-candle equity curve and the raw signal bars of one run."""

    metrics: dict[str, float | int | None]
    trades: list[Trade]
    equity: np.ndarray
    signal_indices: dict[str, np.ndarray]
    time: np.ndarray
    close: np.ndarray
    settings: dict[str, float] = field(default_factory=dict)

    def signals(self) -> list[dict[str, Any]]:
        """Every raw signal bar as {index, time, side, price} (price = that bar's close), by time."""
        rows = [
            {"index": int(i), "time": int(self.time[i]), "side": side, "price": float(self.close[i])}
            for side in ("buy", "sell") for i in self.signal_indices[side]
        ]
        rows.sort(key=lambda r: (r["index"], r["side"]))
        return rows

    def equity_curve(self, max_points: int = 500) -> list[tuple[int, float]]:
        """(time, equity) pairs, evenly thinned to at most `max_points` (last point kept)."""
        n = self.equity.shape[0]
        if n == 0:
            return []
        step = max(1, -(-n // max(1, max_points - 1)))
        idx = np.arange(0, n, step)
        if idx[-1] != n - 1:
            idx = np.append(idx, n - 1)
        return [(int(self.time[i]), float(self.equity[i])) for i in idx]

    def to_dict(self, *, max_points: int = 500) -> dict[str, Any]:
        """JSON-safe summary for storage: metrics, settings, trades, signals, thinned equity."""
        return {
            "metrics": dict(self.metrics),
            "settings": dict(self.settings),
            "trades": [t.to_dict() for t in self.trades],
            "signals": self.signals(),
            "equity_curve": [[t, v] for t, v in self.equity_curve(max_points)],
        }


# -- input checks ------------------------------------------------------------------------------

def _validated(candles: Mapping[str, Any], interval_minutes: float | None) -> tuple[dict[str, np.ndarray], float]:
    """Checked candles on a regular time grid, and their interval in minutes."""
    try:
        arrays = validate_candles(candles, min_bars=2)
        if interval_minutes is None:
            step = infer_interval_seconds(arrays["time"])
        else:
            minutes = _check_setting("interval_minutes", interval_minutes, 1e-9, float("inf"))
            step = round(minutes * 60)
            if step <= 0 or abs(step - minutes * 60) > 1e-6:
                raise BacktestInputError("bad_interval", "interval_minutes must be a whole number of seconds")
        return to_grid(arrays, step), step / 60.0
    except BacktestInputError:
        raise
    except CandleError as exc:
        raise BacktestInputError(exc.code, str(exc)) from None


def _check_history(strat: Strategy, bars: int, interval: float) -> None:
    """Entry conditions that look back further than the data can never fire: say so plainly
    instead of returning a silent zero-trade result."""
    entries = strat.entry_conditions()
    short = [c for c in entries if c.type != "price_level" and lookback_bars(c.timeframe, interval) >= bars]
    blocked = len(short) == len(entries) if strat.match == "any" else bool(short)
    if blocked:
        cond = short[0]
        need = lookback_bars(cond.timeframe, interval)
        raise BacktestInputError(
            "history_too_short",
            f"the {cond.timeframe} condition needs more than {need} candles of "
            f"{_minutes_label(interval)} history and there are only {bars}: "
            "use a longer period or a shorter timeframe")


def _minutes_label(interval: float) -> str:
    minutes = round(interval)
    if minutes % 1440 == 0:
        return f"{minutes // 1440}d"
    if minutes % 60 == 0:
        return f"{minutes // 60}h"
    return f"{minutes}m"


def _check_setting(name: str, value: float, low: float, high: float) -> float:
    value = float(value)
    if not (np.isfinite(value) and low <= value < high):
        raise BacktestInputError("bad_setting", f"{name} must be between {low:g} and {high:g}")
    return value


# -- trade simulation --------------------------------------------------------------------------

def _first_hit(low: np.ndarray, high: np.ndarray, start: int, stop: int,
               sl: float | None, tp: float | None) -> int:
    """First bar in [start, stop] whose low <= sl or high >= tp, else -1.

    Scans windows that grow geometrically, so a short trade costs a few small numpy calls and
    a long one O(its length) in total. Each window is first tested with a min/max reduction
    (cheap); only the window that holds the hit is searched element by element.
    """
    if sl is None and tp is None:
        return -1
    width = _FIRST_WINDOW
    lo = start
    end = stop + 1
    while lo < end:
        hi = min(lo + width, end)
        lows = low[lo:hi] if sl is not None else None
        highs = high[lo:hi] if tp is not None else None
        if (lows is not None and lows.min() <= sl) or (highs is not None and highs.max() >= tp):
            if lows is None:
                hit = highs >= tp  # type: ignore[operator]
            else:
                hit = lows <= sl
                if highs is not None:
                    hit |= highs >= tp
            return lo + int(hit.argmax())
        lo = hi
        width *= _GROWTH
    return -1


# One row per trade: entry, exit, entry fill, exit fill, units, pnl, fees, cash spent at entry,
# cash before, cash after, exit reason. Plain tuples keep the per-trade loop cheap.
_Row = tuple[int, int, float, float, float, float, float, float, float, float, str]


def _simulate(o: np.ndarray, h: np.ndarray, low: np.ndarray, c: np.ndarray, buy: np.ndarray,
              sell: np.ndarray, *, fraction: float, sl_pct: float | None, tp_pct: float | None,
              costs: Costs, initial: float) -> list[_Row]:
    """The trading core's decisions (`engine.core`), found by searching trades instead of stepping bars."""
    n = c.shape[0]
    entry_bars = np.flatnonzero(buy[:-1]) + 1  # a signal at close i fills at open i+1
    sell_bars = np.flatnonzero(sell)
    n_entries, n_sells = entry_bars.shape[0], sell_bars.shape[0]
    fee = costs.fee
    rows: list[_Row] = []
    cash = initial
    earliest = 1
    while True:
        k = int(entry_bars.searchsorted(earliest))
        if k >= n_entries:
            break
        e = int(entry_bars[k])
        fill = costs.buy_fill(float(o[e]))
        units = costs.units_for(cash * fraction, fill)
        entry_fee = units * fill * fee
        sl, tp = levels(fill, sl_pct, tp_pct)
        js = int(sell_bars.searchsorted(e))
        j = int(sell_bars[js]) if js < n_sells else n  # first exit-signal bar at/after entry
        hit = _first_hit(low, h, e, min(j, n - 1), sl, tp)
        if hit >= 0:
            x = hit
            if sl is not None and low[x] <= sl:
                price, reason = stop_price(float(o[x]), sl), "stop_loss"
            else:
                price, reason = target_price(float(o[x]), tp), "take_profit"  # type: ignore[arg-type]
        elif j < n - 1:
            x, price, reason = j + 1, float(o[j + 1]), "signal"
        else:
            x, price, reason = n - 1, float(c[n - 1]), "end"
        exit_fill = costs.sell_fill(price)
        exit_fee = units * exit_fill * fee
        pnl = units * (exit_fill - fill) - entry_fee - exit_fee
        after = cash + pnl
        rows.append((e, x, fill, exit_fill, units, pnl, entry_fee + exit_fee, units * fill + entry_fee,
                     cash, after, reason))
        cash = after
        earliest = x + 1
    return rows


def _equity_curve(rows: list[_Row], close: np.ndarray, initial: float) -> np.ndarray:
    """Cash plus units × close per bar, built from piecewise-constant segments (no bar loop)."""
    n = close.shape[0]
    if not rows:
        return np.full(n, initial)
    m = len(rows)
    cols = np.array([r[:10] for r in rows], dtype=np.float64)  # (m, 10) numeric columns
    bounds = np.empty(2 * m + 2, dtype=np.int64)
    bounds[0], bounds[-1] = 0, n
    bounds[1:-1:2] = cols[:, 0]
    bounds[2:-1:2] = cols[:, 1]
    base = np.empty(2 * m + 1)
    units = np.zeros(2 * m + 1)
    base[0] = initial
    base[1::2] = cols[:, 8] - cols[:, 7]  # holding over [entry, exit): cash left after buying
    base[2::2] = cols[:, 9]  # flat over [exit, next entry)
    units[1::2] = cols[:, 4]
    lengths = np.diff(bounds)
    equity = np.repeat(units, lengths)
    equity *= close
    equity += np.repeat(base, lengths)
    return equity


def run_backtest(strategy: Strategy | dict[str, Any], candles: Mapping[str, Any], *,
                 fee_bps: float = 30, slippage_bps: float = 10, initial_equity: float = 1000,
                 interval_minutes: float | None = None, first_signal_time: int | None = None) -> BacktestResult:
    """Backtest `strategy` on `candles` (see the module docstring for the exact semantics).

    `candles` maps time (unix seconds), open, high, low, close, volume to equal-length arrays
    (an `engine.market.base.Candles` works); they are put on a regular time grid first
    (`engine.bars`). `interval_minutes` defaults to the smallest spacing of `time`.
    `first_signal_time` ignores signals on bars before it (they only warm the lookbacks up):
    this is how a live run is replayed. Raises `BacktestInputError` for unusable input and
    `StrategyError` for an invalid strategy dict.
    """
    strat = parse_strategy(strategy)
    fee = _check_setting("fee_bps", fee_bps, 0, 10_000) / 10_000
    slip = _check_setting("slippage_bps", slippage_bps, 0, 10_000) / 10_000
    initial = _check_setting("initial_equity", initial_equity, 1e-9, float("inf"))
    arrays, interval = _validated(candles, interval_minutes)
    time, o, h, low, c = (arrays[f] for f in ("time", "open", "high", "low", "close"))
    _check_history(strat, c.shape[0], interval)
    costs = Costs(fee * 10_000, slip * 10_000)

    sig = evaluate(strat, arrays, interval)
    buy, sell = sig.buy, sig.sell
    if first_signal_time is not None:
        start = int(np.searchsorted(time, int(first_signal_time)))
        buy, sell = buy.copy(), sell.copy()
        buy[:start] = False
        sell[:start] = False
    rm = strat.risk_management
    rows = _simulate(o, h, low, c, buy, sell, fraction=strat.buy.amount_percent / 100.0,
                     sl_pct=rm.stop_loss_percent, tp_pct=rm.take_profit_percent,
                     costs=costs, initial=initial)
    equity = _equity_curve(rows, c, initial)
    trades = [
        Trade(entry_index=e, exit_index=x, entry_time=int(time[e]), exit_time=int(time[x]),
              entry_price=ep, exit_price=xp, size=units, pnl=pnl,
              return_pct=finite_or_none(pnl / cost * 100.0) or 0.0, fees=fees,
              exit_reason=reason)  # type: ignore[arg-type]
        for e, x, ep, xp, units, pnl, fees, cost, _, _, reason in rows
    ]
    buy_idx, sell_idx = np.flatnonzero(buy), np.flatnonzero(sell)
    metrics = compute_metrics(
        equity=equity, pnls=[r[5] for r in rows], bars_in_position=sum(r[1] - r[0] + 1 for r in rows),
        first_close=float(c[0]), last_close=float(c[-1]), initial_equity=initial,
        buy_signals=buy_idx.shape[0], sell_signals=sell_idx.shape[0], interval_minutes=interval)
    settings = {"fee_bps": float(fee_bps), "slippage_bps": float(slippage_bps),
                "initial_equity": initial, "interval_minutes": interval,
                "fees_paid": float(sum(r[6] for r in rows)),
                "slippage_paid": float(sum(costs.slippage_cost(r[4], r[2], r[3]) for r in rows))}
    return BacktestResult(metrics=metrics, trades=trades, equity=equity,
                          signal_indices={"buy": buy_idx, "sell": sell_idx}, time=time, close=c,
                          settings=settings)
