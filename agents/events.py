"""Typed events the agent layer emits; the bot's notifier is one sink (freqtrade RPC style)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal, Protocol

from engine.parity import ParityReport

NotifyKind = Literal["signals", "trades", "spawns", "risk"]


@dataclass(frozen=True)
class Event:
    user_id: int

    kind: NotifyKind = field(init=False, default="risk")


@dataclass(frozen=True)
class ChildSpawned(Event):
    parent_agent_id: str
    child_agent_id: str
    amount: Decimal
    reason: str
    generation: int
    kind: NotifyKind = field(init=False, default="spawns")


@dataclass(frozen=True)
class AgentPaused(Event):
    agent_id: str
    reason: str
    drawdown_pct: float | None = None
    kind: NotifyKind = field(init=False, default="risk")


@dataclass(frozen=True)
class AgentDied(Event):
    agent_id: str
    balance: Decimal
    kind: NotifyKind = field(init=False, default="risk")


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
    kind: NotifyKind = field(init=False, default="trades")


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
    kind: NotifyKind = field(init=False, default="trades")


@dataclass(frozen=True)
class SignalFired(Event):
    symbol: str
    side: str
    price: float
    explanation: str
    bot_name: str = ""
    demo: bool = False
    simulation_id: int | None = None
    kind: NotifyKind = field(init=False, default="signals")


@dataclass(frozen=True)
class SimulationEnded(Event):
    simulation_id: int
    bot_name: str
    reason: str
    parity: ParityReport | None = None
    kind: NotifyKind = field(init=False, default="signals")


@dataclass(frozen=True)
class WorkerCrashed(Event):
    """Sent to each admin when a background worker crashes (throttled by the caller)."""

    worker: str
    error: str
    kind: NotifyKind = field(init=False, default="risk")


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
