"""The trading core is the specification: the vectorised backtest and the incremental core agree
trade for trade, whole bars or bars fed piece by piece as a live path sees them."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from engine.backtest import BacktestInputError, run_backtest
from engine.bars import to_grid, validate_candles
from engine.core import CorePosition, CoreState, Costs, Fill, TradingCore, levels, stop_price, target_price
from engine.live import FormingBar, advance
from engine.signals import evaluate
from engine.strategy import parse_strategy

MIN = 60
T0 = 1_700_000_100 - 1_700_000_100 % 300


def path(draws: list[tuple[float, float, float, float]], step: int = 5 * MIN) -> dict[str, np.ndarray]:
    """Candles from (gap, move, up-wick, down-wick) draws: opens may gap away from the last close."""
    rows = []
    close = 100.0
    for gap, move, up, down in draws:
        o = close * (1 + gap)
        c = o * (1 + move)
        rows.append((o, max(o, c) * (1 + up), min(o, c) * (1 - down), c))
        close = c
    arr = np.asarray(rows)
    n = arr.shape[0]
    return {"time": T0 + step * np.arange(n, dtype=np.int64), "open": arr[:, 0], "high": arr[:, 1],
            "low": arr[:, 2], "close": arr[:, 3], "volume": np.full(n, 10.0)}


DRAW = st.tuples(st.sampled_from([0.0, 0.0, 0.0, 0.02, -0.03, -0.06, 0.07]),
                 st.floats(-0.04, 0.04), st.floats(0, 0.03), st.floats(0, 0.03))

COND = st.one_of(
    st.builds(lambda t, tf: {"type": "price_drop", "threshold": t, "timeframe": tf},
              st.sampled_from([0.5, 1, 2]), st.sampled_from(["5m", "15m"])),
    st.builds(lambda t, tf: {"type": "price_rise", "threshold": t, "timeframe": tf},
              st.sampled_from([0.5, 1, 2]), st.sampled_from(["5m", "15m"])),
)


@st.composite
def strategies(draw: st.DrawFn) -> dict[str, Any]:
    entries = draw(st.lists(COND, min_size=1, max_size=2))
    exits = [{**c, "signal": "sell"} for c in draw(st.lists(COND, max_size=1))]
    actions: list[dict[str, Any]] = [{"type": "buy", "token": "TKN", "amount_percent": 50}]
    if exits:
        actions.append({"type": "sell", "token": "TKN"})
    return {"conditions": [{"token": "TKN", **c} for c in entries + exits],
            "match": draw(st.sampled_from(["any", "all"])), "actions": actions,
            "risk_management": {"stop_loss_percent": draw(st.sampled_from([None, 1.0, 3.0])),
                                "take_profit_percent": draw(st.sampled_from([None, 1.5, 4.0]))}}


def core_trades(strat: dict[str, Any], data: dict[str, np.ndarray], costs: Costs, *,
                pieces: int = 1) -> list[tuple[int, int, str, float, float]]:
    """Run the incremental core over `data`; with pieces > 1 each bar is first seen forming."""
    s = parse_strategy(strat)
    grid = to_grid(validate_candles(data), 5 * MIN)
    sig = evaluate(s, grid, 5)
    core = TradingCore.for_strategy(s, costs)
    fills: list[Fill] = []
    n = grid["close"].shape[0]
    for i in range(n):
        t = int(grid["time"][i])
        o, h, lo = float(grid["open"][i]), float(grid["high"][i]), float(grid["low"][i])
        for k in range(1, pieces):  # the bar as seen forming: extremes grow towards the final ones
            frac = k / pieces
            fills += core.on_open(t, o)
            fills += core.on_extremes(t, o + (h - o) * frac, o - (o - lo) * frac, final=False)
        fills += core.on_bar(t, o, h, lo, bool(sig.buy[i]), bool(sig.sell[i]))
    last = core.close_out(int(grid["time"][-1]), float(grid["close"][-1]))
    if last is not None:
        fills.append(last)
    trades = []
    for entry, exit_ in zip(fills[::2], fills[1::2], strict=True):
        assert entry.side == "buy" and exit_.side == "sell"
        trades.append((entry.bar_time, exit_.bar_time, exit_.reason, entry.fill, exit_.fill))
    return trades


def backtest_trades(strat: dict[str, Any], data: dict[str, np.ndarray], costs: Costs
                    ) -> list[tuple[int, int, str, float, float]]:
    try:
        res = run_backtest(strat, data, fee_bps=costs.fee_bps, slippage_bps=costs.slippage_bps, interval_minutes=5)
    except BacktestInputError as exc:
        assert exc.code == "history_too_short"
        assume(False)
    return [(t.entry_time, t.exit_time, t.exit_reason, t.entry_price, t.exit_price) for t in res.trades]


def assert_same(a: list[tuple[Any, ...]], b: list[tuple[Any, ...]]) -> None:
    assert [x[:3] for x in a] == [x[:3] for x in b]
    for x, y in zip(a, b, strict=True):
        assert math.isclose(x[3], y[3], rel_tol=1e-12) and math.isclose(x[4], y[4], rel_tol=1e-12)


PROPS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPS
@given(draws=st.lists(DRAW, min_size=6, max_size=120), strat=strategies(),
       costs=st.sampled_from([Costs(0, 0), Costs(30, 10), Costs(100, 50)]))
def test_backtest_equals_the_incremental_core(draws: list[Any], strat: dict[str, Any], costs: Costs) -> None:
    data = path(draws)
    assert_same(backtest_trades(strat, data, costs), core_trades(strat, data, costs))


@PROPS
@given(draws=st.lists(DRAW, min_size=6, max_size=80), strat=strategies(), pieces=st.integers(2, 4))
def test_deciding_on_forming_bars_changes_nothing(draws: list[Any], strat: dict[str, Any], pieces: int) -> None:
    data = path(draws)
    costs = Costs(30, 10)
    assert_same(backtest_trades(strat, data, costs), core_trades(strat, data, costs, pieces=pieces))


# -- named cases ---------------------------------------------------------------------------------

def _core(sl: float | None = 5, tp: float | None = 10) -> TradingCore:
    return TradingCore(stop_loss_pct=sl, take_profit_pct=tp, costs=Costs(0, 0))


def test_both_levels_in_one_bar_stop_wins_and_gap_fills_at_open() -> None:
    core = _core()
    core.on_bar(0, 100, 100, 100, buy=True)
    [entry] = core.on_bar(300, 100, 100, 100)
    assert entry.side == "buy" and (entry.stop, entry.target) == pytest.approx((95, 110))
    [exit_] = core.on_bar(600, 100, 111, 94)  # both hit: stop first, at the level
    assert (exit_.reason, exit_.price) == ("stop_loss", 95)
    core.on_close(600, buy=True, sell=False)
    core.on_bar(900, 100, 100, 100)
    [gap] = core.on_bar(1200, 90, 91, 89)  # opened below the stop: fills at the open
    assert (gap.reason, gap.price) == ("stop_loss", 90)


def test_target_waits_for_the_close_when_a_stop_exists_but_not_without() -> None:
    core = _core()
    core.on_bar(0, 100, 100, 100, buy=True)
    core.on_open(300, 100)
    assert core.on_extremes(300, 111, 99, final=False) == []  # a later dip could still stop it out
    [tp] = core.on_extremes(300, 111, 99, final=True)
    assert tp.reason == "take_profit" and tp.price == pytest.approx(110)
    only_tp = _core(sl=None)
    only_tp.on_bar(0, 100, 100, 100, buy=True)
    only_tp.on_open(300, 100)
    [early] = only_tp.on_extremes(300, 112, 99, final=False)
    assert (early.reason, early.price) == ("take_profit", pytest.approx(110))


def test_sell_signal_and_stop_on_the_same_bar() -> None:
    core = _core(sl=5, tp=None)
    core.on_bar(0, 100, 100, 100, buy=True)
    core.on_bar(300, 100, 100, 100)
    # bar 600: the stop is hit intrabar AND the close fires a sell: the stop came first
    [stop] = core.on_bar(600, 100, 100, 94, sell=True)
    assert stop.reason == "stop_loss"
    assert core.state.pending is None and core.position is None
    # a sell signal alone exits at the next open
    core.on_close(600, buy=True, sell=False)
    core.on_bar(900, 100, 100, 100, sell=True)
    [sig] = core.on_bar(1200, 101, 102, 100)
    assert (sig.reason, sig.price, sig.bar_time) == ("signal", 101, 1200)


def test_regression_no_stale_reentry_after_an_intrabar_exit() -> None:
    """A buy that fired while the position was open is never acted on after the exit."""
    core = _core(sl=5, tp=None)
    core.on_bar(0, 100, 100, 100, buy=True)
    core.on_bar(300, 100, 100, 100, buy=True)  # entered; this buy fired while holding
    core.on_open(600, 100)
    [stop] = core.on_extremes(600, 100, 94, final=False)  # stopped out part-way through bar 600
    assert stop.reason == "stop_loss"
    # later polls inside the same bar: nothing to do, in particular no re-entry
    assert core.on_open(600, 100) == []
    assert core.on_extremes(600, 100, 93, final=False) == []
    assert core.on_bar(600, 100, 100, 93, buy=False) == []
    assert core.on_bar(900, 95, 96, 94) == []  # no entry at the next open either
    assert core.position is None


def test_state_round_trips_and_rejects_garbage() -> None:
    st_ = CoreState(position=CorePosition(300, 100.5, 95.0, None), pending="sell", last_close=600,
                    bar_time=600, bar_open=101.0, exit_time=None)
    assert CoreState.from_dict(st_.to_dict()) == st_
    assert CoreState.from_dict(None) == CoreState()
    for bad in ({"pending": "hold"}, {"position": {"entry_time": "x"}}, {"last_close": "soon"}):
        with pytest.raises(ValueError):
            CoreState.from_dict(bad)


def test_price_rules_and_costs() -> None:
    c = Costs(30, 10)
    assert c.buy_fill(100) == pytest.approx(100.1) and c.sell_fill(100) == pytest.approx(99.9)
    assert c.units_for(100.3, 100) == pytest.approx(1.0)
    assert c.round_trip_pct == pytest.approx(0.798, abs=0.01)
    assert levels(100, 5, None) == (95, None)
    assert stop_price(90, 95) == 90 and stop_price(100, 95) == 95
    assert target_price(120, 110) == 120 and target_price(100, 110) == 110
    for bad in (-1, 10_000, float("nan")):
        with pytest.raises(ValueError):
            Costs(bad, 0)


def test_advance_skips_seen_bars_and_uses_the_forming_open() -> None:
    from engine.market.base import Candles
    core = _core(sl=5, tp=None)
    bars = Candles(np.array([0, 300, 600]), np.full(3, 100.0), np.full(3, 100.0), np.full(3, 100.0),
                   np.full(3, 100.0), np.ones(3))
    core.state.last_close = 0
    [entry] = advance(core, bars, np.array([False, True, False]), np.zeros(3, dtype=bool))
    assert (entry.side, entry.bar_time) == ("buy", 600)  # the buy at 300's close fills at 600's open
    assert core.position is not None and core.state.pending is None
    assert advance(core, bars, np.array([False, True, True]), np.zeros(3, dtype=bool)) == []  # nothing new
    [stop] = advance(core, bars, None, None, FormingBar(900, 96, 97, 94, seconds=300))
    assert (stop.reason, stop.price, stop.bar_time) == ("stop_loss", 95, 900)


def test_a_forming_bar_after_a_missing_closed_bar_is_not_acted_on() -> None:
    """Bars 300..600 closed, 900 failed to load: the forming bar 1200 must wait, or the order
    decided at 600's close would fill at 1200's open instead of 900's."""
    from engine.market.base import Candles
    core = _core(sl=5, tp=None)
    bars = Candles(np.array([0, 300, 600]), np.full(3, 100.0), np.full(3, 100.0), np.full(3, 100.0),
                   np.full(3, 100.0), np.ones(3))
    core.state.last_close = 0
    advance(core, bars, np.array([False, False, True]), np.zeros(3, dtype=bool))
    assert core.state.pending == "buy"
    assert advance(core, Candles.empty(), None, None, FormingBar(1200, 90, 90, 90, seconds=300)) == []
    assert core.state.pending == "buy" and core.position is None
    [entry] = advance(core, Candles.empty(), None, None, FormingBar(900, 99, 99, 99, seconds=300))
    assert (entry.bar_time, entry.price) == (900, 99)
