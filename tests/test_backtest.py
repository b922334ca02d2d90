"""The backtest engine: hand-computed fills and metrics, bad input, and property tests."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from bot.messages import describe
from engine.backtest import BacktestInputError, run_backtest
from engine.market.base import Candles
from engine.metrics import METRIC_KEYS, max_drawdown_pct
from engine.strategy import StrategyError

HOUR = 3600


def bars(rows: list[tuple[float, float, float, float]], volume: float = 1.0) -> dict[str, np.ndarray]:
    """Hourly candles from (open, high, low, close) rows."""
    arr = np.asarray(rows, dtype=float)
    n = arr.shape[0]
    return {"time": 1_700_000_000 + HOUR * np.arange(n), "open": arr[:, 0], "high": arr[:, 1],
            "low": arr[:, 2], "close": arr[:, 3], "volume": np.full(n, volume)}


def strategy(conds: list[dict[str, Any]], *, amount: float = 100, sl: float | None = None,
             tp: float | None = None, sell_action: bool = False) -> dict[str, Any]:
    actions: list[dict[str, Any]] = [{"type": "buy", "token": "PEPE", "amount_percent": amount}]
    if sell_action:
        actions.append({"type": "sell", "token": "PEPE"})
    return {"conditions": [{"token": "PEPE", **c} for c in conds], "match": "any", "actions": actions,
            "risk_management": {"stop_loss_percent": sl, "take_profit_percent": tp}}


CROSS_105 = {"type": "price_level", "price": 105, "direction": "above"}
HEAD = [(100, 101, 99, 100), (100, 107, 100, 106)]  # bar 1 closes above 105: signal


def run(data: dict[str, np.ndarray], strat: dict[str, Any], **kw: Any):
    kw.setdefault("fee_bps", 0)
    kw.setdefault("slippage_bps", 0)
    return run_backtest(strat, data, **kw)


def only_trade(result: Any) -> Any:
    assert len(result.trades) == 1
    return result.trades[0]


# -- hand-computed examples -------------------------------------------------------------------

def test_entry_at_next_open_and_end_close_with_fractional_size() -> None:
    data = bars([*HEAD, (106.5, 108, 106, 107), (107, 109, 107, 108)])
    res = run(data, strategy([CROSS_105]))
    t = only_trade(res)
    assert (t.entry_index, t.exit_index, t.exit_reason) == (2, 3, "end")
    assert t.entry_price == 106.5 and t.exit_price == 108
    units = 1000 / 106.5
    assert t.size == pytest.approx(units) and t.size != round(t.size)
    assert t.pnl == pytest.approx(units * 1.5)
    assert t.entry_time == data["time"][2] and t.exit_time == data["time"][3]
    assert res.equity == pytest.approx([1000, 1000, 1000 + units * 0.5, 1000 + units * 1.5])
    m = res.metrics
    assert m["final_equity"] == pytest.approx(1000 + units * 1.5)
    assert m["total_return_pct"] == pytest.approx(units * 1.5 / 10)
    assert m["buy_hold_return_pct"] == pytest.approx(8.0)
    assert m["exposure_pct"] == pytest.approx(50.0)
    assert m["win_rate_pct"] == 100.0 and m["total_trades"] == 1
    assert m["buy_signals"] == 1 and m["sell_signals"] == 0
    assert m["profit_factor"] is None  # no losing trade
    assert m["expectancy"] == pytest.approx(units * 1.5)
    assert m["sortino"] is None  # no negative bar return
    assert m["sharpe"] is not None and m["sharpe"] > 0
    assert res.signal_indices["buy"].tolist() == [1]


def test_stop_loss_first_when_both_hit_in_one_bar() -> None:
    data = bars([*HEAD, (100, 101, 99, 100), (100, 110, 94, 100)])
    res = run(data, strategy([CROSS_105], sl=5, tp=8))
    t = only_trade(res)
    assert (t.entry_index, t.exit_index, t.exit_reason) == (2, 3, "stop_loss")
    assert t.entry_price == 100 and t.exit_price == pytest.approx(95)
    assert t.pnl == pytest.approx(-50)
    assert res.metrics["profit_factor"] == 0.0
    assert res.metrics["win_rate_pct"] == 0.0
    assert res.metrics["max_drawdown_pct"] == pytest.approx(5.0)


def test_stop_loss_gap_through_fills_at_open() -> None:
    data = bars([*HEAD, (100, 101, 99, 100), (90, 96, 89, 92)])
    t = only_trade(run(data, strategy([CROSS_105], sl=5, tp=8)))
    assert (t.exit_index, t.exit_reason, t.exit_price) == (3, "stop_loss", 90)


def test_take_profit_fills_at_level_or_gap_open() -> None:
    at_level = bars([*HEAD, (100, 101, 99, 100), (100, 109, 99, 101)])
    t = only_trade(run(at_level, strategy([CROSS_105], sl=5, tp=8)))
    assert (t.exit_index, t.exit_reason) == (3, "take_profit")
    assert t.exit_price == pytest.approx(108)
    gapped = bars([*HEAD, (100, 101, 99, 100), (112, 113, 111, 112)])
    t = only_trade(run(gapped, strategy([CROSS_105], sl=5, tp=8)))
    assert (t.exit_index, t.exit_reason, t.exit_price) == (3, "take_profit", 112)


def test_stop_loss_can_hit_on_the_entry_bar() -> None:
    data = bars([*HEAD, (100, 101, 94, 96), (96, 97, 95, 96)])
    t = only_trade(run(data, strategy([CROSS_105], sl=5)))
    assert (t.entry_index, t.exit_index, t.exit_reason) == (2, 2, "stop_loss")
    assert t.exit_price == pytest.approx(95)


SELL_BELOW_95 = {"type": "price_level", "price": 95, "direction": "below", "signal": "sell"}
SELL_PATH = [*HEAD, (100, 101, 99, 100), (100, 100, 93, 94), (96, 97, 90, 91)]


def test_sell_signal_exits_at_next_open() -> None:
    res = run(bars(SELL_PATH), strategy([CROSS_105, SELL_BELOW_95], sell_action=True))
    t = only_trade(res)
    assert (t.entry_index, t.exit_index, t.exit_reason, t.exit_price) == (2, 4, "signal", 96)
    assert res.metrics["sell_signals"] == 1
    assert res.signal_indices["sell"].tolist() == [3]


def test_stop_loss_before_signal_bar_pre_empts_the_signal() -> None:
    # SL 5% (95) is touched on bar 3 (low 93), the bar whose close gives the sell signal.
    res = run(bars(SELL_PATH), strategy([CROSS_105, SELL_BELOW_95], sl=5, sell_action=True))
    t = only_trade(res)
    assert (t.exit_index, t.exit_reason) == (3, "stop_loss")
    assert t.exit_price == pytest.approx(95)


def test_signal_exit_at_open_precedes_next_bars_stop() -> None:
    # SL 8% (92) is not touched on bar 3 but would be on bar 4 (low 90); the market exit at
    # bar 4's open (96) happens first.
    res = run(bars(SELL_PATH), strategy([CROSS_105, SELL_BELOW_95], sl=8, sell_action=True))
    t = only_trade(res)
    assert (t.exit_index, t.exit_reason, t.exit_price) == (4, "signal", 96)


def test_fees_and_slippage_arithmetic() -> None:
    data = bars([*HEAD, (106.5, 108, 106, 107), (107, 109, 107, 108)])
    res = run(data, strategy([CROSS_105], amount=50), fee_bps=30, slippage_bps=10)
    t = only_trade(res)
    fill = 106.5 * 1.001
    units = 500 / (fill * 1.003)  # the 50% budget covers the fee too
    entry_fee = units * fill * 0.003
    exit_fill = 108 * 0.999
    exit_fee = units * exit_fill * 0.003
    pnl = units * (exit_fill - fill) - entry_fee - exit_fee
    assert t.entry_price == pytest.approx(fill) and t.exit_price == pytest.approx(exit_fill)
    assert t.size == pytest.approx(units)
    assert t.fees == pytest.approx(entry_fee + exit_fee)
    assert t.pnl == pytest.approx(pnl)
    assert t.return_pct == pytest.approx(pnl / 500 * 100)
    assert res.metrics["final_equity"] == pytest.approx(1000 + pnl)
    assert res.equity[2] == pytest.approx(1000 - 500 + units * 107)  # marked at close, no exit costs
    assert res.equity[-1] == pytest.approx(1000 + pnl)


def test_reentry_from_signal_on_exit_bar_and_no_pyramiding() -> None:
    drop3 = {"type": "price_drop", "threshold": 3, "timeframe": "1h"}
    data = bars([
        (100, 100, 100, 100),
        (100, 100, 96, 96),      # -4%: signal
        (96, 96, 90, 92),        # entry 96, SL 91.2 hit; close -4.2%: signal again
        (92, 93, 91.9, 93),      # re-entry at 92
        (93, 93, 89.5, 89.9),    # -3.3%: signal while holding, ignored
        (90, 91, 89.8, 90.5),    # end
    ])
    res = run(data, strategy([drop3], sl=5))
    got = [(t.entry_index, t.exit_index, t.entry_price, round(t.exit_price, 9), t.exit_reason)
           for t in res.trades]
    assert got == [(2, 2, 96, 91.2, "stop_loss"), (3, 5, 92, 90.5, "end")]
    assert res.metrics["buy_signals"] == 3
    assert res.metrics["exposure_pct"] == pytest.approx(4 / 6 * 100)


def test_signal_on_last_bar_does_not_trade() -> None:
    data = bars([(100, 101, 99, 100), (100, 101, 99, 100), (100, 107, 100, 106)])
    res = run(data, strategy([CROSS_105]))
    assert res.trades == [] and res.metrics["buy_signals"] == 1


def test_metrics_undefined_without_trades() -> None:
    data = bars([(100, 101, 99, 100)] * 10)
    res = run(data, strategy([CROSS_105]))
    m = res.metrics
    assert set(m) == set(METRIC_KEYS)
    assert m["total_trades"] == 0 and m["final_equity"] == 1000 and m["total_return_pct"] == 0
    for key in ("win_rate_pct", "profit_factor", "expectancy", "sharpe", "sortino"):
        assert m[key] is None, key
    assert m["max_drawdown_pct"] == 0 and m["exposure_pct"] == 0
    assert (res.equity == 1000).all()


def test_interval_defaults_to_median_spacing() -> None:
    # 15-minute candles: "1h" = 4 bars. A 3% drop over 4 bars fires, over 1 bar it does not.
    closes = [100, 100, 100, 100, 99.5, 99, 98.5, 97, 97, 97]
    data = bars([(c, c, c, c) for c in closes])
    data["time"] = 1_700_000_000 + 900 * np.arange(len(closes))
    res = run(data, strategy([{"type": "price_drop", "threshold": 3, "timeframe": "1h"}]))
    assert res.settings["interval_minutes"] == 15
    assert res.signal_indices["buy"].tolist() == [7]


def test_accepts_candles_object_and_json_safe_dict() -> None:
    data = bars([*HEAD, (100, 101, 99, 100), (100, 110, 94, 100), (95, 96, 94, 95)])
    res = run_backtest(strategy([CROSS_105], sl=5), Candles(**data))
    out = json.loads(json.dumps(res.to_dict()))
    assert out["metrics"]["total_trades"] == 1
    assert out["trades"][0]["exit_reason"] == "stop_loss"
    assert out["signals"] == [{"index": 1, "time": int(data["time"][1]), "side": "buy", "price": 106.0}]
    assert out["equity_curve"][0] == [int(data["time"][0]), 1000.0]
    assert len(out["equity_curve"]) == 5


def test_blocked_max_drawdown_equals_running_peak_formula() -> None:
    rng = np.random.default_rng(4)
    for trial in range(60):
        n = int(rng.integers(1, 40_000))
        drift = (0.0, 0.002, -0.001)[trial % 3]
        equity = 1000 * np.exp(np.cumsum(rng.normal(drift, 0.01, n)))
        if trial % 4 == 0:
            equity = np.repeat(equity[: n // 40 + 1], 40)[:n]  # flat stretches like cash periods
        naive = (1 - (equity / np.maximum.accumulate(equity)).min()) * 100
        assert max_drawdown_pct(equity) == pytest.approx(naive, abs=1e-9)
    assert max_drawdown_pct(np.full(50_000, 1000.0)) == 0.0


@pytest.mark.parametrize(("mutate", "words"), [
    (lambda d: d.update(close=d["close"][:-1]), "different lengths"),
    (lambda d: [d.update({k: v[:1]}) for k, v in list(d.items())], "at least 2"),
    (lambda d: d["close"].__setitem__(1, np.nan), "missing or infinite close"),
    (lambda d: d["high"].__setitem__(1, np.inf), "missing or infinite high"),
    (lambda d: d["open"].__setitem__(0, 0.0), "zero or negative open"),
    (lambda d: d["low"].__setitem__(2, -1.0), "zero or negative low"),
    (lambda d: d["volume"].__setitem__(2, -1.0), "negative volume"),
    (lambda d: d["time"].__setitem__(2, d["time"][1]), "strictly increasing"),
    (lambda d: d.pop("volume"), "no 'volume' column"),
])
def test_bad_candles_raise_plain_errors(mutate: Any, words: str) -> None:
    data = bars([*HEAD, (100, 101, 99, 100), (100, 101, 99, 100)])
    mutate(data)
    with pytest.raises(BacktestInputError) as caught:
        run_backtest(strategy([CROSS_105]), data)
    assert words in describe(caught.value)


def test_bad_settings_and_strategy() -> None:
    data = bars([*HEAD, (100, 101, 99, 100)])
    with pytest.raises(BacktestInputError) as fee:
        run_backtest(strategy([CROSS_105]), data, fee_bps=-1)
    assert describe(fee.value) == "fee_bps must be between 0 and 10000"
    with pytest.raises(BacktestInputError, match="slippage_bps"):
        run_backtest(strategy([CROSS_105]), data, slippage_bps=float("nan"))
    with pytest.raises(BacktestInputError, match="initial_equity"):
        run_backtest(strategy([CROSS_105]), data, initial_equity=0)
    with pytest.raises(StrategyError):
        run_backtest({"conditions": []}, data)
    assert issubclass(BacktestInputError, ValueError)


# -- properties over random OHLCV -------------------------------------------------------------

BAR = st.tuples(st.floats(-0.06, 0.06), st.floats(-0.03, 0.03), st.floats(0, 0.04),
                st.floats(0, 0.04), st.floats(0, 1000))


def build(rows: list[tuple[float, float, float, float, float]],
          start: float = 100.0) -> dict[str, np.ndarray]:
    """Valid candles (low <= open, close <= high) from (ret, gap, up, down, volume) draws."""
    o, h, lo, c, v = [], [], [], [], []
    prev = start
    for ret, gap, up, down, vol in rows:
        op, cl = prev * math.exp(gap), prev * math.exp(ret)
        o.append(op)
        c.append(cl)
        h.append(max(op, cl) * math.exp(up))
        lo.append(min(op, cl) * math.exp(-down))
        v.append(vol)
        prev = cl
    n = len(rows)
    return {"time": 1_700_000_000 + 300 * np.arange(n), "open": np.array(o), "high": np.array(h),
            "low": np.array(lo), "close": np.array(c), "volume": np.array(v)}


CONDITION = st.one_of(
    st.builds(lambda t, tf: {"type": "price_drop", "threshold": t, "timeframe": tf},
              st.sampled_from([0.5, 1, 2, 4]), st.sampled_from(["5m", "15m", "30m"])),
    st.builds(lambda t, tf: {"type": "price_rise", "threshold": t, "timeframe": tf},
              st.sampled_from([0.5, 1, 2, 4]), st.sampled_from(["5m", "15m"])),
    st.builds(lambda t: {"type": "volume_spike", "threshold": t, "timeframe": "15m"},
              st.sampled_from([10, 50, 100])),
    st.builds(lambda p, d: {"type": "price_level", "price": p, "direction": d},
              st.floats(90, 110), st.sampled_from(["above", "below"])),
)


@st.composite
def random_strategy(draw: st.DrawFn) -> dict[str, Any]:
    entries = draw(st.lists(CONDITION, min_size=1, max_size=2))
    exits = [{**c, "signal": "sell"} for c in draw(st.lists(CONDITION, max_size=2))]
    s = strategy(entries + exits, amount=draw(st.sampled_from([10, 50, 100])),
                 sl=draw(st.sampled_from([None, 1, 3])), tp=draw(st.sampled_from([None, 2, 5])),
                 sell_action=bool(exits))
    s["match"] = draw(st.sampled_from(["any", "all"]))
    return s


def run_or_reject(strat: dict[str, Any], data: dict[str, Any], **kw: Any) -> Any:
    """run_backtest, but a series too short for every entry condition must be refused by name."""
    try:
        return run_backtest(strat, data, **kw)
    except BacktestInputError as exc:
        assert exc.code == "backtest.history_too_short", exc
        assume(False)


PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPS
@given(rows=st.lists(BAR, min_size=2, max_size=80), strat=random_strategy(),
       fee=st.sampled_from([0, 30]), slip=st.sampled_from([0, 10]))
def test_accounting_invariants(rows: list[Any], strat: dict[str, Any], fee: int, slip: int) -> None:
    data = build(rows)
    res = run_or_reject(strat, data, fee_bps=fee, slippage_bps=slip, initial_equity=1000)
    n = len(rows)
    assert res.equity.shape == (n,)
    assert res.equity[0] == 1000
    total_pnl = sum(t.pnl for t in res.trades)
    scale = 1000 + sum(abs(t.pnl) for t in res.trades)
    assert res.metrics["final_equity"] == pytest.approx(1000 + total_pnl, abs=1e-9 * scale)
    assert res.equity[-1] == res.metrics["final_equity"]
    assert np.isfinite(res.equity).all() and (res.equity > 0).all()
    for key, value in res.metrics.items():
        assert value is None or math.isfinite(value), key
    prev_exit = 0
    slip_f = slip / 10_000
    for t in res.trades:
        assert 1 <= t.entry_index <= t.exit_index <= n - 1
        assert t.entry_index > prev_exit or prev_exit == 0
        prev_exit = t.exit_index
        assert t.entry_price == pytest.approx(data["open"][t.entry_index] * (1 + slip_f))
        raw_exit = t.exit_price / (1 - slip_f)
        assert data["low"][t.exit_index] * (1 - 1e-12) <= raw_exit <= data["high"][t.exit_index] * (1 + 1e-12)
        rm = strat["risk_management"]
        if t.exit_reason == "stop_loss":
            assert raw_exit <= t.entry_price * (1 - rm["stop_loss_percent"] / 100) + 1e-9
        if t.exit_reason == "take_profit":
            assert raw_exit >= t.entry_price * (1 + rm["take_profit_percent"] / 100) - 1e-9
        if t.exit_reason == "end":
            assert t.exit_index == n - 1
        assert t.entry_index - 1 in res.signal_indices["buy"]


@PROPS
@given(rows=st.lists(BAR, min_size=3, max_size=80), tail=st.lists(BAR, min_size=80, max_size=80),
       strat=random_strategy(), cut=st.floats(0, 1))
def test_no_look_ahead(rows: list[Any], tail: list[Any], strat: dict[str, Any], cut: float) -> None:
    n = len(rows)
    k = min(n - 2, int(cut * (n - 1)))  # bars 0..k stay, bars k+1.. change
    changed = rows[: k + 1] + tail[: n - k - 1]
    a = run_or_reject(strat, build(rows), fee_bps=30, slippage_bps=10)
    b = run_or_reject(strat, build(changed), fee_bps=30, slippage_bps=10)
    closed_a = [t for t in a.trades if t.exit_index <= k]
    closed_b = [t for t in b.trades if t.exit_index <= k]
    assert closed_a == closed_b
    assert np.array_equal(a.equity[: k + 1], b.equity[: k + 1])
    assert [i for i in a.signal_indices["buy"] if i <= k] == [i for i in b.signal_indices["buy"] if i <= k]
