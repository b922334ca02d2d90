"""Condition evaluation: each type on handmade arrays, explanations, and batch == per-strategy."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from bot.signal_text import explanation_text, reason_words, stored_explanation
from engine.numbers import format_price
from engine.signal_reasons import STORED_CHARS, SignalReason, decode_reasons, encode_reasons
from engine.signals import (
    compile_batch,
    evaluate,
    evaluate_latest_batch,
    evaluate_latest_compiled,
    explain_latest,
    lookback_bars,
)
from engine.strategy import TIMEFRAMES, Strategy


def candles(close: list[float], volume: list[float] | None = None, step: int = 3600) -> dict[str, np.ndarray]:
    c = np.asarray(close, dtype=float)
    v = np.asarray(volume if volume is not None else [1.0] * len(close), dtype=float)
    return {"time": np.arange(len(c)) * step + 1_700_000_000, "open": c, "high": c, "low": c,
            "close": c, "volume": v}


def strat(*conds: dict[str, Any], match: str = "any", sell: bool = False) -> Strategy:
    actions: list[dict[str, Any]] = [{"type": "buy", "token": "PEPE", "amount_percent": 50}]
    if sell:
        actions.append({"type": "sell", "token": "PEPE"})
    return Strategy.model_validate({
        "conditions": [{"token": "PEPE", **c} for c in conds], "match": match, "actions": actions})


def test_lookback_mapping() -> None:
    assert lookback_bars("1h", 60) == 1
    assert lookback_bars("1h", 15) == 4
    assert lookback_bars("4h", 60) == 4
    assert lookback_bars("1d", 5) == 288
    assert lookback_bars("5m", 60) == 1  # never below one bar
    assert lookback_bars("5m", 2) == 2  # round(2.5): Python rounds half to even
    assert lookback_bars("15m", 2) == 8  # round(7.5)
    with pytest.raises(ValueError):
        lookback_bars("1h", 0)


def test_price_drop_one_bar_lookback() -> None:
    s = strat({"type": "price_drop", "threshold": 3, "timeframe": "1h"})
    sig = evaluate(s, candles([100, 97, 97, 94.09, 95]), 60)
    assert sig.buy.tolist() == [False, True, False, True, False]  # exactly 3% counts
    assert not sig.sell.any()
    assert np.isnan(sig.conditions[0].value[0])
    assert sig.conditions[0].value[1] == pytest.approx(-0.03)


def test_price_rise_multi_bar_lookback() -> None:
    # 30-minute candles: "1h" looks back 2 bars.
    s = strat({"type": "price_rise", "threshold": 5, "timeframe": "1h"})
    sig = evaluate(s, candles([100, 104, 105, 108, 109, 100], step=1800), 30)
    # i=2: 105/100 -> +5% yes; i=3: 108/104 = +3.8% no; i=4: 109/105 = +3.8% no; i=5: no.
    assert sig.buy.tolist() == [False, False, True, False, False, False]
    assert sig.conditions[0].lookback == 2


def test_volume_spike_uses_previous_window() -> None:
    s = strat({"type": "volume_spike", "threshold": 100, "timeframe": "1h"})
    sig = evaluate(s, candles([1] * 5, [10, 10, 20, 30, 10], step=1800), 30)
    # i=2: 20 >= 2*mean(10,10); i=3: 30 >= 2*mean(10,20)=30; i=4: 10 < 2*25.
    assert sig.buy.tolist() == [False, False, True, True, False]
    assert sig.conditions[0].value[3] == pytest.approx(2.0)


def test_volume_spike_needs_positive_mean() -> None:
    s = strat({"type": "volume_spike", "threshold": 50, "timeframe": "1h"})
    sig = evaluate(s, candles([1, 1, 1], [0, 0, 5]), 60)
    assert not sig.buy.any()


def test_price_level_crossings() -> None:
    above = strat({"type": "price_level", "price": 100, "direction": "above"})
    below = strat({"type": "price_level", "price": 100, "direction": "below"})
    data = candles([99, 100, 101, 99, 102, 100])
    assert evaluate(above, data, 60).buy.tolist() == [False, True, False, False, True, False]
    assert evaluate(below, data, 60).buy.tolist() == [False, False, False, True, False, True]


def test_match_all_any_and_sell_side() -> None:
    conds = ({"type": "price_drop", "threshold": 1, "timeframe": "1h"},
             {"type": "volume_spike", "threshold": 100, "timeframe": "1h"})
    data = candles([100, 98, 98, 97, 90], [10, 30, 5, 5, 30])
    # drop per bar: -, T, F, T, T ; spike: -, T, F, F, T
    assert evaluate(strat(*conds, match="any"), data, 60).buy.tolist() == [False, True, False, True, True]
    assert evaluate(strat(*conds, match="all"), data, 60).buy.tolist() == [False, True, False, False, True]
    mixed = strat({"type": "price_level", "price": 95, "direction": "below"},
                  {"type": "price_rise", "threshold": 1, "timeframe": "1h", "signal": "sell"}, sell=True)
    sig = evaluate(mixed, candles([100, 94, 96, 97.5, 94]), 60)
    assert sig.buy.tolist() == [False, True, False, False, True]
    assert sig.sell.tolist() == [False, False, True, True, False]


def test_too_short_history_is_false() -> None:
    s = strat({"type": "price_drop", "threshold": 1, "timeframe": "1d"})
    sig = evaluate(s, candles([100, 50, 25]), 60)
    assert not sig.buy.any()


def test_explanations_are_the_fired_conditions_and_what_they_measured() -> None:
    s = strat({"type": "price_drop", "threshold": 3, "timeframe": "1h"},
              {"type": "volume_spike", "threshold": 100, "timeframe": "1h"}, match="all")
    latest = explain_latest(s, candles([100, 100, 96.9], [10, 10, 24]), 60)
    assert latest is not None and latest.buy and not latest.sell and latest.side == "buy"
    drop, spike = latest.buy_reasons
    assert (drop.condition, spike.condition) == tuple(s.conditions)
    assert drop.value == pytest.approx(3.1) and spike.value == pytest.approx(2.4)  # percent moved; × the mean
    assert drop.side == spike.side == "buy" and latest.reasons() == latest.buy_reasons
    assert latest.index == 2 and latest.close == pytest.approx(96.9)
    # ...which the bot words in the user's terms
    assert [reason_words(r) for r in latest.buy_reasons] == ["price dropped 3.1% in 1h ≥ your 3%",
                                                            "volume 2.4× the 1h average ≥ your +100%"]
    assert explanation_text(latest.reasons(), "buy") == ("price dropped 3.1% in 1h ≥ your 3%; "
                                                         "volume 2.4× the 1h average ≥ your +100%")

    level = strat({"type": "price_level", "price": 0.0012, "direction": "above"},
                  {"type": "price_rise", "threshold": 2, "timeframe": "1h", "signal": "sell"}, sell=True)
    hit = explain_latest(level, candles([0.00118, 0.00125]), 60)
    assert hit is not None and hit.buy and hit.sell
    assert [reason_words(r) for r in hit.buy_reasons] == ["price crossed above $0.0012 (your level)"]
    assert hit.buy_reasons[0].value == pytest.approx(0.00125)  # the close that crossed
    assert [reason_words(r) for r in hit.sell_reasons] == ["price rose 5.9% in 1h ≥ your 2%"]
    assert explanation_text(hit.reasons("sell"), "sell") == "price rose 5.9% in 1h ≥ your 2%"
    assert explain_latest(level, candles([0.0013, 0.00131]), 60) is None
    assert explanation_text((), "sell") == "sell signal"


def test_reasons_are_stored_as_compact_json_and_read_back_to_the_same_words() -> None:
    s = strat({"type": "price_drop", "threshold": 3, "timeframe": "1h"},
              {"type": "volume_spike", "threshold": 100, "timeframe": "1h"},
              {"type": "price_level", "price": 0.0012, "direction": "below", "timeframe": "4h"}, match="any")
    latest = explain_latest(s, candles([100, 100, 96.9], [10, 10, 24]), 60)
    assert latest is not None
    stored = encode_reasons(latest.buy_reasons)
    assert " " not in stored and json.loads(stored)[0] == {"type": "price_drop", "value": latest.buy_reasons[0].value,
                                                           "threshold": 3.0, "timeframe": "1h"}
    back = decode_reasons(stored, side="buy", token="PEPE")
    assert back is not None and [r.condition for r in back] == list(s.conditions[:2])
    assert [r.value for r in back] == [r.value for r in latest.buy_reasons]  # full precision: the same words
    words = "price dropped 3.1% in 1h ≥ your 3%; volume 2.4× the 1h average ≥ your +100%"
    assert stored_explanation(stored, "buy", "0xabc-bsc") == explanation_text(latest.buy_reasons, "buy") == words
    level = SignalReason(s.conditions[2], 0.00119)
    assert decode_reasons(encode_reasons([level]), side="buy", token="PEPE") == (level,)
    assert stored_explanation(encode_reasons([]), "sell", "PEPE") == "sell signal"


def test_reasons_stored_by_earlier_versions_show_as_they_are() -> None:
    old = "price dropped 3.1% in 1h ≥ your 3%"
    assert decode_reasons(old, side="buy", token="PEPE") is None
    assert stored_explanation(old, "buy", "PEPE") == old
    for broken in ('[{"type":"price_drop","value":3.1', '[{"type":"nope","value":1}]', '[{"type":"price_drop"}]',
                   '{"type":"price_drop"}', '[{"type":"price_drop","value":"x","threshold":3}]', "[1]"):
        assert decode_reasons(broken, side="buy", token="PEPE") is None
        assert stored_explanation(broken, "buy", "PEPE") == broken


def test_a_long_list_of_reasons_still_fits_the_stored_column() -> None:
    prices = [123456.78901234 + k for k in range(5)]
    conds = [{"type": "price_level", "price": p, "direction": "above", "timeframe": "15m"} for p in prices]
    reasons = [SignalReason(c, 1 / 3 + k) for k, c in enumerate(strat(*conds).conditions)]
    stored = encode_reasons(reasons)
    full = [{"type": "price_level", "value": r.value, "price": r.condition.price, "direction": "above",
             "timeframe": "15m"} for r in reasons]
    assert len(json.dumps(full, separators=(",", ":"))) > STORED_CHARS  # full precision would not fit
    assert len(stored) <= STORED_CHARS  # valid JSON, never cut by the column's limit
    back = decode_reasons(stored, side="buy", token="PEPE")
    assert back is not None and [r.condition.price for r in back] == [float(f"{p:.6g}") for p in prices]
    assert [r.value for r in back] == [float(f"{r.value:.6g}") for r in reasons]
    assert [reason_words(r) for r in back] == [reason_words(r) for r in reasons]  # the same words
    too_many = reasons * 3  # more than any strategy has: the last ones are dropped, never the JSON cut
    kept = decode_reasons(encode_reasons(too_many), side="buy", token="PEPE")
    assert kept is not None and 0 < len(kept) < len(too_many)


def test_format_price_has_no_exponent() -> None:
    assert format_price(0.0012) == "0.0012"
    assert format_price(1.2e-7) == "0.00000012"
    assert format_price(65000.0) == "65,000"
    assert format_price(1.23456789) == "1.23457"


# -- batch evaluation -------------------------------------------------------------------------

def random_strategy(rng: np.random.Generator) -> Strategy:
    kinds = ["price_drop", "price_rise", "volume_spike", "price_level"]
    conds: list[dict[str, Any]] = []
    for _ in range(int(rng.integers(1, 6))):
        kind = kinds[int(rng.integers(0, 4))]
        c: dict[str, Any] = {"type": kind, "timeframe": TIMEFRAMES[int(rng.integers(0, len(TIMEFRAMES)))],
                             "signal": "sell" if rng.random() < 0.3 else "buy"}
        if kind == "price_level":
            c.update(price=float(rng.uniform(90, 110)), direction="above" if rng.random() < 0.5 else "below")
        elif kind == "volume_spike":
            c["threshold"] = float(rng.choice([5, 20, 50, 100]))
        else:
            c["threshold"] = float(rng.choice([0.1, 0.3, 0.5, 1, 2]))
        conds.append(c)
    conds[0]["signal"] = "buy"
    has_sell = any(c["signal"] == "sell" for c in conds)
    return strat(*conds, match="all" if rng.random() < 0.5 else "any", sell=has_sell and rng.random() < 0.5)


def random_candles(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.004, n)))
    volume = rng.lognormal(3, 1, n) * (rng.random(n) < 0.9)  # some zero-volume bars
    return {"time": np.arange(n) * 300, "open": close, "high": close, "low": close, "close": close,
            "volume": volume}


def test_batch_equals_per_strategy_evaluation() -> None:
    rng = np.random.default_rng(7)
    strategies = [random_strategy(rng) for _ in range(300)]
    data = random_candles(rng, 400)
    for interval in (5, 15, 60):
        batch = compile_batch(strategies, interval)
        fired_any = 0
        for end in (2, 3, 13, 50, 290, 400):
            cut = {k: v[:end] for k, v in data.items()}
            buy, sell = evaluate_latest_compiled(batch, cut)
            for i, s in enumerate(strategies):
                sig = evaluate(s, cut, interval)
                assert buy[i] == sig.buy[-1], (interval, end, i)
                assert sell[i] == sig.sell[-1], (interval, end, i)
            fired_any += int(buy.sum() + sell.sum())
        assert fired_any > 0  # the comparison is not trivially all-False


def test_batch_ten_thousand_strategies() -> None:
    rng = np.random.default_rng(3)
    pool = [random_strategy(rng) for _ in range(50)]
    strategies = [pool[i % 50] for i in range(10_000)]
    data = random_candles(rng, 300)
    buy, sell = evaluate_latest_batch(strategies, data, 5)
    assert buy.shape == (10_000,) and sell.shape == (10_000,)
    assert buy.dtype == bool and sell.dtype == bool
    expected = np.array([evaluate(s, data, 5).buy[-1] for s in pool])
    assert (buy == np.tile(expected, 200)).all()


def test_batch_empty_inputs() -> None:
    buy, sell = evaluate_latest_batch([], candles([1, 2]), 60)
    assert buy.shape == (0,) and sell.shape == (0,)
    s = strat({"type": "price_drop", "threshold": 1})
    buy, sell = evaluate_latest_batch([s], candles([]), 60)
    assert buy.tolist() == [False] and sell.tolist() == [False]
