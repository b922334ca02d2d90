"""The first hour of a new user (issue 13): an amount is never dropped in silence, a closed
automaton says so and can start again with its history kept, the new agent says what it watches
and when it last looked, and a mistyped command gets a suggestion."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.bot_harness import BotHarness, running_bot

ALICE = 611


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[BotHarness]:
    async with running_bot(tmp_path) as harness:
        yield harness
        harness.assert_clean()


async def test_automaton_with_an_amount_and_an_agent_offers_the_deposit(h: BotHarness) -> None:
    await h.send(ALICE, "/automaton 100")
    before = await h.snapshot()
    offer = await h.send(ALICE, "/automaton 250")
    assert "already have an automaton" in offer.text and "/deposit 250" in offer.text
    assert await h.snapshot() == before  # nothing happened yet
    pressed = await h.press_button(ALICE, offer, "Deposit 250")
    assert pressed.last is not None and "350.00 USDC" in pressed.last.text
    odd = await h.send(ALICE, "/automaton 12.5")
    assert "already have an automaton" in odd.text and "/deposit 100" in odd.text


async def test_a_closed_automaton_says_so_and_a_new_one_can_start(h: BotHarness) -> None:
    await h.send(ALICE, "/automaton 100")
    ask = await h.send(ALICE, "/withdraw all")
    assert "closed for good" in ask.text and "start a new automaton" in ask.text
    await h.press_button(ALICE, ask, "Confirm")
    closed = await h.send(ALICE, "/automaton")
    assert "was closed" in closed.text and "yet" not in closed.text
    again = await h.send(ALICE, "/automaton 50")
    assert "live" in again.text
    portfolio = await h.send(ALICE, "/ai_portfolio")
    assert portfolio.text.count(" G1 ") == 2 and "⚪" in portfolio.text  # the closed one is kept in the history


async def test_the_first_hour_is_visible(h: BotHarness) -> None:
    created = await h.send(ALICE, "/automaton 100")
    assert "⏱" in created.text and "WETH" in created.text and "1h" in created.text  # what it watches, and when
    agent_id = (await h.services.manager.get_main_agent(ALICE))["agent_id"]
    card = await h.send(ALICE, f"/ai_status {agent_id}")
    assert "Strategy: default (buy" in card.text and "WETH" in card.text
    assert "Last market check: not yet since the bot started (every" in card.text  # workers paused here
    await h.services.agent_loop.tick()
    card = await h.send(ALICE, f"/ai_status {agent_id}")
    assert "Last market check: " in card.text and " s ago (every" in card.text


@pytest.mark.parametrize(("typed", "meant"), [("/protfolio", "/ai_portfolio"), ("/statu", "/status"),
                                              ("/portfolio", "/ai_portfolio"), ("/depositt", "/deposit"),
                                              ("/backtets", "/backtest")])
async def test_a_mistyped_command_gets_a_suggestion(h: BotHarness, typed: str, meant: str) -> None:
    reply = await h.send(ALICE, typed)
    assert f"Did you mean {meant}?" in reply.text and "/help" in reply.text


async def test_nonsense_gets_no_wrong_suggestion(h: BotHarness) -> None:
    reply = await h.send(ALICE, "/xyzzy")
    assert "I don't know that command" in reply.text and "Did you mean" not in reply.text
