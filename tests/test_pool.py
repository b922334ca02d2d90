"""The backtest process pool with real worker processes."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from engine.backtest import BacktestInputError, run_backtest
from engine.pool import (
    BacktestBusyError,
    BacktestJob,
    BacktestOutcome,
    BacktestPool,
    BacktestQueueFullError,
    BacktestTimeoutError,
    run_backtest_job,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

STRATEGY: dict[str, Any] = {
    "conditions": [{"type": "price_drop", "token": "PEPE", "threshold": 1, "timeframe": "1h"}],
    "actions": [{"type": "buy", "token": "PEPE", "amount_percent": 50}],
    "risk_management": {"stop_loss_percent": 2, "take_profit_percent": 3},
}


def candles(n: int = 2000, seed: int = 5) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.004, n)))
    op = np.concatenate(([100.0], close[:-1]))
    return {"time": 1_700_000_000 + 300 * np.arange(n), "open": op,
            "high": np.maximum(op, close) * 1.002, "low": np.minimum(op, close) * 0.998,
            "close": close, "volume": rng.lognormal(5, 1, n)}


@dataclass(frozen=True)
class SleepRunner:
    """A picklable stand-in runner that holds a worker for `seconds`, ignoring the job timeout
    like a worker stuck in C code would. Jobs titled "real" run the real job instead."""

    seconds: float

    def __call__(self, job: BacktestJob) -> BacktestOutcome:
        if job.title == "real":
            return run_backtest_job(job)
        time.sleep(self.seconds)
        return BacktestOutcome(metrics={}, trades=[], signals=[], chart_png=b"", elapsed=self.seconds,
                               settings={"pid": float(os.getpid())})


@pytest.fixture
async def make_pool():
    pools: list[BacktestPool] = []

    def factory(**kw: Any) -> BacktestPool:
        pool = BacktestPool(**kw)
        pools.append(pool)
        return pool

    yield factory
    for pool in pools:
        pool.shutdown(wait=False)


async def test_result_equals_in_process_run(make_pool: Any) -> None:
    pool = make_pool(max_workers=2)
    data = candles()
    job = BacktestJob(strategy=STRATEGY, candles=data, title="PEPE test", interval_minutes=5)
    outcome = await pool.submit(1, job)
    local = run_backtest(STRATEGY, data, interval_minutes=5).to_dict()
    assert outcome.metrics == local["metrics"]
    assert outcome.trades == local["trades"]
    assert outcome.signals == local["signals"]
    assert outcome.equity_curve == local["equity_curve"]
    assert len(outcome.trades) > 3
    assert outcome.chart_png.startswith(PNG_SIGNATURE) and len(outcome.chart_png) > 10_000
    assert outcome.elapsed > 0
    assert pool.running() == 0 and pool.queue_size() == 0


async def test_job_errors_reach_the_caller(make_pool: Any) -> None:
    pool = make_pool(max_workers=1)
    bad = {k: v[:1] for k, v in candles().items()}
    with pytest.raises(BacktestInputError) as caught:
        await pool.submit(1, BacktestJob(strategy=STRATEGY, candles=bad))
    assert caught.value.code == "candles.too_few" and caught.value.params == {"minimum": 2}  # pickled back whole
    # the user is free again after a failure
    outcome = await pool.submit(1, BacktestJob(strategy=STRATEGY, candles=candles(300)))
    assert outcome.metrics["total_trades"] is not None


async def test_one_backtest_per_user(make_pool: Any) -> None:
    pool = make_pool(max_workers=2, runner=SleepRunner(0.6))
    job = BacktestJob(strategy=STRATEGY, candles=candles(10))
    first = asyncio.create_task(pool.submit(7, job))
    await asyncio.sleep(0)
    with pytest.raises(BacktestBusyError):
        await pool.submit(7, job)
    other_user = await pool.submit(8, job)  # another user is not blocked
    assert other_user.elapsed == 0.6
    await first
    again = await pool.submit(7, job)  # free after the first one finished
    assert again.elapsed == 0.6


async def test_bounded_queue(make_pool: Any) -> None:
    pool = make_pool(max_workers=2, max_queue=1, runner=SleepRunner(0.5))
    job = BacktestJob(strategy=STRATEGY, candles=candles(10))
    tasks = [asyncio.create_task(pool.submit(uid, job)) for uid in (1, 2, 3)]
    await asyncio.sleep(0.05)
    assert pool.running() == 2 and pool.queue_size() == 1
    with pytest.raises(BacktestQueueFullError):
        await pool.submit(4, job)
    results = await asyncio.gather(*tasks)
    assert len(results) == 3
    assert pool.running() == 0 and pool.queue_size() == 0
    await pool.submit(4, job)  # room again


async def test_timeout_inside_worker_frees_it(make_pool: Any) -> None:
    pool = make_pool(max_workers=1, grace=30)
    job = BacktestJob(strategy=STRATEGY, candles=candles(50_000), title="slow")
    with pytest.raises(BacktestTimeoutError):
        await pool.submit(1, job, timeout=0.002)
    assert pool.restarts == 0  # the worker stopped itself; no recycling needed
    outcome = await pool.submit(1, BacktestJob(strategy=STRATEGY, candles=candles(300)), timeout=60)
    assert outcome.chart_png.startswith(PNG_SIGNATURE)


async def test_stuck_worker_is_replaced(make_pool: Any) -> None:
    pool = make_pool(max_workers=1, grace=0.2, runner=SleepRunner(30))
    job = BacktestJob(strategy=STRATEGY, candles=candles(10))
    with pytest.raises(BacktestTimeoutError):
        await pool.submit(1, job, timeout=0.3)  # without recycling this would wait 30 s and succeed
    assert pool.restarts == 1 and pool.running() == 0
    real = BacktestJob(strategy=STRATEGY, candles=candles(300), title="real")
    outcome = await pool.submit(1, real)  # a fresh executor serves the next job
    assert outcome.chart_png.startswith(PNG_SIGNATURE)


def test_job_runs_in_process_too() -> None:
    outcome = run_backtest_job(BacktestJob(strategy=STRATEGY, candles=candles(500), timeout=60))
    assert outcome.chart_png.startswith(PNG_SIGNATURE)
    assert outcome.metrics == run_backtest(STRATEGY, candles(500)).metrics


def test_the_bot_process_does_not_load_numba() -> None:
    """numba and LLVM cost a process ~130 MB: only the backtest workers load them (the bot sends
    its parity replays there), so importing the whole application must not."""
    import subprocess
    import sys

    code = ("import sys, main, bot.app, bot.services, agents.autonomy.agent_loop, engine.simulate.simulations, "
            "engine.backtest, engine.parity; print('numba' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert done.stdout.strip() == "False"
