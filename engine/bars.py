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

from engine.errors import CodedError
from engine.market.base import CANDLE_FIELDS, Candles

_PRICES = ("open", "high", "low", "close")
# 10^11 s is the year 5138: a time that large is milliseconds (or worse), not unix seconds.
_MAX_UNIX_SECONDS = 100_000_000_000
MAX_GRID_BARS = 2_000_000
_OHLC_SLACK = 1e-9  # relative: prices parsed from decimal strings may differ in the last bit


class CandleError(CodedError, ValueError):
    """The candles cannot be used; `code` (``"candles.…"``) names the problem, `params` its figures."""


def validate_candles(candles: Mapping[str, Any], *, min_bars: int = 1) -> dict[str, np.ndarray]:
    """Check and convert OHLCV columns to float64 arrays (`time` int64 unix seconds).

    Raises `CandleError` for missing or unequal columns, non-numbers, NaN/inf, non-positive
    prices, negative volume, millisecond timestamps, non-increasing times, and bars whose high
    is below their open/close or whose low is above them.
    """
    try:
        raw = {f: np.asarray(candles[f]) for f in CANDLE_FIELDS}
    except KeyError as exc:
        raise CandleError("candles.missing_column", column=str(exc.args[0])) from None
    if len({a.shape for a in raw.values()}) != 1 or any(a.ndim != 1 for a in raw.values()):
        raise CandleError("candles.ragged")
    if raw["close"].shape[0] < min_bars:
        raise CandleError("candles.too_few", minimum=min_bars)
    try:
        arrays = {f: np.ascontiguousarray(raw[f], dtype=np.float64) for f in (*_PRICES, "volume")}
        time = raw["time"] if raw["time"].dtype.kind in "iu" else raw["time"].astype(np.float64)
    except (TypeError, ValueError):
        raise CandleError("candles.not_numbers") from None
    if arrays["close"].shape[0] == 0:
        arrays["time"] = np.zeros(0, dtype=np.int64)
        return arrays
    # min/max are fast and NaN fails every comparison, so one test catches NaN, inf and <= 0.
    for f in _PRICES:
        a = arrays[f]
        if not (a.min() > 0 and a.max() < np.inf):
            if not np.isfinite(a).all():
                raise CandleError("candles.not_finite", column=f)
            raise CandleError("candles.not_positive", column=f)
    vol = arrays["volume"]
    if not (vol.min() >= 0 and vol.max() < np.inf):
        if not np.isfinite(vol).all():
            raise CandleError("candles.not_finite", column="volume")
        raise CandleError("candles.negative_volume")
    if time.dtype.kind == "f" and not np.isfinite(time).all():
        raise CandleError("candles.not_finite", column="time")
    if time.max() >= _MAX_UNIX_SECONDS:
        raise CandleError("candles.milliseconds")
    steps = np.diff(time)
    if not (steps > 0).all():
        raise CandleError("candles.not_increasing")
    _check_ohlc(arrays)
    arrays["time"] = time.astype(np.int64)
    if steps.shape[0] and steps.min() == steps.max() and float(steps[0]).is_integer():
        arrays[REGULAR_STEP] = np.array([int(steps[0])], dtype=np.int64)
    return arrays


# A validated dict may carry this key: its candles are evenly spaced by that many seconds, so
# `infer_interval_seconds` and `to_grid` need no further pass over the times.
REGULAR_STEP = "_regular_step"


def _check_ohlc(a: dict[str, np.ndarray]) -> None:
    top = np.maximum(a["open"], a["close"]) * (1.0 - _OHLC_SLACK)
    bottom = np.minimum(a["open"], a["close"]) * (1.0 + _OHLC_SLACK)
    bad_high = a["high"] < top
    bad_low = a["low"] > bottom
    if bad_high.any():
        i = int(bad_high.argmax())
        raise CandleError("candles.high_below_body", number=i + 1)
    if bad_low.any():
        i = int(bad_low.argmax())
        raise CandleError("candles.low_above_body", number=i + 1)


def infer_interval_seconds(time: np.ndarray, regular_step: int | None = None) -> int:
    """The candle interval: the smallest spacing (sparse data only ever makes spacings longer)."""
    if time.shape[0] < 2:
        raise CandleError("candles.too_few_for_interval")
    if regular_step is not None:
        return int(regular_step)
    step = int(np.diff(time).min())
    if step <= 0:
        raise CandleError("candles.not_increasing")
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
        raise CandleError("candles.bad_interval")
    regular = arrays.get(REGULAR_STEP)
    if regular is not None and int(regular[0]) == step and (end_time is None or end_time <= time[-1]):
        return {f: np.asarray(arrays[f]) for f in CANDLE_FIELDS}  # already the grid: no pass needed
    offset = time - time[0]
    if (offset % step).any():
        raise CandleError("candles.off_grid", minutes=step // 60)
    slots = offset // step
    last = int(slots[-1])
    if end_time is not None and end_time > time[-1]:
        last = max(last, int((int(end_time) - int(time[0])) // step))
    size = last + 1
    if size == n:
        return {f: np.asarray(arrays[f]) for f in CANDLE_FIELDS}
    if size > max(MAX_GRID_BARS, n):
        raise CandleError("candles.too_sparse")
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
