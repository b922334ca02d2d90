"""The notifier with a real PTB `Bot` pointed at the strict Bot API fake.

Preferences (on / silent / off), blocked users, flood and network retries, a queue that
never blocks the publisher, and `format_event` producing valid HTML for every event type
even with markup-injection strings in reasons, symbols and bot names.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from decimal import Decimal

import pytest
from telegram import Bot
from telegram.constants import ParseMode

from agents.events import AgentDied, AgentPaused, ChildSpawned
from agents.ledger.reasons import nested, reason
from bot.notifier import Notifier, format_event
from bot.render import clip
from engine.events import Event, SignalFired, SimulationEnded, TradeClosed, TradeOpened
from engine.signal_reasons import SignalReason
from engine.strategy import PriceChangeCondition, PriceLevelCondition
from tests.fakes.telegram_api import TelegramFake

USER = 901
OTHER = 902
EVIL = '<b>x</b> & <script>alert("1")</script> &amp; </i> <a href="javascript:x">y'
DIP = SignalReason(PriceChangeCondition(token="PEPE", type="price_drop", threshold=3, timeframe="1h"), 3.1)
LEVEL = SignalReason(PriceLevelCondition(token="PEPE", type="price_level", price=1.2e-7, direction="below"), 1e-7)


@dataclass
class Prefs:
    """In-memory stand-ins for the user repository the product passes in."""

    levels: dict[tuple[int, str], str] = field(default_factory=dict)
    blocked: set[int] = field(default_factory=set)
    marked: list[int] = field(default_factory=list)

    async def get_pref(self, user_id: int, kind: str) -> str:
        return self.levels.get((user_id, kind), "on")

    async def is_blocked(self, user_id: int) -> bool:
        return user_id in self.blocked

    async def mark_blocked(self, user_id: int) -> None:
        self.marked.append(user_id)
        self.blocked.add(user_id)


@pytest.fixture
def fake() -> Iterator[TelegramFake]:
    with TelegramFake() as server:
        server.add_chat(USER, first_name="Ann")
        server.add_chat(OTHER, first_name="Ben")
        yield server


@pytest.fixture
async def bot(fake: TelegramFake) -> AsyncIterator[Bot]:
    async with Bot(fake.token, base_url=f"{fake.base_url}/bot") as real_bot:
        yield real_bot


@pytest.fixture
def prefs() -> Prefs:
    return Prefs()


def make_notifier(bot: Bot, prefs: Prefs, **kwargs: int) -> Notifier:
    return Notifier(bot, get_pref=prefs.get_pref, is_blocked=prefs.is_blocked, mark_blocked=prefs.mark_blocked,
                    **kwargs)


def spawned(user_id: int = USER, reason: str = "earned 25 USDC") -> ChildSpawned:
    return ChildSpawned(user_id=user_id, parent_agent_id="ag0123456789", child_agent_id="agabcdefabcd",
                        amount=Decimal("12.5"), reason=reason, generation=2)


def every_event(text: str, user_id: int = USER) -> list[Event]:
    """One event of every type (and variant), with `text` in every free-text field."""
    return [
        spawned(user_id, text),
        AgentPaused(user_id=user_id, agent_id="ag0123456789", reason=text, drawdown_pct=52.25),
        AgentPaused(user_id=user_id, agent_id="ag0123456789", reason=text),
        AgentDied(user_id=user_id, agent_id="ag0123456789", balance=Decimal("0.42")),
        TradeOpened(user_id=user_id, agent_id="ag0123456789", symbol=text, price=0.0000125, cost=Decimal(20)),
        TradeOpened(user_id=user_id, agent_id=None, symbol=text, price=3100.5, cost=Decimal(100), demo=True,
                    simulation_id=7),
        TradeClosed(user_id=user_id, agent_id="ag0123456789", symbol=text, entry_price=1.0, exit_price=1.1,
                    pnl=Decimal("2.5"), reason=text),
        TradeClosed(user_id=user_id, agent_id=None, symbol=text, entry_price=1.0, exit_price=0.9,
                    pnl=Decimal("-3.25"), reason="stop-loss", demo=True, simulation_id=7),
        SignalFired(user_id=user_id, symbol=text, side="buy", price=0.5, reasons=(DIP, LEVEL), bot_name=text,
                    demo=True, simulation_id=3),
        SignalFired(user_id=user_id, symbol="PEPE", side="sell", price=0.5, reasons=(DIP,)),
        SimulationEnded(user_id=user_id, simulation_id=3, bot_name=text, reason=text),
        Event(user_id=user_id),
    ]


# ------------------------------------------------------------------------------------ preferences


async def test_on_sends_with_sound(fake: TelegramFake, bot: Bot, prefs: Prefs) -> None:
    notifier = make_notifier(bot, prefs)
    assert await notifier.deliver(spawned()) is True
    message = fake.last_message(USER)
    assert message is not None and message.parse_mode == "HTML"
    assert message.silent is False
    assert "Child agent spawned" in message.text and "12.50 USDC" in message.text
    assert notifier.sent == 1


async def test_silent_sets_disable_notification(fake: TelegramFake, bot: Bot, prefs: Prefs) -> None:
    prefs.levels[(USER, "spawns")] = "silent"
    notifier = make_notifier(bot, prefs)
    assert await notifier.deliver(spawned()) is True
    call = fake.sent("sendMessage", chat_id=USER)[-1]
    assert str(call.params["disable_notification"]).lower() == "true"
    message = fake.last_message(USER)
    assert message is not None and message.silent is True


async def test_off_sends_nothing_and_preferences_are_per_kind(fake: TelegramFake, bot: Bot, prefs: Prefs) -> None:
    prefs.levels[(USER, "trades")] = "off"
    prefs.levels[(USER, "signals")] = "silent"
    notifier = make_notifier(bot, prefs)
    trade = TradeOpened(user_id=USER, agent_id="ag0123456789", symbol="PEPE", price=1.0, cost=Decimal(5))
    signal = SignalFired(user_id=USER, symbol="PEPE", side="buy", price=1.0, reasons=(DIP,))
    assert await notifier.deliver(trade) is False
    assert fake.sent("sendMessage") == []
    assert await notifier.deliver(signal) is True
    assert await notifier.deliver(spawned()) is True
    assert [m.silent for m in fake.messages(USER)] == [True, False]
    # Another user's preferences are their own.
    assert await notifier.deliver(TradeOpened(user_id=OTHER, agent_id=None, symbol="X", price=1.0,
                                              cost=Decimal(1))) is True


# ------------------------------------------------------------------------------------ blocked users


async def test_a_user_who_blocked_the_bot_is_marked_then_skipped(fake: TelegramFake, bot: Bot,
                                                                  prefs: Prefs) -> None:
    fake.block(USER, emit_update=False)
    notifier = make_notifier(bot, prefs)
    assert await notifier.deliver(spawned()) is False
    assert prefs.marked == [USER]
    assert await notifier.deliver(spawned()) is False
    assert prefs.marked == [USER]
    forbidden = [e for e in fake.errors if e.status == 403]
    assert len(forbidden) == 1  # the second event was not even attempted
    assert await notifier.deliver(spawned(OTHER)) is True  # everyone else still gets theirs


async def test_the_background_loop_survives_blocked_users_and_failing_lookups(fake: TelegramFake, bot: Bot,
                                                                              prefs: Prefs) -> None:
    async def flaky_pref(user_id: int, kind: str) -> str:
        if user_id == 999:
            raise RuntimeError("database hiccup")
        return "on"

    fake.block(USER, emit_update=False)
    notifier = Notifier(bot, get_pref=flaky_pref, is_blocked=prefs.is_blocked, mark_blocked=prefs.mark_blocked)
    notifier.start()
    for event in (spawned(USER), spawned(999), spawned(OTHER), spawned(USER), spawned(OTHER)):
        await notifier.publish(event)
    await notifier.stop()
    assert [m.text.count("Child agent spawned") for m in fake.messages(OTHER)] == [1, 1]
    assert prefs.marked == [USER]
    assert fake.malformed_calls == []


# ------------------------------------------------------------------------------------ retries


async def test_flood_429_is_waited_out_and_retried(fake: TelegramFake, bot: Bot, prefs: Prefs) -> None:
    fake.force_flood(1, retry_after=1)
    notifier = make_notifier(bot, prefs)
    assert await notifier.deliver(spawned()) is True
    assert [e.status for e in fake.errors] == [429]
    assert len(fake.sent("sendMessage", chat_id=USER)) == 1
    first_try, delivered = fake.errors[0].time, fake.sent("sendMessage")[0].time
    assert delivered - first_try >= 0.9  # it honoured retry_after instead of hammering


async def test_a_short_network_outage_is_retried(fake: TelegramFake, bot: Bot, prefs: Prefs) -> None:
    fake.start_outage(duration=0.3)
    notifier = make_notifier(bot, prefs)
    assert await notifier.deliver(spawned()) is True
    assert fake.outage_hits >= 1
    assert len(fake.messages(USER)) == 1


# ------------------------------------------------------------------------------------ queue


async def test_publish_never_blocks_and_drops_when_full(bot: Bot, prefs: Prefs) -> None:
    stuck, entered = asyncio.Event(), asyncio.Event()

    async def stuck_pref(user_id: int, kind: str) -> str:
        entered.set()
        await stuck.wait()  # the sender is wedged on its first event
        return "on"

    notifier = Notifier(bot, get_pref=stuck_pref, is_blocked=prefs.is_blocked, mark_blocked=prefs.mark_blocked,
                        max_queue=3)
    notifier.start()
    try:
        await notifier.publish(spawned())
        await asyncio.wait_for(entered.wait(), timeout=5)
        for _ in range(9):
            await asyncio.wait_for(notifier.publish(spawned()), timeout=1)
        assert notifier.queue_size() == 3
        assert notifier.dropped == 9 - 3
    finally:
        stuck.set()
        await notifier.stop()


async def test_stop_delivers_what_is_queued(fake: TelegramFake, bot: Bot, prefs: Prefs) -> None:
    notifier = make_notifier(bot, prefs)
    notifier.start()
    for i in range(5):
        await notifier.publish(spawned(reason=f"event {i}"))
    await notifier.stop()
    texts = [m.text for m in fake.messages(USER)]
    assert [t.rsplit("Reason: ", 1)[1] for t in texts] == [f"event {i}" for i in range(5)]
    assert notifier.sent == 5 and notifier.queue_size() == 0


# ------------------------------------------------------------------------------------ formatting


@pytest.mark.parametrize("text", [EVIL, "plain words", "a < b > c & d", "</code></b>", "&lt;&#60;&#x3c;",
                                  "💥 émoji ∑ 𝔘", "x" * 5000, "𝔘" * 3000])
async def test_format_event_is_valid_html_for_every_event_type(fake: TelegramFake, bot: Bot, text: str) -> None:
    for event in every_event(text):
        html_text = format_event(event)
        assert html_text and "<script>" not in html_text
        message = await bot.send_message(USER, clip(html_text), parse_mode=ParseMode.HTML)
        assert message.text
    assert fake.malformed_calls == []
    stored = fake.messages(USER)
    assert len(stored) == len(every_event(text))
    if len(text) < 100:
        # The injected markup is shown as literal text, never interpreted.
        assert sum(text in m.text for m in stored) >= 6


async def test_delivered_notifications_with_injection_are_clipped_and_valid(fake: TelegramFake, bot: Bot,
                                                                           prefs: Prefs) -> None:
    notifier = make_notifier(bot, prefs)
    for event in every_event(EVIL + "\n" + "y" * 6000):
        assert await notifier.deliver(event) is True
    assert fake.malformed_calls == []
    assert all(len(m.text) <= 4096 for m in fake.messages(USER))


def test_format_event_names_the_rule_in_the_users_terms() -> None:
    text = format_event(SignalFired(user_id=USER, symbol="PEPE", side="buy", price=0.0000125,
                                    reasons=(DIP, LEVEL), bot_name="Dip", demo=True))
    assert "BUY signal: PEPE" in text and "Dip" in text and "(demo)" in text
    assert ("\n\nprice dropped 3.1% in 1h ≥ your 3%; price crossed below $0.00000012 (your level)\n"
            "Price: 1.25e-05") in text
    closed = format_event(TradeClosed(user_id=USER, agent_id="ag0123456789", symbol="PEPE", entry_price=1.0,
                                      exit_price=1.2, pnl=Decimal("4"), reason="take-profit"))
    assert "P&amp;L <b>+4.00 USDC</b>" in closed and "take-profit" in closed


def test_trade_notifications_state_the_exit_reason_and_the_costs() -> None:
    opened = format_event(TradeOpened(user_id=USER, agent_id="ag0123456789", symbol="PEPE", price=1.001,
                                      cost=Decimal("100"), fee=Decimal("0.299"), fee_bps=30, slippage_bps=10))
    assert "Fee 0.30 USDC (fee 0.30% + slippage 0.10% per fill)" in opened
    closed = format_event(TradeClosed(user_id=USER, agent_id="ag0123456789", symbol="PEPE", entry_price=1.0,
                                      exit_price=0.95, pnl=Decimal("-5.4"), reason="stop_loss",
                                      fee=Decimal("0.28"), fee_bps=30, slippage_bps=10))
    assert "(stop-loss)" in closed and "stop_loss" not in closed and "Fee 0.28 USDC" in closed
    bare = format_event(TradeClosed(user_id=USER, agent_id=None, symbol="PEPE", entry_price=1.0, exit_price=1.1,
                                    pnl=Decimal("1"), reason="signal", simulation_id=3))
    assert "(sell signal)" in bare and "Fee" not in bare


def test_spawn_and_pause_notifications_word_the_stored_reason() -> None:
    decided = reason("spawn_rule.decided", decision=nested(reason("spawn_rule.yes", amount=Decimal("12.500000"),
                                                                     earnings=Decimal("25"), drawdown_pct=3.25)))
    text = format_event(spawned(reason=decided))
    assert "Reason: <i>Rule-based decision: spawn 12.5 USDC: earnings 25 USDC, drawdown 3.2%</i>" in text
    paused = format_event(AgentPaused(user_id=USER, agent_id="ag0123456789", drawdown_pct=52.25,
                                      reason=reason("status.risk_drawdown", drawdown_pct=52.25, limit_pct=50.0)))
    assert "(drawdown 52.2%)" in paused and "</code>: risk: drawdown 52% &gt; 50%\n" in paused
    # the model's own words inside a coded reason are escaped like any free text
    adjusted = format_event(spawned(reason=reason("spawn_ai.adjusted", said="<b>go</b>", amount=Decimal(10))))
    assert "Reason: <i>&lt;b&gt;go&lt;/b&gt; (amount adjusted to 10 USDC to fit the limits)</i>" in adjusted
