"""The notifier: pushes agent events to their owners, honouring /settings.

Events are queued and sent by one background task so the agent loop never waits on
Telegram. `on` sends normally, `silent` sets `disable_notification`, `off` drops it.
Users who blocked the bot are marked and skipped; flood limits are handled by PTB's
AIORateLimiter plus one retry here after `retry_after`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from telegram import Bot
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TimedOut

from agents.events import AgentDied, AgentPaused, ChildSpawned, WorkerCrashed
from bot.cards import costs_text, end_reason, parity_line
from bot.render import clip, esc, exit_reason, reason_text, signed, usdc
from bot.signal_text import explanation_text
from engine.core import Costs
from engine.events import Event, SignalFired, SimulationEnded, TradeClosed, TradeOpened

log = logging.getLogger(__name__)


def _costs_line(event: TradeOpened | TradeClosed) -> str:
    """'Fee 0.30 USDC (fee 0.30% + slippage 0.10% per fill)' when the event carries its costs."""
    if event.fee is None or event.fee_bps is None or event.slippage_bps is None:
        return ""
    return f"\nFee {usdc(event.fee)} ({esc(costs_text(Costs(event.fee_bps, event.slippage_bps)))})"


def format_event(event: Event) -> str:
    """The notification text (HTML) for one event."""
    demo = " <i>(demo)</i>" if getattr(event, "demo", False) else ""
    if isinstance(event, ChildSpawned):
        return (f"🐣 <b>Child agent spawned</b>\n\nParent: <code>{esc(event.parent_agent_id)}</code>\n"
                f"Child: <code>{esc(event.child_agent_id)}</code> (generation {event.generation})\n"
                f"Funded with: <b>{usdc(event.amount)}</b> from earnings\n"
                f"Reason: <i>{esc(reason_text(event.reason))}</i>")
    if isinstance(event, AgentPaused):
        dd = f" (drawdown {event.drawdown_pct:.1f}%)" if event.drawdown_pct is not None else ""
        return (f"⏸ <b>Agent paused</b>{dd}\n\n"
                f"Agent <code>{esc(event.agent_id)}</code>: {esc(reason_text(event.reason))}\n"
                "Resume it from /ai_status when you are ready.")
    if isinstance(event, AgentDied):
        return (f"💀 <b>Agent out of funds</b>\n\nAgent <code>{esc(event.agent_id)}</code> has {usdc(event.balance)}"
                " left, below the minimum: it stops trading. Deposit to revive your main agent.")
    if isinstance(event, TradeOpened):
        who = (f"Simulation #{event.simulation_id}" if event.simulation_id is not None
               else f"Agent <code>{esc(event.agent_id)}</code>")
        return (f"🟢 <b>Bought {esc(event.symbol)}</b>{demo}\n\n{who} @ {event.price:.8g} for {usdc(event.cost)}"
                + _costs_line(event))
    if isinstance(event, TradeClosed):
        who = (f"Simulation #{event.simulation_id}" if event.simulation_id is not None
               else f"Agent <code>{esc(event.agent_id)}</code>")
        icon = "✅" if event.pnl >= 0 else "🔻"
        return (f"{icon} <b>Sold {esc(event.symbol)}</b>{demo} ({esc(exit_reason(event.reason))})\n\n{who}: "
                f"{event.entry_price:.8g} → {event.exit_price:.8g}, P&amp;L <b>{signed(event.pnl)} USDC</b>"
                + _costs_line(event))
    if isinstance(event, SignalFired):
        name = f" — {esc(event.bot_name)}" if event.bot_name else ""
        return (f"📡 <b>{esc(event.side.upper())} signal: {esc(event.symbol)}</b>{name}{demo}\n\n"
                f"{esc(explanation_text(event.reasons, event.side))}\nPrice: {event.price:.8g}")
    if isinstance(event, SimulationEnded):
        parity = f"\n{esc(parity_line(event.parity))}" if event.parity is not None else ""
        reason = end_reason(event.reason, event.max_hours)
        return (f"🏁 <b>Simulation #{event.simulation_id} ended</b> ({esc(event.bot_name)}): {esc(reason)}"
                f"{parity}\nSee /simulate status for the final result.")
    if isinstance(event, WorkerCrashed):
        return (f"🛠 <b>Worker {esc(event.worker)} crashed</b>\n\n{esc(event.error)}\n"
                "It restarts with backoff; see /health.")
    return esc(type(event).__name__)


class Notifier:
    """EventSink that delivers to Telegram users through a bounded queue."""

    def __init__(self, bot: Bot, *, get_pref: Callable[[int, str], Awaitable[str]],
                 is_blocked: Callable[[int], Awaitable[bool]], mark_blocked: Callable[[int], Awaitable[Any]],
                 max_queue: int = 10_000) -> None:
        self._bot = bot
        self._get_pref = get_pref
        self._is_blocked = is_blocked
        self._mark_blocked = mark_blocked
        self._queue: asyncio.Queue[Event] = asyncio.Queue(max_queue)
        self._task: asyncio.Task[None] | None = None
        self.sent = 0
        self.dropped = 0

    async def publish(self, event: Event) -> None:
        """Queue an event (never blocks the caller; drops with a log line when the queue is full)."""
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1
            log.warning("notification queue full; dropped %s for user %s", type(event).__name__, event.user_id)

    def queue_size(self) -> int:
        return self._queue.qsize()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="notifier")

    async def stop(self, drain_seconds: float = 5.0) -> None:
        """Deliver what is queued (bounded time), then stop."""
        if self._task is None:
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._queue.join(), drain_seconds)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _run(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                await self.deliver(event)
            except Exception:  # one bad notification never stops the others
                log.exception("notification failed for user %s", event.user_id)
            finally:
                self._queue.task_done()

    async def deliver(self, event: Event) -> bool:
        """Send one event now, honouring preferences; returns True when sent."""
        uid = event.user_id
        pref = await self._get_pref(uid, event.kind)
        if pref == "off" or await self._is_blocked(uid):
            return False
        text = clip(format_event(event))
        for attempt in range(3):
            try:
                await self._bot.send_message(uid, text, parse_mode=ParseMode.HTML,
                                             disable_notification=(pref == "silent"))
                self.sent += 1
                return True
            except Forbidden:
                log.info("user %s blocked the bot; marking and skipping", uid)
                await self._mark_blocked(uid)
                return False
            except RetryAfter as exc:
                delay = exc.retry_after if isinstance(exc.retry_after, int | float) else exc.retry_after.total_seconds()
                await asyncio.sleep(float(delay))
            except BadRequest as exc:
                log.warning("notification to %s rejected: %s", uid, exc)
                return False
            except (TimedOut, NetworkError):
                await asyncio.sleep(0.5 * 2**attempt)
        return False
