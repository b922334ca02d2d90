"""The spawn worker (SPEC §7 step 5): decide, for agents with new earnings, whether to spawn.

An agent is looked at when it is active and has a positive `profit` / `sync_adjust` ledger row
newer than its last stored spawn decision (and, within this process, newer than the last row
this worker already looked at). For each such agent:

1. `manager.spawn_bounds(agent_id)`; not eligible → nothing is decided (and nothing stored);
2. eligible → a `SpawnContext` (balance, earnings, bounds, win rate over closed trades, drawdown
   from the ledger peak) goes to `SpawnPolicy.decide` (LLM or rule);
3. every decision is stored with its reason: a spawn through `manager.spawn_child_agent(...,
   source=decision.source)` (which records it and publishes `ChildSpawned`), anything else through
   `manager.record_spawn_decision`. The amount is clamped again to [min_child, max_child] here
   (defence in depth). The spawn's idempotency key names the ledger row that triggered it, so a
   run replayed after a crash spawns once. A refusal here is stored as a reason code around the
   policy's reason (`spawn_worker.*`, see `agents.ledger.reasons`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from decimal import Decimal

from agents.autonomy.spawn_policy import SpawnContext, SpawnDecision, SpawnPolicy
from agents.errors import AgentError
from agents.ledger.manager import IsolatedAIManager
from agents.ledger.reasons import nested, reason
from agents.ledger.rules import clamp_child
from engine.metrics import drawdown
from storage import Database
from storage import spawns_repo as spawns
from storage.money import from_micro

__all__ = ["SpawnReport", "Spawner"]

logger = logging.getLogger(__name__)

@dataclass
class SpawnReport:
    """What one spawn pass did."""

    considered: int = 0
    decided: int = 0
    spawned: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class Spawner:
    """Runs the spawn decision for agents with new earnings; see the module docstring."""

    def __init__(self, db: Database, manager: IsolatedAIManager, policy: SpawnPolicy) -> None:
        self.db = db
        self.manager = manager
        self.policy = policy
        self._seen: dict[str, int] = {}

    async def run_once(self) -> SpawnReport:
        """One pass; returns the ids of the children spawned and how many decisions were stored."""
        report = SpawnReport()
        rows = await self.db.read(spawns.candidates)
        for row in rows:
            agent_id, last_entry = row["agent_id"], int(row["last_entry"])
            if self._seen.get(agent_id, -1) >= last_entry:
                continue
            report.considered += 1
            try:
                await self._consider(agent_id, row["generation"], row["isolated_balance"],
                                     row["peak_balance"], last_entry, report)
            except AgentError as exc:
                report.errors.append(f"{agent_id}: {exc}")
            self._seen[agent_id] = last_entry
        return report

    async def _consider(self, agent_id: str, generation: int, balance: int, peak: int, last_entry: int,
                        report: SpawnReport) -> None:
        bounds = await self.manager.spawn_bounds(agent_id)
        if not bounds["eligible"]:
            return
        rules = self.manager.rules
        count, wins = await self.db.read(spawns.trade_record, agent_id)
        win_rate = (100.0 * wins / count) if count else None
        fall = drawdown(peak, balance) * 100.0
        ctx = SpawnContext(
            agent_id=agent_id, generation=generation, balance=from_micro(balance),
            available=bounds["available"], net_earnings=bounds["net_earnings"], spawnable=bounds["spawnable"],
            suggested=bounds["suggested"], min_child=bounds["min_child"], max_child=bounds["max_child"],
            live_children=int(bounds["live_children"]), max_children=rules.max_children,
            win_rate_pct=win_rate, trades=count, drawdown_pct=round(fall, 2))
        decision = await self.policy.decide(ctx)
        await self._apply(ctx, decision, last_entry, report)

    async def _apply(self, ctx: SpawnContext, decision: SpawnDecision, last_entry: int,
                     report: SpawnReport) -> None:
        amount = clamp_child(decision.amount, ctx.min_child, ctx.max_child)
        if not decision.spawn or amount < ctx.min_child:
            why = decision.reason if not decision.spawn else reason(
                "spawn_worker.above_max_child", decision=nested(decision.reason), max_child=ctx.max_child)
            await self.manager.record_spawn_decision(ctx.agent_id, False, Decimal(0), why, decision.source)
            report.decided += 1
            return
        try:
            child = await self.manager.spawn_child_agent(
                ctx.agent_id, amount, decision.reason, idempotency_key=f"spawn:{ctx.agent_id}:{last_entry}",
                source=decision.source)
        except AgentError as exc:
            # the agent changed between the check and the spawn (a trade locked funds, a user paused it)
            why = reason("spawn_worker.refused", decision=nested(decision.reason), error=exc)
            await self.manager.record_spawn_decision(ctx.agent_id, False, amount, why, decision.source)
            report.decided += 1
            return
        report.decided += 1
        report.spawned.append(child["agent_id"])
