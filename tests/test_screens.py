"""Read models per screen (agents/screens.py): owner-checked, typed, and truthful about strategies."""

from __future__ import annotations

from decimal import Decimal

import pytest

from agents.autonomy.agent_loop import AgentLoop
from agents.autonomy.risk import RiskWorker
from agents.design.strategy_bots import BotNotFoundError, StrategyBots
from agents.errors import AgentNotFoundError
from agents.ledger.manager import IsolatedAIManager
from agents.screens import Screens
from bot.guards import UserFacingError
from bot.handlers.bots import _bot_text
from bot.render import agent_text
from bot.selection import strategy_of
from engine.events import CollectingSink
from storage import Database
from storage.bots_repo import BotRepo
from tests.test_agent_loop import ScriptedMarket

pytestmark = pytest.mark.both_backends  # SQLite and PostgreSQL

ALICE, BOB = 1, 2


def _screens(db: Database, manager: IsolatedAIManager) -> Screens:
    market, sink = ScriptedMarket(), CollectingSink()
    return Screens(manager, RiskWorker(db, manager, market, sink), AgentLoop(db, manager, market, sink),
                   StrategyBots(db), remote_enabled=False)


async def _alice_with_a_position(manager: IsolatedAIManager) -> str:
    agent_id = (await manager.create_user_main_agent(ALICE, Decimal(100)))["agent_id"]
    await manager.open_position(agent_id, token_id="t-bsc", symbol="T", size=2.0, price=5.0, cost=Decimal(10))
    return agent_id


async def test_agent_screen_is_owner_checked_in_every_part(db: Database, manager: IsolatedAIManager) -> None:
    agent_id = await _alice_with_a_position(manager)
    screens = _screens(db, manager)
    mine = await screens.agent(ALICE, agent_id)
    assert [p["symbol"] for p in mine.positions] == ["T"] and mine.agent["agent_id"] == agent_id
    for forged in (agent_id, "ag0000000000", "", "x" * 500):
        with pytest.raises(AgentNotFoundError):
            await screens.agent(BOB, forged)
    # the lower-level reads refuse a foreign owner too (they used to take no user id at all)
    assert await manager.open_positions(agent_id, BOB) == []
    assert await manager.recent_trades(agent_id, user_id=BOB) == []
    assert len(await manager.open_positions(agent_id, ALICE)) == 1


async def test_invalid_stored_strategy_is_not_shown_as_the_default(db: Database,
                                                                   manager: IsolatedAIManager) -> None:
    agent_id = await _alice_with_a_position(manager)
    screens = _screens(db, manager)
    default = await screens.agent(ALICE, agent_id)
    assert default.strategy.is_default and "default (buy 20%" in agent_text(default)
    await manager.assign_strategy(agent_id, ALICE, None, '{"name": "broken", "buy": "not a rule"}')
    broken = await screens.agent(ALICE, agent_id)
    assert broken.strategy.invalid and not broken.strategy.is_default
    text = agent_text(broken)
    assert "no longer valid" in text and "default (buy" not in text


async def test_portfolio_screen_carries_the_tree_and_risk(db: Database, manager: IsolatedAIManager) -> None:
    await _alice_with_a_position(manager)
    screen = await _screens(db, manager).portfolio(ALICE)
    assert len(screen.agents) == 1 and screen.portfolio["total_balance"] == Decimal(100)
    assert screen.risk is not None and "sharpe" in screen.risk
    assert (await _screens(db, manager).portfolio(BOB)).agents == []


async def test_bot_screen_is_owned_and_tells_an_invalid_strategy_from_none(db: Database,
                                                                           manager: IsolatedAIManager) -> None:
    screens = _screens(db, manager)
    bot = await StrategyBots(db).create(ALICE, "Dip buyer")
    fresh = await screens.bot(ALICE, bot.bot_id)
    assert fresh.strategy.is_default and fresh.selected and "No strategy yet" in _bot_text(fresh)  # new = selected
    for forged in (bot.bot_id, str(bot.bot_id), "1 OR 1", -1, 2**70):
        with pytest.raises(BotNotFoundError):
            await screens.bot(BOB, forged)
    await BotRepo(db).set_strategy(ALICE, bot.bot_id, '{"buy": "garbage"}')
    broken = await screens.bot(ALICE, bot.bot_id)
    assert broken.strategy.invalid
    text = _bot_text(broken)
    assert "no longer valid" in text and "No strategy yet" not in text


async def test_an_invalid_bot_strategy_is_refused_by_name_where_it_would_run(db: Database) -> None:
    # backtest, simulate and "assign to an agent" all take the bot's strategy through strategy_of
    bot = await StrategyBots(db).create(ALICE, "Dip buyer")
    with pytest.raises(UserFacingError, match="has no strategy yet"):
        strategy_of(bot)
    await BotRepo(db).set_strategy(ALICE, bot.bot_id, '{"buy": "garbage"}')
    with pytest.raises(UserFacingError, match="no longer valid"):
        strategy_of(await StrategyBots(db).get(ALICE, bot.bot_id))
