"""Backtest charts rendered headless (matplotlib's Agg canvas) to PNG bytes.

No pyplot: a `Figure` with an explicit `FigureCanvasAgg` keeps no global state, needs no display
and is safe to call from worker processes and threads.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from engine.numbers import format_price

_MAX_POINTS = 3000
_ENTRY_COLOR = "#1a9850"
_EXIT_COLOR = "#d73027"


def _thin(n: int, max_points: int = _MAX_POINTS) -> np.ndarray:
    """Indices that keep at most ~`max_points` evenly spaced points, the last one included."""
    step = max(1, -(-n // max_points))
    idx = np.arange(0, n, step)
    if n and idx[-1] != n - 1:
        idx = np.append(idx, n - 1)
    return idx


def _field(trade: Any, name: str) -> Any:
    return trade[name] if isinstance(trade, Mapping) else getattr(trade, name)


def render_equity_chart(time: Sequence[float] | np.ndarray, close: Sequence[float] | np.ndarray,
                        equity: Sequence[float] | np.ndarray, trades: Sequence[Any], *,
                        title: str, width_px: int = 1000, height_px: int = 700) -> bytes:
    """PNG of the price with entry (▲ green) / exit (▼ red) markers above the equity curve.

    `time` is unix seconds per candle; `trades` are `engine.backtest.Trade` objects or their
    dicts (entry_index, exit_index, entry_price, exit_price). Long series are thinned for
    drawing; markers stay at their exact bars.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    t = np.asarray(time, dtype=np.int64).astype("datetime64[s]")
    px = np.asarray(close, dtype=np.float64)
    eq = np.asarray(equity, dtype=np.float64)
    dpi = 100
    fig = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(2, 1, height_ratios=(3, 2), hspace=0.08)
    ax_price = fig.add_subplot(grid[0])
    ax_eq = fig.add_subplot(grid[1], sharex=ax_price)

    keep = _thin(t.shape[0])
    ax_price.plot(t[keep], px[keep], color="#3a4f7a", linewidth=1.1, label="price")
    if trades:
        entry_i = np.array([int(_field(tr, "entry_index")) for tr in trades])
        exit_i = np.array([int(_field(tr, "exit_index")) for tr in trades])
        size = 70 if len(trades) <= 60 else 25 if len(trades) <= 400 else 8
        ax_price.scatter(t[entry_i], [float(_field(tr, "entry_price")) for tr in trades], marker="^",
                         s=size, color=_ENTRY_COLOR, edgecolors="black", linewidths=0.4,
                         zorder=3, label="buy")
        ax_price.scatter(t[exit_i], [float(_field(tr, "exit_price")) for tr in trades], marker="v",
                         s=size, color=_EXIT_COLOR, edgecolors="black", linewidths=0.4,
                         zorder=3, label="sell")
    ax_price.set_title(title, fontsize=15, loc="left")
    ax_price.set_ylabel("price", fontsize=12)
    # the one price rule on the axis too: 0.0000114, never "1e-5" with an offset above the axis
    ax_price.yaxis.set_major_formatter(FuncFormatter(lambda value, _pos: format_price(value)))
    ax_price.legend(loc="upper left", fontsize=11, frameon=False)
    ax_price.tick_params(labelbottom=False, labelsize=11)

    if eq.shape[0]:
        ax_eq.plot(t[keep], eq[keep], color="#2c7bb6", linewidth=1.3)
        ax_eq.axhline(eq[0], color="grey", linewidth=0.8, linestyle="--")
        ax_eq.fill_between(t[keep], eq[keep], eq[0], where=eq[keep] >= eq[0], color=_ENTRY_COLOR,
                           alpha=0.15, interpolate=True)
        ax_eq.fill_between(t[keep], eq[keep], eq[0], where=eq[keep] < eq[0], color=_EXIT_COLOR,
                           alpha=0.15, interpolate=True)
    ax_eq.set_ylabel("equity", fontsize=12)
    ax_eq.tick_params(labelsize=11)
    locator = AutoDateLocator()
    ax_eq.xaxis.set_major_locator(locator)
    ax_eq.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    for ax in (ax_price, ax_eq):
        ax.grid(True, alpha=0.25)
        ax.margins(x=0.01)
    fig.subplots_adjust(left=0.09, right=0.98, top=0.93, bottom=0.08)

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()
