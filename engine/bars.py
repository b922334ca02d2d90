"""Candle checks and the regular time grid that backtest and live trading both evaluate on.

AVE skips intervals without trades, so a window of N candles can span far more than N
intervals. Conditions speak of wall time ("dropped 3% in 1h"), so before anything is evaluated
the candles are put on a regular grid of their interval: an empty interval becomes a bar whose
open, high, low and close are the previous close and whose volume is 0. A lookback of n bars
is then exactly n intervals of time, in the backtest and live alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from engine import kernels as K
from engine.kernels import scan_candles
from engine.market.base import CANDLE_FIELDS, Candles

_PRICES = ("open", "high", "low", "close")
# 10^11 s is the year 5138: a time that large is milliseconds (or worse), not unix seconds.
_MAX_UNIX_SECONDS = 100_000_000_000
MAX_GRID_BARS = 2_000_000
_OHLC_SLACK = 1e-9  # relative: prices parsed from decimal strings may differ in the last bit


class CandleError(ValueError):
    """The candles cannot be used; `code` names the problem, the message is plain words."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def validate_candles(candles: Mapping[str, Any], *, min_bars: int = 1) -> dict[str, np.ndarray]:
    """Check and convert OHLCV columns to float64 arrays (`time` int64 unix seconds).

    Raises `CandleError` for missing or unequal columns, non-numbers, NaN/inf, non-positive
    prices, negative volume, millisecond timestamps, non-increasing times, and bars whose high
    is below their open/close or whose low is above them.
    """
    try:
        raw = {f: np.asarray(candles[f]) for f in CANDLE_FIELDS}
    except KeyError as exc:
        raise CandleError("missing_column", f"the candles have no '{exc.args[0]}' column") from None
    if len({a.shape for a in raw.values()}) != 1 or any(a.ndim != 1 for a in raw.values()):
        raise CandleError("ragged", "the candle columns have different lengths")
    if raw["close"].shape[0] < min_bars:
        raise CandleError("too_few", f"at least {min_bars} candles are needed")
    try:
        arrays = {f: np.ascontiguousarray(raw[f], dtype=np.float64) for f in (*_PRICES, "volume")}
        time = raw["time"] if raw["time"].dtype.kind in "iu" else raw["time"].astype(np.float64)
    except (TypeError, ValueError):
        raise CandleError("not_numbers", "the candles contain values that are not numbers") from None
    if arrays["close"].shape[0] == 0:
        arrays["time"] = np.zeros(0, dtype=np.int64)
        return arrays
    facts, t_max = scan_candles(np.ascontiguousarray(time), arrays["open"], arrays["high"], arrays["low"],
                                arrays["close"], arrays["volume"], _OHLC_SLACK)
    _raise_first_problem(facts, t_max)
    arrays["time"] = time.astype(np.int64)
    if facts[K.REGULAR]:
        arrays[REGULAR_STEP] = np.array([facts[K.MIN_STEP]], dtype=np.int64)
    return arrays


# A validated dict may carry this key: its candles are evenly spaced by that many seconds, so
# `infer_interval_seconds` and `to_grid` need no pass over the times.
REGULAR_STEP = "_regular_step"


def _raise_first_problem(f: np.ndarray, t_max: float) -> None:
    """The checks in their documented order, on the facts of one `scan_candles` pass."""
    for field, nonfinite, nonpos in (("open", K.NONFINITE_OPEN, K.NONPOS_OPEN),
                                     ("high", K.NONFINITE_HIGH, K.NONPOS_HIGH),
                                     ("low", K.NONFINITE_LOW, K.NONPOS_LOW),
                                     ("close", K.NONFINITE_CLOSE, K.NONPOS_CLOSE)):
        if f[nonfinite]:
            raise CandleError("not_finite", f"the candles contain missing or infinite {field} values")
        if f[nonpos]:
            raise CandleError("not_positive", f"the candles contain zero or negative {field} prices")
    if f[K.NONFINITE_VOLUME]:
        raise CandleError("not_finite", "the candles contain missing or infinite volume values")
    if f[K.NEGATIVE_VOLUME]:
        raise CandleError("negative_volume", "the candles contain negative volume")
    if f[K.NONFINITE_TIME]:
        raise CandleError("not_finite", "the candles contain missing or infinite time values")
    if t_max >= _MAX_UNIX_SECONDS:
        raise CandleError("milliseconds", "candle times look like milliseconds: give unix seconds")
    if f[K.NOT_INCREASING]:
        raise CandleError("not_increasing", "candle times must be strictly increasing")
    if f[K.BAD_HIGH_AT] >= 0:
        raise CandleError("high_below_body", f"candle {f[K.BAD_HIGH_AT] + 1}: its high is below its open or close")
    if f[K.BAD_LOW_AT] >= 0:
        raise CandleError("low_above_body", f"candle {f[K.BAD_LOW_AT] + 1}: its low is above its open or close")


