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
_ENTRY_COLOR = "#2c7bb6"
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


# Exits coloured by why they happened; entries are always green.
_EXIT_COLORS = {"take_profit": "#1a9850", "stop_loss": "#d73027", "signal": "#f28e2b"}
_EXIT_LABELS = {"take_profit": "take-profit", "stop_loss": "stop-loss", "signal": "sell signal"}
_OTHER_EXIT = "#7f7f7f"


def render_equity_chart(time: Sequence[float] | np.ndarray, close: Sequence[float] | np.ndarray,
                        equity: Sequence[float] | np.ndarray, trades: Sequence[Any], *,
                        title: str, width_px: int = 1000, height_px: int = 800) -> bytes:
    """PNG: the price with entries (▲) and exits (▼, coloured by reason), the equity curve against
    buy & hold, and the drawdown below it.

    `time` is unix seconds per candle; `trades` are `engine.backtest.Trade` objects or their
    dicts (entry_index, exit_index, entry_price, exit_price, exit_reason). Long series are
    thinned for drawing; markers stay at their exact bars. Legends sit above their panels, never
    over the data; a run without trades says so on the chart.
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
    grid = fig.add_gridspec(3, 1, height_ratios=(3, 2, 1), hspace=0.28)
    ax_price = fig.add_subplot(grid[0])
    ax_eq = fig.add_subplot(grid[1], sharex=ax_price)
    ax_dd = fig.add_subplot(grid[2], sharex=ax_price)
    keep = _thin(t.shape[0])

    _price_panel(ax_price, t, px, trades, keep)
    fig.suptitle(title, fontsize=15, x=0.09, ha="left")
    # the one price rule on the axis too: 0.0000114, never "1e-5" with an offset above the axis
    ax_price.yaxis.set_major_formatter(FuncFormatter(lambda value, _pos: format_price(value)))
    _equity_panels(ax_eq, ax_dd, t, eq, px, keep)
    locator = AutoDateLocator()
    ax_dd.xaxis.set_major_locator(locator)
    # every day label names its month ("25 Nov"), and the offset only the year: a concise offset
    # like "2025-Dec" under November days reads as the wrong month
    ax_dd.xaxis.set_major_formatter(ConciseDateFormatter(
        locator, formats=["%Y", "%b", "%d %b", "%H:%M", "%H:%M", "%S.%f"],
        zero_formats=["", "%b %Y", "%d %b", "%d %b", "%H:%M", "%H:%M"],
        offset_formats=["", "%Y", "%Y", "%d %b %Y", "%d %b %Y", "%d %b %Y %H:%M"]))
    for ax in (ax_price, ax_eq, ax_dd):
        ax.grid(True, alpha=0.25)
        ax.margins(x=0.01)
    fig.subplots_adjust(left=0.11, right=0.98, top=0.91, bottom=0.06)

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _price_panel(ax: Any, t: np.ndarray, px: np.ndarray, trades: Sequence[Any], keep: np.ndarray) -> None:
    ax.plot(t[keep], px[keep], color="#3a4f7a", linewidth=1.1, label="price")
    size = 70 if len(trades) <= 60 else 25 if len(trades) <= 400 else 8
    if trades:
        entry_i = np.array([int(_field(tr, "entry_index")) for tr in trades])
        ax.scatter(t[entry_i], [float(_field(tr, "entry_price")) for tr in trades], marker="^", s=size,
                   color=_ENTRY_COLOR, edgecolors="black", linewidths=0.4, zorder=3, label="buy")
        reasons = [str(_field(tr, "exit_reason")) if _has(tr, "exit_reason") else "" for tr in trades]
        for reason in dict.fromkeys(reasons):
            chosen = [tr for tr, r in zip(trades, reasons, strict=True) if r == reason]
            ax.scatter(t[np.array([int(_field(tr, "exit_index")) for tr in chosen])],
                       [float(_field(tr, "exit_price")) for tr in chosen], marker="v", s=size,
                       color=_EXIT_COLORS.get(reason, _OTHER_EXIT), edgecolors="black", linewidths=0.4, zorder=3,
                       label=f"sell: {_EXIT_LABELS.get(reason, reason.replace('_', ' ') or 'exit')}")
    else:
        ax.text(0.5, 0.5, "no trades in this period", transform=ax.transAxes, ha="center", va="center",
                fontsize=14, color="#555555", bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"})
    ax.set_ylabel("price", fontsize=12)
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=5, fontsize=10, frameon=False)
    ax.tick_params(labelbottom=False, labelsize=11)


def _equity_panels(ax_eq: Any, ax_dd: Any, t: np.ndarray, eq: np.ndarray, px: np.ndarray, keep: np.ndarray) -> None:
    if eq.shape[0]:
        ax_eq.plot(t[keep], eq[keep], color="#2c7bb6", linewidth=1.3, label="strategy")
        if px.shape[0] and px[0] > 0:
            hold = eq[0] * px / px[0]  # the same capital bought at the first close and held
            ax_eq.plot(t[keep], hold[keep], color="#999999", linewidth=1.0, linestyle="--", label="buy & hold")
        ax_eq.axhline(eq[0], color="grey", linewidth=0.6, linestyle=":")
        peak = np.maximum.accumulate(eq)
        dd = np.where(peak > 0, (eq / peak - 1.0) * 100.0, 0.0)
        ax_dd.fill_between(t[keep], dd[keep], 0.0, color="#d73027", alpha=0.35, linewidth=0)
    ax_eq.set_ylabel("equity", fontsize=12)
    ax_eq.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=2, fontsize=10, frameon=False)
    ax_eq.tick_params(labelbottom=False, labelsize=11)
    ax_dd.set_ylabel("drawdown %", fontsize=11)
    ax_dd.tick_params(labelsize=10)


def _has(trade: Any, name: str) -> bool:
    return name in trade if isinstance(trade, Mapping) else hasattr(trade, name)
