"""The Telegram layer through the Bot API, as users use it: the real application, the strict fake.

Every test ends with `assert_clean()` (in the fixture): the bot never made a malformed call
(bad HTML, overlong text, bad button data...) and answered every button press.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bot.commands import ADMIN_COMMANDS, COMMANDS
from bot.guards import PRIVATE_ONLY, UserFacingError
from tests.bot_harness import ADMIN_ID, DEFAULT_TIMEOUT, BotHarness, running_bot
from tests.fakes.ave_api import AveFake

ALICE = 501
BOB = 502
STRATEGY_TEXT = "buy 10% PEPE on bsc when it drops 5% in an hour, stop loss 3%, take profit 10%"


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[BotHarness]:
    async with running_bot(tmp_path) as harness:
        yield harness
        harness.assert_clean()


async def _main_agent(h: BotHarness, user_id: int, amount: int = 1000) -> str:
    """Create the user's main agent directly (the user has talked to the bot before)."""
    h.fake.add_chat(user_id)
    agent = await h.services.manager.create_user_main_agent(user_id, amount)
    return str(agent["agent_id"])


async def _spawn(h: BotHarness, parent: str, amount: int, reason: str) -> str:
    """Spawn a child through the manager and wait for its notification to be delivered."""
    child = await h.services.manager.spawn_child_agent(parent, amount, reason)
    await h.drain_notifications()
    return str(child["agent_id"])


async def _grow_tree(h: BotHarness, user_id: int) -> list[str]:
    """A main agent with 3 children and 6 grandchildren (10 agents), built through the manager."""
    manager = h.services.manager
    root = await _main_agent(h, user_id, 10_000)
    await manager.record_agent_profit(root, 3000, "test profit")
    ids = [root]
    for i in range(3):
        child = await manager.spawn_child_agent(root, 500, f"grow {i}")
        ids.append(child["agent_id"])
        await manager.record_agent_profit(child["agent_id"], 200, "test profit")
        for j in range(2):
            grandchild = await manager.spawn_child_agent(child["agent_id"], 50, f"grow {i}.{j}")
            ids.append(grandchild["agent_id"])
    await h.drain_notifications()
    return ids


# ------------------------------------------------------------------------------------ start, help


async def test_start_replies_in_html_with_the_main_menu(h: BotHarness) -> None:
    reply = await h.send(ALICE, "/start", first_name="Alice <&>")
    assert reply.parse_mode == "HTML"
    assert "Hi Alice <&>!" in reply.text  # the user's name is escaped, shown verbatim
    assert "autonomous trading agent" in reply.text
    assert any(e["type"] == "bold" for e in reply.entities)
    assert reply.callback_data() == ["m:automaton", "m:portfolio", "m:bots", "m:backtest", "m:settings",
                                     "m:help"]
    users = await h.services.db.fetchval("SELECT COUNT(*) FROM users WHERE user_id = ?", (ALICE,))
    assert users == 1
    # The application's Defaults reach the raw reply calls too: HTML, and no link previews.
    assert h.fake.sent("sendMessage", ALICE)[-1].params["link_preview_options"] == {"is_disabled": True}


