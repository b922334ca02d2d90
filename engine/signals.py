"""Strategy conditions evaluated on candle closes: the one implementation shared by the
backtest, simulate and the autonomous agent loop, so all three agree bar for bar.

Definitions (``n`` = the condition's lookback in bars, see `lookback_bars`):

* ``price_drop``: ``close[i] / close[i-n] - 1 <= -threshold/100``.
* ``price_rise``: ``close[i] / close[i-n] - 1 >= +threshold/100``.
* ``volume_spike``: ``volume[i] >= (1 + threshold/100) * mean(volume[i-n:i])`` (the previous
  ``n`` bars, not including bar ``i``; the mean must be positive).
* ``price_level`` ``above``: ``close[i-1] < price <= close[i]``; ``below``:
  ``close[i-1] > price >= close[i]``.

Bars without enough history are False. Entry (``signal: buy``) conditions combine with the
strategy's ``match`` (any / all), and so do exit (``signal: sell``) conditions; a side with no
conditions never fires. Percent comparisons allow 1e-12 of float slack so that a move of exactly
the threshold (100 -> 97 for "3%") fires as the user expects.

Why a bar fired is data, not words: `explain_bar` returns the fired conditions with the values
they measured (`engine.signal_reasons`); the bot words them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from engine.signal_reasons import SignalReason, measured
from engine.strategy import MAX_CONDITIONS, TIMEFRAME_MINUTES, Strategy, parse_strategy

_EPS = 1e-12

# Condition kinds as small integers so thousands of strategies fit in (S, 5) matrices.
_NONE, _DROP, _RISE, _VOLUME, _ABOVE, _BELOW = 0, 1, 2, 3, 4, 5


def lookback_bars(timeframe: str, interval_minutes: float) -> int:
    """How many candles of `interval_minutes` a condition's `timeframe` spans (at least 1)."""
    if not interval_minutes or not np.isfinite(interval_minutes) or interval_minutes <= 0:
        raise ValueError("the candle interval must be a positive number of minutes")
    return max(1, round(TIMEFRAME_MINUTES[timeframe] / interval_minutes))


def _compile_condition(cond: Any, interval_minutes: float) -> tuple[int, int, float]:
    """(kind, lookback, parameter) of one condition; the parameter is what bars compare to."""
    lookback = lookback_bars(cond.timeframe, interval_minutes)
    if cond.type == "price_drop":
        return _DROP, lookback, cond.threshold / 100.0
    if cond.type == "price_rise":
        return _RISE, lookback, cond.threshold / 100.0
    if cond.type == "volume_spike":
        return _VOLUME, lookback, 1.0 + cond.threshold / 100.0
    return (_ABOVE if cond.direction == "above" else _BELOW), 1, float(cond.price)


# -- features (each computed once per (kind, lookback) and shared) ------------------------------

def _pct_change(close: np.ndarray, n: int) -> np.ndarray:
    """close[i]/close[i-n] - 1, NaN where there is no bar i-n."""
    out = np.full(close.shape[0], np.nan)
    if n < close.shape[0]:
        tail = out[n:]
        np.divide(close[n:], close[:-n], out=tail)  # in place: no large temporaries
        tail -= 1.0
    return out


def _volume_csum(volume: np.ndarray) -> np.ndarray:
    """Prefix sums with a leading 0: mean(volume[i-n:i]) = (csum[i] - csum[i-n]) / n."""
    return np.concatenate(([0.0], np.cumsum(volume, dtype=np.float64)))


def _prev_mean(csum: np.ndarray, n: int) -> np.ndarray:
    """Mean volume of the `n` bars before each bar, NaN without `n` bars of history."""
    size = csum.shape[0] - 1
    out = np.full(size, np.nan)
    if n < size:
        out[n:] = (csum[n:size] - csum[: size - n]) / n
    return out


class _Features:
    """Lazily computed, cached feature arrays over one candle series."""

    def __init__(self, close: np.ndarray, volume: np.ndarray) -> None:
        self.close = close
        self.volume = volume
        self._pct: dict[int, np.ndarray] = {}
        self._mean: dict[int, np.ndarray] = {}
        self._csum: np.ndarray | None = None
        self._prev_close: np.ndarray | None = None

    def pct(self, n: int) -> np.ndarray:
        if n not in self._pct:
            self._pct[n] = _pct_change(self.close, n)
        return self._pct[n]

    def mean_volume(self, n: int) -> np.ndarray:
        if n not in self._mean:
            if self._csum is None:
                self._csum = _volume_csum(self.volume)
            self._mean[n] = _prev_mean(self._csum, n)
        return self._mean[n]

    def prev_close(self) -> np.ndarray:
        if self._prev_close is None:
            self._prev_close = np.concatenate(([np.nan], self.close[:-1]))
        return self._prev_close


