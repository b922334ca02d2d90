"""Issue 13 through the bot, as a trader meets it: a strategy chat that does what was meant, tokens
checked when saved, what an agent waits for, chosen capital, "stop everything", per-token
performance, Refresh and 🏠 Menu on the reports, and a withdrawal that offers to keep agents alive."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from tests.bot_harness import BotHarness, running_bot
from tests.invariants import check_invariants

ALICE, BOB = 821, 822
FULL = "buy 10% PEPE on bsc when it drops 5% in 1h, stop loss 4%, take profit 12%"


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[BotHarness]:
    async with running_bot(tmp_path) as harness:
        yield harness
        harness.assert_clean()


async def _strategy(h: BotHarness, user: int) -> object:
    bot = (await h.services.bots.list(user))[0]
    return h.services.bots.strategy(bot)


async def test_a_full_description_replaces_and_says_so(h: BotHarness) -> None:
    await h.send(ALICE, "/newbot Alpha")
    await h.send(ALICE, FULL)
    replaced = await h.send(ALICE, "buy 10% SOL when it drops 3% in 4h")
    assert "it replaces the previous one" in replaced.text
    strategy = await _strategy(h, ALICE)
    assert strategy.token == "SOL" and strategy.chain == "solana"  # resolved against the market when saved
    assert strategy.risk_management.stop_loss_percent is None  # nothing carried over from PEPE
    edited = await h.send(ALICE, "stop loss 2%")  # an edit changes only what it names
    assert "Strategy updated" in edited.text
    strategy = await _strategy(h, ALICE)
    assert strategy.token == "SOL" and strategy.risk_management.stop_loss_percent == 2


async def test_start_over_clears_and_an_ambiguous_edit_asks(h: BotHarness) -> None:
    await h.send(ALICE, "/newbot Alpha")
    await h.send(ALICE, "buy PEPE when it drops 5% in 1h, sell when it drops 8% in 4h")
    before = await _strategy(h, ALICE)
    which = await h.send(ALICE, "change the drop to 6%")
    assert "buy and a sell condition" in which.text and await _strategy(h, ALICE) == before
    await h.send(ALICE, "change the sell drop to 6%")
    strategy = await _strategy(h, ALICE)
    assert [(c.signal, c.threshold) for c in strategy.conditions] == [("buy", 5), ("sell", 6)]
    cleared = await h.send(ALICE, "start over")
    assert "cleared" in cleared.text and await _strategy(h, ALICE) is None


async def test_with_means_and_and_a_sell_on_a_rise_is_a_take_profit(h: BotHarness) -> None:
    await h.send(ALICE, "/newbot Alpha")
    await h.send(ALICE, "buy PEPE when it drops 5% in 1h with volume spike 200%")
    assert (await _strategy(h, ALICE)).match == "all"
    await h.send(ALICE, "sell if it goes up 4 percent")
    strategy = await _strategy(h, ALICE)
    assert strategy.exit_conditions() == [] and strategy.risk_management.take_profit_percent == 4


async def test_a_token_the_market_does_not_have_is_refused_when_saved(h: BotHarness) -> None:
    await h.send(ALICE, "/newbot Alpha")
    refused = await h.send(ALICE, "buy 10% ETH when it drops 5% in 1h")
    assert "ETH" in refused.text and "demo market" in refused.text and "WETH" in refused.text
    assert await _strategy(h, ALICE) is None


async def test_the_agent_card_says_what_it_waits_for(h: BotHarness) -> None:
    await h.send(ALICE, "/automaton 100")
    agent_id = (await h.services.manager.get_main_agent(ALICE))["agent_id"]
    card = await h.send(ALICE, f"/ai_status {agent_id}")
    assert "👀 Watching" in card.text and "buys at a 3% drop over 1h" in card.text
    assert "to go" in card.text or "met on the last bar" in card.text
    assert "m:home" in card.callback_data()


async def test_backtest_capital_is_chosen_or_stated_and_the_button_keeps_the_selection(h: BotHarness) -> None:
    await h.send(ALICE, "/newbot Alpha")
    await h.send(ALICE, FULL)
    chosen = await h.send_all(ALICE, "/backtest PEPE 1h 30 $250", timeout=90)
    assert "Capital: 250.00 USDC" in (chosen[-1].caption or chosen[-1].text or "")
    for bad in ("$5", "$-10", "$1e12", "$0", "$1.1234567"):
        refused = await h.send(ALICE, f"/backtest {bad}")
        assert refused.text.startswith("⚠️") and "apital" in refused.text, (bad, refused.text)
    second = await h.send(ALICE, "/newbot Beta")
    assert "created and selected" in second.text
    await h.send(ALICE, "/automaton 400")
    alpha = (await h.services.bots.list(ALICE))[0]
    shown = await h.send(ALICE, "/bots")
    pressed = await h.press_button(ALICE, shown, "Alpha")
    result = await h.press_button(ALICE, pressed.message, "Backtest")
    await h.idle(90)
    photo = h.fake.messages(ALICE)[-1]
    assert "Capital: 400.00 USDC (your main agent's available balance)" in (photo.caption or "")
    selected = await h.services.bots.selected(ALICE)
    assert selected is not None and selected.name == "Beta" and alpha.name == "Alpha"  # not silently selected
    assert result.answer is not None


async def test_stopall_asks_then_pauses_and_sells_once(h: BotHarness) -> None:
    nothing = await h.send(ALICE, "/stopall")
    assert "Nothing is running" in nothing.text
    await h.send(ALICE, "/automaton 100")
    agent_id = (await h.services.manager.get_main_agent(ALICE))["agent_id"]
    await h.services.manager.open_position(agent_id, token_id="0x514ad355aec892241cbf8cb58844b7e352bea2f5-bsc",
                                           symbol="PEPE", size=1_000_000.0, price=0.0000125, cost=Decimal("12.5"))
    ask = await h.send(ALICE, "/stopall")
    assert "Active agents to pause: 1" in ask.text and "Open paper positions to sell at the current price: 1" \
        in ask.text
    kept = await h.press_button(ALICE, ask, "Keep running")
    assert kept.message is not None and "Nothing was stopped" in kept.message.text
    assert (await h.services.manager.get_agent_info(agent_id, ALICE))["status"] == "active"
    ask = await h.send(ALICE, "/stopall")
    done = await h.press_button(ALICE, ask, "Yes, stop everything")
    assert done.message is not None and "1 agent paused" in done.message.text and "1 position sold" in done.message.text
    assert (await h.services.manager.get_agent_info(agent_id, ALICE))["status"] == "paused"
    assert await h.services.manager.open_positions(agent_id) == []
    again = await h.press(ALICE, ask.message_id, ask.button("Yes")["callback_data"])  # a second press: nothing twice
    assert again.message is not None and "Nothing was running any more" in again.message.text
    await check_invariants(h.services.db)
    await h.drain_notifications()
    assert any("Sold PEPE" in (m.text or "") and "stopped by you" in (m.text or "") for m in h.fake.messages(ALICE))


async def test_reports_refresh_in_place_and_performance_is_per_token(h: BotHarness) -> None:
    await h.send(ALICE, "/automaton 100")
    agent_id = (await h.services.manager.get_main_agent(ALICE))["agent_id"]
    empty = await h.send(ALICE, "/performance")
    assert "No closed trades yet" in empty.text and empty.callback_data() == ["rf:performance:0", "m:home"]
    for symbol, exit_price in (("PEPE", 0.000015), ("SOL", 140.0)):
        price = 0.0000125 if symbol == "PEPE" else 150.0
        pid = await h.services.manager.open_position(agent_id, token_id=f"{symbol}-demo", symbol=symbol,
                                                     size=float(Decimal(10) / Decimal(str(price))), price=price,
                                                     cost=Decimal(10))
        proceeds = Decimal(10) * Decimal(str(exit_price)) / Decimal(str(price))
        await h.services.manager.close_position(pid, exit_price=exit_price, proceeds=proceeds.quantize(Decimal("1e-6")),
                                                reason="take_profit" if exit_price > price else "stop_loss")
    refreshed = await h.press(ALICE, empty.message_id, "rf:performance:0")
    text = refreshed.message.text
    assert text.index("PEPE") < text.index("SOL")  # best first
    assert "+2.00 USDC" in text and "-0.67 USDC" in text and "All tokens" in text
    trades = await h.send(ALICE, "/trades 5")
    assert trades.callback_data() == ["rf:trades:5", "m:home"]
    forged = await h.press(ALICE, trades.message_id, "rf:trades:999")  # bounded, never an error
    assert forged.message is not None and "Last 2 trades" in forged.message.text
    home = await h.press(ALICE, trades.message_id, "m:home")
    assert home.message is not None and "autonomous trading agent" in home.message.text
    assert (await h.press(ALICE, trades.message_id, "rf:nonsense:1")).answer.text  # stale/forged: a toast


async def test_withdraw_all_offers_to_keep_the_agent_trading(h: BotHarness) -> None:
    await h.send(ALICE, "/automaton 100")
    ask = await h.send(ALICE, "/withdraw all")
    assert "closed for good" in ask.text and "Or keep 1.00 USDC" in ask.text
    keep = await h.press_button(ALICE, ask, "Keep 1.00 USDC")
    assert keep.message is not None and "Withdraw <b>99.00 USDC</b>" in (keep.message.raw_text or "")
    assert "closed for good" not in keep.message.text and "Keep" not in str(keep.message.buttons())
    done = await h.press_button(ALICE, keep.message, "Confirm")
    assert done.message is not None and "Withdrew" in done.message.text
    agent = await h.services.manager.get_main_agent(ALICE)
    assert agent["status"] == "active" and agent["isolated_balance"] == Decimal("1.000000")
    await check_invariants(h.services.db)


async def test_forged_and_stale_presses_of_the_new_buttons_change_nothing(h: BotHarness) -> None:
    await h.send(ALICE, "/automaton 100")
    screen = await h.send(ALICE, "/settings")
    before = await h.snapshot()
    for data in ("lang:xx", "lang:en:1", "lang:", "sa:ok:1", "sa:yes", "wd:keep:1", "rf:profit", "rf:profit:-1",
                 "rf:trades:01", "m:home:1"):
        pressed = await h.press(ALICE, screen.message_id, data)
        assert pressed.answer.text, data  # the stale-button toast, never an action
    assert await h.snapshot() == before
    assert h.services.languages.chosen(ALICE) is None  # no language was chosen by a forged press
    agent = await h.services.manager.get_main_agent(ALICE)
    assert agent["status"] == "active"
    for command in ("/performance 5", "/status all", "/profit x"):
        refused = await h.send(ALICE, command)
        assert refused.text.startswith("⚠️") and "Usage" in refused.text, command
