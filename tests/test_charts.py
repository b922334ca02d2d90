"""The backtest chart a trader reads (issue 13, item 7): exits coloured and named by reason, buy & hold
beside the equity, a drawdown panel, prices without exponents, a "no trades" note, a correct date axis."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from engine import charts

HOURS = 24 * 20
T = 1_764_000_000 + np.arange(HOURS) * 3600  # 24 Nov 2025 onwards, across the month's end
PRICE = 1.2e-5 * (1 + 0.1 * np.sin(np.arange(HOURS) / 20))
TRADES = [{"entry_index": 10, "exit_index": 30, "entry_price": PRICE[10], "exit_price": PRICE[30],
           "exit_reason": "take_profit"},
          {"entry_index": 50, "exit_index": 70, "entry_price": PRICE[50], "exit_price": PRICE[70],
           "exit_reason": "stop_loss"},
          {"entry_index": 90, "exit_index": 120, "entry_price": PRICE[90], "exit_price": PRICE[120],
           "exit_reason": "signal"}]


def _axes() -> object:
    return Figure().add_subplot()


def test_the_chart_renders_with_and_without_trades() -> None:
    equity = np.linspace(1000, 1100, HOURS)
    for trades in (TRADES, []):
        png = charts.render_equity_chart(T, PRICE, equity, trades, title="PEPE 1h · 20d")
        assert png.startswith(b"\x89PNG") and len(png) > 20_000


def test_exits_are_named_by_reason_and_the_legend_sits_above_the_data() -> None:
    ax = _axes()
    charts._price_panel(ax, T.astype("datetime64[s]"), PRICE, TRADES, np.arange(HOURS))
    legend = ax.get_legend()
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels == ["price", "buy", "sell: take-profit", "sell: stop-loss", "sell: sell signal"]
    assert legend.get_bbox_to_anchor().y0 >= ax.bbox.y1 - 1  # anchored at the top edge, outside the plot


def test_a_run_without_trades_says_so() -> None:
    ax = _axes()
    charts._price_panel(ax, T.astype("datetime64[s]"), PRICE, [], np.arange(HOURS))
    assert [t.get_text() for t in ax.texts] == ["no trades in this period"]


def test_equity_has_buy_and_hold_and_a_drawdown_panel() -> None:
    fig = Figure()
    ax_eq, ax_dd = fig.add_subplot(211), fig.add_subplot(212)
    equity = np.concatenate([np.linspace(1000, 1200, HOURS // 2), np.linspace(1200, 900, HOURS - HOURS // 2)])
    charts._equity_panels(ax_eq, ax_dd, T.astype("datetime64[s]"), equity, PRICE, np.arange(HOURS))
    assert [line.get_label() for line in ax_eq.get_lines()][:2] == ["strategy", "buy & hold"]
    hold = ax_eq.get_lines()[1].get_ydata()
    assert np.isclose(hold[0], 1000) and np.isclose(hold[-1], 1000 * PRICE[-1] / PRICE[0])
    (area,) = ax_dd.collections
    lowest = min(v[1] for path in area.get_paths() for v in path.vertices)
    assert np.isclose(lowest, (900 / 1200 - 1) * 100, atol=0.5)  # the worst drawdown, in percent


def test_candles_with_volume_and_the_readers_words() -> None:
    rng = np.random.default_rng(7)
    close = PRICE * (1 + rng.normal(0, 0.01, HOURS))
    candles = {"time": T, "open": np.roll(close, 1), "high": close * 1.01, "low": close * 0.99, "close": close,
               "volume": rng.uniform(100, 200, HOURS)}
    merged = charts.merged_candles(candles)
    assert len(merged["close"]) <= charts.MAX_CANDLES_DRAWN
    assert merged["high"].max() == candles["high"].max() and merged["low"].min() == candles["low"].min()
    assert np.isclose(merged["volume"].sum(), candles["volume"].sum())  # merging keeps every bar's volume
    assert merged["open"][0] == candles["open"][0] and merged["close"][-1] == candles["close"][-1]
    fig = Figure()
    ax, ax_vol = fig.add_subplot(211), fig.add_subplot(212)
    words = charts.ChartWords(price="harga", buy="beli", sell="jual: {reason}", take_profit="ambil untung")
    charts._candle_panels(ax, ax_vol, merged, words)
    charts._markers(ax, T.astype("datetime64[s]"), TRADES, words)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[:3] == ["harga", "beli", "jual: ambil untung"]
    assert len(ax_vol.patches) == len(merged["close"]) and ax_vol.get_ylabel() == "volume"
    png = charts.render_equity_chart(T, close, np.linspace(1000, 1100, HOURS), TRADES, title="PEPE 1h",
                                     candles=candles, words=words.as_dict())
    assert png.startswith(b"\x89PNG")