def _fire(kind: int, param: float, n: int, feats: _Features) -> tuple[np.ndarray, np.ndarray]:
    """(fired, observed value) arrays of one compiled condition over the whole series."""
    with np.errstate(invalid="ignore", divide="ignore"):
        if kind in (_DROP, _RISE):
            pct = feats.pct(n)
            fired = pct <= -param + _EPS if kind == _DROP else pct >= param - _EPS
            return fired, pct
        if kind == _VOLUME:
            mean = feats.mean_volume(n)
            fired = (mean > 0) & (feats.volume >= param * mean)
            ratio = np.where(mean > 0, feats.volume / mean, np.nan)
            return fired, ratio
        prev = feats.prev_close()
        close = feats.close
        fired = (prev < param) & (param <= close) if kind == _ABOVE else (prev > param) & (param >= close)
        return fired, close


def _combine(parts: list[np.ndarray], match: str, size: int) -> np.ndarray:
    if not parts:
        return np.zeros(size, dtype=bool)
    if len(parts) == 1:
        return parts[0]
    if match == "all":
        return np.logical_and.reduce(parts)
    return np.logical_or.reduce(parts)


# -- whole-series evaluation -------------------------------------------------------------------

@dataclass(frozen=True)
class ConditionSeries:
    """One condition over a series: `fired` per bar and the `value` it compared.

    `value` is the fractional price change (drop/rise), the volume ÷ previous-window mean
    (volume_spike) or the close (price_level); NaN where undefined.
    """

    condition: Any
    lookback: int
    fired: np.ndarray
    value: np.ndarray


@dataclass(frozen=True)
class SignalArrays:
    """Per-bar entry (`buy`) and exit (`sell`) signals plus each condition's series."""

    buy: np.ndarray
    sell: np.ndarray
    conditions: tuple[ConditionSeries, ...]