async def test_a_user_is_registered_once_and_only_from_a_private_chat(h: BotHarness,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    registered: list[int] = []
    ensure = h.services.users.ensure

    async def counting(user_id: int, *args: Any, **kwargs: Any) -> None:
        registered.append(user_id)
        await ensure(user_id, *args, **kwargs)

    monkeypatch.setattr(h.services.users, "ensure", counting)
    menu = await h.send(ALICE, "/start", first_name="Alice")
    await h.send(ALICE, "/help")
    await h.press(ALICE, menu.message_id, "m:help")
    await h.send(ALICE, "/nonsense")  # the fallback handlers see registered users too
    assert registered == [ALICE]
    row = await h.services.db.fetchone("SELECT first_name FROM users WHERE user_id = ?", (ALICE,))
    assert row is not None and row[0] == "Alice"
    # Registration runs first and stops nothing: a group chat is still refused, and registers nobody.
    refused = await h.send(BOB, "/start", chat_type="group")
    assert refused.text == PRIVATE_ONLY
    assert registered == [ALICE]
    assert await h.services.db.fetchval("SELECT COUNT(*) FROM users WHERE user_id = ?", (BOB,)) == 0


async def test_main_menu_buttons_open_their_screens(h: BotHarness) -> None:
    menu = await h.send(ALICE, "/start")
    expected = {"m:automaton": "You don't have an automaton yet", "m:portfolio": "Your AI portfolio",
                "m:bots": "no strategy bots yet", "m:settings": "Notifications"}
    for data, text in expected.items():
        press = await h.press(ALICE, menu.message_id, data)
        assert press.new, data
        assert text in press.new[-1].text
    help_press = await h.press(ALICE, menu.message_id, "m:help")
    assert help_press.message is not None and "/ai_portfolio" in help_press.message.text


async def test_help_lists_every_command_and_admin_commands_only_for_admins(h: BotHarness) -> None:
    reply = await h.send(ALICE, "/help")
    for name, _args, _desc in COMMANDS:
        assert f"/{name}" in reply.text
    assert "/automaton [amount]" in reply.text and "/withdraw <amount|all>" in reply.text
    for name, _args, _desc in ADMIN_COMMANDS:
        assert f"/{name}" not in reply.text
    admin = await h.send(ADMIN_ID, "/help")
    for name, _args, _desc in ADMIN_COMMANDS:
        assert f"/{name}" in admin.text


async def test_the_command_menu_is_registered_at_start(h: BotHarness) -> None:
    registered = [c["command"] for c in h.fake.my_commands()]
    assert registered == [name for name, _a, _d in COMMANDS]
    assert all(c["description"] for c in h.fake.my_commands())


async def test_unknown_command_gets_a_clear_reply(h: BotHarness) -> None:
    reply = await h.send(ALICE, "/frobnicate now")
    assert "I don't know that command" in reply.text and "/help" in reply.text


# ------------------------------------------------------------------------------------ automaton


async def test_automaton_without_agent_offers_presets_and_a_preset_creates_it(h: BotHarness) -> None:
    offer = await h.send(ALICE, "/automaton")
    assert "You don't have an automaton yet" in offer.text
    assert offer.callback_data() == ["new:50", "new:100", "new:500", "new:1000"]
    press = await h.press(ALICE, offer.message_id, "new:100")
    assert press.new and "Your automaton is live" in press.new[-1].text
    agent = await h.services.manager.get_main_agent(ALICE)
    assert agent is not None and agent["isolated_balance"] == Decimal(100)
    # The same preset pressed again shows the agent instead of creating a second one.
    again = await h.press(ALICE, offer.message_id, "new:500")
    assert again.new and agent["agent_id"] in again.new[-1].text
    count = await h.services.db.fetchval("SELECT COUNT(*) FROM automaton_agents WHERE user_id = ?", (ALICE,))
    assert count == 1


async def test_automaton_with_amount_creates_and_a_second_call_shows_the_same_agent(h: BotHarness) -> None:
    created = await h.send(ALICE, "/automaton 250")
    assert "Your automaton is live" in created.text and "250.00 USDC" in created.text
    agent = await h.services.manager.get_main_agent(ALICE)
    assert agent is not None
    assert f"ap:{agent['agent_id']}" in created.callback_data()
    shown = await h.send(ALICE, "/automaton 100")
    assert "is live" not in shown.text
    assert agent["agent_id"] in shown.text and "250.00 USDC" in shown.text
    rows = await h.services.db.fetchall("SELECT agent_id, isolated_balance FROM automaton_agents")
    assert [tuple(r) for r in rows] == [(agent["agent_id"], 250_000_000)]


async def test_pause_and_resume_buttons(h: BotHarness) -> None:
    shown = await h.send(ALICE, "/automaton 100")
    agent_id = (await h.services.manager.get_main_agent(ALICE))["agent_id"]
    paused = await h.press(ALICE, shown.message_id, f"ap:{agent_id}")
    assert paused.answer.text is None  # answered before the work; the edited screen shows the result
    assert paused.message is not None and "Status: ⏸ paused" in paused.message.text
    assert f"ar:{agent_id}" in paused.message.callback_data()
    assert (await h.services.manager.get_agent_info(agent_id, ALICE))["status"] == "paused"
    card = await h.send(ALICE, f"/ai_status {agent_id}")
    assert "Status: ⏸ paused (paused by you)" in card.text  # the stored reason code, in words
    resumed = await h.press(ALICE, shown.message_id, f"ar:{agent_id}")
    assert resumed.message is not None and "Status: 🟢 active" in resumed.message.text
    assert (await h.services.manager.get_agent_info(agent_id, ALICE))["status"] == "active"
    assert "Status: 🟢 active (resumed)" in (await h.send(ALICE, f"/ai_status {agent_id}")).text


async def test_deposit_adds_capital_and_bad_deposits_change_nothing(h: BotHarness) -> None:
    await h.send(ALICE, "/automaton 250")
    ok = await h.send(ALICE, "/deposit 50")
    assert "Deposited" in ok.text and "300.00 USDC" in ok.text
    before = await h.snapshot()
    for bad, why in (("5", "10"), ("2000000", "1000000"), ("abc", "number"), ("-20", ""), ("1 2", "Usage")):
        reply = await h.send(ALICE, f"/deposit {bad}")
        assert reply.text.startswith("⚠️"), bad
        assert why in reply.text.replace(",", ""), (bad, reply.text)
    assert await h.snapshot() == before
    usage = await h.send(ALICE, "/deposit")
    assert "Usage" in usage.text and usage.callback_data()[0] == "dep:50"
    pressed = await h.press(ALICE, usage.message_id, "dep:50")
    assert pressed.new and "350.00 USDC" in pressed.new[-1].text
    agent = await h.services.manager.get_main_agent(ALICE)
    assert agent["isolated_balance"] == Decimal(350)


# ------------------------------------------------------------------------------------ portfolio


async def test_portfolio_totals_tree_buttons_and_refresh_in_place(h: BotHarness) -> None:
    manager = h.services.manager
    root = await _main_agent(h, ALICE, 1000)
    await manager.record_agent_profit(root, 100, "test profit")
    child = await _spawn(h, root, 40, "test spawn")
    reply = await h.send(ALICE, "/ai_portfolio")
    assert "Total balance: 1,100.00 USDC" in reply.text
    assert "Total earnings: +100.00 USDC" in reply.text
    assert "Agents: 2" in reply.text
    assert "unrealized" in reply.text
    lines = reply.text.splitlines()
    root_line = next(line for line in lines if root in line)
    child_line = next(line for line in lines if child in line)
    assert not root_line.startswith(" ") and child_line.startswith("   └ ")
    assert reply.callback_data() == [f"ag:{root}:0", f"ag:{child}:0", "pf:0", "wd:ask", "m:home"]

    await manager.record_agent_profit(root, 10, "more profit")
    refreshed = await h.press(ALICE, reply.message_id, "pf:0")
    assert refreshed.new == []  # edited in place, no new message
    assert refreshed.message is not None and refreshed.message.edited
    assert "Total balance: 1,110.00 USDC" in refreshed.message.text


async def test_portfolio_paginates_more_than_eight_agents(h: BotHarness) -> None:
    ids = await _grow_tree(h, ALICE)
    assert len(ids) == 10
    reply = await h.send(ALICE, "/ai_portfolio")
    assert "Agents: 10" in reply.text and "(page 1/2)" in reply.text
    # nine spawn notifications, coalesced into digests when queued together
    assert sum(m.text.count("Child agent spawned") for m in h.fake.messages(ALICE) if m.text) == 9
    agent_buttons = [d for d in reply.callback_data() if d.startswith("ag:")]
    assert len(agent_buttons) == 8
    assert "pf:1" in reply.callback_data() and "wd:ask" in reply.callback_data()
    # A page past the end shows the last page rather than an empty one.
    past = await h.press(ALICE, reply.message_id, "pf:7")
    assert past.message is not None and "(page 2/2)" in past.message.text
    await h.press(ALICE, reply.message_id, "pf:0")
    page2 = await h.press(ALICE, reply.message_id, "pf:1")
    assert page2.new == [] and page2.message is not None
    assert "(page 2/2)" in page2.message.text
    second = [d for d in page2.message.callback_data() if d.startswith("ag:")]
    assert len(second) == 2 and all(d.endswith(":1") for d in second)
    shown = {d.split(":")[1] for d in agent_buttons + second}
    assert shown == set(ids)
    assert "pf:0" in page2.message.callback_data()  # Prev


async def test_agent_button_shows_details_and_back_returns_to_the_portfolio(h: BotHarness) -> None:
    manager = h.services.manager
    root = await _main_agent(h, ALICE, 1000)
    await manager.record_agent_profit(root, 100, "test profit")
    child = await _spawn(h, root, 40, "because <it> & earned")
    portfolio = await h.send(ALICE, "/ai_portfolio")
    details = await h.press(ALICE, portfolio.message_id, f"ag:{child}:0")
    assert details.new == [] and details.message is not None
    text = details.message.text
    assert "Generation: 2" in text and f"Parent: {root}" in text
    assert "Spawned because: because <it> & earned" in text
    assert "pf:0" in details.message.callback_data()
    back = await h.press(ALICE, portfolio.message_id, "pf:0")
    assert back.new == [] and back.message is not None
    assert "Your AI portfolio" in back.message.text and f"ag:{child}:0" in back.message.callback_data()


async def test_ai_status_with_and_without_an_id(h: BotHarness) -> None:
    none = await h.send(ALICE, "/ai_status")
    assert "no agents yet" in none.text
    root = await _main_agent(h, ALICE, 500)
    listed = await h.send(ALICE, "/ai_status")
    assert "Choose an agent" in listed.text and f"ag:{root}:0" in listed.callback_data()
    one = await h.send(ALICE, f"/ai_status {root.upper()}")
    assert f"Agent {root}" in one.text and "Generation: 1" in one.text and "Balance: 500.00 USDC" in one.text
    assert "Strategy: default" in one.text
    from_button = await h.press(ALICE, listed.message_id, f"ag:{root}:0")
    assert from_button.message is not None and "Generation: 1" in from_button.message.text


# ------------------------------------------------------------------------------------ withdraw


async def test_withdraw_asks_then_moves_exactly_the_amount(h: BotHarness) -> None:
    manager = h.services.manager
    root = await _main_agent(h, ALICE, 1000)
    await manager.record_agent_profit(root, 100, "test profit")
    await _spawn(h, root, 33, "test spawn")
    ask = await h.send(ALICE, "/withdraw 10")
    assert "Withdraw 10.00 USDC" in ask.text and "1,100.00 USDC" in ask.text
    assert await h.services.db.fetchval("SELECT COUNT(*) FROM ledger_entries WHERE kind = 'withdraw'") == 0
    confirm = next(d for d in ask.callback_data() if d.startswith("wd:ok:"))
    done = await h.press(ALICE, ask.message_id, confirm)
    assert done.message is not None and "Withdrew 10.00 USDC" in done.message.text
    portfolio = await manager.get_user_ai_portfolio(ALICE)
    assert portfolio["total_balance"] == Decimal("1090")
    parts = await h.services.db.fetchall("SELECT amount FROM ledger_entries WHERE kind = 'withdraw'")
    assert len(parts) == 2 and sum(r["amount"] for r in parts) == -10_000_000
    # Pressing the same confirmation again withdraws nothing more, and says it was done.
    again = await h.press(ALICE, ask.message_id, confirm)
    assert again.message is not None and "already done" in again.message.text and "Withdrew 10.00" in again.message.text
    assert (await manager.get_user_ai_portfolio(ALICE))["total_balance"] == Decimal("1090")


async def test_withdraw_confirms_the_exact_amount_and_takes_exactly_that(h: BotHarness) -> None:
    await _main_agent(h, ALICE, 200)
    tiny = await h.send(ALICE, "/withdraw 9.999999")
    assert "Withdraw 9.999999 USDC" in tiny.text  # not rounded to 10.00
    ask = await h.send(ALICE, "/withdraw all")
    assert "Withdraw 200.00 USDC" in ask.text
    await h.send(ALICE, "/deposit 50")  # money arrives between the question and the press
    done = await h.press(ALICE, ask.message_id, next(d for d in ask.callback_data() if d.startswith("wd:ok:")))
    assert done.message is not None and "Withdrew 200.00 USDC" in done.message.text  # what it promised
    assert (await h.services.manager.get_user_ai_portfolio(ALICE))["total_balance"] == Decimal(50)


async def test_withdraw_warns_when_an_agent_would_fall_below_the_minimum(h: BotHarness) -> None:
    root = await _main_agent(h, ALICE, 100)
    ask = await h.send(ALICE, "/withdraw 99.5")
    assert "below the 1.00 USDC minimum" in ask.text and root in ask.text
    calm = await h.send(ALICE, "/withdraw 50")
    assert "minimum" not in calm.text


async def test_withdraw_cancel_changes_nothing(h: BotHarness) -> None:
    await _main_agent(h, ALICE, 200)
    ask = await h.send(ALICE, "/withdraw 50")
    before = await h.snapshot()
    cancel = next(d for d in ask.callback_data() if d.startswith("wd:no:"))
    confirm = next(d for d in ask.callback_data() if d.startswith("wd:ok:"))
    cancelled = await h.press(ALICE, ask.message_id, cancel)
    assert cancelled.message is not None and "cancelled" in cancelled.message.text
    late = await h.press(ALICE, ask.message_id, confirm)
    assert len(late.new) == 1 and "expired" in late.new[0].text
    assert await h.snapshot() == before


async def test_withdraw_all_empties_the_tree(h: BotHarness) -> None:
    await _main_agent(h, ALICE, 200)
    ask = await h.send(ALICE, "/withdraw all")
    assert "Withdraw 200.00 USDC" in ask.text
    done = await h.press(ALICE, ask.message_id, next(d for d in ask.callback_data() if d.startswith("wd:ok:")))
    assert done.message is not None and "Withdrew 200.00 USDC" in done.message.text
    portfolio = await h.services.manager.get_user_ai_portfolio(ALICE)
    assert portfolio["total_balance"] == 0 and portfolio["agent_count"] == 0


async def test_portfolio_withdraw_button_offers_all(h: BotHarness) -> None:
    await _main_agent(h, ALICE, 120)
    portfolio = await h.send(ALICE, "/ai_portfolio")
    ask = await h.press(ALICE, portfolio.message_id, "wd:ask")
    assert ask.new and "Withdraw 120.00 USDC" in ask.new[-1].text
    assert any(d.startswith("wd:ok:") for d in ask.new[-1].callback_data())


# ------------------------------------------------------------------------------------ settings


async def test_settings_toggle_edits_in_place_and_persists(h: BotHarness) -> None:
    shown = await h.send(ALICE, "/settings")
    assert "trades: 🔔 on" in shown.text
    assert len(shown.callback_data()) == 17  # 4 kinds × 3 levels, 3 languages, "automatic", 🏠 Menu
    silent = await h.press(ALICE, shown.message_id, "set:trades:silent")
    assert silent.new == [] and silent.message is not None
    assert "trades: 🔕 silent" in silent.message.text
    off = await h.press(ALICE, shown.message_id, "set:signals:off")
    assert off.message is not None and "signals: 🚫 off" in off.message.text
    prefs = await h.services.users.get_prefs(ALICE)
    assert tuple(prefs.level(k) for k in ("trades", "signals", "spawns", "risk")) == ("silent", "off", "on", "on")
    again = await h.send(ALICE, "/settings")
    assert "trades: 🔕 silent" in again.text and "signals: 🚫 off" in again.text


# ------------------------------------------------------------------------------------ strategy bots


async def test_bots_lifecycle_create_limit_design_rename_delete(h: BotHarness) -> None:
    empty = await h.send(ALICE, "/bots")
    assert "no strategy bots yet" in empty.text and empty.callback_data() == ["bn", "m:home"]
    first = await h.send(ALICE, "/newbot Alpha")
    assert "Alpha" in first.text and "created and selected" in first.text
    await h.send(ALICE, "/newbot")
    await h.send(ALICE, "/newbot Gamma")
    refused = await h.send(ALICE, "/newbot Delta")
    assert refused.text.startswith("⚠️") and "at most 3" in refused.text
    bots = await h.services.bots.list(ALICE)
    assert [b.name for b in bots] == ["Alpha", "Bot 1", "Gamma"]
    listing = await h.send(ALICE, "/bots")
    assert "bn" not in listing.callback_data()  # no "new" button at the limit

    # Plain text goes to the selected bot's designer (rule-based parser without an LLM key).
    gamma = bots[2]
    designed = await h.send(ALICE, STRATEGY_TEXT)
    assert "Strategy updated" in designed.text and "Gamma" in designed.text
    strategy = h.services.bots.strategy(await h.services.bots.get(ALICE, gamma.bot_id))
    assert strategy is not None
    assert strategy.risk_management.stop_loss_percent == 3

    shown = await h.press(ALICE, listing.message_id, f"b:{gamma.bot_id}")
    assert shown.message is not None and "<pre>" not in shown.message.text
    assert any(e["type"] == "pre" for e in shown.message.entities)
    ask = await h.press(ALICE, listing.message_id, f"br:{gamma.bot_id}")
    assert ask.new and "Send the new name" in ask.new[-1].text
    renamed = await h.send(ALICE, "Dip & <Rip>")
    assert "Renamed to Dip & <Rip>" in renamed.text
    assert (await h.services.bots.get(ALICE, gamma.bot_id)).name == "Dip & <Rip>"

    confirm = await h.press(ALICE, listing.message_id, f"bd:{gamma.bot_id}")
    assert confirm.message is not None and f"bdc:{gamma.bot_id}" in confirm.message.callback_data()
    assert len(await h.services.bots.list(ALICE)) == 3  # asking deletes nothing
    deleted = await h.press(ALICE, listing.message_id, f"bdc:{gamma.bot_id}")
    assert deleted.message is not None and "Deleted Dip & <Rip>" in deleted.message.text
    assert [b.name for b in await h.services.bots.list(ALICE)] == ["Alpha", "Bot 1"]


async def test_assign_a_strategy_bot_to_an_agent(h: BotHarness) -> None:
    agent_id = await _main_agent(h, ALICE, 100)
    await h.send(ALICE, "/newbot Dipper")
    await h.send(ALICE, STRATEGY_TEXT)
    bot = (await h.services.bots.list(ALICE))[0]
    shown = await h.send(ALICE, "/automaton")
    choose = await h.press(ALICE, shown.message_id, f"as:{agent_id}")
    assert choose.message is not None
    assert choose.message.callback_data() == [f"asb:{agent_id}:{bot.bot_id}", f"asb:{agent_id}:0"]
    done = await h.press(ALICE, shown.message_id, f"asb:{agent_id}:{bot.bot_id}")
    assert done.message is not None and "now trades with Dipper" in done.message.text
    row = await h.services.db.fetchone("SELECT strategy_bot_id, strategy_json FROM automaton_agents")
    assert row["strategy_bot_id"] == bot.bot_id and "PEPE" in row["strategy_json"]
    status = await h.send(ALICE, f"/ai_status {agent_id}")
    assert "Strategy: Buy 10%" in status.text


async def test_cancel_leaves_a_prompt_and_keeps_the_selected_bot(h: BotHarness) -> None:
    nothing = await h.send(ALICE, "/cancel")
    assert "Nothing to cancel" in nothing.text
    created = await h.send(ALICE, "/newbot Alpha")
    kept = await h.send(ALICE, "/cancel")
    assert "Nothing to cancel" in kept.text and "Alpha stays selected" in kept.text
    shown = await h.send(ALICE, "/bots")
    await h.press_button(ALICE, shown, "Alpha")
    bot = (await h.services.bots.list(ALICE))[0]
    await h.press(ALICE, created.message_id, f"br:{bot.bot_id}")  # Rename: a prompt is pending
    cancelled = await h.send(ALICE, "/cancel")
    assert cancelled.text == "Cancelled."
    reply = await h.send(ALICE, STRATEGY_TEXT)  # the rename was cancelled; the text designs Alpha
    assert "Strategy updated" in reply.text
    bot = (await h.services.bots.list(ALICE))[0]
    assert bot.name == "Alpha" and h.services.bots.strategy(bot) is not None


async def test_simulate_start_status_and_stop_with_confirmation(h: BotHarness) -> None:
    none = await h.send(ALICE, "/simulate start")
    assert none.text.startswith("⚠️") and "Select a strategy bot first" in none.text
    await h.send(ALICE, "/newbot Sim")
    await h.send(ALICE, STRATEGY_TEXT)
    started = await h.send(ALICE, "/simulate start")
    assert "Simulation #1 of Sim started on the demo market with paper money" in started.text
    assert "Capital: 1,000.00 USDC (the default" in started.text  # no agent: the stated default
    status = await h.send(ALICE, "/simulate status")
    assert "#1 Sim" in status.text and "running" in status.text and status.callback_data() == ["ss:1", "m:home"]
    ask = await h.send(ALICE, "/simulate stop")  # one running: asked once, straight to the confirmation
    assert "Stop simulation #1 of <b>Sim</b>?" in (ask.raw_text or "") and ask.callback_data()[0] == "ssc:1"
    assert (await h.services.simulations.status(ALICE))  # still running until confirmed
    stopped = await h.press(ALICE, ask.message_id, "ssc:1")
    assert stopped.message is not None and "Simulation #1 stopped" in stopped.message.text
    final = stopped.message.text  # the final result card, once
    assert "Final result" in final and "Equity 1,000.00 USDC" in final and "stopped" in final
    assert "Costs: fee 0.30% + slippage 0.10% per fill" in final and "replayed through the backtest" in final
    assert await h.services.simulations.status(ALICE) == []
    after = await h.send(ALICE, "/simulate status")  # the stopped one stays listed with its result
    assert "None is running now" in after.text and "Ended" in after.text and "#1 Sim" in after.text
    assert "Equity 1,000.00 USDC" in after.text and after.callback_data()[0] == "m:home"
    usage = await h.send(ALICE, "/simulate dance")
    assert "Usage: /simulate start [capital] | stop | status" in usage.text
    chosen = await h.send(ALICE, "/simulate start $250")
    assert "Capital: 250.00 USDC" in chosen.text and "default" not in chosen.text
    for bad in ("/simulate start 5", "/simulate start abc", "/simulate start -100", "/simulate start 1e12"):
        refused = await h.send(ALICE, bad)
        assert refused.text.startswith("⚠️") and "capital" in refused.text.lower(), (bad, refused.text)


# ------------------------------------------------------------------------------------ admin


async def test_health_and_stats_for_admins_only(h: BotHarness) -> None:
    await _main_agent(h, ALICE, 100)
    for command in ("/health", "/stats"):
        refused = await h.send(BOB, command)
        assert "I don't know that command" in refused.text
    health = await h.send(ADMIN_ID, "/health")
    assert "Health" in health.text and "agent_loop" in health.text and "Notification queue" in health.text
    stats = await h.send(ADMIN_ID, "/stats")
    assert "Stats" in stats.text and "Agents: 1" in stats.text and "Total balances: 100.00 USDC" in stats.text


# ------------------------------------------------------------------------------------ backtest


async def test_backtest_on_ave_edits_progress_then_sends_a_chart(tmp_path: Path) -> None:
    with AveFake() as ave:
        async with running_bot(tmp_path, ave=ave) as h:
            none = await h.send(ALICE, "/backtest")
            assert "Select a strategy bot first" in none.text
            await h.send(ALICE, "/newbot Tester")
            await h.send(ALICE, STRATEGY_TEXT)
            bad = await h.send(ALICE, "/backtest PEPE 7m 30")
            assert bad.text.startswith("⚠️")
            replies = await h.send_all(ALICE, "/backtest PEPE 1h 30", timeout=90)
            progress = replies[0]
            assert progress.edited and "Backtest complete" in progress.text
            photo = replies[-1]
            assert photo.photo is not None and photo.photo.startswith(b"\x89PNG")
            assert photo.caption is not None and "Backtest: PEPE" in photo.caption
            assert "Total return" in photo.caption
            assert len(photo.caption) <= 1024
            assert any(c.method == "editMessageText" for c in h.fake.sent(chat_id=ALICE))
            stored = await h.services.db.fetchval("SELECT COUNT(*) FROM backtests WHERE status = 'completed'")
            assert stored == 1
            assert ave.calls("/v2/klines") >= 1
            h.assert_clean()


async def test_a_stop_within_the_round_trip_cost_gets_a_warning(h: BotHarness) -> None:
    await h.send(ALICE, "/newbot Tight")
    tight = await h.send(ALICE, "buy 10% PEPE on bsc when it drops 5% in an hour, stop loss 0.5%, take profit 10%")
    assert "Strategy updated" in tight.text
    assert "⚠️ Your 0.5% stop-loss is within the round-trip cost (0.80%: fee 0.30% + slippage 0.10% per fill)" \
        in tight.text
    fine = await h.send(ALICE, STRATEGY_TEXT)
    assert "Strategy updated" in fine.text and "round-trip cost" not in fine.text


async def test_a_slow_button_is_answered_before_its_work_and_a_late_refusal_is_a_message(
        h: BotHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    await h.send(ALICE, "/newbot Slow")
    designed = await h.send(ALICE, STRATEGY_TEXT)
    data = next(d for d in designed.callback_data() if d.startswith("bb:"))
    started, release = asyncio.Event(), asyncio.Event()

    async def slow_run(*_args: Any, **_kwargs: Any) -> None:
        started.set()
        await release.wait()  # a backtest may take up to two minutes
        raise UserFacingError("The market data is not available right now.")

    monkeypatch.setattr(h.services.backtests, "run", slow_run)
    first_call = len(h.fake.sent())
    query_id = h.fake.user_presses(ALICE, designed.message_id, data)
    h.pressed.append(query_id)
    try:
        await asyncio.wait_for(started.wait(), DEFAULT_TIMEOUT)
        # While the work is still running, the press is already answered (the client stops spinning).
        answer = await h.fake.wait_for_async(
            lambda: next((a for a in h.fake.answered_callbacks if a.callback_query_id == query_id), None), 5)
        assert answer.text is None and not answer.show_alert
    finally:
        release.set()
    await h.idle()
    calls = h.fake.sent()[first_call:]
    assert calls[0].method == "answerCallbackQuery"  # before every message the press caused
    progress, refusal = h.fake.messages(ALICE)[-2:]
    assert progress.parse_mode == "HTML" and progress.edited and progress.text == "❌ Backtest failed."
    assert refusal.text == "⚠️ The market data is not available right now."  # a message: no alert is lost
    assert len([a for a in h.fake.answered_callbacks if a.callback_query_id == query_id]) == 1
