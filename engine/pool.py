"""Backtests in a process pool, so the bot's event loop never runs numpy or matplotlib.

Design:

* Start method: ``forkserver`` where available (Linux, macOS), else ``spawn``. Plain ``fork``
  is unsafe here: the bot process runs asyncio plus helper threads (aiosqlite, httpx), and a
  forked child inherits their locks in whatever state they were. The forkserver process is
  started clean and preloads this module (numpy, the engine), so new workers start fast.
* Admission: one job per user at a time (`BacktestBusyError`); at most ``max_workers`` jobs run,
  the rest wait in a bounded queue (`BacktestQueueFullError` beyond ``max_queue``). Only
  admitted, running jobs are handed to the executor, so the executor never holds a backlog and
  the timeout measures run time, not queueing time.
* Timeout, two layers: (1) inside the worker a ``SIGALRM`` timer (Unix) interrupts the job after
  ``timeout`` seconds, the job raises and the worker is free again at once; (2) if no answer
  arrives ``grace`` seconds after that (a worker stuck in C code, or no SIGALRM), the whole
  executor is replaced and its processes are terminated, so a stuck worker can never block the
  pool forever. Jobs running in that executor at that moment fail with `BacktestError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import multiprocessing
import signal
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.backtest import run_backtest
from engine.charts import render_equity_chart
from engine.errors import CodedError


class BacktestError(CodedError):
    """Base of pool errors (``"backtest.…"`` codes); also raised alone when a worker died."""


class BacktestBusyError(BacktestError):
    """The user already has a backtest queued or running."""


class BacktestQueueFullError(BacktestError):
    """Too many backtests are waiting; try again shortly."""


class BacktestTimeoutError(BacktestError):
    """The backtest ran longer than allowed."""


class _JobTimeout(Exception):
    """Raised inside the worker by the SIGALRM handler."""


@dataclass(frozen=True)
class BacktestJob:
    """Everything a worker needs; only plain data, so it pickles cheaply."""

    strategy: dict[str, Any]
    candles: Mapping[str, np.ndarray]
    title: str = "Backtest"
    words: dict[str, str] = field(default_factory=dict)  # the chart's words (`engine.charts.ChartWords`)
    fee_bps: float = 30
    slippage_bps: float = 10
    initial_equity: float = 1000
    interval_minutes: float | None = None
    timeout: float | None = None  # set by BacktestPool; enforced inside the worker


@dataclass(frozen=True)
class BacktestOutcome:
    """A finished backtest: metrics, trades and signals as dicts, the chart PNG, run time."""

    metrics: dict[str, float | int | None]
    trades: list[dict[str, Any]]
    signals: list[dict[str, Any]]
    chart_png: bytes
    elapsed: float
    equity_curve: list[list[float]] = field(default_factory=list)
    settings: dict[str, float] = field(default_factory=dict)


def _on_alarm(signum: int, frame: Any) -> None:
    raise _JobTimeout


def _execute(job: BacktestJob, started: float) -> BacktestOutcome:
    result = run_backtest(job.strategy, job.candles, fee_bps=job.fee_bps,
                          slippage_bps=job.slippage_bps, initial_equity=job.initial_equity,
                          interval_minutes=job.interval_minutes)
    png = render_equity_chart(result.time, result.close, result.equity, result.trades, title=job.title,
                              candles=job.candles, words=job.words)
    data = result.to_dict()
    return BacktestOutcome(metrics=data["metrics"], trades=data["trades"], signals=data["signals"],
                           chart_png=png, elapsed=time.perf_counter() - started,
                           equity_curve=data["equity_curve"], settings=data["settings"])


def run_backtest_job(job: BacktestJob) -> BacktestOutcome:
    """Run one backtest and render its chart (top-level so worker processes can unpickle it).

    With `job.timeout` set, in a main thread on Unix, a SIGALRM timer stops the job after that
    many seconds with `BacktestTimeoutError`.
    """
    started = time.perf_counter()
    armed = (bool(job.timeout) and hasattr(signal, "setitimer")
             and threading.current_thread() is threading.main_thread())
    if not armed:
        return _execute(job, started)
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    try:
        try:
            signal.setitimer(signal.ITIMER_REAL, float(job.timeout or 0))
            return _execute(job, started)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except _JobTimeout:
        # Also catches an alarm that lands while disarming: the job was at its limit anyway.
        raise BacktestTimeoutError("backtest.timeout", seconds=job.timeout) from None
    finally:
        signal.signal(signal.SIGALRM, previous)


def _mp_context() -> multiprocessing.context.BaseContext:
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        # Workers fork from a server that already imported numpy, the engine and matplotlib.
        ctx.set_forkserver_preload(["engine.pool", "engine.trade_search", "engine.kernels", "matplotlib.figure",
                                    "matplotlib.backends.backend_agg"])
        return ctx
    return multiprocessing.get_context("spawn")


class BacktestPool:
    """Per-user-limited, queue-bounded, timed backtests on a `ProcessPoolExecutor`."""

    def __init__(self, max_workers: int = 2, *, max_queue: int = 20, grace: float = 5.0,
                 runner: Callable[[BacktestJob], BacktestOutcome] = run_backtest_job) -> None:
        if max_workers < 1 or max_queue < 0:
            raise ValueError("max_workers must be >= 1 and max_queue >= 0")
        self.max_workers = max_workers
        self.max_queue = max_queue
        self.grace = grace
        self._runner = runner
        self._executor: ProcessPoolExecutor | None = None
        self._users: set[int] = set()
        self._waiting = 0
        self._running = 0
        self._slots: asyncio.Semaphore | None = None
        self._restarts = 0

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Create the executor (idempotent); `submit` and `call` do it lazily. Workers start on the
        first backtest, not at boot: each loads numba and LLVM (~130 MB), which an instance whose
        users never backtest should not pay."""
        if self._executor is None:
            self._executor = ProcessPoolExecutor(max_workers=self.max_workers, mp_context=_mp_context())

    def shutdown(self, wait: bool = True) -> None:
        """Stop the workers; queued-but-unstarted executor work is cancelled."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=wait, cancel_futures=True)

    # -- status for the health screen ----------------------------------------------------------
    def queue_size(self) -> int:
        """Jobs admitted but waiting for a free worker."""
        return self._waiting

    def running(self) -> int:
        """Jobs executing in a worker right now."""
        return self._running

    @property
    def restarts(self) -> int:
        """How many times a stuck executor had to be replaced."""
        return self._restarts

    # -- work --------------------------------------------------------------------------------
    # `timeout` is not just an asyncio deadline: it is sent to the worker, which stops itself.
    async def submit(self, user_id: int, job: BacktestJob,
                     timeout: float = 60.0) -> BacktestOutcome:  # noqa: ASYNC109
        """Run `job` for `user_id` and return its `BacktestOutcome`.

        Raises `BacktestBusyError`, `BacktestQueueFullError`, `BacktestTimeoutError`,
        `BacktestError` (workers lost), or the job's own error (e.g. `BacktestInputError`).
        """
        if user_id in self._users:
            raise BacktestBusyError("backtest.busy")
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_workers)
        if self._running + self._waiting >= self.max_workers + self.max_queue:
            raise BacktestQueueFullError("backtest.queue_full")
        self._users.add(user_id)
        self._waiting += 1
        try:
            async with self._slots:
                self._waiting -= 1
                self._running += 1
                try:
                    return await self._run(job, timeout)
                finally:
                    self._running -= 1
        finally:
            self._users.discard(user_id)

    async def call(self, fn: Callable[..., Any], *args: Any, timeout: float = 20.0) -> Any:  # noqa: ASYNC109
        """Run a small picklable `fn(*args)` (a parity replay) in a worker: the compiled backtest
        kernels (numba, ~130 MB with LLVM) then live only in the workers, never in the bot process.
        Not admitted per user and not queued behind the limit: callers keep these to a few bars."""
        self.start()
        executor = self._executor
        assert executor is not None
        future = asyncio.get_running_loop().run_in_executor(executor, functools.partial(fn, *args))
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise BacktestTimeoutError("backtest.replay_timeout", seconds=timeout) from None
        except BrokenProcessPool:
            self._recycle(executor)
            raise BacktestError("backtest.worker_stopped") from None

    async def _run(self, job: BacktestJob, timeout: float) -> BacktestOutcome:  # noqa: ASYNC109
        self.start()
        executor = self._executor
        assert executor is not None
        timed = dataclasses.replace(job, timeout=timeout)
        future = asyncio.get_running_loop().run_in_executor(executor, self._runner, timed)
        try:
            return await asyncio.wait_for(future, timeout + self.grace)
        except TimeoutError:
            self._recycle(executor)
            raise BacktestTimeoutError("backtest.timeout", seconds=timeout) from None
        except BrokenProcessPool:
            self._recycle(executor)
            raise BacktestError("backtest.worker_stopped") from None

    def _recycle(self, executor: ProcessPoolExecutor) -> None:
        """Replace `executor` and terminate its processes (a worker is stuck or dead)."""
        if self._executor is executor:
            self._executor = None
            self._restarts += 1
        # ProcessPoolExecutor has no public way to stop a running task; terminating its
        # processes (private `_processes`) is the only way to free a stuck worker.
        processes = dict(getattr(executor, "_processes", None) or {})
        for proc in processes.values():
            with contextlib.suppress(Exception):
                proc.terminate()
        executor.shutdown(wait=False, cancel_futures=True)
