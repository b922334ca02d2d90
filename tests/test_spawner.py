"""Tests of the spawn worker: who is considered, every decision stored, clamping, idempotence."""

from __future__ import annotations

from decimal import Decimal

import pytest

from agents.autonomy.spawn_policy import SpawnContext, SpawnDecision, SpawnPolicy
from agents.autonomy.spawner import Spawner, SpawnReport
from agents.events import ChildSpawned
from agents.ledger.manager import IsolatedAIManager
from bot.render import reason_text
from engine.events import CollectingSink
from storage import Database
from tests.invariants import check_invariants

pytestmark = pytest.mark.both_backends  # SQLite and PostgreSQL


class FixedPolicy:
    """A policy that always answers the same decision and remembers the contexts it saw."""

    def __init__(self, decision: SpawnDecision) -> None:
        self.decision = decision
        self.seen: list[SpawnContext] = []

    async def decide(self, ctx: SpawnContext) -> SpawnDecision:
        self.seen.append(ctx)
        return self.decision


async def _decisions(db: Database, agent_id: str) -> list[dict[str, object]]:
    rows = await db.fetchall("SELECT spawn, amount, reason, source, child_agent_id FROM spawn_decisions"
                             " WHERE agent_id = ? ORDER BY decision_id", (agent_id,))
    return [dict(r) for r in rows]


async def test_rule_spawns_once_for_new_earnings(db: Database, manager: IsolatedAIManager,
                                                  events: CollectingSink) -> None:
    root = (await manager.create_user_main_agent(1, Decimal("100")))["agent_id"]
    await manager.assign_strategy(root, 1, None, '{"x": 1}')
    spawner = Spawner(db, manager, SpawnPolicy())
    assert (await spawner.run_once()).considered == 0  # no earnings yet
    await manager.record_agent_profit(root, Decimal("40"), "trade", "p1")
    report = await spawner.run_once()
    assert report.considered == 1 and report.decided == 1 and len(report.spawned) == 1
    child = await manager.get_agent_info(report.spawned[0], 1)
    assert child["generation"] == 2 and child["parent_agent_id"] == root
    assert child["isolated_balance"] == Decimal("20.000000")  # 50% of 40 spawnable
    assert child["strategy_json"] == '{"x": 1}'
    [decision] = await _decisions(db, root)
    assert decision["spawn"] == 1 and decision["source"] == "rule"
    assert decision["child_agent_id"] == child["agent_id"]
    spawned = next(e for e in events.events if isinstance(e, ChildSpawned))
    assert spawned.child_agent_id == child["agent_id"]
    # one encoded reason, stored on the decision and the child and carried by the event
    assert decision["reason"] == child["spawn_reason"] == spawned.reason
    assert reason_text(spawned.reason) == "Rule-based decision: spawn 20 USDC: earnings 40 USDC, drawdown 0.0%"
    # nothing new: nothing considered, in this process or a fresh one (restart)
    assert (await spawner.run_once()).considered == 0
    assert (await Spawner(db, manager, SpawnPolicy()).run_once()).considered == 0
    await check_invariants(db)


async def test_refusals_are_stored_and_ineligible_agents_are_not(db: Database, manager: IsolatedAIManager) -> None:
    small = (await manager.create_user_main_agent(1, Decimal("100")))["agent_id"]
    await manager.record_agent_profit(small, Decimal("5"), "trade", "s1")
    hurt = (await manager.create_user_main_agent(2, Decimal("100")))["agent_id"]
    await manager.record_agent_profit(hurt, Decimal("100"), "trade", "h1")
    await manager.record_agent_profit(hurt, Decimal("-60"), "trade", "h2")  # 30% below its peak
    report = await Spawner(db, manager, SpawnPolicy()).run_once()
    assert report.considered == 2 and report.decided == 1 and report.spawned == []
    assert await _decisions(db, small) == []
    [refusal] = await _decisions(db, hurt)
    assert refusal["spawn"] == 0
    assert reason_text(str(refusal["reason"])) == "Rule-based decision: no spawn, drawdown 30.0% is at or above 25%"


async def test_policy_amounts_are_clamped_to_the_bounds(db: Database, manager: IsolatedAIManager) -> None:
    greedy = FixedPolicy(SpawnDecision(True, Decimal("100000"), "go big", "llm"))
    root = (await manager.create_user_main_agent(1, Decimal("100")))["agent_id"]
    await manager.record_agent_profit(root, Decimal("40"), "trade", "p1")
    report = await Spawner(db, manager, greedy).run_once()
    child = await manager.get_agent_info(report.spawned[0], 1)
    assert child["isolated_balance"] == greedy.seen[0].max_child == Decimal("40.000000")
    assert (await _decisions(db, root))[0]["source"] == "llm"

    timid = FixedPolicy(SpawnDecision(True, Decimal("0.5"), "tiny", "llm"))
    other = (await manager.create_user_main_agent(2, Decimal("100")))["agent_id"]
    await manager.record_agent_profit(other, Decimal("40"), "trade", "o1")
    report = await Spawner(db, manager, timid).run_once()
    assert (await manager.get_agent_info(report.spawned[0], 2))["isolated_balance"] == Decimal("10.000000")
    ctx = timid.seen[0]
    assert ctx.net_earnings == Decimal("40.000000") and ctx.trades == 0 and ctx.win_rate_pct is None
    await check_invariants(db)


async def test_a_refused_spawn_is_recorded_not_raised(db: Database, manager: IsolatedAIManager) -> None:
    root = (await manager.create_user_main_agent(1, Decimal("100")))["agent_id"]
    await manager.record_agent_profit(root, Decimal("40"), "trade", "p1")

    class PausingPolicy(FixedPolicy):
        async def decide(self, ctx: SpawnContext) -> SpawnDecision:
            await manager.pause_agent(ctx.agent_id, 1)  # the user pauses while the LLM thinks
            return await super().decide(ctx)

    report = await Spawner(db, manager, PausingPolicy(SpawnDecision(True, Decimal("20"), "ok", "llm"))).run_once()
    assert report.spawned == [] and report.decided == 1
    [decision] = await _decisions(db, root)
    assert decision["spawn"] == 0
    assert reason_text(str(decision["reason"])) == (
        "ok (spawn refused: Only an active agent can spawn (this one is paused).)")


async def test_an_amount_above_the_child_limit_is_refused_with_its_reason(db: Database,
                                                                         manager: IsolatedAIManager) -> None:
    root = (await manager.create_user_main_agent(1, Decimal("100")))["agent_id"]
    await manager.record_agent_profit(root, Decimal("40"), "trade", "p1")
    policy = FixedPolicy(SpawnDecision(True, Decimal("20"), "go", "llm"))
    spawner = Spawner(db, manager, policy)
    ctx = SpawnContext(agent_id=root, generation=1, balance=Decimal(140), available=Decimal(140),
                       net_earnings=Decimal(40), spawnable=Decimal(30), suggested=Decimal(10),
                       min_child=Decimal(10), max_child=Decimal("8.000000"), live_children=0, max_children=3,
                       win_rate_pct=None, trades=0, drawdown_pct=0.0)
    await spawner._apply(ctx, policy.decision, 1, report := SpawnReport())
    assert report.decided == 1 and report.spawned == []
    [decision] = await _decisions(db, root)
    assert decision["spawn"] == 0 and decision["source"] == "llm"
    assert reason_text(str(decision["reason"])) == "go (refused: at most 8.000000 USDC may fund a child)"