def _arrays(candles: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    close = np.ascontiguousarray(candles["close"], dtype=np.float64)
    volume = np.ascontiguousarray(candles["volume"], dtype=np.float64)
    if close.shape != volume.shape or close.ndim != 1:
        raise ValueError("close and volume must be 1-D arrays of the same length")
    return close, volume


def evaluate(strategy: Strategy | dict[str, Any], candles: Mapping[str, np.ndarray],
             interval_minutes: float) -> SignalArrays:
    """Evaluate every condition of `strategy` on every bar (vectorised, no look-ahead)."""
    strat = parse_strategy(strategy)
    close, volume = _arrays(candles)
    feats = _Features(close, volume)
    series: list[ConditionSeries] = []
    buys: list[np.ndarray] = []
    sells: list[np.ndarray] = []
    for cond in strat.conditions:
        kind, n, param = _compile_condition(cond, interval_minutes)
        fired, value = _fire(kind, param, n, feats)
        series.append(ConditionSeries(cond, n, fired, value))
        (sells if cond.signal == "sell" else buys).append(fired)
    size = close.shape[0]
    return SignalArrays(_combine(buys, strat.match, size), _combine(sells, strat.match, size), tuple(series))


# -- explanations: what fired and what it measured (the bot words them) ---------------------------

@dataclass(frozen=True)
class LatestSignal:
    """What fired on one closed bar and why (`engine.signal_reasons.SignalReason` records)."""

    index: int
    time: int
    close: float
    buy: bool
    sell: bool
    buy_reasons: tuple[SignalReason, ...]
    sell_reasons: tuple[SignalReason, ...]

    @property
    def side(self) -> Literal["buy", "sell"]:
        """`buy` when the entry side fired, else `sell`."""
        return "buy" if self.buy else "sell"

    def reasons(self, side: Literal["buy", "sell"] | None = None) -> tuple[SignalReason, ...]:
        """The fired conditions of `side` (default: `self.side`)."""
        return self.buy_reasons if (side or self.side) == "buy" else self.sell_reasons


def bar_reasons(sig: SignalArrays, i: int, side: str) -> tuple[SignalReason, ...]:
    """The conditions of `side` that fired on bar `i`, each with the value it measured there."""
    return tuple(measured(cs.condition, float(cs.value[i])) for cs in sig.conditions
                 if cs.condition.signal == side and bool(cs.fired[i]))


def explain_bar(sig: SignalArrays, candles: Mapping[str, np.ndarray], i: int) -> LatestSignal | None:
    """What fired on bar `i` of an evaluated series and why, or None when nothing fired."""
    buy, sell = bool(sig.buy[i]), bool(sig.sell[i])
    if not (buy or sell):
        return None
    return LatestSignal(index=i, time=int(np.asarray(candles["time"])[i]),
                        close=float(np.asarray(candles["close"])[i]), buy=buy, sell=sell,
                        buy_reasons=bar_reasons(sig, i, "buy") if buy else (),
                        sell_reasons=bar_reasons(sig, i, "sell") if sell else ())


def explain_latest(strategy: Strategy | dict[str, Any], candles: Mapping[str, np.ndarray],
                   interval_minutes: float) -> LatestSignal | None:
    """The signal on the last bar of `candles` (assumed closed), or None when nothing fired."""
    strat = parse_strategy(strategy)
    close, _ = _arrays(candles)
    if close.shape[0] == 0:
        return None
    return explain_bar(evaluate(strat, candles, interval_minutes), candles, close.shape[0] - 1)


# -- batch evaluation of many strategies on the same candles ----------------------------------

@dataclass(frozen=True)
class StrategyBatch:
    """Many strategies compiled into (n_strategies, 5) matrices, padded with kind 0.

    Compile once and reuse while the strategies and the candle interval stay the same.
    """

    kind: np.ndarray
    lookback: np.ndarray
    param: np.ndarray
    is_sell: np.ndarray
    match_all: np.ndarray
    interval_minutes: float

    def __len__(self) -> int:
        return int(self.kind.shape[0])


def _condition_key(cond: Any) -> tuple[Any, ...]:
    if cond.type == "price_level":
        return (cond.type, cond.price, cond.direction)
    return (cond.type, cond.timeframe, cond.threshold)


def compile_batch(strategies: Sequence[Strategy], interval_minutes: float) -> StrategyBatch:
    """Compile `strategies` for `evaluate_latest_compiled`.

    This is the Python-bound part (~4 µs per distinct strategy); callers that evaluate the same
    strategies every tick should compile once and reuse the batch until a strategy changes.
    """
    count = len(strategies)
    match_all = np.zeros(count, dtype=bool)
    pos: list[int] = []
    kinds: list[int] = []
    lbs: list[int] = []
    params: list[float] = []
    sells: list[bool] = []
    # Compile each distinct condition once: many agents share the same few strategies.
    by_condition: dict[tuple[Any, ...], tuple[int, int, float]] = {}
    for s_i, raw in enumerate(strategies):
        strat = raw if isinstance(raw, Strategy) else parse_strategy(raw)
        match_all[s_i] = strat.match == "all"
        slot = s_i * MAX_CONDITIONS
        for cond in strat.conditions:
            key = _condition_key(cond)
            spec = by_condition.get(key)
            if spec is None:
                spec = by_condition[key] = _compile_condition(cond, interval_minutes)
            pos.append(slot)
            kinds.append(spec[0])
            lbs.append(spec[1])
            params.append(spec[2])
            sells.append(cond.signal == "sell")
            slot += 1
    size = count * MAX_CONDITIONS
    kind = np.zeros(size, dtype=np.int8)
    lookback = np.zeros(size, dtype=np.int64)
    param = np.zeros(size, dtype=np.float64)
    is_sell = np.zeros(size, dtype=bool)
    if pos:
        at = np.asarray(pos, dtype=np.int64)
        kind[at], lookback[at], param[at], is_sell[at] = kinds, lbs, params, sells
    shape = (count, MAX_CONDITIONS)
    return StrategyBatch(kind.reshape(shape), lookback.reshape(shape), param.reshape(shape),
                         is_sell.reshape(shape), match_all, float(interval_minutes))


def evaluate_latest_compiled(batch: StrategyBatch,
                             candles: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Buy and sell booleans per strategy for the last bar of `candles`.

    Each distinct (feature, lookback) is computed once with the same arithmetic as `evaluate`,
    so the answers equal `evaluate(...).buy[-1]` / `.sell[-1]` exactly.
    """
    close, volume = _arrays(candles)
    count = len(batch)
    size = close.shape[0]
    if size == 0 or count == 0:
        return np.zeros(count, dtype=bool), np.zeros(count, dtype=bool)
    kind, lookback, param = batch.kind, batch.lookback, batch.param
    last = size - 1
    top = int(lookback.max(initial=1))
    lbs = np.arange(top + 1)
    have = (lbs >= 1) & (lbs <= last)  # bar `last - n` must exist
    pct_tab = np.full(top + 1, np.nan)
    mean_tab = np.full(top + 1, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        if (kind == _DROP).any() or (kind == _RISE).any():
            pct_tab[have] = close[last] / close[last - lbs[have]] - 1.0
        if (kind == _VOLUME).any():
            csum = _volume_csum(volume)
            mean_tab[have] = (csum[last] - csum[last - lbs[have]]) / lbs[have]
        pct = pct_tab[lookback]
        mean = mean_tab[lookback]
        prev = close[last - 1] if size >= 2 else np.nan
        now = close[last]
        fired = (
            ((kind == _DROP) & (pct <= -param + _EPS))
            | ((kind == _RISE) & (pct >= param - _EPS))
            | ((kind == _VOLUME) & (mean > 0) & (volume[last] >= param * mean))
            | ((kind == _ABOVE) & (prev < param) & (param <= now))
            | ((kind == _BELOW) & (prev > param) & (param >= now))
        )
    present = kind != _NONE
    out = []
    for side in (~batch.is_sell, batch.is_sell):
        active = present & side
        any_hit = (fired & active).any(axis=1)
        all_hit = (fired | ~active).all(axis=1) & active.any(axis=1)
        out.append(np.where(batch.match_all, all_hit, any_hit))
    return out[0], out[1]


def evaluate_latest_batch(strategies: Sequence[Strategy], candles: Mapping[str, np.ndarray],
                          interval_minutes: float) -> tuple[np.ndarray, np.ndarray]:
    """Buy and sell booleans per strategy for the last bar; see `evaluate_latest_compiled`."""
    return evaluate_latest_compiled(compile_batch(strategies, interval_minutes), candles)