def infer_interval_seconds(time: np.ndarray, regular_step: int | None = None) -> int:
    """The candle interval: the smallest spacing (sparse data only ever makes spacings longer)."""
    if time.shape[0] < 2:
        raise CandleError("too_few", "at least 2 candles are needed to tell their interval")
    if regular_step is not None:
        return int(regular_step)
    step = int(np.diff(time).min())
    if step <= 0:
        raise CandleError("not_increasing", "candle times must be strictly increasing")
    return step


def to_grid(arrays: Mapping[str, np.ndarray], interval_seconds: int, *,
            end_time: int | None = None) -> dict[str, np.ndarray]:
    """Put validated candles on a regular grid of `interval_seconds` starting at the first candle.

    Missing intervals are filled with a flat bar at the previous close and zero volume.
    `end_time` (a bar start) extends the grid with flat bars up to it, so a live window reaches
    the last closed interval even when nothing traded in it. Raises `CandleError` when a candle
    time is off the grid or the grid would be absurdly large.
    """
    time = np.asarray(arrays["time"], dtype=np.int64)
    n = time.shape[0]
    if n == 0:
        return {f: np.asarray(arrays[f]) for f in CANDLE_FIELDS}
    step = int(interval_seconds)
    if step <= 0:
        raise CandleError("bad_interval", "the candle interval must be positive")
    regular = arrays.get(REGULAR_STEP)
    if regular is not None and int(regular[0]) == step and (end_time is None or end_time <= time[-1]):
        return {f: np.asarray(arrays[f]) for f in CANDLE_FIELDS}  # already the grid: no pass needed
    offset = time - time[0]
    if (offset % step).any():
        raise CandleError("off_grid", f"candle times do not fit a {step // 60}-minute interval")
    slots = offset // step
    last = int(slots[-1])
    if end_time is not None and end_time > time[-1]:
        last = max(last, int((int(end_time) - int(time[0])) // step))
    size = last + 1
    if size == n:
        return {f: np.asarray(arrays[f]) for f in CANDLE_FIELDS}
    if size > max(MAX_GRID_BARS, n):
        raise CandleError("too_sparse", "the candles are too sparse to put on a regular time grid")
    # index of the real candle at or before each slot: forward fill by position
    src = np.zeros(size, dtype=np.int64)
    src[slots] = np.arange(n)
    present = np.zeros(size, dtype=bool)
    present[slots] = True
    src = np.maximum.accumulate(np.where(present, src, 0))
    close = np.asarray(arrays["close"], dtype=np.float64)[src]
    out = {"time": time[0] + np.arange(size, dtype=np.int64) * step, "close": close}
    for f in ("open", "high", "low"):
        col = np.array(close)
        col[slots] = np.asarray(arrays[f], dtype=np.float64)
        out[f] = col
    vol = np.zeros(size)
    vol[slots] = np.asarray(arrays["volume"], dtype=np.float64)
    out["volume"] = vol
    return out


def grid_candles(candles: Candles, interval_minutes: int, *, end_time: int | None = None) -> Candles:
    """`to_grid` for a `Candles` value (live windows from the market)."""
    arrays = validate_candles(candles)
    if len(candles) == 0:
        return candles
    g = to_grid(arrays, interval_minutes * 60, end_time=end_time)
    return Candles(*(g[f] for f in CANDLE_FIELDS))
