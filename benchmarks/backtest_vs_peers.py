"""Benchmark: our backtest engine vs backtesting.py and vectorbt, across trade densities.

    python benchmarks/backtest_vs_peers.py [--runs 7] [--peer-1m]

Strategies (buy 50% on an N% drop, stop-loss and take-profit, fee 30 bps, slippage 10 bps) on
seeded synthetic 1-minute candles:

* `base`: 2% in 1h, SL 3%, TP 5% (~1.3k trades per 1M bars), at 100k and 1M bars;
* `dense20k`: 0.4% in 1h, SL/TP 0.8% (~23k trades per 1M bars);
* `dense85k`: 0.2% in 15m, SL/TP 0.4% (~84k trades per 1M bars).

Engines: ours is the whole `run_backtest` (input checks, grid, signals, trade search, equity
curve, metrics). vectorbt: `Portfolio.from_signals` with sl_stop/tp_stop on open/high/low,
entries shifted one bar and filled at the open (our next-open rule), plus total return, max
drawdown and Sharpe; signals are handed to it precomputed (free) and its numba compilation is
excluded by a warm-up run. backtesting.py: the equivalent event-driven strategy (as in
tests/test_backtest_vs_peer.py), best of 3 at 100k; at 1M only with `--peer-1m` (minutes).
Trade counts are checked before any timing: equal for `base`, within 10% for the dense ones
(vectorbt does not check a stop on the entry bar itself; we and backtesting.py do). The floor: reading the
open/high/low/close arrays three times (three reductions each), measured interleaved with ours.
Each timing is min and median of 3 rounds x `--runs` (>= 3), engines alternated by blocks.

Targets: faster than vectorbt at every density, >= 100x faster than backtesting.py at 100k,
1M bars <= 2x the floor.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.backtest import run_backtest
from engine.signals import evaluate

FEE_BPS, SLIP_BPS, SL, TP, AMOUNT = 30, 10, 3.0, 5.0, 50.0


def strategy(threshold: float, timeframe: str, sl: float, tp: float, amount: float = AMOUNT) -> dict[str, Any]:
    return {"conditions": [{"type": "price_drop", "token": "BENCH", "threshold": threshold, "timeframe": timeframe}],
            "actions": [{"type": "buy", "token": "BENCH", "amount_percent": amount}],
            "risk_management": {"stop_loss_percent": sl, "take_profit_percent": tp}}


# The dense ones bet 1% and start from a large account: tens of thousands of trades that each pay
# 0.8% in costs would otherwise shrink the account below the order sizes vectorbt accepts, and it
# stops trading (a different trade count, not a different speed).
STRATEGIES = {"base": strategy(2, "1h", SL, TP), "dense20k": strategy(0.4, "1h", 0.8, 0.8, 1),
              "dense85k": strategy(0.2, "15m", 0.4, 0.4, 1)}
INITIAL = 1e9
STRATEGY = STRATEGIES["base"]


def synthetic_candles(n: int, seed: int = 42) -> dict[str, np.ndarray]:
    """1-minute candles: log random walk with volatility regimes, small open gaps, volume."""
    rng = np.random.default_rng(seed)
    regime = np.repeat(rng.choice([0.0006, 0.0012, 0.0025], size=n // 5000 + 1), 5000)[:n]
    close = 100 * np.exp(np.cumsum(rng.normal(0, 1, n) * regime))
    op = np.concatenate(([100.0], close[:-1])) * np.exp(rng.normal(0, 0.0002, n))
    high = np.maximum(op, close) * np.exp(np.abs(rng.normal(0, 1, n)) * regime * 0.5)
    low = np.minimum(op, close) * np.exp(-np.abs(rng.normal(0, 1, n)) * regime * 0.5)
    return {"time": 1_600_000_000 + 60 * np.arange(n, dtype=np.int64), "open": op, "high": high,
            "low": low, "close": close, "volume": rng.lognormal(8, 1, n)}


def timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def run_ours(candles: dict[str, np.ndarray], strat: dict[str, Any] = STRATEGY) -> int:
    res = run_backtest(strat, candles, fee_bps=FEE_BPS, slippage_bps=SLIP_BPS, interval_minutes=1,
                       initial_equity=INITIAL)
    return res.metrics["total_trades"]  # type: ignore[return-value]


def floor(candles: dict[str, np.ndarray]) -> float:
    """Read the OHLC arrays three times: the least any engine must do."""
    total = 0.0
    for _ in range(3):
        for f in ("open", "high", "low", "close"):
            total += float(candles[f].sum())
    return total


def vectorbt_runner(candles: dict[str, np.ndarray], strat: dict[str, Any] = STRATEGY) -> Callable[[], int]:
    import vectorbt as vbt

    rm = strat["risk_management"]
    buy = evaluate(strat, candles, 1).buy
    entries = np.concatenate(([False], buy[:-1]))  # fill at the open after the signal bar
    exits = np.zeros_like(entries)
    o, h, lo, c = candles["open"], candles["high"], candles["low"], candles["close"]

    def run() -> int:
        pf = vbt.Portfolio.from_signals(
            close=c, entries=entries, exits=exits, price=o, open=o, high=h, low=lo,
            sl_stop=rm["stop_loss_percent"] / 100, tp_stop=rm["take_profit_percent"] / 100,
            stop_entry_price="fillprice", size=strat["actions"][0]["amount_percent"] / 100,
            size_type="percent", fees=FEE_BPS / 10_000, slippage=SLIP_BPS / 10_000, init_cash=INITIAL,
            freq="1min")
        pf.total_return()
        pf.max_drawdown()
        pf.sharpe_ratio()
        return int(pf.trades.count())

    return run


def backtesting_runner(candles: dict[str, np.ndarray]) -> Callable[[], int]:
    import pandas as pd
    from backtesting import Backtest
    from backtesting import Strategy as PeerStrategy

    buy = evaluate(STRATEGY, candles, 1).buy
    opens = candles["open"]
    n = opens.shape[0]
    frame = pd.DataFrame({"Open": opens, "High": candles["high"], "Low": candles["low"],
                          "Close": candles["close"], "Volume": candles["volume"]},
                         index=pd.to_datetime(candles["time"], unit="s"))

    class Peer(PeerStrategy):
        def init(self) -> None:
            pass

        def next(self) -> None:
            i = len(self.data) - 1
            if i < n - 1 and not self.position and buy[i]:
                fill = opens[i + 1] * (1 + SLIP_BPS / 10_000)
                self.buy(size=AMOUNT / 100, sl=fill * (1 - SL / 100), tp=fill * (1 + TP / 100))

    def run() -> int:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            stats = Backtest(frame, Peer, cash=1e12, commission=FEE_BPS / 10_000,
                             spread=SLIP_BPS / 10_000, finalize_trades=True).run()
        return int(stats["# Trades"])

    return run


def compare(label: str, candles: dict[str, np.ndarray], strat: dict[str, Any], runs: int,
            peers: dict[str, Callable[[], int]]) -> dict[str, list[float]]:
    """Warm up, check trade counts agree, then time ours, the floor and each peer alternately."""
    ours = lambda: run_ours(candles, strat)  # noqa: E731
    counts = {"ours": ours(), **{name: fn() for name, fn in peers.items()}}
    # vectorbt checks stops only from the bar after an entry at the open; we (and backtesting.py)
    # from the entry bar on. With tight stops on 1-minute bars that moves a few trades in a
    # thousand at 0.8% stops and ~8% at 0.4% (its trades last longer, so it has less to do: the
    # comparison is conservative); dense strategies must agree within 10%, the base one exactly.
    tolerance = 0 if label.startswith("base") else 0.1
    spread = (max(counts.values()) - min(counts.values())) / max(1, counts["ours"])
    if spread > tolerance:
        raise SystemExit(f"{label}: trade counts differ {counts}: not comparable, timing nothing")
    samples: dict[str, list[float]] = {"ours": [], "floor": [], **{name: [] for name in peers}}
    # Three rounds of blocks (each engine `runs` times in a row): a vectorbt call leaves the
    # allocator in a state that slows the next few large numpy allocations of whoever runs next
    # (ours measured 15 ms alone and ~95 ms right after a vectorbt call), which call-by-call
    # alternation would charge to us; blocks keep that to one sample in `runs`.
    for _ in range(3):
        for name, fn in peers.items():
            samples[name] += [timed(fn) for _ in range(runs)]
        samples["ours"] += [timed(ours) for _ in range(runs)]
        samples["floor"] += [timed(lambda: floor(candles)) for _ in range(runs)]
    print(f"{label:>12} {counts} trades | " + " | ".join(
        f"{k} min {min(v) * 1000:8.2f} ms med {statistics.median(v) * 1000:8.2f} ms" for k, v in samples.items()))
    return samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--peer-1m", action="store_true", help="also run backtesting.py on 1M bars (minutes)")
    args = parser.parse_args(argv)
    runs = max(3, args.runs)
    small, large = synthetic_candles(100_000), synthetic_candles(1_000_000)
    run_ours(small)  # first call: imports, numba's cached machine code

    results: dict[str, dict[str, list[float]]] = {}
    bt_small = backtesting_runner(small)
    results["base 100k"] = compare("base 100k", small, STRATEGY, runs, {"vectorbt": vectorbt_runner(small)})
    bt_t = [timed(bt_small) for _ in range(3)]
    assert bt_small() == run_ours(small)
    results["base 100k"]["backtesting.py"] = bt_t
    for name, strat in STRATEGIES.items():
        peers = {"vectorbt": vectorbt_runner(large, strat)}
        if args.peer_1m and name == "base":
            peers["backtesting.py"] = backtesting_runner(large)
        results[f"{name} 1M"] = compare(f"{name} 1M", large, strat, runs, peers)

    med = {k: {e: statistics.median(v) for e, v in r.items()} for k, r in results.items()}
    vs_vbt = {k: m["vectorbt"] / m["ours"] for k, m in med.items()}
    vs_bt = med["base 100k"]["backtesting.py"] / med["base 100k"]["ours"]
    floor_ratio = med["base 1M"]["ours"] / med["base 1M"]["floor"]
    low = {k: {e: min(v) for e, v in r.items()} for k, r in results.items()}
    floor_ratio_min = low["base 1M"]["ours"] / low["base 1M"]["floor"]
    print()
    for k, v in vs_vbt.items():
        print(f"{k:>14}: ours is {v:6.2f}x faster than vectorbt")
    print(f"{'base 100k':>14}: ours is {vs_bt:6.1f}x faster than backtesting.py")
    print(f"{'base 1M':>14}: ours takes {floor_ratio:.2f}x the 3-pass OHLC read floor")
    checks = {"faster than vectorbt at every density": min(vs_vbt.values()) > 1.0,
              ">= 100x faster than backtesting.py at 100k": vs_bt >= 100,
              "1M bars <= 2x the floor": floor_ratio <= 2.0}
    for label, ok in checks.items():
        print(f"[{'PASS' if ok else 'FAIL'}] {label}")
    print(f"RESULT vs_vectorbt_min={min(vs_vbt.values()):.2f} "
          + " ".join(f"vs_vectorbt_{k.replace(' ', '_')}={v:.2f}" for k, v in vs_vbt.items())
          + f" vs_backtesting_py_100k={vs_bt:.1f} floor_ratio_1m={floor_ratio:.2f}"
          f" floor_ratio_1m_min={floor_ratio_min:.2f}"
          f" ours_1m_s={med['base 1M']['ours']:.4f} ours_85k_1m_s={med['dense85k 1M']['ours']:.4f}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
