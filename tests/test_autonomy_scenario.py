"""End-to-end autonomy without Telegram: AVE fake → AveClient → cache → agent loop, spawner, risk.

A scripted price path makes a user's agent buy a dip and take profit, spawn a child, the child
trade and spawn a grandchild, and finally a gap through every stop pauses agents past the
drawdown limit. Entries fill at the open after the signal bar, targets at their level when the
bar closes, stops at the gap open: the trading core's rules. Along the way: an AVE outage
mid-run, a replayed tick and the coordinator's backoff are exercised, and the money invariants
are checked after every step.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import pytest

from agents.autonomy.agent_loop import AgentLoop
from agents.autonomy.coordinator import Coordinator, DataWorker
from agents.autonomy.risk import RiskWorker
from agents.autonomy.spawn_policy import SpawnPolicy
from agents.autonomy.spawner import Spawner
from agents.events import AgentPaused, ChildSpawned
from agents.ledger.manager import IsolatedAIManager
from bot.render import reason_text
from engine.events import CollectingSink, TradeClosed, TradeOpened
from engine.market.ave import AveClient
from engine.market.cache import CachedMarketData
from storage import Database
from tests.fakes.ave_api import AveFake
from tests.invariants import check_invariants, money_snapshot

pytestmark = pytest.mark.both_backends  # SQLite and PostgreSQL

HOUR = 3600
START = 472223 * HOUR + 600
TOKEN = "0x00000000000000000000000000000000000000aa-bsc"
STRATEGY = json.dumps({
    "conditions": [{"type": "price_drop", "token": "GROW", "chain": "bsc", "threshold": 3, "timeframe": "1h"}],
    "match": "any",
    "actions": [{"type": "buy", "amount_percent": 100, "token": "GROW", "chain": "bsc"}],
    "risk_management": {"stop_loss_percent": 10, "take_profit_percent": 90},
})


class World:
    """Shared fake time plus the scripted price path of GROW."""

    def __init__(self, fake: AveFake) -> None:
        self.now = float(START)
        self.fake = fake
        self.closes: list[float] = []
        self.forming: tuple[float, float] | None = None  # (open, low) of the bar in progress

    def clock(self) -> float:
        return self.now

    def step(self, close: float, *, next_open: float | None = None) -> None:
        """Advance an hour: the bar in progress closes at `close` and the next one opens at
        `next_open` (default: the close), which is also the polled price."""
        self.now += HOUR
        self.closes.append(close)
        opening = close if next_open is None else next_open
        self.forming = (opening, opening)
        self._publish()
        self.fake.set_price(TOKEN, opening)

    def start(self, closes: list[float]) -> None:
        self.closes = list(closes)
        self._publish()
        self.fake.set_price(TOKEN, closes[-1])

    def _publish(self) -> None:
        end = int(self.now // HOUR) * HOUR
        first = end - HOUR * len(self.closes)
        rows = []
        prev = self.closes[0]
        for i, c in enumerate(self.closes):
            o = prev
            rows.append((first + i * HOUR, o, max(o, c), min(o, c), c, 5000.0))
            prev = c
        if self.forming is not None:
            o, low = self.forming
            rows.append((end, o, o, low, o, 100.0))
        self.fake.set_candles(TOKEN, 60, rows)


async def no_sleep(_: float) -> None:
    return None


@pytest.fixture
def fake() -> Iterator[AveFake]:
    with AveFake(rate_limit=False) as server:
        server.add_token(TOKEN, "GROW", name="Grow", tvl=5_000_000.0, price=100.0)
        yield server


@pytest.fixture
def world(fake: AveFake) -> World:
    w = World(fake)
    fake.clock = w.clock
    return w


@pytest.fixture
async def market(fake: AveFake, world: World) -> AsyncIterator[CachedMarketData]:
    ave = AveClient("test-pro-key", base_url=fake.base_url, plan="pro", sleep=no_sleep, retries=1,
                    base_delay=0.01, rate_per_second=1000)
    cache = CachedMarketData(ave, price_ttl=10.0, clock=world.clock, wall_clock=world.clock)
    yield cache
    await cache.aclose()


def kinds(events: CollectingSink, kind: type) -> list[Any]:
    return [e for e in events.events if isinstance(e, kind)]


async def test_agent_family_grows_then_risk_pauses(db: Database, manager: IsolatedAIManager,
                                                   events: CollectingSink, market: CachedMarketData,
                                                   world: World, fake: AveFake) -> None:
    loop = AgentLoop(db, manager, market, events, clock=world.clock)
    risk = RiskWorker(db, manager, market, events)
    spawner = Spawner(db, manager, SpawnPolicy())
    data = DataWorker(market, loop.needed_token_ids)
    coord = Coordinator(clock=world.clock)
    coord.register("data", data.run_once, period=60)
    coord.register("agent_loop", loop.run, period=60)
    coord.register("risk", risk.run_once, period=60)
    coord.register("spawner", spawner.run_once, period=60)

    async def tick() -> None:
        for name in ("agent_loop", "risk", "spawner"):
            await coord.run(name)
        await check_invariants(db)

    root = (await manager.create_user_main_agent(42, Decimal("100")))["agent_id"]
    await manager.assign_strategy(root, 42, None, STRATEGY)

    # 1. flat history (it only warms the lookbacks up); then a 5% dip closes and the next bar opens
    #    at 95: the root buys at that open with all of its 100 USDC
    world.start([100, 100, 100, 100])
    await tick()
    assert loop.last_report is not None and loop.last_report.trades_opened == 0
    world.step(95)
    await tick()
    assert loop.last_report is not None and loop.last_report.trades_opened == 1
    assert loop.last_report.price_calls == 1
    [pos] = await manager.open_positions(root)
    assert pos["symbol"] == "GROW" and pos["cost"] == Decimal("100.000000")
    assert pos["entry_price"] == pytest.approx(95 * 1.001)

    # 2. the bar closes at 190, through the 90% target: take-profit at the level; the spawner funds a child
    world.step(190)
    await tick()
    [trade] = await manager.recent_trades(root)
    assert trade["exit_reason"] == "take_profit" and trade["exit_price"] == pytest.approx(95 * 1.001 * 1.9 * 0.999)
    assert trade["pnl"] > Decimal("80")
    [spawned] = kinds(events, ChildSpawned)
    child = spawned.child_agent_id
    assert spawned.parent_agent_id == root and spawned.generation == 2
    child_info = await manager.get_agent_info(child, 42)
    assert child_info["strategy_json"] == STRATEGY and child_info["isolated_balance"] >= Decimal("10")

    # 3. an AVE outage mid-run: the tick aborts, nothing changes, the worker backs off one tick
    world.step(180)  # -5.3%: a new dip (the child starts trading after it: it was born later)
    before = await money_snapshot(db)
    fake.fail_next(2, 500)
    assert await coord.run("agent_loop") is False
    health = {h.name: h for h in coord.health()}["agent_loop"]
    assert health.state == "backoff" and "prices" in (health.last_error or "")
    assert await money_snapshot(db) == before
    world.now += 60
    assert await coord.run("agent_loop") is True
    assert loop.last_report is not None and loop.last_report.trades_opened == 1  # the root buys
    await check_invariants(db)

    # 4. the price doubles: the root takes profit
    world.step(360)
    await coord.run("data")  # warms the price cache: the loop then needs no upstream price call
    await tick()
    assert loop.last_report is not None and loop.last_report.price_calls == 0
    assert loop.last_report.trades_closed == 1
    # replaying the same tick (same candle, same prices) changes nothing
    snapshot = await money_snapshot(db)
    replay = await loop.tick()
    assert replay.trades_opened == replay.trades_closed == 0
    assert await money_snapshot(db) == snapshot

    # 5. a dip every agent buys (the root may have funded a second child), a doubling all sell:
    #    the child spawns a grandchild
    world.step(340)
    await tick()
    assert loop.last_report is not None and loop.last_report.trades_opened >= 2
    assert await manager.open_positions(root) and await manager.open_positions(child)
    world.step(680)
    await tick()
    assert loop.last_report is not None and loop.last_report.trades_closed >= 2
    assert await manager.open_positions(root) == [] and await manager.open_positions(child) == []
    grandchildren = [e for e in kinds(events, ChildSpawned) if e.parent_agent_id == child]
    assert len(grandchildren) == 1 and grandchildren[0].generation == 3
    portfolio = await manager.get_user_ai_portfolio(42)
    assert max(a["generation"] for a in portfolio["agents"]) == 3
    assert portfolio["total_earnings"] > Decimal("200")

    # 6. a dip root and child buy, then the next bar opens far below every stop: the stops fill at
    #    that gap open, realized losses pass 50% of the peak → paused
    world.step(640)
    await tick()
    holders = [a["agent_id"] for a in (await manager.get_user_ai_portfolio(42))["agents"]
               if await manager.open_positions(a["agent_id"])]
    assert root in holders and child in holders
    world.step(650, next_open=200.0)
    await tick()
    stops = [t for a in (root, child) for t in await manager.recent_trades(a) if t["exit_reason"] == "stop_loss"]
    assert len(stops) == 2 and all(t["exit_price"] == pytest.approx(200 * 0.999) for t in stops)
    paused = kinds(events, AgentPaused)
    paused_ids = {e.agent_id for e in paused}
    assert root in paused_ids and child in paused_ids
    for event in paused:
        assert event.drawdown_pct is not None
        assert reason_text(event.reason) == f"risk: drawdown {event.drawdown_pct:.0f}% > 50%"
        assert event.drawdown_pct > 50
        info = await manager.get_agent_info(event.agent_id, 42)
        assert info["status"] == "paused" and await manager.open_positions(event.agent_id) == []
    # paused agents do not trade on the next dip, and are not paused (or notified) twice
    world.step(100)
    await tick()
    assert [a for a in paused_ids if await manager.open_positions(a)] == []
    assert len(kinds(events, AgentPaused)) == len(paused)

    opened, closed = kinds(events, TradeOpened), kinds(events, TradeClosed)
    assert opened and closed and all(e.user_id == 42 and e.demo is False for e in opened + closed)
    assert {e.reason for e in closed} >= {"take_profit", "stop_loss"}
    metrics = await risk.user_risk_metrics(42)
    assert metrics["observations"] > 0 and metrics["max_drawdown_pct"] is not None
    # every agent's trades replay identically through the backtest
    for agent in (await manager.get_user_ai_portfolio(42))["agents"]:
        parity = await loop.parity(agent["agent_id"])
        assert parity is None or parity.ok, (agent["agent_id"], parity)
    await check_invariants(db)
