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
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from agents.events import AgentDied, AgentPaused, ChildSpawned, WorkerCrashed
from bot import i18n
from bot.cards import costs_text, end_reason, parity_line
from bot.delivery.outbox import NOTIFY, Outbox
from bot.delivery.periodic import every, stop_task
from bot.i18n import N_, t
from bot.render import esc, exit_reason, reason_text, signed, usdc
from bot.signal_text import explanation_text
from engine.core import Costs
from engine.events import Event, SignalFired, SimulationEnded, TradeClosed, TradeOpened
from engine.numbers import format_price

log = logging.getLogger(__name__)


# The side of a signal as its notification names it ("BUY signal: PEPE").
SIDE_WORDS = {"buy": N_("BUY"), "sell": N_("SELL")}


def _costs_line(event: TradeOpened | TradeClosed) -> str:
    """'Fee 0.30 USDC (fee 0.30% + slippage 0.10% per fill)' when the event carries its costs."""
    if event.fee is None or event.fee_bps is None or event.slippage_bps is None:
        return ""
    costs = esc(costs_text(Costs(event.fee_bps, event.slippage_bps)))
    return "\n" + t("Fee {fee} ({costs})", fee=usdc(event.fee), costs=costs)


def _demo(event: Event) -> str:
    return " " + t("<i>(demo)</i>") if getattr(event, "demo", False) else ""


def _spawned(event: ChildSpawned) -> str:
    return t("🐣 <b>Child agent spawned</b>\n\nParent: <code>{parent_id}</code>\n"
             "Child: <code>{child_id}</code> (generation {generation})\n"
             "Funded with: <b>{amount}</b> from earnings\nReason: <i>{reason}</i>",
             parent_id=esc(event.parent_agent_id), child_id=esc(event.child_agent_id),
             generation=str(event.generation), amount=usdc(event.amount), reason=esc(reason_text(event.reason)))


def _paused(event: AgentPaused) -> str:
    params = {"agent_id": esc(event.agent_id), "reason": esc(reason_text(event.reason))}
    if event.drawdown_pct is None:
        return t("⏸ <b>Agent paused</b>\n\nAgent <code>{agent_id}</code>: {reason}\n"
                 "Resume it from /ai_status when you are ready.", **params)
    drawdown = f"{event.drawdown_pct:.1f}"
    return t("⏸ <b>Agent paused</b> (drawdown {drawdown}%)\n\nAgent <code>{agent_id}</code>: {reason}\n"
             "Resume it from /ai_status when you are ready.", drawdown=drawdown, **params)


def _died(event: AgentDied) -> str:
    return t("💀 <b>Agent out of funds</b>\n\nAgent <code>{agent_id}</code> has {balance} left, below the minimum: "
             "it stops trading. Deposit to revive your main agent.",
             agent_id=esc(event.agent_id), balance=usdc(event.balance))


def _opened(event: TradeOpened) -> str:
    params = {"symbol": esc(event.symbol), "demo": _demo(event), "price": format_price(event.price),
              "cost": usdc(event.cost)}
    if event.simulation_id is not None:
        text = t("🟢 <b>Bought {symbol}</b>{demo}\n\nSimulation #{simulation_id} @ {price} for {cost}",
                 simulation_id=str(event.simulation_id), **params)
    else:
        text = t("🟢 <b>Bought {symbol}</b>{demo}\n\nAgent <code>{agent_id}</code> @ {price} for {cost}",
                 agent_id=esc(event.agent_id), **params)
    return text + _costs_line(event)


def _closed(event: TradeClosed) -> str:
    params = {"icon": "✅" if event.pnl >= 0 else "🔻", "symbol": esc(event.symbol), "demo": _demo(event),
              "reason": esc(exit_reason(event.reason)), "entry": format_price(event.entry_price),
              "exit": format_price(event.exit_price), "pnl": signed(event.pnl)}
    if event.simulation_id is not None:
        text = t("{icon} <b>Sold {symbol}</b>{demo} ({reason})\n\nSimulation #{simulation_id}: "
                 "{entry} → {exit}, P&amp;L <b>{pnl} USDC</b>", simulation_id=str(event.simulation_id), **params)
    else:
        text = t("{icon} <b>Sold {symbol}</b>{demo} ({reason})\n\nAgent <code>{agent_id}</code>: "
                 "{entry} → {exit}, P&amp;L <b>{pnl} USDC</b>", agent_id=esc(event.agent_id), **params)
    return text + _costs_line(event)


def _signal(event: SignalFired) -> str:
    side = SIDE_WORDS.get(event.side)
    name = f" — {esc(event.bot_name)}" if event.bot_name else ""
    return t("📡 <b>{side} signal: {symbol}</b>{name}{demo}\n\n{explanation}\nPrice: {price}",
             side=t(side) if side is not None else esc(event.side.upper()), symbol=esc(event.symbol),
             name=name, demo=_demo(event),
             explanation=esc(explanation_text(event.reasons, event.side)), price=format_price(event.price))


def _simulation_ended(event: SimulationEnded) -> str:
    parity = f"\n{esc(parity_line(event.parity))}" if event.parity is not None else ""
    return t("🏁 <b>Simulation #{simulation_id} ended</b> ({bot_name}): {reason}{parity}\n"
             "See /simulate status for the final result.", simulation_id=str(event.simulation_id),
             bot_name=esc(event.bot_name), reason=esc(end_reason(event.reason, event.max_hours)), parity=parity)


def _crashed(event: WorkerCrashed) -> str:
    return t("🛠 <b>Worker {worker} crashed</b>\n\n{error}\nIt restarts with backoff; see /health.",
             worker=esc(event.worker), error=esc(event.error))


_WORDING: tuple[tuple[type, Callable[[Any], str]], ...] = (
    (ChildSpawned, _spawned), (AgentPaused, _paused), (AgentDied, _died), (TradeOpened, _opened),
    (TradeClosed, _closed), (SignalFired, _signal), (SimulationEnded, _simulation_ended), (WorkerCrashed, _crashed),
)


def format_event(event: Event) -> str:
    """The notification text (HTML) for one event, in the current language (`bot.i18n`)."""
    for kind, wording in _WORDING:
        if isinstance(event, kind):
            return wording(event)
    return esc(type(event).__name__)


class Notifier:
    """EventSink that queues notifications in the outbox (see the module docstring)."""

    def __init__(self, outbox: Outbox, *, get_pref: Callable[[int, str], Awaitable[str]],
                 is_blocked: Callable[[int], Awaitable[bool]],
                 languages: Callable[[Iterable[int]], Awaitable[dict[int, str]]] | None = None, ttl: float = 86_400.0,
                 signal_ttl: float = 1_800.0, max_buffer: int = 100_000, flush_seconds: float = 0.1) -> None:
        self._outbox = outbox
        self._get_pref = get_pref
        self._is_blocked = is_blocked
        self._languages = languages
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
        await stop_task(self._task)
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
        languages = await self._languages({e.user_id for e in events}) if self._languages and events else {}
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
            language = languages.get(uid, i18n.DEFAULT)
            try:
                with i18n.using(language):
                    text = format_event(event)
            except Exception:  # a wording bug must not hold back everyone else's pushes
                log.exception("could not word %s for user %s; skipped", type(event).__name__, uid)
                continue
            ttl = self._signal_ttl if isinstance(event, SignalFired) else self._ttl
            rows.append(self._outbox.message(uid, text, priority=NOTIFY, ttl=ttl, silent=pref == "silent"))
        return rows
