"""Bad input through the Bot API: each answered clearly, with NOTHING changed.

Every test snapshots the money, agent, bot and simulation tables before the bad input and
compares after; the fixture checks the bot never made a malformed call and answered every
button press (forged ones included).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.guards import PRIVATE_ONLY
from tests.bot_harness import BotHarness, running_bot

ALICE = 601
BOB = 602
STRATEGY_TEXT = "buy 10% PEPE on bsc when it drops 5% in an hour, stop loss 3%, take profit 10%"
NOT_FOUND = "Agent not found"


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[BotHarness]:
    async with running_bot(tmp_path) as harness:
        yield harness
        harness.assert_clean()


async def _setup_user(h: BotHarness, user_id: int, *, simulate: bool = False) -> tuple[str, int]:
    """A user with a main agent and one strategy bot with a strategy, made through the bot."""
    await h.send(user_id, "/automaton 500")
    await h.send(user_id, f"/newbot Bot of {user_id}")
    await h.send(user_id, STRATEGY_TEXT)
    if simulate:
        await h.send(user_id, "/simulate start")
    agent = await h.services.manager.get_main_agent(user_id)
    bots = await h.services.bots.list(user_id)
    return str(agent["agent_id"]), bots[0].bot_id


# ------------------------------------------------------------------------------------ amounts


@pytest.mark.parametrize("arg", ["-5", "0", "abc", "1e309", "NaN", "inf", "-inf", "10.1234567", "5",
                                 "2000000", "0x10", "½", "<b>5</b>", "5 5", "9" * 5000])
async def test_bad_automaton_amounts_create_nothing(h: BotHarness, arg: str) -> None:
    before = await h.snapshot()
    reply = await h.send(ALICE, f"/automaton {arg}")
    assert reply.parse_mode == "HTML"
    assert reply.text.startswith("⚠️"), reply.text
    assert len(reply.text) < 300  # a short, clear explanation, not an echo of the input
    assert await h.snapshot() == before
    assert await h.services.manager.get_main_agent(ALICE) is None


async def test_markup_in_arguments_is_escaped_never_a_parse_error(h: BotHarness) -> None:
    await h.send(ALICE, "/automaton 100")
    reply = await h.send(ALICE, "/ai_status <b>ag</b>&amp;")
    assert NOT_FOUND in reply.text
    made = await h.send(ALICE, "/newbot <script>alert(1)</script>")
    assert "<script>alert(1)</script>" in made.text  # shown literally
    second = await h.send(ALICE, "/newbot Fish & <Chips>")
    assert "Fish & <Chips>" in second.text
    listing = await h.send(ALICE, "/bots")
    labels = [b["text"] for b in listing.buttons()]
    assert any("<script>alert(1)</script>" in label for label in labels)
    assert any("Fish & <Chips>" in label for label in labels)
    assert "Fish & <Chips>" in listing.text  # the selected bot is named in the text
    designed = await h.send(ALICE, "buy <b>10%</b> & <i>PEPE")
    assert designed.parse_mode == "HTML"
    sent = [c.params.get("text", "") for c in h.fake.sent("sendMessage", chat_id=ALICE)]
    assert not any("<script>" in t for t in sent)  # always escaped on the wire


async def test_overlong_names_and_messages_are_refused(h: BotHarness) -> None:
    await h.send(ALICE, "/newbot Alpha")
    before = await h.snapshot()
    long_name = await h.send(ALICE, "/newbot " + "n" * 40)
    assert long_name.text.startswith("⚠️") and "32" in long_name.text
    long_text = await h.send(ALICE, "buy " + "x" * 4000)
    assert long_text.text.startswith("⚠️") and "too long" in long_text.text
    assert await h.snapshot() == before


async def test_deposit_without_an_agent_is_refused(h: BotHarness) -> None:
    before = await h.snapshot()
    reply = await h.send(ALICE, "/deposit 50")
    assert reply.text.startswith("⚠️") and "/automaton" in reply.text
    assert await h.snapshot() == before


@pytest.mark.parametrize("arg", ["600", "500.000001", "-10", "0", "abc", "NaN", "1e309", "10 20", ""])
async def test_bad_withdrawals_ask_nothing_and_change_nothing(h: BotHarness, arg: str) -> None:
    await h.send(ALICE, "/automaton 500")
    before = await h.snapshot()
    reply = await h.send(ALICE, f"/withdraw {arg}".strip())
    assert reply.text.startswith("⚠️"), reply.text
    assert reply.callback_data() == []  # no confirmation offered
    assert await h.snapshot() == before


async def test_withdraw_all_with_nothing_is_refused(h: BotHarness) -> None:
    before = await h.snapshot()
    reply = await h.send(ALICE, "/withdraw all")
    assert reply.text.startswith("⚠️") and "Nothing is available" in reply.text
    assert reply.callback_data() == []
    assert await h.snapshot() == before


# ------------------------------------------------------------------------------------ ownership


async def test_foreign_agent_id_gets_the_same_reply_as_a_missing_one(h: BotHarness) -> None:
    bob_agent, _ = await _setup_user(h, BOB)
    await h.send(ALICE, "/automaton 100")
    foreign = await h.send(ALICE, f"/ai_status {bob_agent}")
    missing = await h.send(ALICE, "/ai_status ag0000000000")
    malformed = await h.send(ALICE, "/ai_status ../../etc")
    assert foreign.text == missing.text == malformed.text
    assert NOT_FOUND in foreign.text and bob_agent not in foreign.text


async def test_forged_callbacks_with_another_users_ids_change_nothing(h: BotHarness) -> None:
    bob_agent, bob_bot = await _setup_user(h, BOB, simulate=True)
    alice_agent, alice_bot = await _setup_user(h, ALICE)
    bob_sim = (await h.services.simulations.status(BOB))[0].simulation_id
    await h.send(ALICE, "/withdraw 10")  # a pending withdrawal of Alice's own must stay pending
    screen = await h.send(ALICE, "/ai_portfolio")
    before = await h.snapshot()
    bob_messages = len(h.fake.messages(BOB))
    forged = [
        f"ag:{bob_agent}:0", f"ap:{bob_agent}", f"ar:{bob_agent}", f"as:{bob_agent}",
        f"asb:{bob_agent}:0", f"asb:{bob_agent}:{alice_bot}", f"asb:{alice_agent}:{bob_bot}",
        f"b:{bob_bot}", f"bs:{bob_bot}", f"bb:{bob_bot}", f"bsim:{bob_bot}", f"br:{bob_bot}",
        f"bd:{bob_bot}", f"bdc:{bob_bot}", f"ss:{bob_sim}", f"ssc:{bob_sim}",
    ]
    for data in forged:
        result = await h.press(ALICE, screen.message_id, data)
        # Answered first (empty), then refused in a message of its own: the screen stays as it was.
        assert result.answer.text is None and not result.answer.show_alert, data
        assert len(result.new) == 1, (data, result.new)
        refusal = result.new[0].text
        assert refusal.startswith("⚠️") and "went wrong" not in refusal, (data, refusal)
        assert bob_agent not in refusal, data
        assert result.message is not None and bob_agent not in result.message.text
    assert await h.snapshot() == before
    assert (await h.services.simulations.status(BOB))[0].status == "running"
    # A foreign id is answered exactly like an id that does not exist.
    foreign = await h.press(ALICE, screen.message_id, f"ag:{bob_agent}:0")
    missing = await h.press(ALICE, screen.message_id, "ag:ag0000000000:0")
    assert foreign.new[0].text == missing.new[0].text
    assert len(h.fake.messages(BOB)) == bob_messages  # nothing reached Bob's chat
    assert not any(alice_agent in (m.text or "") for m in h.fake.messages(BOB))


def _random_data(rng: random.Random) -> str:
    chars = [chr(rng.choice([rng.randrange(0x20), rng.randrange(0x20, 0x7F), rng.randrange(0xA0, 0xD7FF),
                             rng.randrange(0xE000, 0x10FFFF)])) for _ in range(rng.randrange(1, 40))]
    return "".join(chars)


async def test_malformed_callback_data_is_answered_and_changes_nothing(h: BotHarness) -> None:
    agent, _ = await _setup_user(h, ALICE)
    screen = await h.send(ALICE, "/ai_portfolio")
    original = h.fake.message(ALICE, screen.message_id)
    before = await h.snapshot()
    rng = random.Random(7)
    cases = ["ag:zzz", "ag:zzz:0", "pf:-1", "pf:99999999999", "pf:01", "pf:0 ", " pf:0", "", "pf:0\n",
             "wd:ok:", "wd:ok:XYZ", "set:trades:loud", "set:wallet:on", "new:-5", "new:1e309", "dep:abc",
             f"ag:{agent}", f"ag:{agent}:0:extra", f"ap:{agent.upper()}", "b:1'; DROP TABLE bots;--",
             "m:nope", "pf:" + "0" * 61, "ag:" + "a" * 70, "x" * 64, "y" * 65, "é" * 40, "\x00\x01\x02",
             *(_random_data(rng) for _ in range(8))]
    for data in cases:
        result = await h.press(ALICE, screen.message_id, data)
        assert result.new == [], repr(data)
        assert result.answer.text == "This button is no longer valid.", repr(data)
    assert await h.snapshot() == before
    now = h.fake.message(ALICE, screen.message_id)
    assert now is not None and original is not None and now.text == original.text


async def test_withdraw_confirmation_with_a_wrong_nonce_does_nothing(h: BotHarness) -> None:
    await h.send(ALICE, "/automaton 500")
    ask = await h.send(ALICE, "/withdraw 10")
    real = next(d for d in ask.callback_data() if d.startswith("wd:ok:"))
    before = await h.snapshot()
    wrong = "wd:ok:" + ("0" * 8 if real[-8:] != "0" * 8 else "1" * 8)
    result = await h.press(ALICE, ask.message_id, wrong)
    assert len(result.new) == 1 and "expired" in result.new[0].text
    assert await h.snapshot() == before
    # Bob replaying Alice's exact confirmation in his own chat withdraws nothing either.
    await h.send(BOB, "/automaton 100")
    bob_screen = await h.send(BOB, "/ai_portfolio")
    before_replay = await h.snapshot()
    replay = await h.press(BOB, bob_screen.message_id, real)
    assert len(replay.new) == 1 and "expired" in replay.new[0].text
    assert await h.snapshot() == before_replay
    # The real confirmation still works afterwards.
    done = await h.press(ALICE, ask.message_id, real)
    assert done.message is not None and "Withdrew 10.00 USDC" in done.message.text


# ------------------------------------------------------------------------------------ chats


async def test_commands_in_a_group_chat_are_refused(h: BotHarness) -> None:
    before = await h.snapshot()
    for text in ("/automaton 100", "/newbot Groupie", "/deposit 10", "/withdraw all", "/ai_portfolio",
                 "/start", "/automaton@fake_trading_bot 100", "/settings"):
        reply = await h.send(ALICE, text, chat_type="group")
        assert reply.text == PRIVATE_ONLY, text
        assert reply.callback_data() == []
    for text in ("/automaton 100", "/simulate start"):
        reply = await h.send(ALICE, text, chat_type="supergroup")
        assert reply.text == PRIVATE_ONLY
    assert await h.send_all(ALICE, STRATEGY_TEXT, chat_type="group") == []  # plain group chatter is ignored
    assert await h.snapshot() == before
    assert await h.services.manager.get_main_agent(ALICE) is None
    # A button pressed in a group is answered with the same refusal.
    group_msg = h.fake.last_message(-ALICE)
    assert group_msg is not None
    press = await h.press(ALICE, group_msg.message_id, "new:100", chat_id=-ALICE)
    assert press.answer.show_alert and press.answer.text == PRIVATE_ONLY
    assert await h.snapshot() == before


# ------------------------------------------------------------------------------------ delivery


async def test_blocked_user_gets_no_more_notifications_and_the_bot_keeps_running(h: BotHarness) -> None:
    manager = h.services.manager
    agent, _ = await _setup_user(h, ALICE)
    await manager.record_agent_profit(agent, 200, "test profit")
    h.fake.block(ALICE)  # with the my_chat_member update Telegram sends
    await h.idle()
    assert await h.services.users.is_blocked(ALICE)
    calls = len(h.fake.sent(chat_id=ALICE))
    await manager.spawn_child_agent(agent, 20, "after the block")
    await h.drain_notifications()
    assert len(h.fake.sent(chat_id=ALICE)) == calls
    assert [e for e in h.fake.errors if e.status == 403] == []  # skipped, not even attempted

    # Blocked without an update (missed): the first 403 marks the user, later events are skipped.
    bob_agent, _ = await _setup_user(h, BOB)
    await manager.record_agent_profit(bob_agent, 200, "test profit")
    h.fake.block(BOB, emit_update=False)
    await manager.spawn_child_agent(bob_agent, 20, "first after the block")
    await h.drain_notifications()
    assert await h.services.users.is_blocked(BOB)
    await manager.spawn_child_agent(bob_agent, 20, "second after the block")
    await h.drain_notifications()
    forbidden = [e for e in h.fake.errors if e.status == 403]
    assert len(forbidden) == 1 and forbidden[0].params["chat_id"] == BOB
    # The process keeps serving everyone else.
    reply = await h.send(777, "/start")
    assert "Hi" in reply.text


async def test_flood_control_429_is_retried_and_the_reply_arrives(h: BotHarness) -> None:
    h.fake.force_flood(2, retry_after=1)
    reply = await h.send(ALICE, "/start")
    assert "Hi" in reply.text
    floods = [e for e in h.fake.errors if e.status == 429]
    assert len(floods) == 2
    assert len(h.fake.sent("sendMessage", chat_id=ALICE)) == 1  # delivered exactly once
    assert reply.message_id > 0


async def test_a_bot_api_outage_is_survived(h: BotHarness) -> None:
    first = await h.send(ALICE, "/start")
    assert "Hi" in first.text
    h.fake.start_outage()
    # Wait until polling itself is failing (the poll already in flight may still answer).
    hits = h.fake.outage_hits
    await h.fake.wait_for_async(lambda: h.fake.outage_hits > hits, timeout=10)
    h.fake.user_sends(ALICE, "/help")  # Telegram keeps it until the bot can poll again
    await asyncio.sleep(2)
    assert h.fake.pending_updates == 1
    h.fake.end_outage()
    await h.idle(timeout=60)
    help_reply = h.fake.last_message(ALICE)
    assert help_reply is not None and "/ai_portfolio" in help_reply.text
    after = await h.send(ALICE, "/automaton 100")
    assert "is live" in after.text
