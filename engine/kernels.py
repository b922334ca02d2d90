"""Compiled single passes over a backtest's arrays (numba, `cache=True`): the equity curve and
its metrics, each in one pass instead of numpy's one pass (and one temporary) per operation.

Imported only where a backtest runs (the process pool's workers): numba and LLVM cost the
importing process ~130 MB, which the bot process does not pay (see `engine.backtest`).
"""

from __future__ import annotations

import numpy as np
from numba import njit


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
