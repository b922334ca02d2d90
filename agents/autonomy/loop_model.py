"""The agent loop's working data: what a tick reads, groups and reports."""

from __future__ import annotations

from collections import Counter
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
    finished_at: float | None = None  # wall clock when the tick ended (the cards' "last check")

    @property
    def ok(self) -> bool:
        """True unless the tick aborted."""
        return not self.aborted

    def add_error(self, text: str) -> None:
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(text)
        elif len(self.errors) == MAX_REPORTED_ERRORS:
            self.errors.append("…more errors not shown")


@dataclass(slots=True)
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


@dataclass(slots=True)
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
    positions: tuple[LoopPosition, ...] = ()  # a tuple: no empty list per agent at 100k agents


@dataclass
class Snapshot:
    agents: dict[str, LoopAgent]
    positions: list[LoopPosition]
    strategies: dict[str, Strategy]
    groups: dict[tuple[str, int], Group] = field(default_factory=dict)


@dataclass
class Group:
    """Agents on one (token, timeframe), kept across ticks, and the bars they trade on this tick.

    `hot` are the members a tick without a new bar must still look at (holding a position or
    an order waiting for the next open); `synced` is the oldest last processed bar of the
    members, None when unknown (a member joined or changed).
    """

    token_id: str
    minutes: int
    members: dict[str, LoopAgent] = field(default_factory=dict)
    keys: Counter[str] = field(default_factory=Counter)
    hot: set[str] = field(default_factory=set)
    synced: int | None = None
    bars: Candles | None = None
    signals: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    forming: FormingBar | None = None
    forming_read: bool = False
    decided: dict[tuple[Any, ...], Any] = field(default_factory=dict)  # this tick's shared core results

    def add(self, agent: LoopAgent) -> None:
        self.members[agent.agent_id] = agent
        self.keys[agent.strategy_key or ""] += 1
        self.synced = None
        self.hot.add(agent.agent_id)  # looked at once by the next tick, which decides if it stays hot

    def remove(self, agent: LoopAgent) -> None:
        if self.members.pop(agent.agent_id, None) is not None:
            key = agent.strategy_key or ""
            self.keys[key] -= 1
            if self.keys[key] <= 0:
                del self.keys[key]
        self.hot.discard(agent.agent_id)

    def start_tick(self) -> None:
        """Forget the previous tick's bars and signals."""
        self.bars = None
        self.signals = {}
        self.forming = None
        self.forming_read = False
        self.decided = {}


def upstream_calls(market: Any) -> int:
    """Upstream calls so far: the provider's HTTP count when known, else the cache's miss count."""
    stats_fn = getattr(market, "stats", None)
    if not callable(stats_fn):
        return 0
    stats = stats_fn()
    provider = stats.get("provider") if isinstance(stats, dict) else None
    if isinstance(provider, dict) and isinstance(provider.get("calls_total"), int):
        return int(provider["calls_total"])
    value = stats.get("upstream_calls_total", stats.get("calls_total", 0)) if isinstance(stats, dict) else 0
    return int(value) if isinstance(value, int) else 0
