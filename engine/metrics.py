"""Performance metrics of a backtest, computed from the equity curve and the closed trades.

Conventions (every value is a finite float / int or `None`, never NaN):

* `total_return_pct`: final equity vs initial equity, in %.
* `buy_hold_return_pct`: first close to last close, in %, without costs (the first close is
  the earliest price a strategy could act on, since entries happen at the next open).
* `win_rate_pct`: share of trades with pnl > 0; `None` without trades.
* `max_drawdown_pct`: the largest fall from a running equity peak, as a positive % (12.5 means
  equity fell 12.5% below its peak); 0 when equity never fell.
* `sharpe` / `sortino`: per-bar equity returns, risk-free 0, annualised for 24/7 markets with
  `365 * 1440 / interval_minutes` bars per year. Sortino's downside deviation is
  sqrt(mean(min(r, 0)^2)) over all bars. `None` with fewer than 2 returns or zero
  (downside) deviation, e.g. when no trade ever happened.
* `profit_factor`: gross profit / gross loss; `None` when there is no losing trade (undefined).
* `expectancy`: mean pnl per trade in account currency (net of fees); `None` without trades.
* `exposure_pct`: share of bars during which a position was open at any moment, the entry and
  exit bars included (backtesting.py's convention).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

METRIC_KEYS: tuple[str, ...] = (
    "total_return_pct", "buy_hold_return_pct", "win_rate_pct", "total_trades", "buy_signals",
    "sell_signals", "max_drawdown_pct", "sharpe", "sortino", "profit_factor", "expectancy",
    "exposure_pct", "final_equity",
)


def finite_or_none(value: float | None) -> float | None:
    """`value` as a float, or None when it is None, NaN or infinite."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def periods_per_year(interval_minutes: float) -> float:
    """Bars per year of a market that trades 24/7."""
    return 365.0 * 1440.0 / interval_minutes


def _curve_stats(equity: np.ndarray) -> tuple[float, float, float, float]:
    from engine.kernels import curve_stats  # numba: only where a backtest runs (engine.backtest)

    return curve_stats(np.ascontiguousarray(equity, dtype=np.float64))


def drawdown(peak: float, equity: float) -> float:
    """The fall of `equity` below its `peak` as a fraction: the one definition of drawdown (the
    risk worker's pause, the spawn rule, the backtest's max drawdown). 0 at or above the peak and
    without a positive peak."""
    if not (peak > 0 and math.isfinite(peak) and math.isfinite(equity)):
        return 0.0
    return max(0.0, (peak - equity) / peak)


def max_drawdown(curve: np.ndarray) -> float:
    """The largest `drawdown` along a positive equity curve, as a fraction (numpy, no compiled
    kernel: the bot process uses it; the backtest's kernels.curve_stats computes the same in one
    compiled pass)."""
    arr = np.asarray(curve, dtype=np.float64)
    if arr.size == 0:
        return 0.0
    worst = float((1.0 - arr / np.maximum.accumulate(arr)).max())
    return drawdown(1.0, 1.0 - worst)


def _drawdown_pct(worst_ratio: float) -> float:
    # worst_ratio is the curve's lowest equity / running peak (kernels.curve_stats)
    return drawdown(1.0, worst_ratio) * 100.0


def max_drawdown_pct(equity: np.ndarray) -> float:
    """Largest peak-to-trough fall of a positive `equity` curve, as a positive percentage."""
    if equity.shape[0] == 0:
        return 0.0
    return _drawdown_pct(_curve_stats(equity)[3])


def _ratios(stats: tuple[float, float, float, float], count: int, interval_minutes: float
            ) -> tuple[float | None, float | None]:
    total, down, dev, _ = stats
    if count < 2:
        return None, None
    mean = total / count
    if not math.isfinite(mean):
        return None, None
    downside = math.sqrt(down / count)
    std = math.sqrt(dev / (count - 1))
    scale = math.sqrt(periods_per_year(interval_minutes))
    # Ratios over a flat curve are 0/0; tiny float noise must not turn them into huge numbers.
    sharpe = mean / std * scale if std > 1e-15 else None
    sortino = mean / downside * scale if downside > 1e-15 else None
    return finite_or_none(sharpe), finite_or_none(sortino)


def compute_metrics(*, equity: np.ndarray, pnls: Sequence[float], bars_in_position: int,
                    first_close: float, last_close: float, initial_equity: float,
                    buy_signals: int, sell_signals: int,
                    interval_minutes: float) -> dict[str, float | int | None]:
    """The metrics dict of a backtest (exactly the keys in `METRIC_KEYS`)."""
    pnl = np.asarray(pnls, dtype=np.float64)
    trades = int(pnl.shape[0])
    final = float(equity[-1]) if equity.shape[0] else float(initial_equity)
    gross_profit = float(pnl[pnl > 0].sum())
    gross_loss = float(-pnl[pnl < 0].sum())
    bars = int(equity.shape[0])
    stats = _curve_stats(equity) if bars else (0.0, 0.0, 0.0, 1.0)
    sharpe, sortino = _ratios(stats, bars - 1, interval_minutes)
    metrics: dict[str, float | int | None] = {
        "total_return_pct": finite_or_none((final / initial_equity - 1.0) * 100.0),
        "buy_hold_return_pct": finite_or_none((last_close / first_close - 1.0) * 100.0),
        "win_rate_pct": finite_or_none(float((pnl > 0).sum()) / trades * 100.0) if trades else None,
        "total_trades": trades,
        "buy_signals": int(buy_signals),
        "sell_signals": int(sell_signals),
        "max_drawdown_pct": finite_or_none(_drawdown_pct(stats[3])),
        "sharpe": sharpe,
        "sortino": sortino,
        "profit_factor": finite_or_none(gross_profit / gross_loss) if gross_loss > 0 else None,
        "expectancy": finite_or_none(float(pnl.mean())) if trades else None,
        "exposure_pct": finite_or_none(bars_in_position / bars * 100.0) if bars else None,
        "final_equity": finite_or_none(final),
    }
    return metrics
