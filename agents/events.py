"""Events of the agent layer (spawns, risk, deaths, worker crashes) over `engine.events`."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from engine.events import Event
from storage.notify import NotifyKind


@dataclass(frozen=True)
class ChildSpawned(Event):
    parent_agent_id: str
    child_agent_id: str
    amount: Decimal
    reason: str
    generation: int
    kind: NotifyKind = field(init=False, default=NotifyKind.SPAWNS)


@dataclass(frozen=True)
class AgentPaused(Event):
    agent_id: str
    reason: str
    drawdown_pct: float | None = None
    kind: NotifyKind = field(init=False, default=NotifyKind.RISK)


@dataclass(frozen=True)
class AgentDied(Event):
    agent_id: str
    balance: Decimal
    kind: NotifyKind = field(init=False, default=NotifyKind.RISK)


@dataclass(frozen=True)
class WorkerCrashed(Event):
    """Sent to each admin when a background worker crashes (throttled by the caller)."""

    worker: str
    error: str
    kind: NotifyKind = field(init=False, default=NotifyKind.RISK)
