"""The notifier: turns agent events into outbox messages for their owners, honouring /settings.

`publish` never waits: events are buffered and written to the durable outbox in one batch a
few times a second (and on `flush`/`stop`), so the agent loop never waits on Telegram or on a
write per event. `on` sends normally, `silent` sets `disable_notification`, `off` drops it;
users who blocked the bot are skipped. Delivery (retries, rate limits, digests, expiry) is the
sender's job (`bot.delivery.sender`). Signals expire sooner than the other pushes: a stale
signal is worse than none.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from agents.events import AgentDied, AgentPaused, ChildSpawned, WorkerCrashed
from bot.cards import costs_text, end_reason, parity_line
from bot.delivery.outbox import NOTIFY, Outbox
from bot.delivery.periodic import every
from bot.render import esc, exit_reason, reason_text, signed, usdc
from bot.signal_text import explanation_text
from engine.core import Costs
from engine.events import Event, SignalFired, SimulationEnded, TradeClosed, TradeOpened
from engine.numbers import format_price

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
        return (f"🟢 <b>Bought {esc(event.symbol)}</b>{demo}\n\n{who} @ {format_price(event.price)} "
                f"for {usdc(event.cost)}" + _costs_line(event))
    if isinstance(event, TradeClosed):
        who = (f"Simulation #{event.simulation_id}" if event.simulation_id is not None
               else f"Agent <code>{esc(event.agent_id)}</code>")
        icon = "✅" if event.pnl >= 0 else "🔻"
        return (f"{icon} <b>Sold {esc(event.symbol)}</b>{demo} ({esc(exit_reason(event.reason))})\n\n{who}: "
                f"{format_price(event.entry_price)} → {format_price(event.exit_price)}, "
                f"P&amp;L <b>{signed(event.pnl)} USDC</b>" + _costs_line(event))
    if isinstance(event, SignalFired):
        name = f" — {esc(event.bot_name)}" if event.bot_name else ""
        return (f"📡 <b>{esc(event.side.upper())} signal: {esc(event.symbol)}</b>{name}{demo}\n\n"
                f"{esc(explanation_text(event.reasons, event.side))}\nPrice: {format_price(event.price)}")
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
    """EventSink that queues notifications in the outbox (see the module docstring)."""

    def __init__(self, outbox: Outbox, *, get_pref: Callable[[int, str], Awaitable[str]],
                 is_blocked: Callable[[int], Awaitable[bool]], ttl: float = 86_400.0,
                 signal_ttl: float = 1_800.0, max_buffer: int = 100_000, flush_seconds: float = 0.1) -> None:
        self._outbox = outbox
        self._get_pref = get_pref
        self._is_blocked = is_blocked
        self._ttl = ttl
        self._signal_ttl = signal_ttl
        self._max_buffer = max_buffer
        self._flush_seconds = flush_seconds
        self._buffer: list[Event] = []
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.queued = 0
        self.dropped = 0

    async def publish(self, event: Event) -> None:
        """Buffer an event (never blocks; drops with a log line beyond `max_buffer`)."""
        if len(self._buffer) >= self._max_buffer:
            self.dropped += 1
            log.warning("notification buffer full; dropped %s for user %s", type(event).__name__, event.user_id)
            return
        self._buffer.append(event)

    def queue_size(self) -> int:
        """Events not yet written to the outbox."""
        return len(self._buffer)

    def start(self) -> None:
        if self._task is None:
            flush = every(self._flush_seconds, self.flush, log, "could not queue notifications")
            self._task = asyncio.create_task(flush, name="notifier")

    async def stop(self) -> None:
        """Write what is buffered to the outbox, then stop."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    async def flush(self) -> int:
        """Write the buffered events to the outbox now; returns how many messages were queued."""
        async with self._lock:
            events, self._buffer = self._buffer, []
            try:
                rows = await self._rows(events)
                await self._outbox.add(rows)
            except BaseException:
                self._buffer[:0] = events
                raise
            self.queued += len(rows)
            return len(rows)

    async def _rows(self, events: list[Event]) -> list[Any]:
        prefs: dict[tuple[int, str], str] = {}
        blocked: dict[int, bool] = {}
        rows = []
        for event in events:
            uid = event.user_id
            if (uid, event.kind) not in prefs:
                prefs[(uid, event.kind)] = await self._get_pref(uid, event.kind)
            pref = prefs[(uid, event.kind)]
            if pref == "off":
                continue
            if uid not in blocked:
                blocked[uid] = await self._is_blocked(uid)
            if blocked[uid]:
                continue
            try:
                text = format_event(event)
            except Exception:  # a wording bug must not hold back everyone else's pushes
                log.exception("could not word %s for user %s; skipped", type(event).__name__, uid)
                continue
            ttl = self._signal_ttl if isinstance(event, SignalFired) else self._ttl
            rows.append(self._outbox.message(uid, text, priority=NOTIFY, ttl=ttl, silent=pref == "silent"))
        return rows
