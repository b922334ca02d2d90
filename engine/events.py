"""Typed events the engine and the agents publish; the bot's notifier is one sink (freqtrade RPC style).

The base classes live here, in the lower layer, so the engine (simulations) and the agents
(the loop, the ledger, risk) publish through the same sink without an upward import.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from engine.parity import ParityReport
from engine.signal_reasons import SignalReason
from storage.notify import NotifyKind


@dataclass(frozen=True)
class Event:
    user_id: int

    kind: NotifyKind = field(init=False, default=NotifyKind.RISK)


@dataclass(frozen=True)
class TradeOpened(Event):
    agent_id: str | None
    symbol: str
    price: float
    cost: Decimal
    demo: bool = False
    simulation_id: int | None = None
    fee: Decimal | None = None  # the fee paid on this fill
    fee_bps: float | None = None
    slippage_bps: float | None = None
    kind: NotifyKind = field(init=False, default=NotifyKind.TRADES)


@dataclass(frozen=True)
class TradeClosed(Event):
    agent_id: str | None
    symbol: str
    entry_price: float
    exit_price: float
    pnl: Decimal
    reason: str  # an `engine.core.EXIT_REASONS` code
    demo: bool = False
    simulation_id: int | None = None
    fee: Decimal | None = None  # the fee paid on this fill (the entry's was reported when it opened)
    fee_bps: float | None = None
    slippage_bps: float | None = None
    kind: NotifyKind = field(init=False, default=NotifyKind.TRADES)


@dataclass(frozen=True)
class SignalFired(Event):
    symbol: str
    side: str
    price: float
    reasons: tuple[SignalReason, ...]  # the fired conditions of `side` and what they measured
    bot_name: str = ""
    demo: bool = False
    simulation_id: int | None = None
    kind: NotifyKind = field(init=False, default=NotifyKind.SIGNALS)


@dataclass(frozen=True)
class SimulationEnded(Event):
    simulation_id: int
    bot_name: str
    reason: str  # an `engine.simulate.store` end-reason code
    parity: ParityReport | None = None
    max_hours: float | None = None  # the run's maximum duration, when that ended it
    kind: NotifyKind = field(init=False, default=NotifyKind.SIGNALS)


class EventSink(Protocol):
    """Receives events after the change that caused them has committed."""

    async def publish(self, event: Event) -> None: ...


class NullSink:
    """Drops events (tests, scripts)."""

    async def publish(self, event: Event) -> None:
        return None


class CollectingSink:
    """Keeps events in a list (tests)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    async def publish(self, event: Event) -> None:
        self.events.append(event)
