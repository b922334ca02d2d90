"""Tests of the risk worker: drawdown pauses (with unrealized P&L) and the per-user risk metrics."""

from __future__ import annotations

from decimal import Decimal

import pytest

from agents.autonomy.risk import RiskWorker
from agents.events import AgentPaused
from agents.ledger.manager import IsolatedAIManager
from bot.render import reason_text
from engine.events import CollectingSink
from storage import Database
from tests.test_agent_loop import ScriptedMarket

pytestmark = pytest.mark.both_backends  # SQLite and PostgreSQL


async def _agent_with_position(manager: IsolatedAIManager, market: ScriptedMarket, user_id: int = 1,
                               cost: str = "80") -> tuple[str, str]:
    token_id = market.add("TKN", price=10.0)
    agent = await manager.create_user_main_agent(user_id, Decimal("100"))
    await manager.open_position(agent["agent_id"], token_id=token_id, symbol="TKN", size=8.0, price=10.0,
                                cost=Decimal(cost))
    return agent["agent_id"], token_id


async def test_unrealized_crash_pauses_once_with_event(db: Database, manager: IsolatedAIManager,
                                                       events: CollectingSink) -> None:
    market = ScriptedMarket()
    agent_id, token_id = await _agent_with_position(manager, market)
    risk = RiskWorker(db, manager, market, events)
    assert (await risk.run_once()).paused == 0
    market.prices[token_id] = 2.0  # position worth ~16 of 80: equity ~36 of 100
    report = await risk.run_once()
    assert report.paused == 1
    info = await manager.get_agent_info(agent_id, 1)
    assert info["status"] == "paused" and reason_text(info["status_reason"]) == "risk: drawdown 64% > 50%"
    [event] = [e for e in events.events if isinstance(e, AgentPaused)]
    assert event.agent_id == agent_id and event.user_id == 1 and event.drawdown_pct == 64.05
    assert event.reason == info["status_reason"]
    assert (await risk.run_once()).paused == 0
    assert len([e for e in events.events if isinstance(e, AgentPaused)]) == 1


async def test_equity_peak_is_tracked_and_withdrawals_are_not_drawdowns(
        db: Database, manager: IsolatedAIManager, events: CollectingSink) -> None:
    market = ScriptedMarket()
    agent_id, token_id = await _agent_with_position(manager, market, cost="20")
    risk = RiskWorker(db, manager, market, events)
    market.prices[token_id] = 30.0  # +40 unrealized: equity ~139.8 becomes the peak
    await risk.run_once()
    # withdrawing most of the free money is not a loss
    await manager.withdraw(1, Decimal("70"))
    assert (await risk.run_once()).paused == 0
    # from that tracked peak (~69.8 after the withdrawal), a fall to ~34 is > 50%
    market.prices[token_id] = 4.5
    assert (await risk.run_once()).paused == 1
    assert (await manager.get_agent_info(agent_id, 1))["status"] == "paused"


async def test_missing_prices_count_positions_at_cost(db: Database, manager: IsolatedAIManager,
                                                      events: CollectingSink) -> None:
    market = ScriptedMarket()
    await _agent_with_position(manager, market)
    market.fail_prices = 1
    report = await RiskWorker(db, manager, market, events).run_once()
    assert report.checked == 1 and report.paused == 0 and report.price_error


async def test_user_risk_metrics(db: Database, manager: IsolatedAIManager) -> None:
    market = ScriptedMarket()
    risk = RiskWorker(db, manager, market, CollectingSink())
    agent = (await manager.create_user_main_agent(7, Decimal("100")))["agent_id"]
    assert await risk.user_risk_metrics(7) == {"sharpe": None, "max_drawdown_pct": None, "var_95_pct": None,
                                               "observations": 0}
    moves = ["10", "-22", "5", "3", "-4", "6", "2", "-1", "8", "-3", "4", "1"]
    for i, amount in enumerate(moves):
        await manager.record_agent_profit(agent, Decimal(amount), idempotency_key=f"m{i}")
    # spread the rows over distinct days
    rows = await db.fetchall("SELECT entry_id FROM ledger_entries WHERE kind IN ('profit','loss') ORDER BY entry_id")
    for day, row in enumerate(rows, start=1):
        await db.execute("UPDATE ledger_entries SET created_at = ? WHERE entry_id = ?",
                         (f"2025-01-{day:02d}T00:00:00.000Z", row["entry_id"]))
    metrics = await risk.user_risk_metrics(7)
    assert metrics["observations"] == 12
    assert metrics["sharpe"] is not None and metrics["sharpe"] > 0
    # the worst fall: 110 -> 88 = 20%
    assert metrics["max_drawdown_pct"] == 20.0
    assert metrics["var_95_pct"] is not None and 4 < metrics["var_95_pct"] < 20
    # other users are isolated
    assert (await risk.user_risk_metrics(8))["observations"] == 0
