"""The backtest's trade search, compiled: which candidate entries become trades and where each exits.

The rule is the trading core's (`engine.core`, proven equal bar by bar in
tests/test_trading_core.py): an entry fills at the open after its signal bar; from the entry bar
on, the first bar whose low reaches the stop (checked first) or whose high reaches the target
ends the trade; otherwise the open after the first sell-signal bar at or after the entry; else
the last close. The next trade may start on the bar after the exit. Prices and money are not
computed here: the stop and target of every candidate come in precomputed by `engine.core`'s own
functions, and `engine.backtest` prices the trades with them too.

Why numba: this search is sequential (each trade starts after the previous exit), so numpy
cannot vectorise it, and in Python it cost 16-21 µs per trade (vectorbt, compiled, was faster
above ~22k trades per 1M bars). Compiled it costs a few ns per bar scanned. `cache=True` keeps
the machine code in `__pycache__` (or `NUMBA_CACHE_DIR`), so only the first process on a machine
compiles (~2 s); each later process loads it (~0.4 s). Imported only where a backtest runs
(`engine.backtest` imports it on first use): numba and LLVM cost a process ~130 MB.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from engine.core import EXIT_END as END
from engine.core import EXIT_SIGNAL as SIGNAL
from engine.core import EXIT_STOP as STOP
from engine.core import EXIT_TARGET as TARGET


@njit(cache=True, nogil=True)
def search_trades(low: np.ndarray, high: np.ndarray, entries: np.ndarray, stops: np.ndarray,
                  targets: np.ndarray, sells: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(candidate index, exit bar, reason code) of every trade, in order.

    `entries` are the candidate entry bars (ascending), `stops`/`targets` their levels (NaN:
    none), `sells` the sell-signal bars (ascending), `n` the number of bars.
    """
    m = entries.shape[0]
    taken = np.empty(m, dtype=np.int64)
    exits = np.empty(m, dtype=np.int64)
    reasons = np.empty(m, dtype=np.int8)
    count = 0
    k = 0
    s = 0
    earliest = 1
    n_sells = sells.shape[0]
    while True:
        while k < m and entries[k] < earliest:
            k += 1
        if k >= m:
            break
        e = entries[k]
        while s < n_sells and sells[s] < e:
            s += 1
        j = sells[s] if s < n_sells else n  # first sell-signal bar at or after the entry
        stop, target = stops[k], targets[k]
        has_stop, has_target = not np.isnan(stop), not np.isnan(target)
        last = min(j, n - 1)
        x = -1
        reason = END
        if has_stop or has_target:
            for i in range(e, last + 1):
                if has_stop and low[i] <= stop:
                    x, reason = i, STOP
                    break
                if has_target and high[i] >= target:
                    x, reason = i, TARGET
                    break
        if x < 0:
            if j < n - 1:
                x, reason = j + 1, SIGNAL
            else:
                x, reason = n - 1, END
        taken[count] = k
        exits[count] = x
        reasons[count] = reason
        count += 1
        earliest = x + 1
    return taken[:count], exits[:count], reasons[:count]
