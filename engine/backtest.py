"""The backtest engine: numpy, vectorised, long-only, one position at a time.

Semantics (the README repeats them for users):

* Signals come from `engine.signals.evaluate`, on each bar's close.
* Entry: an entry signal at the close of bar ``i`` while flat buys at the open of bar ``i+1``
  (no look-ahead). A signal on the last bar never fills.
* Size: the buy spends ``amount_percent`` % of current equity *including the fee*, so at 100%
  the account never goes negative: ``units = budget / (fill * (1 + fee))``, fractional units.
  This is also how backtesting.py sizes a relative order.
* Costs: buys fill at ``price * (1 + slippage)``, sells at ``price * (1 - slippage)``; the fee
  (``fee_bps``) is charged on the notional of every fill (entry and exit).
* Stop-loss / take-profit levels are relative to the entry fill (slippage included) and are
  checked intrabar against each bar's low / high from the entry bar on. When both are hit in
  one bar the stop-loss wins (the pessimistic choice). A level fills at the level itself, or
  at the bar's open when the bar gaps through it (open already beyond the level).
* Exit signal: a sell signal at the close of bar ``j`` (``j >=`` the entry bar) sells the whole
  position at the open of bar ``j+1``. That market exit happens at the open, before any
  intrabar move of bar ``j+1``, so a stop-loss / take-profit can only pre-empt it up to bar ``j``.
* End: a position still open after the last bar is sold at the last close (reason ``end``),
  with slippage and fee like any sell.
* Re-entry: after an exit at bar ``x`` (intrabar or at the open), the next entry can come from
  a signal at the close of bar ``x`` or later, i.e. fill at the open of ``x+1`` at the
  earliest. This matches backtesting.py (the strategy sees itself flat at the close of the
  exit bar). While a position is open, entry signals are ignored.
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
from typing import Any, Literal

import numpy as np

from engine.metrics import compute_metrics, finite_or_none
from engine.signals import evaluate
from engine.strategy import Strategy, parse_strategy

ExitReason = Literal["stop_loss", "take_profit", "signal", "end"]
_FIELDS = ("time", "open", "high", "low", "close", "volume")
_PRICES = ("open", "high", "low", "close")
_FIRST_WINDOW = 256  # numpy call overhead dominates below a few hundred bars
_GROWTH = 4


class BacktestInputError(ValueError):
    """The candles or settings cannot be backtested; the message is plain words for the user."""


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

def _validated(candles: Mapping[str, Any]) -> dict[str, np.ndarray]:
    try:
        raw = {f: np.asarray(candles[f]) for f in _FIELDS}
    except KeyError as exc:
        raise BacktestInputError(f"the candles have no '{exc.args[0]}' column") from None
    if len({a.shape for a in raw.values()}) != 1 or any(a.ndim != 1 for a in raw.values()):
        raise BacktestInputError("the candle columns have different lengths")
    if raw["close"].shape[0] < 2:
        raise BacktestInputError("at least 2 candles are needed for a backtest")
    try:
        arrays = {f: np.ascontiguousarray(raw[f], dtype=np.float64) for f in _PRICES}
        arrays["volume"] = np.ascontiguousarray(raw["volume"], dtype=np.float64)
        time = raw["time"] if raw["time"].dtype.kind in "iu" else raw["time"].astype(np.float64)
    except (TypeError, ValueError):
        raise BacktestInputError("the candles contain values that are not numbers") from None
    # min/max are fast reductions and NaN fails every comparison, so one test catches
    # NaN, inf and non-positive values; the slower precise diagnosis runs only on failure.
    for f in _PRICES:
        a = arrays[f]
        if not (a.min() > 0 and a.max() < np.inf):
            if not np.isfinite(a).all():
                raise BacktestInputError(f"the candles contain missing or infinite {f} values")
            raise BacktestInputError(f"the candles contain zero or negative {f} prices")
    vol = arrays["volume"]
    if not (vol.min() >= 0 and vol.max() < np.inf):
        if not np.isfinite(vol).all():
            raise BacktestInputError("the candles contain missing or infinite volume values")
        raise BacktestInputError("the candles contain negative volume")
    if time.dtype.kind == "f" and not np.isfinite(time).all():
        raise BacktestInputError("the candles contain missing or infinite time values")
    if not (time[1:] > time[:-1]).all():
        raise BacktestInputError("candle times must be strictly increasing")
    arrays["time"] = time.astype(np.int64)
    return arrays


def _check_setting(name: str, value: float, low: float, high: float) -> float:
    value = float(value)
    if not (np.isfinite(value) and low <= value < high):
        raise BacktestInputError(f"{name} must be between {low:g} and {high:g}")
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
              fee: float, slip: float, initial: float) -> list[_Row]:
    n = c.shape[0]
    entry_bars = np.flatnonzero(buy[:-1]) + 1  # a signal at close i fills at open i+1
    sell_bars = np.flatnonzero(sell)
    n_entries, n_sells = entry_bars.shape[0], sell_bars.shape[0]
    sl_mult = 1.0 - sl_pct / 100.0 if sl_pct is not None else None
    tp_mult = 1.0 + tp_pct / 100.0 if tp_pct is not None else None
    rows: list[_Row] = []
    cash = initial
    earliest = 1
    while True:
        k = int(entry_bars.searchsorted(earliest))
        if k >= n_entries:
            break
        e = int(entry_bars[k])
        fill = float(o[e]) * (1.0 + slip)
        units = cash * fraction / (fill * (1.0 + fee))
        entry_fee = units * fill * fee
        sl = fill * sl_mult if sl_mult is not None else None
        tp = fill * tp_mult if tp_mult is not None else None
        js = int(sell_bars.searchsorted(e))
        j = int(sell_bars[js]) if js < n_sells else n  # first exit-signal bar at/after entry
        hit = _first_hit(low, h, e, min(j, n - 1), sl, tp)
        if hit >= 0:
            x = hit
            if sl is not None and low[x] <= sl:
                price, reason = min(float(o[x]), sl), "stop_loss"
            else:
                price, reason = max(float(o[x]), tp), "take_profit"  # type: ignore[type-var]
        elif j < n - 1:
            x, price, reason = j + 1, float(o[j + 1]), "signal"
        else:
            x, price, reason = n - 1, float(c[n - 1]), "end"
        exit_fill = price * (1.0 - slip)
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
                 interval_minutes: float | None = None) -> BacktestResult:
    """Backtest `strategy` on `candles` (see the module docstring for the exact semantics).

    `candles` maps time (unix seconds), open, high, low, close, volume to equal-length arrays
    (an `engine.market.base.Candles` works). `interval_minutes` defaults to the median spacing
    of `time`. Raises `BacktestInputError` for unusable input and `StrategyError` for an
    invalid strategy dict.
    """
    strat = parse_strategy(strategy)
    arrays = _validated(candles)
    fee = _check_setting("fee_bps", fee_bps, 0, 10_000) / 10_000
    slip = _check_setting("slippage_bps", slippage_bps, 0, 10_000) / 10_000
    initial = _check_setting("initial_equity", initial_equity, 1e-9, float("inf"))
    time, o, h, low, c = (arrays[f] for f in ("time", "open", "high", "low", "close"))
    if interval_minutes is None:
        interval = float(np.median(np.diff(time))) / 60.0
    else:
        interval = _check_setting("interval_minutes", interval_minutes, 1e-9, float("inf"))
    if not interval > 0:
        raise BacktestInputError("could not work out the candle interval")

    sig = evaluate(strat, arrays, interval)
    rm = strat.risk_management
    rows = _simulate(o, h, low, c, sig.buy, sig.sell, fraction=strat.buy.amount_percent / 100.0,
                     sl_pct=rm.stop_loss_percent, tp_pct=rm.take_profit_percent,
                     fee=fee, slip=slip, initial=initial)
    equity = _equity_curve(rows, c, initial)
    trades = [
        Trade(entry_index=e, exit_index=x, entry_time=int(time[e]), exit_time=int(time[x]),
              entry_price=ep, exit_price=xp, size=units, pnl=pnl,
              return_pct=finite_or_none(pnl / cost * 100.0) or 0.0, fees=fees,
              exit_reason=reason)  # type: ignore[arg-type]
        for e, x, ep, xp, units, pnl, fees, cost, _, _, reason in rows
    ]
    buy_idx, sell_idx = np.flatnonzero(sig.buy), np.flatnonzero(sig.sell)
    metrics = compute_metrics(
        equity=equity, pnls=[r[5] for r in rows], bars_in_position=sum(r[1] - r[0] + 1 for r in rows),
        first_close=float(c[0]), last_close=float(c[-1]), initial_equity=initial,
        buy_signals=buy_idx.shape[0], sell_signals=sell_idx.shape[0], interval_minutes=interval)
    settings = {"fee_bps": float(fee_bps), "slippage_bps": float(slippage_bps),
                "initial_equity": initial, "interval_minutes": interval}
    return BacktestResult(metrics=metrics, trades=trades, equity=equity,
                          signal_indices={"buy": buy_idx, "sell": sell_idx}, time=time, close=c,
                          settings=settings)
