"""Compiled single passes over whole candle arrays (numba, `cache=True`).

numpy does each check or reduction as its own pass with its own temporary; at 1M bars the
backtest's fixed costs (candle checks, grid, equity curve, metrics) were 20+ passes. Each
kernel here reads its arrays once. They compute facts; the rules and the words stay with their
callers (`engine.bars`, `engine.backtest`, `engine.metrics`).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# Indices of the facts `scan_candles` returns (one int64 each).
(NONFINITE_OPEN, NONPOS_OPEN, NONFINITE_HIGH, NONPOS_HIGH, NONFINITE_LOW, NONPOS_LOW, NONFINITE_CLOSE,
 NONPOS_CLOSE, NONFINITE_VOLUME, NEGATIVE_VOLUME, NONFINITE_TIME, NOT_INCREASING, BAD_HIGH_AT, BAD_LOW_AT,
 MIN_STEP, REGULAR) = range(16)
FACTS = 16


@njit(cache=True, nogil=True)
def scan_candles(time: np.ndarray, o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray,
                 v: np.ndarray, slack: float) -> tuple[np.ndarray, float]:
    """(facts, largest time) of the candles in one pass; see the index names above.

    Booleans are 0/1; BAD_HIGH_AT / BAD_LOW_AT are the first bad row or -1; MIN_STEP is the
    smallest time step (0 with fewer than 2 rows); REGULAR is 1 when every step equals it.
    """
    f = np.zeros(FACTS, dtype=np.int64)
    f[BAD_HIGH_AT] = -1
    f[BAD_LOW_AT] = -1
    n = c.shape[0]
    t_max = -np.inf
    min_step = np.inf
    max_step = -np.inf
    for i in range(n):
        oi, hi, li, ci, vi = o[i], h[i], lo[i], c[i], v[i]
        if not math.isfinite(oi):
            f[NONFINITE_OPEN] = 1
        elif oi <= 0:
            f[NONPOS_OPEN] = 1
        if not math.isfinite(hi):
            f[NONFINITE_HIGH] = 1
        elif hi <= 0:
            f[NONPOS_HIGH] = 1
        if not math.isfinite(li):
            f[NONFINITE_LOW] = 1
        elif li <= 0:
            f[NONPOS_LOW] = 1
        if not math.isfinite(ci):
            f[NONFINITE_CLOSE] = 1
        elif ci <= 0:
            f[NONPOS_CLOSE] = 1
        if not math.isfinite(vi):
            f[NONFINITE_VOLUME] = 1
        elif vi < 0:
            f[NEGATIVE_VOLUME] = 1
        ti = float(time[i])
        if not math.isfinite(ti):
            f[NONFINITE_TIME] = 1
        elif ti > t_max:
            t_max = ti
        if f[BAD_HIGH_AT] < 0 and hi < max(oi, ci) * (1.0 - slack):
            f[BAD_HIGH_AT] = i
        if f[BAD_LOW_AT] < 0 and li > min(oi, ci) * (1.0 + slack):
            f[BAD_LOW_AT] = i
        if i:
            step = ti - float(time[i - 1])
            if not step > 0:
                f[NOT_INCREASING] = 1
            if step < min_step:
                min_step = step
            if step > max_step:
                max_step = step
    if n >= 2 and math.isfinite(min_step) and min_step > 0:
        f[MIN_STEP] = int(min_step)
        f[REGULAR] = 1 if max_step == min_step and min_step == int(min_step) else 0
    return f, t_max


@njit(cache=True, nogil=True)
def equity_curve(close: np.ndarray, entries: np.ndarray, exits: np.ndarray, units: np.ndarray,
                 held_cash: np.ndarray, after_cash: np.ndarray, initial: float) -> np.ndarray:
    """Cash plus units × close per bar: `held_cash[k] + units[k] * close` over [entry, exit) of
    trade k, `after_cash[k]` from its exit to the next entry, `initial` before the first."""
    n = close.shape[0]
    out = np.empty(n)
    cash = initial
    i = 0
    for k in range(entries.shape[0]):
        e, x = entries[k], exits[k]
        while i < e:
            out[i] = 0.0 * close[i] + cash
            i += 1
        held, u = held_cash[k], units[k]
        while i < x:
            out[i] = u * close[i] + held
            i += 1
        cash = after_cash[k]
    while i < n:
        out[i] = 0.0 * close[i] + cash
        i += 1
    return out


@njit(cache=True, nogil=True)
def curve_stats(equity: np.ndarray) -> tuple[float, float, float, float]:
    """(sum of per-bar returns, sum of squared negative returns, sum of squared deviations from
    the mean return, lowest equity / running peak) of an equity curve, in one pass.

    The deviations come from the sums of returns and of their squares: per-bar returns are
    small and their mean far smaller, so the subtraction loses nothing that matters (~1e-12).
    """
    n = equity.shape[0]
    total = 0.0
    squares = 0.0
    down = 0.0
    peak = -np.inf
    worst = 1.0
    prev = 0.0
    for i in range(n):
        e = equity[i]
        if e > peak:
            peak = e
        elif e < worst * peak:  # divide only below the worst ratio so far
            worst = e / peak
        if i:
            r = e / prev - 1.0
            total += r
            squares += r * r
            if r < 0:
                down += r * r
        prev = e
    count = n - 1
    dev = 0.0
    if count > 0:
        dev = max(0.0, squares - total * total / count)
    if not peak > 0:
        worst = np.nan
    return total, down, dev, worst
