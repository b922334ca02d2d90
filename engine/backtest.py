"""The backtest engine: numpy, vectorised, long-only, one position at a time.

The trading rules (entry at the next open, stop-loss first, fills at the level or the gap open,
no stale re-entry, exit reasons) are those of `engine.core`, whose price functions this module
calls; the simulations and the agents run the same rules incrementally through `TradingCore`,
and a property test replays both bar by bar. What is specific to a backtest:

* Candles are checked and put on a regular time grid first (`engine.bars`): empty intervals
  become flat zero-volume bars, so lookbacks are wall time.
* Size: the buy spends ``amount_percent`` % of current equity *including the fee*, so at 100%
  the account never goes negative: ``units = budget / (fill * (1 + fee))``, fractional units.
  This is also how backtesting.py sizes a relative order.
* End: a position still open after the last bar is sold at the last close (reason ``end``),
  with slippage and fee like any sell.
* Equity is marked to market at each bar's close (before exit costs), except that an exit
  bar shows the realised cash; so ``equity[-1] == final_equity == initial + sum(trade pnl)``.

Implementation: signals are whole-array numpy operations. Which candidate entries become trades
and where each exits is a sequential search, compiled (`engine.trade_search`); every price and
amount is then computed on whole columns with `engine.core`'s functions, so no step costs Python
per trade. `Trade` objects are built only when `BacktestResult.trades` is read. The compiled
modules (numba, ~130 MB per process with LLVM) are imported on a backtest's first run, so only
the process pool's workers load them; the bot process sends its parity replays there too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from engine.bars import REGULAR_STEP, CandleError, infer_interval_seconds, to_grid, validate_candles
from engine.core import (
    EXIT_REASONS,
    EXIT_SIGNAL,
    EXIT_STOP,
    EXIT_TARGET,
    Costs,
    ExitReason,
    levels,
    stop_price,
    target_price,
)
from engine.metrics import compute_metrics
from engine.signals import evaluate, lookback_bars
from engine.strategy import Strategy, parse_strategy


class BacktestInputError(CandleError):
    """The candles or settings cannot be backtested: a ``"candles.…"`` or ``"backtest.…"`` code."""


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
    table: TradeTable
    equity: np.ndarray
    signal_indices: dict[str, np.ndarray]
    time: np.ndarray
    close: np.ndarray
    settings: dict[str, float] = field(default_factory=dict)
    _trades: list[Trade] | None = field(default=None, repr=False)

    @property
    def trades(self) -> list[Trade]:
        """Every round trip, oldest first."""
        if self._trades is None:
            self._trades = _trades(self.table, self.time)
        return self._trades

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
        regular = arrays.get(REGULAR_STEP)
        if interval_minutes is None:
            step = infer_interval_seconds(arrays["time"], None if regular is None else int(regular[0]))
        else:
            minutes = _check_setting("interval_minutes", interval_minutes, 1e-9, float("inf"))
            step = round(minutes * 60)
            if step <= 0 or abs(step - minutes * 60) > 1e-6:
                raise BacktestInputError("backtest.bad_interval_minutes")
        return to_grid(arrays, step), step / 60.0
    except BacktestInputError:
        raise
    except CandleError as exc:
        raise BacktestInputError(exc.code, **exc.params) from None


def _check_history(strat: Strategy, bars: int, interval: float) -> None:
    """Entry conditions that look back further than the data can never fire: say so plainly
    instead of returning a silent zero-trade result."""
    entries = strat.entry_conditions()
    short = [c for c in entries if c.type != "price_level" and lookback_bars(c.timeframe, interval) >= bars]
    blocked = len(short) == len(entries) if strat.match == "any" else bool(short)
    if blocked:
        cond = short[0]
        need = lookback_bars(cond.timeframe, interval)
        raise BacktestInputError("backtest.history_too_short", timeframe=cond.timeframe, need=need,
                                 interval=_minutes_label(interval), bars=bars)


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
        raise BacktestInputError("backtest.bad_setting", name=name, low=low, high=high)
    return value


# -- trade simulation --------------------------------------------------------------------------

@dataclass(frozen=True)
class TradeTable:
    """Every trade of a run as numpy columns (one row per trade), priced by `engine.core`."""

    entry: np.ndarray       # entry bar index
    exit: np.ndarray        # exit bar index
    fill: np.ndarray        # entry fill (slippage included)
    exit_fill: np.ndarray
    units: np.ndarray
    pnl: np.ndarray         # net of both fees
    fees: np.ndarray
    cost: np.ndarray        # cash spent at entry (notional + entry fee)
    cash_before: np.ndarray
    cash_after: np.ndarray
    reason: np.ndarray      # exit codes: indices into `engine.core.EXIT_REASONS`

    def __len__(self) -> int:
        return int(self.entry.shape[0])


def _simulate(o: np.ndarray, h: np.ndarray, low: np.ndarray, c: np.ndarray, buy: np.ndarray,
              sell: np.ndarray, *, fraction: float, sl_pct: float | None, tp_pct: float | None,
              costs: Costs, initial: float) -> TradeTable:
    """The trading core's decisions (`engine.core`), found by the compiled trade search and priced
    with the core's own functions on whole columns (no per-trade Python)."""

    from engine.trade_search import search_trades  # numba: only where a backtest runs (module docstring)

    n = c.shape[0]
    entries = np.flatnonzero(buy[:-1]) + 1  # a signal at close i fills at open i+1
    fills = costs.buy_fill(o[entries])
    stops, targets = levels(fills, sl_pct, tp_pct)
    nan = np.full(entries.shape[0], np.nan)
    taken, x, reason = search_trades(low, h, entries, nan if stops is None else stops,
                                     nan if targets is None else targets, np.flatnonzero(sell), n)
    e, fill = entries[taken], fills[taken]
    price = c[x]  # `end`: the last close
    is_signal = reason == EXIT_SIGNAL
    price = np.where(is_signal, o[x], price)
    if stops is not None:
        price = np.where(reason == EXIT_STOP, stop_price(o[x], stops[taken]), price)
    if targets is not None:
        price = np.where(reason == EXIT_TARGET, target_price(o[x], targets[taken]), price)
    exit_fill = costs.sell_fill(price)
    # Cash compounds: each trade spends `fraction` of the cash before it, so cash before trade t
    # is the initial cash times the product of the earlier trades' growth factors.
    per_cash = costs.units_for(fraction, fill)  # units bought per unit of cash
    growth = 1.0 + per_cash * (exit_fill - fill) - per_cash * fill * costs.fee - per_cash * exit_fill * costs.fee
    cash_before = initial * np.concatenate(([1.0], np.cumprod(growth)[:-1]))
    units = costs.units_for(cash_before * fraction, fill)
    entry_fee = units * fill * costs.fee
    exit_fee = units * exit_fill * costs.fee
    pnl = units * (exit_fill - fill) - entry_fee - exit_fee
    return TradeTable(e, x, fill, exit_fill, units, pnl, entry_fee + exit_fee, units * fill + entry_fee,
                      cash_before, cash_before + pnl, reason)


