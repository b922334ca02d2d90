"""End to end: `python main.py` as a subprocess against the loopback Telegram and AVE fakes.

Several users talk to the bot as they would on Telegram: activate, portfolio and its buttons,
status, withdraw with confirmation, bad input, forged buttons, a group chat, a restart in the
middle (data persists), and four concurrent backtests during which /ai_portfolio still answers.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage import open_database
from tests.e2e_driver import BotProcess, User
from tests.fakes.ave_api import AveFake
from tests.fakes.telegram_api import TelegramFake

pytestmark = pytest.mark.e2e
AGENT_RE = re.compile(r"ag[0-9a-f]{10}")


@pytest.fixture
def fakes() -> Iterator[tuple[TelegramFake, AveFake]]:
    with TelegramFake() as tg, AveFake() as ave:
        yield tg, ave


def _env(tg: TelegramFake, ave: AveFake, tmp_path: Path, database_url: str | None = None,
         **extra: str) -> dict[str, str]:
    env = {
        "TELEGRAM_BOT_TOKEN": tg.token,
        "TELEGRAM_BASE_URL": f"{tg.base_url}/bot",
        "DATABASE_URL": database_url or f"sqlite:///{tmp_path / 'bot.db'}",
        "AVE_API_KEY": "test-pro-key",
        "AVE_API_PLAN": "pro",
        "AVE_BASE_URL": ave.base_url,
        "AGENT_TICK_SECONDS": "3600",
        "ADMIN_USER_IDS": "900",
        "BACKTEST_WORKERS": "2",
        "LOG_LEVEL": "INFO",
    }
    env.update(extra)
    return env


async def _money(database_url: str) -> list[tuple]:
    db = await open_database(database_url)
    try:
        return [tuple(r) for r in await db.fetchall(
            "SELECT agent_id, user_id, isolated_balance, status FROM automaton_agents ORDER BY agent_id")] + [
            tuple(r) for r in await db.fetchall("SELECT COUNT(*), COALESCE(SUM(amount), 0) FROM ledger_entries")]
    finally:
        await db.close()


async def _ready(tg: TelegramFake, bot: BotProcess) -> None:
    await tg.wait_for_async(lambda: tg.my_commands() or None, timeout=60)
    assert bot.alive(), bot.log()


@pytest.mark.both_backends
async def test_conversations_bad_input_and_restart(fakes: tuple[TelegramFake, AveFake], tmp_path: Path,
                                                   db_url: str) -> None:
    tg, ave = fakes
    env = _env(tg, ave, tmp_path, db_url)
    bot = BotProcess(env, tmp_path / "bot.log").start()
    try:
        await _ready(tg, bot)
        alice, bob, carol = User(tg, 101, "Alice"), User(tg, 102, "Bob"), User(tg, 103, "Carol <b>")

        # Alice: /start menu, then activation through the preset buttons.
        (welcome,) = await alice.say("/start")
        assert "autonomous trading agent" in welcome.content and welcome.buttons()
        (ask,) = await alice.say("/automaton")
        created = await alice.press(ask, "100 USDC")
        assert "Your automaton is live" in created.content
        alice_agent = AGENT_RE.search(created.content).group(0)

        # Bob activates with an amount; Carol's name with markup is escaped, not a parse error.
        (bob_created,) = await bob.say("/automaton 250")
        bob_agent = AGENT_RE.search(bob_created.content).group(0)
        (carol_hi,) = await carol.say("/start")
        assert "Carol <b>" in carol_hi.content

        # Portfolio, agent details, Back, Refresh (edits in place).
        (pf,) = await alice.say("/ai_portfolio")
        assert "100.00 USDC" in pf.content and alice_agent in pf.content
        details = await alice.press(pf, alice_agent)
        assert details.message_id == pf.message_id and "Generation: 1" in details.content
        back = await alice.press(details, "Back")
        assert "Your AI portfolio" in back.content
        await alice.press(back, "Refresh")

        # /ai_status: own agent vs another user's vs a made-up id -> the same "not found".
        (own,) = await alice.say(f"/ai_status {alice_agent}")
        assert "Balance: 100.00 USDC" in own.content
        (foreign,) = await bob.say(f"/ai_status {alice_agent}")
        (missing,) = await bob.say("/ai_status ag0000000000")
        assert "Agent not found" in foreign.content and foreign.content == missing.content

        # Forged callbacks: Bob presses buttons carrying Alice's agent id, and garbage.
        before = await _money(db_url)
        (bob_pf,) = await bob.say("/ai_portfolio")
        for data in (f"ag:{alice_agent}:0", f"ap:{alice_agent}", f"asb:{alice_agent}:0", "ag:zzz", "pf:-1",
                     "x" * 64, "wd:ok:deadbeef"):
            qid = tg.user_presses(bob.id, bob_pf.message_id, data)
            await tg.wait_for_async(lambda q=qid: bob.answer_for(q), timeout=10)
        assert await _money(db_url) == before
        # Every press is answered first; the refusal then arrives as a message (a foreign id reads
        # exactly like a missing one).
        await tg.wait_for_async(lambda: any("Agent not found" in (m.text or "") for m in bob.bot_messages())
                                or None, timeout=10)

        # Withdraw with confirmation (Alice), and a cancelled one.
        (ask_wd,) = await alice.say("/withdraw 30")
        assert "30.00 USDC" in ask_wd.content
        done = await alice.press(ask_wd, "Confirm")
        assert "Withdrew" in done.content
        (ask_wd2,) = await alice.say("/withdraw 10")
        cancelled = await alice.press(ask_wd2, "Cancel")
        assert "cancelled" in cancelled.content.lower()
        (pf2,) = await alice.say("/ai_portfolio")
        assert "70.00 USDC" in pf2.content

        # Bad input from Carol (no agent): every one answered clearly, nothing created.
        before = await _money(db_url)
        for arg in ("-5", "0", "abc", "1e309", "NaN", "10.1234567", "9" * 5000, "<b>5</b>", "5 6"):
            (answer,) = await carol.say(f"/automaton {arg}")
            assert "⚠️" in answer.content, (arg, answer.content)
        (dep,) = await carol.say("/deposit 50")
        assert "/automaton" in dep.content
        (wd,) = await bob.say("/withdraw 999999")
        assert "at most" in wd.content
        (neg,) = await bob.say("/withdraw -3")
        assert "⚠️" in neg.content
        assert await _money(db_url) == before

        # A group chat cannot control agents.
        tg.user_sends(104, "/automaton 100", chat_id=-5001, chat_type="group")
        await tg.wait_for_async(lambda: [m for m in tg.messages(-5001) if m.from_bot] or None, timeout=10)
        assert "private chat" in [m for m in tg.messages(-5001) if m.from_bot][-1].content
        assert await _money(db_url) == before

        # A running simulation survives the restart.
        await alice.say("/newbot Dipper")
        await alice.say("buy 10% PEPE on bsc when it drops 2% in an hour, take profit 5%")
        (sim,) = await alice.say("/simulate start")
        assert "started" in sim.content

        # Restart in the middle: graceful stop, start again, the data is still there.
        assert bot.stop() == 0
        tg.reset_records()
        bot = BotProcess(env, tmp_path / "bot.log").start()
        await _ready(tg, bot)
        (pf3,) = await alice.say("/ai_portfolio")
        assert "70.00 USDC" in pf3.content
        (bob_status,) = await bob.say(f"/ai_status {bob_agent}")
        assert "250.00 USDC" in bob_status.content
        (sim_status,) = await alice.say("/simulate status")
        assert "Dipper" in sim_status.content and "running" in sim_status.content
        assert tg.malformed_calls == [], tg.malformed_calls
        assert not tg.unanswered_callbacks
    finally:
        code = bot.stop()
    assert code == 0, bot.log()[-3000:]
    assert "Traceback" not in bot.log(), bot.log()[-5000:]


async def test_portfolio_answers_while_four_backtests_run(fakes: tuple[TelegramFake, AveFake],
                                                          tmp_path: Path) -> None:
    tg, ave = fakes
    bot = BotProcess(_env(tg, ave, tmp_path), tmp_path / "bot.log").start()
    try:
        await _ready(tg, bot)
        users = [User(tg, 200 + i, f"U{i}") for i in range(4)]
        for u in users:
            await u.say("/automaton 100")
            await u.say("/newbot")
            (set_msg,) = await u.say("buy 10% PEPE on bsc when it drops 2% in an hour, stop loss 3%, take profit 5%")
            assert "Strategy updated" in set_msg.content, set_msg.content
        # 200 days of 5m candles: ~58 AVE pages each, so the four runs overlap for seconds.
        for u in users:
            tg.user_sends(u.id, "/backtest PEPE:bsc 5m 200")
        await asyncio.sleep(0.5)
        start = time.monotonic()
        (pf,) = await users[0].say("/ai_portfolio", timeout=10)
        latency = time.monotonic() - start
        assert "Your AI portfolio" in pf.content
        photos_then = sum(1 for u in users for m in u.bot_messages() if m.photo_size)
        assert photos_then < 4, "the backtests finished before the portfolio was asked; the test proves nothing"
        assert latency < 3.0, latency
        for u in users:
            await tg.wait_for_async(lambda u=u: [m for m in u.bot_messages() if m.photo_size] or None, timeout=120)
        for u in users:
            photo = next(m for m in u.bot_messages() if m.photo_size)
            assert "Backtest: PEPE" in photo.content and "Total return" in photo.content
        assert tg.malformed_calls == [], tg.malformed_calls
    finally:
        code = bot.stop()
    assert code == 0, bot.log()[-3000:]
