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


_DD_BLOCK = 1024


def _min_ratio_to_peak(equity: np.ndarray) -> float:
    """min over t of equity[t] / max(equity[:t+1]) by a running maximum (the exact, slow path)."""
    ratio = np.maximum.accumulate(equity)
    np.divide(equity, ratio, out=ratio)  # in place: large temporaries cost page faults
    return float(ratio.min())


def max_drawdown_pct(equity: np.ndarray) -> float:
    """Largest peak-to-trough fall of a positive `equity` curve, as a positive percentage.

    A running maximum is a slow sequential numpy loop, so long curves are cut into blocks:
    block minima/maxima bound each block's worst ratio to the running peak, and only blocks
    that could hold the answer get the exact running-maximum pass.
    """
    n = equity.shape[0]
    if n == 0:
        return 0.0
    blocks = n // _DD_BLOCK
    if blocks < 8:
        ratio = _min_ratio_to_peak(equity)
    else:
        body = equity[: blocks * _DD_BLOCK].reshape(blocks, _DD_BLOCK)
        bmax, bmin = body.max(axis=1), body.min(axis=1)
        if n > blocks * _DD_BLOCK:
            rest = equity[blocks * _DD_BLOCK:]
            bmax, bmin = np.append(bmax, rest.max()), np.append(bmin, rest.min())
        starts = np.arange(bmax.shape[0]) * _DD_BLOCK
        peak_before = np.empty_like(bmax)
        peak_before[0] = 0.0  # nothing precedes block 0
        peak_before[1:] = np.maximum.accumulate(bmax)[:-1]
        # Within block b the running peak lies in [peak_before, max(peak_before, bmax)], so its
        # worst ratio lies in [lower, upper]; block 0 gives no upper bound.
        upper = bmin[1:] / peak_before[1:]
        lower = bmin / np.maximum(peak_before, bmax)
        best = float(upper.min())
        candidates = np.flatnonzero(lower < best)
        if candidates.shape[0] * 4 > bmax.shape[0]:
            ratio = _min_ratio_to_peak(equity)
        else:
            ratio = best
            for b in candidates.tolist():
                seg = equity[starts[b]: starts[b] + _DD_BLOCK]
                prior = 0.0 if b == 0 else float(peak_before[b])
                peak = np.maximum.accumulate(seg)
                np.maximum(peak, prior, out=peak)
                ratio = min(ratio, float((seg / peak).min()))
    return max(0.0, (1.0 - ratio) * 100.0) if math.isfinite(ratio) else 0.0


def sharpe_sortino(equity: np.ndarray, interval_minutes: float) -> tuple[float | None, float | None]:
    """Annualised Sharpe and Sortino ratios of per-bar returns (risk-free 0)."""
    count = equity.shape[0] - 1
    if count < 2:
        return None, None
    with np.errstate(invalid="ignore", divide="ignore"):
        returns = np.divide(equity[1:], equity[:-1])
    returns -= 1.0
    mean = float(returns.sum()) / count
    if not math.isfinite(mean):
        return None, None
    # In-place passes over one scratch buffer (large temporaries cost page faults), and no
    # BLAS dot: its thread pool makes a 1M-element dot slow and erratic on a busy machine.
    scratch = np.minimum(returns, 0.0)
    np.square(scratch, out=scratch)
    downside = math.sqrt(float(scratch.sum()) / count)
    np.subtract(returns, mean, out=scratch)
    np.square(scratch, out=scratch)
    std = math.sqrt(float(scratch.sum()) / (count - 1))
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
    sharpe, sortino = sharpe_sortino(equity, interval_minutes)
    bars = int(equity.shape[0])
    metrics: dict[str, float | int | None] = {
        "total_return_pct": finite_or_none((final / initial_equity - 1.0) * 100.0),
        "buy_hold_return_pct": finite_or_none((last_close / first_close - 1.0) * 100.0),
        "win_rate_pct": finite_or_none(float((pnl > 0).sum()) / trades * 100.0) if trades else None,
        "total_trades": trades,
        "buy_signals": int(buy_signals),
        "sell_signals": int(sell_signals),
        "max_drawdown_pct": finite_or_none(max_drawdown_pct(equity)),
        "sharpe": sharpe,
        "sortino": sortino,
        "profit_factor": finite_or_none(gross_profit / gross_loss) if gross_loss > 0 else None,
        "expectancy": finite_or_none(float(pnl.mean())) if trades else None,
        "exposure_pct": finite_or_none(bars_in_position / bars * 100.0) if bars else None,
        "final_equity": finite_or_none(final),
    }
    return metrics
