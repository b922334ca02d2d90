"""Candle checks and the regular time grid: inputs that lie get a clear error, and lookbacks are
wall time on sparse candles, in the backtest as in live trading."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.messages import describe
from engine.backtest import BacktestInputError, run_backtest
from engine.bars import CandleError, grid_candles, to_grid, validate_candles
from engine.market.base import Candles
from engine.signals import evaluate
from engine.strategy import parse_strategy

H = 3600
T0 = 1_700_000_000 // H * H


def candles(closes: list[float], times: list[int] | None = None, volume: list[float] | None = None) -> dict[str, Any]:
    n = len(closes)
    c = np.asarray(closes, dtype=float)
    o = np.concatenate(([c[0]], c[:-1]))
    return {"time": np.asarray(times if times is not None else [T0 + i * H for i in range(n)], dtype=np.int64),
            "open": o, "high": np.maximum(o, c), "low": np.minimum(o, c), "close": c,
            "volume": np.asarray(volume if volume is not None else [10.0] * n)}


DIP = {"conditions": [{"type": "price_drop", "token": "T", "threshold": 3, "timeframe": "4h"}],
       "actions": [{"type": "buy", "token": "T", "amount_percent": 50}]}


@pytest.mark.parametrize(("change", "code", "words"), [
    (lambda d: d.update(time=d["time"] * 1000), "candles.milliseconds", "milliseconds"),
    (lambda d: d["high"].__setitem__(2, d["close"][2] * 0.9), "candles.high_below_body", "candle 3: its high is below"),
    (lambda d: d["low"].__setitem__(1, d["open"][1] * 1.1), "candles.low_above_body", "candle 2: its low is above"),
    (lambda d: d["time"].__setitem__(3, d["time"][2]), "candles.not_increasing", "strictly increasing"),
    (lambda d: d["time"].__setitem__(3, d["time"][1]), "candles.not_increasing", "strictly increasing"),
    (lambda d: d["close"].__setitem__(0, float("nan")), "candles.not_finite", "missing or infinite close"),
    (lambda d: d["open"].__setitem__(0, -1.0), "candles.not_positive", "zero or negative open"),
    (lambda d: d["volume"].__setitem__(0, -1.0), "candles.negative_volume", "negative volume"),
    (lambda d: d.pop("volume"), "candles.missing_column", "no 'volume' column"),
])
def test_inputs_that_lie_get_a_clear_error(change: Any, code: str, words: str) -> None:
    data = candles([100, 101, 102, 101, 100, 99])
    change(data)
    with pytest.raises(CandleError) as caught:
        validate_candles(data)
    assert caught.value.code == code and words in describe(caught.value)
    with pytest.raises(BacktestInputError) as bt:
        run_backtest(DIP, data)
    assert bt.value.code == code and words in describe(bt.value)


def test_off_grid_times_and_a_condition_longer_than_the_data() -> None:
    data = candles([100, 101, 102, 103], times=[T0, T0 + H, T0 + 2 * H + 60, T0 + 3 * H])
    with pytest.raises(BacktestInputError) as caught:
        run_backtest(DIP, data, interval_minutes=60)
    assert caught.value.code == "candles.off_grid"
    daily = {**DIP, "conditions": [{**DIP["conditions"][0], "timeframe": "1d"}]}
    with pytest.raises(BacktestInputError) as short:
        run_backtest(daily, candles([100.0] * 10))
    assert short.value.code == "backtest.history_too_short"
    assert describe(short.value) == ("the 1d condition needs more than 24 candles of 1h history and there are only 10: "
                                "use a longer period or a shorter timeframe")


def test_grid_fills_empty_intervals_flat_at_the_previous_close_with_zero_volume() -> None:
    data = validate_candles(candles([100, 95, 97], times=[T0, T0 + 3 * H, T0 + 4 * H], volume=[5, 6, 7]))
    g = to_grid(data, H)
    assert g["time"].tolist() == [T0 + i * H for i in range(5)]
    assert g["close"].tolist() == [100, 100, 100, 95, 97]
    assert g["open"].tolist() == [100, 100, 100, 100, 95]
    assert g["high"].tolist() == [100, 100, 100, 100, 97] and g["low"].tolist() == [100, 100, 100, 95, 95]
    assert g["volume"].tolist() == [5, 0, 0, 6, 7]
    ahead = to_grid(data, H, end_time=T0 + 6 * H)  # a live window reaches the last closed interval
    assert ahead["time"][-1] == T0 + 6 * H and ahead["close"][-1] == 97 and ahead["volume"][-1] == 0
    live = grid_candles(Candles.from_rows([(T0, 1, 1, 1, 1, 1), (T0 + 2 * H, 1, 2, 1, 2, 1)]), 60)
    assert live.time.tolist() == [T0, T0 + H, T0 + 2 * H]


def test_regression_sparse_lookback_is_wall_time() -> None:
    """'Dropped 3% in 4h' compares with the price 4 hours ago, however many candles are missing.

    Counting bars, the 4-bar lookback on the sparse series below would reach back 7 hours, to a
    price from before the drop that matters, and fire; on the time grid it looks back exactly 4 h.
    """
    times = [T0 + k * H for k in (0, 1, 2, 3, 7, 8, 9, 10, 11)]  # hours 4-6 had no trades
    closes = [100, 100, 100, 96, 96, 96, 96, 96, 96]
    data = candles(closes, times=times)
    s = parse_strategy(DIP)
    by_bars = evaluate(s, data, 60)  # the old, wrong reading: one candle = one interval
    assert by_bars.buy[4]  # 96 vs 100 "four candles ago" = 7 hours ago
    res = run_backtest(DIP, data, interval_minutes=60)
    fired = set(res.signal_indices["buy"].tolist())
    assert 7 not in fired  # hour 7 compares with hour 3 (96): no signal
    assert fired == {4, 5, 6}  # hours 4-6 (flat, no trades): 96 vs 100 four hours earlier, really


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 4), st.floats(90, 110)), min_size=2, max_size=40))
def test_grid_is_idempotent_and_keeps_every_real_candle(steps: list[tuple[int, float]]) -> None:
    times, t = [], T0
    for gap, _ in steps:
        times.append(t)
        t += gap * H
    data = validate_candles(candles([c for _, c in steps], times=times))
    g = to_grid(data, H)
    assert np.array_equal(to_grid(validate_candles(g), H)["close"], g["close"])
    idx = (np.asarray(times) - T0) // H
    assert np.array_equal(g["close"][idx], data["close"]) and np.array_equal(g["volume"][idx], data["volume"])
    assert (np.diff(g["time"]) == H).all()
