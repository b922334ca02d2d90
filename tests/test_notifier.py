"""The notifier through the real outbox and sender, with a real PTB `Bot` pointed at the strict
Bot API fake and a real SQLite database.

Preferences (on / silent / off), blocked users, flood and network retries, a buffer that
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
from telegram.ext import ExtBot

from agents.events import AgentDied, AgentPaused, ChildSpawned
from agents.ledger.reasons import nested, reason
from bot.delivery.outbox import Outbox
from bot.delivery.sender import Sender
from bot.http_request import AiohttpRequest
from bot.notifier import Notifier, format_event
from bot.render import clip
from engine.events import Event, SignalFired, SimulationEnded, TradeClosed, TradeOpened
from engine.signal_reasons import SignalReason
from engine.strategy import PriceChangeCondition, PriceLevelCondition
from storage import Database
from storage.outbox_repo import OutboxRepo
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


@dataclass
class Rig:
    notifier: Notifier
    sender: Sender

    async def deliver(self, *events: Event) -> None:
        """Publish, write to the outbox, and wait until the sender has delivered everything."""
        for event in events:
            await self.notifier.publish(event)
        await self.notifier.flush()
        async with asyncio.timeout(20):
            await self.sender.wait_idle()


@pytest.fixture
async def rig(fake: TelegramFake, db: Database, prefs: Prefs) -> AsyncIterator[Rig]:
    ext = ExtBot(fake.token, base_url=f"{fake.base_url}/bot", request=AiohttpRequest(read_timeout=10))
    await ext.initialize()
    sender = Sender(ext, OutboxRepo(db), on_blocked=prefs.mark_blocked, chat_rate=50.0, chat_burst=50)
    outbox = Outbox(OutboxRepo(db), sender.add, defaults={"parse_mode": "HTML"})
    await sender.start()
    try:
        yield Rig(make_notifier(outbox, prefs), sender)
    finally:
        await sender.stop(drain_seconds=1)
        await ext.shutdown()


@pytest.fixture
def prefs() -> Prefs:
    return Prefs()


def make_notifier(outbox: Outbox, prefs: Prefs, **kwargs: int) -> Notifier:
    return Notifier(outbox, get_pref=prefs.get_pref, is_blocked=prefs.is_blocked, **kwargs)


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


async def test_on_sends_with_sound(fake: TelegramFake, rig: Rig) -> None:
    await rig.deliver(spawned())
    message = fake.last_message(USER)
    assert message is not None and message.parse_mode == "HTML"
    assert message.silent is False
    assert "Child agent spawned" in message.text and "12.50 USDC" in message.text
    assert rig.notifier.queued == 1 and rig.sender.counts["sent"] == 1


async def test_silent_sets_disable_notification(fake: TelegramFake, rig: Rig, prefs: Prefs) -> None:
    prefs.levels[(USER, "spawns")] = "silent"
    await rig.deliver(spawned())
    call = fake.sent("sendMessage", chat_id=USER)[-1]
    assert str(call.params["disable_notification"]).lower() == "true"
    message = fake.last_message(USER)
    assert message is not None and message.silent is True


async def test_off_sends_nothing_and_preferences_are_per_kind(fake: TelegramFake, rig: Rig, prefs: Prefs) -> None:
    prefs.levels[(USER, "trades")] = "off"
    prefs.levels[(USER, "signals")] = "silent"
    trade = TradeOpened(user_id=USER, agent_id="ag0123456789", symbol="PEPE", price=1.0, cost=Decimal(5))
    signal = SignalFired(user_id=USER, symbol="PEPE", side="buy", price=1.0, reasons=(DIP,))
    await rig.deliver(trade)
    assert fake.sent("sendMessage") == []
    await rig.deliver(signal)
    await rig.deliver(spawned())
    assert [m.silent for m in fake.messages(USER)] == [True, False]
    # Another user's preferences are their own.
    await rig.deliver(TradeOpened(user_id=OTHER, agent_id=None, symbol="X", price=1.0, cost=Decimal(1)))
    assert len(fake.messages(OTHER)) == 1


# ------------------------------------------------------------------------------------ blocked users


async def test_a_user_who_blocked_the_bot_is_marked_then_skipped(fake: TelegramFake, rig: Rig,
                                                                  prefs: Prefs) -> None:
    fake.block(USER, emit_update=False)
    await rig.deliver(spawned())
    assert prefs.marked == [USER]
    await rig.deliver(spawned())
    assert prefs.marked == [USER]
    forbidden = [e for e in fake.errors if e.status == 403]
    assert len(forbidden) == 1  # the second event was not even queued
    await rig.deliver(spawned(OTHER))  # everyone else still gets theirs
    assert len(fake.messages(OTHER)) == 1


async def test_the_background_loop_survives_blocked_users_and_failing_lookups(fake: TelegramFake, rig: Rig,
                                                                              prefs: Prefs) -> None:
    calls = 0

    async def flaky_pref(user_id: int, kind: str) -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("database hiccup")  # the batch waits for the next flush
        return "on"

    fake.block(USER, emit_update=False)
    notifier = Notifier(rig.notifier._outbox, get_pref=flaky_pref, is_blocked=prefs.is_blocked,
                        flush_seconds=0.05)
    notifier.start()
    for event in (spawned(USER), spawned(OTHER), spawned(USER), spawned(OTHER)):
        await notifier.publish(event)
    async with asyncio.timeout(10):
        while notifier.queued < 4:  # noqa: ASYNC110 - a counter, nothing to wait on
            await asyncio.sleep(0.02)
    await notifier.stop()
    async with asyncio.timeout(10):
        await rig.sender.wait_idle()
    assert sum(m.text.count("Child agent spawned") for m in fake.messages(OTHER)) == 2
    assert prefs.marked == [USER]
    assert fake.malformed_calls == []


# ------------------------------------------------------------------------------------ retries


async def test_flood_429_is_waited_out_and_retried(fake: TelegramFake, rig: Rig) -> None:
    fake.force_flood(1, retry_after=1)
    await rig.deliver(spawned())
    assert [e.status for e in fake.errors] == [429]
    assert len(fake.sent("sendMessage", chat_id=USER)) == 1
    first_try, delivered = fake.errors[0].time, fake.sent("sendMessage")[0].time
    assert delivered - first_try >= 0.9  # it honoured retry_after instead of hammering


async def test_a_short_network_outage_is_retried(fake: TelegramFake, rig: Rig) -> None:
    fake.start_outage(duration=0.3)
    await rig.deliver(spawned())
    assert fake.outage_hits >= 1
    assert len(fake.messages(USER)) == 1


# ------------------------------------------------------------------------------------ buffer


async def test_publish_never_blocks_and_drops_when_full(rig: Rig, prefs: Prefs) -> None:
    notifier = make_notifier(rig.notifier._outbox, prefs, max_buffer=3)
    for _ in range(10):
        await asyncio.wait_for(notifier.publish(spawned()), timeout=1)
    assert notifier.queue_size() == 3
    assert notifier.dropped == 10 - 3


async def test_stop_queues_what_is_buffered(fake: TelegramFake, rig: Rig) -> None:
    rig.notifier.start()
    for i in range(5):
        await rig.notifier.publish(spawned(reason=f"event {i}"))
    await rig.notifier.stop()
    assert rig.notifier.queue_size() == 0 and rig.notifier.queued == 5
    async with asyncio.timeout(10):
        await rig.sender.wait_idle()
    text = "\n".join(m.text for m in fake.messages(USER))
    positions = [text.index(f"Reason: event {i}") for i in range(5)]
    assert positions == sorted(positions)  # all five, in order (several queued at once: a digest)


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


async def test_delivered_notifications_with_injection_are_clipped_and_valid(fake: TelegramFake, rig: Rig) -> None:
    for event in every_event(EVIL + "\n" + "y" * 6000):
        await rig.deliver(event)
    assert len(fake.messages(USER)) == len(every_event("x"))
    assert fake.malformed_calls == []
    assert all(len(m.text) <= 4096 for m in fake.messages(USER))


def test_format_event_names_the_rule_in_the_users_terms() -> None:
    text = format_event(SignalFired(user_id=USER, symbol="PEPE", side="buy", price=0.0000125,
                                    reasons=(DIP, LEVEL), bot_name="Dip", demo=True))
    assert "BUY signal: PEPE" in text and "Dip" in text and "(demo)" in text
    assert ("\n\nprice dropped 3.1% in 1h ≥ your 3%; price crossed below $0.00000012 (your level)\n"
            "Price: 0.0000125") in text
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
