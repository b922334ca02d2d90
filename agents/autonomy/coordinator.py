"""The worker coordinator (SPEC §8): named background workers with heartbeats and restart backoff.

Each worker is an async callable run one iteration at a time by `Coordinator.run(name)`; the bot
wires `run(name)` into PTB's `JobQueue.run_repeating`. The coordinator records a heartbeat per
worker (start, last success, last error, counters). An iteration that raises is recorded, reported
through `on_crash(name, error)`, and the worker is "restarted" with exponential backoff: after
`k` consecutive failures further runs are skipped for `period × 2^(k-1)` seconds (capped at
`max_backoff`), i.e. the first retry happens on the next tick, then every 2, 4, 8… ticks. Runs of
the same worker never overlap: a run that finds the previous one still going is skipped.

`DataWorker` is the `data` worker: it refreshes the prices of every token the agents need into the
shared cache, so the agent loop (and everything else in the tick) hits the cache, and exposes the
cache statistics (hit rate, upstream calls per minute) for the health screen.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from engine.market.base import MarketData

__all__ = ["Coordinator", "DataWorker", "WorkerHealth", "WorkerState"]

logger = logging.getLogger(__name__)

WorkerFn = Callable[[], Awaitable[Any]]
CrashHook = Callable[[str, BaseException], Awaitable[None]]
WorkerState = Literal["ok", "failing", "backoff", "idle"]
_ERROR_MAX = 200


@dataclass(frozen=True)
class WorkerHealth:
    """One worker's line on the health screen. `heartbeat_age` is seconds since its last success (or start)."""

    name: str
    state: WorkerState
    heartbeat_age: float | None
    last_error: str | None
    runs: int
    failures: int
    consecutive_failures: int
    running: bool


@dataclass
class _Worker:
    name: str
    fn: WorkerFn
    period: float
    timeout: float | None
    last_start: float | None = None
    last_ok: float | None = None
    last_error: str | None = None
    runs: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    next_allowed_at: float = 0.0
    running: bool = False


def _short(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    text = f"{type(error).__name__}: {text}" if not text.startswith(type(error).__name__) else text
    return text[:_ERROR_MAX]


class Coordinator:
    """Runs named workers one iteration at a time with heartbeats and crash backoff."""

    def __init__(self, *, on_crash: CrashHook | None = None, max_backoff: float = 900.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._workers: dict[str, _Worker] = {}
        self._on_crash = on_crash
        self.max_backoff = float(max_backoff)
        self._clock = clock

    def register(self, name: str, fn: WorkerFn, *, period: float = 60.0,
                 timeout: float | None = None) -> None:
        """Add a worker; `period` is how often the bot schedules it (the backoff unit)."""
        if name in self._workers:
            raise ValueError(f"worker {name!r} is already registered")
        if period <= 0:
            raise ValueError("period must be positive")
        self._workers[name] = _Worker(name, fn, float(period), timeout)

    @property
    def names(self) -> list[str]:
        return list(self._workers)

    def period(self, name: str) -> float:
        """The worker's scheduling period in seconds."""
        return self._workers[name].period

    async def run(self, name: str) -> bool:
        """Run one iteration of `name` unless it is running or backing off; True when it ran and succeeded."""
        worker = self._workers[name]
        now = self._clock()
        if worker.running:
            logger.debug("worker %s still running; skipped", name)
            return False
        # 5% slack: a job scheduled every `period` must not miss its slot by clock jitter
        if now < worker.next_allowed_at - 0.05 * worker.period:
            return False
        worker.running = True
        worker.last_start = now
        worker.runs += 1
        try:
            if worker.timeout is not None:
                await asyncio.wait_for(worker.fn(), timeout=worker.timeout)
            else:
                await worker.fn()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self._crashed(worker, exc)
            return False
        finally:
            worker.running = False
        worker.last_ok = self._clock()
        worker.last_error = None if worker.consecutive_failures == 0 else worker.last_error
        worker.consecutive_failures = 0
        worker.next_allowed_at = 0.0
        return True

    async def _crashed(self, worker: _Worker, exc: Exception) -> None:
        worker.failures += 1
        worker.consecutive_failures += 1
        worker.last_error = _short(exc) if not isinstance(exc, TimeoutError) else "timed out"
        wait = min(self.max_backoff, worker.period * 2 ** (worker.consecutive_failures - 1))
        worker.next_allowed_at = self._clock() + wait
        logger.warning("worker %s failed (%d in a row), next try in %.0fs: %s", worker.name,
                       worker.consecutive_failures, wait, worker.last_error)
        if self._on_crash is not None:
            try:
                await self._on_crash(worker.name, exc)
            except Exception:
                logger.exception("on_crash hook failed for worker %s", worker.name)

    def health(self) -> list[WorkerHealth]:
        """Every worker's state for the health screen, in registration order."""
        now = self._clock()
        out: list[WorkerHealth] = []
        for w in self._workers.values():
            state: WorkerState
            if w.runs == 0:
                state = "idle"
            elif w.consecutive_failures == 0:
                state = "ok"
            elif now < w.next_allowed_at - 0.05 * w.period:
                state = "backoff"
            else:
                state = "failing"
            beat = w.last_ok if w.last_ok is not None else w.last_start
            age = None if beat is None else max(0.0, now - beat)
            out.append(WorkerHealth(w.name, state, age, w.last_error, w.runs, w.failures,
                                    w.consecutive_failures, w.running))
        return out


class DataWorker:
    """Refreshes the prices of every token the agents need into the shared cache."""

    def __init__(self, market: MarketData, tokens: Callable[[], Awaitable[list[str]]]) -> None:
        self.market = market
        self._tokens = tokens
        self.last_count = 0

    async def run_once(self) -> int:
        """Fetch (through the cache) the prices of all needed tokens; returns how many were asked."""
        ids = await self._tokens()
        if ids:
            await self.market.get_prices(ids)
        self.last_count = len(ids)
        return len(ids)

    def stats(self) -> dict[str, Any]:
        """The cache's statistics (hit rate, upstream calls per minute, …) plus the token count."""
        stats_fn = getattr(self.market, "stats", None)
        out: dict[str, Any] = dict(stats_fn()) if callable(stats_fn) else {}
        out["tokens"] = self.last_count
        return out
