"""Typed read models, one per screen, each from owner-checked queries.

A handler asks for one screen and renders it; it never assembles a screen from several calls,
so ownership is checked once, here, for every part (a foreign agent id reads exactly like a
missing one) and the parts come from one snapshot where they can.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from agents.autonomy.agent_loop import AgentLoop
from agents.autonomy.automaton.sync import CREATING, UNKNOWN
from agents.autonomy.risk import RiskWorker
from agents.design.strategy_bots import StrategyBots
from agents.errors import AgentNotFoundError
from agents.ledger import views
from agents.ledger.manager import IsolatedAIManager, valid_agent_id
from engine.parity import ParityReport
from engine.strategy import StrategyView, strategy_view
from storage.bots_repo import BotRecord


@dataclass(frozen=True)
class RemoteBalance:
    """The Conway Automaton's view of an agent: `amount` None means unknown (never a false zero)."""

    amount: Decimal | None
    status: str | None


@dataclass(frozen=True)
class PortfolioScreen:
    """The user's tree (the manager's portfolio dict), risk figures and unrealized P&L."""

    portfolio: dict[str, Any]
    risk: dict[str, Any] | None
    unrealized: Decimal | None

    @property
    def agents(self) -> list[dict[str, Any]]:
        return self.portfolio["agents"]


@dataclass(frozen=True)
class AgentScreen:
    """One agent with everything its card shows."""

    agent: dict[str, Any]
    strategy: StrategyView
    children: list[str] = field(default_factory=list)
    positions: list[dict[str, Any]] = field(default_factory=list)
    trades: list[dict[str, Any]] = field(default_factory=list)
    remote: RemoteBalance | None = None
    parity: ParityReport | None = None
    last_check: float | None = None  # wall clock of the agent loop's last completed tick


@dataclass(frozen=True)
class BotScreen:
    """One strategy bot: its strategy (or none yet, or a stored one that no longer validates) and
    whether chat messages currently edit it."""

    bot: BotRecord
    strategy: StrategyView
    selected: bool


def remote_balance(agent: dict[str, Any]) -> RemoteBalance | None:
    """None for a local-only agent; amount None while creating or after a failed sync."""
    if not agent.get("remote_agent_id"):
        return None
    status = agent.get("remote_status")
    if agent.get("remote_balance") is None or status in (None, UNKNOWN, CREATING):
        return RemoteBalance(None, status)
    return RemoteBalance(agent["remote_balance"], status)


class Screens:
    """Builds each screen for one user; wired in the composition root."""

    def __init__(self, manager: IsolatedAIManager, risk: RiskWorker, agent_loop: AgentLoop, bots: StrategyBots, *,
                 remote_enabled: bool) -> None:
        self.manager = manager
        self.bots = bots
        self.risk = risk
        self.agent_loop = agent_loop
        self.remote_enabled = remote_enabled

    async def portfolio(self, user_id: int) -> PortfolioScreen:
        """The portfolio screen of `user_id`."""
        portfolio = await self.manager.get_user_ai_portfolio(user_id)
        risk = await self.risk.user_risk_metrics(user_id)
        unrealized = await self.risk.unrealized_pnl(user_id)
        return PortfolioScreen(portfolio, risk, unrealized)

    async def agent(self, user_id: int, agent_id: str) -> AgentScreen:
        """The card of one of `user_id`'s agents; AgentNotFoundError for anyone else's."""
        found = await self.manager.db.read(_agent_parts, agent_id, user_id) if valid_agent_id(agent_id) else None
        if found is None:
            raise AgentNotFoundError(str(agent_id)[:64])
        agent, children, positions, trades = found
        last = self.agent_loop.last_report
        return AgentScreen(agent, strategy_view(agent.get("strategy_json")), children, positions, trades,
                           remote_balance(agent) if self.remote_enabled else None,
                           await self.agent_loop.parity(agent_id),
                           last.finished_at if last is not None and not last.skipped else None)


    async def bot(self, user_id: int, bot_id: object) -> BotScreen:
        """One of `user_id`'s strategy bots; BotNotFoundError for anyone else's or a malformed id."""
        bot = await self.bots.get(user_id, bot_id)
        selected = await self.bots.selected(user_id)
        return BotScreen(bot, strategy_view(bot.strategy_json),
                         selected is not None and selected.bot_id == bot.bot_id)


def _agent_parts(tx: Any, agent_id: str, user_id: int) -> tuple[Any, ...] | None:
    agent = views.agent(tx, agent_id, user_id)
    if agent is None:
        return None
    return (agent, views.children_of(tx, agent_id, user_id) or [], views.open_positions(tx, agent_id, user_id),
            views.recent_trades(tx, agent_id, user_id, 5))
