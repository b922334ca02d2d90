"""Backtest charts rendered headless (matplotlib's Agg canvas) to PNG bytes.

No pyplot: a `Figure` with an explicit `FigureCanvasAgg` keeps no global state, needs no display
and is safe to call from worker processes and threads. The words on the chart (legend, axis
names, the "no trades" note) come from the caller in the user's language (`ChartWords`); the
English defaults are for tools and tests.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from engine.numbers import format_price

_MAX_POINTS = 3000
MAX_CANDLES_DRAWN = 120  # more bars are merged into this many candles: thinner ones cannot be read
_ENTRY_COLOR = "#2c7bb6"
_UP, _DOWN = "#26a69a", "#ef5350"


@dataclass(frozen=True)
class ChartWords:
    """The words drawn on a chart (plain data: it travels to the worker process with the job)."""

    price: str = "price"
    buy: str = "buy"
    sell: str = "sell: {reason}"
    take_profit: str = "take-profit"
    stop_loss: str = "stop-loss"
    signal: str = "sell signal"
    exit: str = "exit"
    no_trades: str = "no trades in this period"
    volume: str = "volume"
    equity: str = "equity"
    strategy: str = "strategy"
    buy_hold: str = "buy & hold"
    drawdown: str = "drawdown %"
    # The title, filled by the backtest service: bot ("name · " or ""), symbol, timeframe, days,
    # capital, fee and slippage (percent per fill); `demo` is added for demo data.
    title: str = "{bot}{symbol} {timeframe} · {days}d · {capital} USDC · fee {fee}% + slippage {slippage}% per fill"
    demo: str = " (demo data)"

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def _thin(n: int, max_points: int = _MAX_POINTS) -> np.ndarray:
    """Indices that keep at most ~`max_points` evenly spaced points, the last one included."""
    step = max(1, -(-n // max_points))
    idx = np.arange(0, n, step)
    if n and idx[-1] != n - 1:
        idx = np.append(idx, n - 1)
    return idx


def _field(trade: Any, name: str) -> Any:
    return trade[name] if isinstance(trade, Mapping) else getattr(trade, name)


# Exits coloured by why they happened; entries are always blue.
_EXIT_COLORS = {"take_profit": "#1a9850", "stop_loss": "#d73027", "signal": "#f28e2b"}
_OTHER_EXIT = "#7f7f7f"


def merged_candles(candles: Mapping[str, np.ndarray], most: int = MAX_CANDLES_DRAWN) -> dict[str, np.ndarray]:
    """The bars merged into at most `most` candles (open of the first, high/low of all, close of the
    last, volume summed), so a month of hourly bars still reads as candles."""
    n = len(candles["close"])
    size = max(1, -(-n // most))
    starts = np.arange(0, n, size)
    out = {
        "time": np.asarray(candles["time"])[starts],
        "open": np.asarray(candles["open"], dtype=np.float64)[starts],
        "high": np.maximum.reduceat(np.asarray(candles["high"], dtype=np.float64), starts),
        "low": np.minimum.reduceat(np.asarray(candles["low"], dtype=np.float64), starts),
        "close": np.asarray(candles["close"], dtype=np.float64)[np.minimum(starts + size, n) - 1],
        "volume": np.add.reduceat(np.asarray(candles["volume"], dtype=np.float64), starts),
    }
    out["span"] = np.full(starts.shape, size)
    return out


def render_equity_chart(time: Sequence[float] | np.ndarray, close: Sequence[float] | np.ndarray,
                        equity: Sequence[float] | np.ndarray, trades: Sequence[Any], *,
                        title: str, candles: Mapping[str, np.ndarray] | None = None,
                        words: Mapping[str, str] | None = None, width_px: int = 1000, height_px: int = 900) -> bytes:
    """PNG: candles (or the close line without OHLC data) with entries (▲) and exits (▼, coloured by
    reason), volume, the equity curve against buy & hold, and the drawdown below it.

    `time` is unix seconds per candle; `trades` are `engine.backtest.Trade` objects or their
    dicts (entry_index, exit_index, entry_price, exit_price, exit_reason). Long series are
    thinned (candles merged) for drawing; markers stay at their exact bars and prices. Legends
    sit above their panels, never over the data; a run without trades says so on the chart.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    w = ChartWords(**{k: v for k, v in (words or {}).items() if k in ChartWords.__dataclass_fields__})
    t = np.asarray(time, dtype=np.int64).astype("datetime64[s]")
    px = np.asarray(close, dtype=np.float64)
    eq = np.asarray(equity, dtype=np.float64)
    dpi = 100
    fig = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    ohlc = candles is not None and len(candles.get("close", ())) == t.shape[0] and t.shape[0] > 0
    grid = fig.add_gridspec(4, 1, height_ratios=(3, 0.8, 2, 1), hspace=0.3)
    ax_price = fig.add_subplot(grid[0])
    ax_vol = fig.add_subplot(grid[1], sharex=ax_price)
    ax_eq = fig.add_subplot(grid[2], sharex=ax_price)
    ax_dd = fig.add_subplot(grid[3], sharex=ax_price)
    keep = _thin(t.shape[0])

    if ohlc:
        assert candles is not None
        _candle_panels(ax_price, ax_vol, merged_candles(candles), w)
    else:
        ax_price.plot(t[keep], px[keep], color="#3a4f7a", linewidth=1.1, label=w.price)
        ax_vol.set_visible(False)
    _markers(ax_price, t, trades, w)
    lines = textwrap.wrap(title, width=max(40, width_px // 11)) or [""]  # a long title wraps, never runs off
    fig.suptitle("\n".join(lines[:2]), fontsize=13, x=0.09, ha="left")
    # the one price rule on the axis too: 0.0000114, never "1e-5" with an offset above the axis
    ax_price.yaxis.set_major_formatter(FuncFormatter(lambda value, _pos: format_price(value)))
    _equity_panels(ax_eq, ax_dd, t, eq, px, keep, w)
    locator = AutoDateLocator()
    ax_dd.xaxis.set_major_locator(locator)
    # every day label names its month ("25 Nov"), and the offset only the year: a concise offset
    # like "2025-Dec" under November days reads as the wrong month
    ax_dd.xaxis.set_major_formatter(ConciseDateFormatter(
        locator, formats=["%Y", "%b", "%d %b", "%H:%M", "%H:%M", "%S.%f"],
        zero_formats=["", "%b %Y", "%d %b", "%d %b", "%H:%M", "%H:%M"],
        offset_formats=["", "%Y", "%Y", "%d %b %Y", "%d %b %Y", "%d %b %Y %H:%M"]))
    for ax in (ax_price, ax_vol, ax_eq, ax_dd):
        ax.grid(True, alpha=0.25)
        ax.margins(x=0.01)
    fig.subplots_adjust(left=0.11, right=0.98, top=0.92 if len(lines) == 1 else 0.885, bottom=0.05)

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _candle_panels(ax: Any, ax_vol: Any, c: Mapping[str, np.ndarray], w: ChartWords) -> None:
    """Candles (body open→close, wick low→high; green up, red down) and the volume bars below."""
    x = np.asarray(c["time"], dtype=np.int64)
    step = float(np.median(np.diff(x))) if x.shape[0] > 1 else 3600.0
    centre = (x + step / 2).astype("datetime64[s]")  # a merged candle sits over the bars it covers
    width = step / 86_400 * 0.7  # matplotlib's date unit is the day
    up = c["close"] >= c["open"]
    colors = np.where(up, _UP, _DOWN)
    ax.vlines(centre, c["low"], c["high"], colors=colors, linewidth=0.8, zorder=1)
    body = np.abs(c["close"] - c["open"])
    floor = float(np.nanmax(c["high"]) - np.nanmin(c["low"])) * 0.002  # a doji still shows a line
    ax.bar(centre, np.maximum(body, floor), width=width, bottom=np.minimum(c["open"], c["close"]), color=colors,
           edgecolor=colors, linewidth=0.5, zorder=2, label=w.price)
    ax_vol.bar(centre, c["volume"], width=width, color=colors, alpha=0.6, linewidth=0)
    ax_vol.set_ylabel(w.volume, fontsize=10)
    ax_vol.tick_params(labelbottom=False, labelsize=9)
    ax_vol.yaxis.set_major_formatter(_compact_formatter())


def _compact_formatter() -> Any:
    from matplotlib.ticker import FuncFormatter

    def compact(value: float, _pos: int) -> str:
        for size, unit in ((10.0**9, "B"), (10.0**6, "M"), (10.0**3, "k")):
            if abs(value) >= size:
                return f"{value / size:g}{unit}"
        return f"{value:g}"

    return FuncFormatter(compact)


def _markers(ax: Any, t: np.ndarray, trades: Sequence[Any], w: ChartWords) -> None:
    """Entries and exits at their exact bars and prices; the legend above the panel."""
    size = 70 if len(trades) <= 60 else 25 if len(trades) <= 400 else 8
    if trades:
        entry_i = np.array([int(_field(tr, "entry_index")) for tr in trades])
        ax.scatter(t[entry_i], [float(_field(tr, "entry_price")) for tr in trades], marker="^", s=size,
                   color=_ENTRY_COLOR, edgecolors="black", linewidths=0.4, zorder=3, label=w.buy)
        reasons = [str(_field(tr, "exit_reason")) if _has(tr, "exit_reason") else "" for tr in trades]
        names = {"take_profit": w.take_profit, "stop_loss": w.stop_loss, "signal": w.signal}
        for reason in dict.fromkeys(reasons):
            chosen = [tr for tr, r in zip(trades, reasons, strict=True) if r == reason]
            ax.scatter(t[np.array([int(_field(tr, "exit_index")) for tr in chosen])],
                       [float(_field(tr, "exit_price")) for tr in chosen], marker="v", s=size,
                       color=_EXIT_COLORS.get(reason, _OTHER_EXIT), edgecolors="black", linewidths=0.4, zorder=3,
                       label=w.sell.format(reason=names.get(reason, w.exit)))
    else:
        ax.text(0.5, 0.5, w.no_trades, transform=ax.transAxes, ha="center", va="center",
                fontsize=14, color="#555555", bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"})
    ax.set_ylabel(w.price, fontsize=12)
    handles, labels = ax.get_legend_handles_labels()
    order = sorted(range(len(labels)), key=lambda i: labels[i] != w.price)  # the price first (candles are drawn last)
    ax.legend([handles[i] for i in order], [labels[i] for i in order], loc="lower left", bbox_to_anchor=(0.0, 1.0),
              ncol=5, fontsize=10, frameon=False)
    ax.tick_params(labelbottom=False, labelsize=11)


def _price_panel(ax: Any, t: np.ndarray, px: np.ndarray, trades: Sequence[Any], keep: np.ndarray,
                 words: ChartWords | None = None) -> None:
    """The close line with the trade markers (the chart without OHLC data)."""
    w = words or ChartWords()
    ax.plot(t[keep], px[keep], color="#3a4f7a", linewidth=1.1, label=w.price)
    _markers(ax, t, trades, w)


def _equity_panels(ax_eq: Any, ax_dd: Any, t: np.ndarray, eq: np.ndarray, px: np.ndarray, keep: np.ndarray,
                   words: ChartWords | None = None) -> None:
    w = words or ChartWords()
    if eq.shape[0]:
        ax_eq.plot(t[keep], eq[keep], color="#2c7bb6", linewidth=1.3, label=w.strategy)
        if px.shape[0] and px[0] > 0:
            hold = eq[0] * px / px[0]  # the same capital bought at the first close and held
            ax_eq.plot(t[keep], hold[keep], color="#999999", linewidth=1.0, linestyle="--", label=w.buy_hold)
        ax_eq.axhline(eq[0], color="grey", linewidth=0.6, linestyle=":")
        peak = np.maximum.accumulate(eq)
        dd = np.where(peak > 0, (eq / peak - 1.0) * 100.0, 0.0)
        ax_dd.fill_between(t[keep], dd[keep], 0.0, color="#d73027", alpha=0.35, linewidth=0)
    ax_eq.set_ylabel(w.equity, fontsize=12)
    ax_eq.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=2, fontsize=10, frameon=False)
    ax_eq.tick_params(labelbottom=False, labelsize=11)
    ax_dd.set_ylabel(w.drawdown, fontsize=11)
    ax_dd.tick_params(labelsize=10)


def _has(trade: Any, name: str) -> bool:
    return name in trade if isinstance(trade, Mapping) else hasattr(trade, name)