def _equity_curve(t: TradeTable, close: np.ndarray, initial: float) -> np.ndarray:
    """Cash plus units × close per bar: cash left after buying while holding, realised cash after
    each exit (one compiled pass)."""
    if not len(t):
        return np.full(close.shape[0], initial)
    from engine.kernels import equity_curve  # numba: only where a backtest runs (module docstring)

    return equity_curve(close, t.entry, t.exit, t.units, t.cash_before - t.cost, t.cash_after, float(initial))


def _trades(t: TradeTable, time: np.ndarray) -> list[Trade]:
    """The table as `Trade` objects (built on first use: a caller that only wants the metrics of a
    run with 85k trades never pays for 85k objects)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ret = np.where(t.cost != 0, t.pnl / t.cost * 100.0, 0.0)
    ret = np.where(np.isfinite(ret), ret, 0.0)
    return [Trade(entry_index=e, exit_index=x, entry_time=et, exit_time=xt, entry_price=ep, exit_price=xp,
                  size=u, pnl=p, return_pct=r, fees=f, exit_reason=EXIT_REASONS[code])  # type: ignore[arg-type]
            for e, x, et, xt, ep, xp, u, p, r, f, code in zip(
                t.entry.tolist(), t.exit.tolist(), time[t.entry].tolist(), time[t.exit].tolist(), t.fill.tolist(),
                t.exit_fill.tolist(), t.units.tolist(), t.pnl.tolist(), ret.tolist(), t.fees.tolist(),
                t.reason.tolist(), strict=True)]


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
    table = _simulate(o, h, low, c, buy, sell, fraction=strat.buy.amount_percent / 100.0,
                      sl_pct=rm.stop_loss_percent, tp_pct=rm.take_profit_percent, costs=costs, initial=initial)
    equity = _equity_curve(table, c, initial)
    buy_idx, sell_idx = np.flatnonzero(buy), np.flatnonzero(sell)
    metrics = compute_metrics(
        equity=equity, pnls=table.pnl, bars_in_position=int((table.exit - table.entry + 1).sum()),
        first_close=float(c[0]), last_close=float(c[-1]), initial_equity=initial,
        buy_signals=buy_idx.shape[0], sell_signals=sell_idx.shape[0], interval_minutes=interval)
    settings = {"fee_bps": float(fee_bps), "slippage_bps": float(slippage_bps),
                "initial_equity": initial, "interval_minutes": interval,
                "fees_paid": float(table.fees.sum()),
                "slippage_paid": float(costs.slippage_cost(table.units, table.fill, table.exit_fill).sum())}
    return BacktestResult(metrics=metrics, table=table, equity=equity,
                          signal_indices={"buy": buy_idx, "sell": sell_idx}, time=time, close=c,
                          settings=settings)
