"""/stopall's engine (issue 13): every active agent paused, every open paper position closed through
the agent loop's own exit fill, once; a token without a price stays open and is reported."""

from __future__ import annotations

from decimal import Decimal

import pytest

from agents.autonomy.agent_loop import AgentLoop
from agents.ledger.manager import IsolatedAIManager
from engine.events import CollectingSink, TradeClosed
from storage import Database
from tests.invariants import check_invariants
from tests.test_agent_loop import Clock, ScriptedMarket, dip_strategy, dip_then_open, make_agent

pytestmark = pytest.mark.both_backends  # SQLite and PostgreSQL


@pytest.fixture
def market() -> ScriptedMarket:
    return ScriptedMarket()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def loop(db: Database, manager: IsolatedAIManager, market: ScriptedMarket, events: CollectingSink,
         clock: Clock) -> AgentLoop:
    return AgentLoop(db, manager, market, events, clock=clock)


async def test_stop_all_pauses_and_closes_at_the_sell_fill_once(
        loop: AgentLoop, manager: IsolatedAIManager, market: ScriptedMarket, events: CollectingSink,
        db: Database, clock: Clock) -> None:
    tkn = market.add("TKN", price=100.0)
    agent_id = await make_agent(manager, 1, dip_strategy())
    other = await make_agent(manager, 2, dip_strategy())
    await dip_then_open(loop, market, clock, tkn)
    [pos] = await manager.open_positions(agent_id)
    market.prices[tkn] = 97.0
    report = await loop.stop_all(1)
    assert (report.paused, report.closed, report.left_open) == (1, 1, [])
    assert await manager.open_positions(agent_id) == []
    info = await manager.get_agent_info(agent_id, 1)
    assert info["status"] == "paused"
    fill = 97.0 * (1 - 0.001)  # the loop's sell fill: the price less slippage
    proceeds = Decimal(str(pos["size"] * fill * (1 - 0.003))).quantize(Decimal("0.000001"), rounding="ROUND_DOWN")
    assert report.pnl == pytest.approx(proceeds - pos["cost"], abs=Decimal("0.000002"))
    closed = [e for e in events.events if isinstance(e, TradeClosed)]
    assert [(e.agent_id, e.reason) for e in closed] == [(agent_id, "stopped")]
    # the other user's agent is untouched
    assert (await manager.get_agent_info(other, 2))["status"] == "active"
    assert len(await manager.open_positions(other)) == 1
    again = await loop.stop_all(1)  # nothing left: nothing booked twice
    assert (again.paused, again.closed) == (0, 0)
    await check_invariants(db)


async def test_a_position_without_a_price_stays_open_and_is_reported(
        loop: AgentLoop, manager: IsolatedAIManager, market: ScriptedMarket, db: Database, clock: Clock) -> None:
    tkn = market.add("TKN", price=100.0)
    agent_id = await make_agent(manager, 1, dip_strategy())
    await dip_then_open(loop, market, clock, tkn)
    del market.prices[tkn]
    report = await loop.stop_all(1)
    assert (report.paused, report.closed, report.left_open) == (1, 0, ["TKN"])
    assert len(await manager.open_positions(agent_id)) == 1
    await check_invariants(db)


async def test_profit_reports_the_fees_the_trades_paid(
        loop: AgentLoop, manager: IsolatedAIManager, market: ScriptedMarket, events: CollectingSink,
        db: Database, clock: Clock) -> None:
    from agents.autonomy.risk import RiskWorker
    from agents.design.strategy_bots import StrategyBots
    from agents.screens import Screens
    from engine.events import TradeOpened

    tkn = market.add("TKN", price=100.0)
    await make_agent(manager, 1, dip_strategy())
    await dip_then_open(loop, market, clock, tkn)
    market.prices[tkn] = 97.0
    await loop.stop_all(1)
    paid = sum(e.fee for e in events.events if isinstance(e, TradeOpened | TradeClosed))
    screens = Screens(manager, RiskWorker(db, manager, market, events), loop, StrategyBots(db), remote_enabled=False)
    total = (await screens.profit(1)).total
    assert total.trades == 1 and paid > 0
    assert total.fees == pytest.approx(paid, abs=Decimal("0.000003"))  # entry + exit fee, to the micro-USDC
