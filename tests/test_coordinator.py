"""Tests of the worker coordinator (heartbeats, crash backoff, no overlap) and the data worker."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from agents.autonomy.agent_loop import AgentLoop
from agents.autonomy.coordinator import Coordinator, DataWorker
from agents.ledger.manager import IsolatedAIManager
from engine.events import CollectingSink
from engine.market.cache import CachedMarketData
from storage import Database
from tests.test_agent_loop import NOW, ScriptedMarket, dip_strategy


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Flaky:
    """Fails while `failing` is set."""

    def __init__(self) -> None:
        self.calls = 0
        self.failing = False

    async def __call__(self) -> None:
        self.calls += 1
        if self.failing:
            raise RuntimeError("boom " + "x" * 500)


async def test_success_heartbeat_and_idle_state() -> None:
    clock = Clock()
    coord = Coordinator(clock=clock)
    work = Flaky()
    coord.register("data", work, period=60)
    coord.register("risk", Flaky(), period=60)
    assert [h.state for h in coord.health()] == ["idle", "idle"]
    assert await coord.run("data") is True
    clock.now += 5
    data, risk = coord.health()
    assert data.state == "ok" and data.runs == 1 and data.heartbeat_age == 5.0 and data.last_error is None
    assert risk.state == "idle" and risk.heartbeat_age is None
    with pytest.raises(ValueError):
        coord.register("data", work)


async def test_crash_restarts_with_exponential_backoff() -> None:
    clock = Clock()
    crashes: list[tuple[str, str]] = []

    async def on_crash(name: str, error: BaseException) -> None:
        crashes.append((name, str(error)[:4]))

    coord = Coordinator(clock=clock, on_crash=on_crash, max_backoff=240)
    work = Flaky()
    work.failing = True
    coord.register("agent_loop", work, period=60)
    ran = []
    for _ in range(16):  # one scheduled run per tick (60 s)
        ran.append(await coord.run("agent_loop") or work.calls)
        clock.now += 60
    # failures at ticks 0, 1, 3, 7, 11, 15: backoff 1, 2, 4 ticks, then capped at 4
    assert work.calls == 6
    assert crashes == [("agent_loop", "boom")] * 6
    [health] = coord.health()
    assert health.failures == 6 and health.consecutive_failures == 6 and len(health.last_error or "") <= 200
    assert health.state in ("backoff", "failing")
    clock.now += 1  # mid-backoff
    assert coord.health()[0].state == "backoff"
    clock.now += 240
    assert coord.health()[0].state == "failing"
    work.failing = False
    assert await coord.run("agent_loop") is True
    [health] = coord.health()
    assert health.state == "ok" and health.consecutive_failures == 0 and health.failures == 6
    clock.now += 60
    assert await coord.run("agent_loop") is True  # no backoff left after a success


async def test_runs_of_one_worker_never_overlap() -> None:
    gate = asyncio.Event()
    started = 0

    async def slow() -> None:
        nonlocal started
        started += 1
        await gate.wait()

    coord = Coordinator()
    coord.register("simulations", slow, period=5)
    first = asyncio.create_task(coord.run("simulations"))
    await asyncio.sleep(0)
    assert coord.health()[0].running
    assert await coord.run("simulations") is False
    gate.set()
    assert await first is True and started == 1


async def test_timeout_counts_as_a_crash_and_hook_errors_are_swallowed() -> None:
    async def hang() -> None:
        await asyncio.sleep(10)

    async def bad_hook(name: str, error: BaseException) -> None:
        raise RuntimeError("notifier down")

    coord = Coordinator(on_crash=bad_hook)
    coord.register("automaton_sync", hang, period=60, timeout=0.01)
    assert await coord.run("automaton_sync") is False
    assert coord.health()[0].last_error == "timed out"


async def test_data_worker_warms_the_cache_for_the_agent_loop(db: Database, manager: IsolatedAIManager) -> None:
    upstream = ScriptedMarket()
    tkn = upstream.add("TKN", price=95.0)
    upstream.set_closes(tkn, [100, 100, 95])
    agent = await manager.create_user_main_agent(1, Decimal("100"))
    await manager.assign_strategy(agent["agent_id"], 1, None, dip_strategy())
    market = CachedMarketData(upstream, price_ttl=30.0, wall_clock=lambda: NOW)
    loop = AgentLoop(db, manager, market, CollectingSink(), clock=lambda: NOW)
    data = DataWorker(market, loop.needed_token_ids)
    coord = Coordinator()
    coord.register("data", data.run_once)
    coord.register("agent_loop", loop.run)
    assert await coord.run("data") and data.last_count == 1
    assert len(upstream.price_calls) == 1
    assert await coord.run("agent_loop")
    assert len(upstream.price_calls) == 1  # served by the cache
    assert loop.last_report is not None and loop.last_report.ok and loop.last_report.price_calls == 0
    stats = data.stats()
    assert stats["tokens"] == 1 and stats["hit_rate"] > 0 and "upstream_calls_per_minute" in stats
