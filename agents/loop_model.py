"""The agent loop's working data: what a tick reads, groups and reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.core import CorePosition
from engine.live import FormingBar
from engine.market.base import Candles
from engine.strategy import Strategy

MAX_REPORTED_ERRORS = 20


class TickError(Exception):
    """A tick aborted before changing anything (market data unavailable)."""


@dataclass
class TickReport:
    """What one tick did. `price_calls` is the upstream price-call delta seen in `market.stats()`."""

    agents_evaluated: int = 0
    price_calls: int = 0
    trades_opened: int = 0
    trades_closed: int = 0
    errors: list[str] = field(default_factory=list)
    duration: float = 0.0
    skipped: bool = False
    aborted: bool = False
    tokens: int = 0

    @property
    def ok(self) -> bool:
        """True unless the tick aborted."""
        return not self.aborted

    def add_error(self, text: str) -> None:
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(text)
        elif len(self.errors) == MAX_REPORTED_ERRORS:
            self.errors.append("…more errors not shown")


@dataclass
class LoopPosition:
    position_id: int
    agent_id: str
    user_id: int
    token_id: str
    symbol: str
    size: float
    entry_price: float
    cost: int
    stop_loss: float | None
    take_profit: float | None
    entry_bar_time: int | None

    def core(self) -> CorePosition:
        return CorePosition(int(self.entry_bar_time or 0), self.entry_price, self.stop_loss, self.take_profit)


@dataclass
class LoopAgent:
    agent_id: str
    user_id: int
    status: str
    balance: int
    locked: int
    strategy_json: str | None
    strategy_key: str | None = None
    token_id: str | None = None
    group: tuple[str, int] | None = None
    position: LoopPosition | None = None


@dataclass
class Snapshot:
    agents: dict[str, LoopAgent]
    positions: list[LoopPosition]
    strategies: dict[str, Strategy]


@dataclass
class Group:
    """Agents on one (token, timeframe) and the bars they trade on this tick."""

    token_id: str
    minutes: int
    members: list[LoopAgent] = field(default_factory=list)
    bars: Candles | None = None
    signals: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    forming: FormingBar | None = None
    forming_read: bool = False
