"""/profit and /trades (issue 13, item 8): figures that agree with the ledger and /ai_portfolio."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from tests.bot_harness import BotHarness, running_bot

ALICE, BOB = 621, 622


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[BotHarness]:
    async with running_bot(tmp_path) as harness:
        yield harness
        harness.assert_clean()


async def _trade(h: BotHarness, agent_id: str, cost: int, proceeds: int, reason: str, price: float) -> None:
    manager = h.services.manager
    position = await manager.open_position(agent_id, token_id="0xpepe-bsc", symbol="PEPE", size=1000.0,
                                           price=price, cost=cost)
    assert position is not None
    await manager.close_position(position, exit_price=price * proceeds / cost, proceeds=proceeds, reason=reason)


async def test_profit_and_trades_agree_with_the_portfolio(h: BotHarness) -> None:
    await h.send(ALICE, "/automaton 1000")
    agent = (await h.services.manager.get_main_agent(ALICE))["agent_id"]
    await _trade(h, agent, 100, 130, "take_profit", 0.0000125)
    await _trade(h, agent, 100, 90, "stop_loss", 0.0000130)
    await _trade(h, agent, 50, 70, "signal", 0.0000120)
    profit = await h.send(ALICE, "/profit")
    assert "Closed trades: 3 · win rate 67% · profit factor 5.00" in profit.text  # won 50, lost 10
    assert "P&L: +40.00 USDC (won 50.00 USDC, lost 10.00 USDC)" in profit.text
    assert "Best +30.00 · worst -10.00 USDC" in profit.text
    portfolio = await h.send(ALICE, "/ai_portfolio")
    earnings = await h.services.manager.get_main_agent(ALICE)
    assert earnings["total_earnings"] == Decimal(40) and "Total earnings: +40.00 USDC" in portfolio.text
    trades = await h.send(ALICE, "/trades 2")
    assert "Last 2 trades" in trades.text and trades.text.count("PEPE") == 2
    assert "+20.00 USDC (sell signal)" in trades.text and "0.000012" in trades.text and "e-0" not in trades.text
    assert "Bought" not in (await h.send(BOB, "/profit")).text  # another user's trades are not theirs
    assert "No closed trades yet" in (await h.send(BOB, "/trades")).text


@pytest.mark.parametrize("args", ["0", "-1", "31", "abc", "1e3", "5 6", "<b>"])
async def test_bad_trade_counts_get_the_usage_and_change_nothing(h: BotHarness, args: str) -> None:
    before = await h.snapshot()
    reply = await h.send(ALICE, f"/trades {args}")
    assert reply.text.startswith("⚠️") and "Usage: /trades [n]" in reply.text
    assert await h.snapshot() == before


async def test_profit_without_trades_says_what_to_expect(h: BotHarness) -> None:
    await h.send(ALICE, "/automaton 100")
    reply = await h.send(ALICE, "/profit")
    assert "No closed trades yet" in reply.text and "/ai_status" in reply.text


async def test_daily_weekly_monthly_group_by_calendar_period(h: BotHarness) -> None:
    from datetime import UTC, datetime, timedelta

    await h.send(ALICE, "/automaton 1000")
    agent = (await h.services.manager.get_main_agent(ALICE))["agent_id"]
    for proceeds in (130, 90, 170):
        await _trade(h, agent, 100, proceeds, "signal", 0.5)
    today = datetime.now(UTC).replace(hour=12)
    days = [today, today, today - timedelta(days=2)]
    ids = [r[0] for r in await h.services.db.fetchall("SELECT trade_id FROM trades ORDER BY trade_id")]
    for trade_id, day in zip(ids, days, strict=True):
        await h.services.db.execute("UPDATE trades SET closed_at = ? WHERE trade_id = ?",
                                    (day.strftime("%Y-%m-%dT%H:%M:%S.000Z"), trade_id))
    daily = await h.send(ALICE, "/daily 3")
    lines = [line for line in daily.text.splitlines() if line.startswith("• ")]
    assert len(lines) == 3
    assert lines[0].endswith("+20.00 USDC · 2 trades")  # today: +30 and -10
    assert lines[1].endswith("no trades") and lines[2].endswith("+70.00 USDC · 1 trade")
    assert "Over these 3 days: +90.00 USDC" in daily.text
    monthly = await h.send(ALICE, "/monthly 2")
    assert "Monthly profit" in monthly.text and "Over these 2 months: +90.00 USDC" in monthly.text
    weekly = await h.send(ALICE, "/weekly")
    assert "Weekly profit" in weekly.text and weekly.text.count("• ") == 4
    bad = await h.send(ALICE, "/daily 99")
    assert bad.text.startswith("⚠️") and "Usage: /daily [n]" in bad.text


async def test_status_marks_open_positions_at_the_current_price(h: BotHarness) -> None:
    weth = "0x79d77e7271ce1e06641411b3d63e4d4ceb6524b8-eth"  # the demo market's WETH
    await h.send(ALICE, "/automaton 1000")
    agent = (await h.services.manager.get_main_agent(ALICE))["agent_id"]
    assert "None open" in (await h.send(ALICE, "/status")).text
    price = float((await h.services.market.get_prices([weth]))[weth].price_usd)
    await h.services.manager.open_position(agent, token_id=weth, symbol="WETH", size=0.01, price=price,
                                           cost=Decimal("40"), stop_loss=price * 0.97, take_profit=price * 1.1)
    await h.services.manager.open_position(agent, token_id="0xgone-bsc", symbol="GONE", size=5.0, price=2.0,
                                           cost=Decimal("10"))
    status = await h.send(ALICE, "/status")
    weth_lines = status.text.split("• ")[1]
    assert "WETH" in weth_lines and "now " in weth_lines
    marked = re.search(r"unrealized ([+-]?[0-9.]+) USDC", weth_lines)
    assert marked is not None and -1 < float(marked.group(1)) < 0  # bought at the price: the exit costs only
    assert "stop " in weth_lines and "target " in weth_lines and "e-0" not in status.text
    gone = status.text.split("• ")[2]
    assert "GONE" in gone and "price unavailable, P&L unknown" in gone and "stop — · target —" in gone


@pytest.mark.parametrize(("command", "usage"), [("/profit all", "/profit"), ("/status PEPE", "/status"),
                                                ("/weekly -1", "/weekly [n]"), ("/monthly abc", "/monthly [n]"),
                                                ("/daily 0", "/daily [n]"), ("/weekly 27", "/weekly [n]")])
async def test_bad_report_arguments_get_the_usage_and_change_nothing(h: BotHarness, command: str,
                                                                     usage: str) -> None:
    before = await h.snapshot()
    reply = await h.send(ALICE, command)
    assert reply.text.startswith("⚠️") and f"Usage: {usage}" in reply.text
    assert await h.snapshot() == before
