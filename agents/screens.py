"""Typed read models, one per screen, each from owner-checked queries.

A handler asks for one screen and renders it; it never assembles a screen from several calls,
so ownership is checked once, here, for every part (a foreign agent id reads exactly like a
missing one) and the parts come from one snapshot where they can.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from agents.autonomy.agent_loop import AgentLoop
from agents.autonomy.automaton.sync import CREATING, UNKNOWN
from agents.autonomy.risk import RiskWorker
from agents.autonomy.watch import Watch
from agents.design.strategy_bots import StrategyBots
from agents.errors import AgentNotFoundError
from agents.ledger import views
from agents.ledger.manager import IsolatedAIManager, valid_agent_id
from engine.parity import ParityReport
from engine.strategy import StrategyView, strategy_view
from storage import reports_repo as reports
from storage.bots_repo import BotRecord
from storage.money import from_micro
from storage.reports_repo import AgentProfit


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
    watch: Watch | None = None  # what it waits for now (None: not readable now, or not trading)


@dataclass(frozen=True)
class BotScreen:
    """One strategy bot: its strategy (or none yet, or a stored one that no longer validates) and
    whether chat messages currently edit it."""

    bot: BotRecord
    strategy: StrategyView
    selected: bool


@dataclass(frozen=True)
class ProfitRow:
    """Closed paper trades of one agent (or of all: `agent_id` None), money in USDC."""

    agent_id: str | None
    trades: int
    wins: int
    pnl: Decimal
    gross_win: Decimal
    gross_loss: Decimal
    best: Decimal
    worst: Decimal
    fees: Decimal = Decimal(0)  # paid on entry and exit

    @property
    def win_rate_pct(self) -> float:
        return 100.0 * self.wins / self.trades if self.trades else 0.0

    @property
    def profit_factor(self) -> Decimal | None:
        """Gross win over gross loss; None when nothing was lost (unbounded) or nothing traded."""
        return None if self.gross_loss == 0 else self.gross_win / self.gross_loss


@dataclass(frozen=True)
class ProfitScreen:
    """The profit report: one row per agent with closed trades, and the total over them."""

    agents: list[ProfitRow]
    total: ProfitRow


@dataclass(frozen=True)
class PeriodRow:
    """Closed trades of one calendar period (UTC): its first day, trade count and P&L in USDC."""

    start: date
    trades: int
    pnl: Decimal


PERIODS = ("day", "week", "month")


def period_start(day: date, period: str) -> date:
    """The first day of the period (`day`, ISO `week` from Monday, `month`) that contains `day`."""
    if period == "week":
        return day - timedelta(days=day.weekday())
    if period == "month":
        return day.replace(day=1)
    return day


def _back(start: date, period: str, n: int) -> date:
    """The start of the period n periods before the one starting at `start`."""
    if period == "month":
        months = start.year * 12 + start.month - 1 - n
        return date(months // 12, months % 12 + 1, 1)
    return start - timedelta(days=n * (7 if period == "week" else 1))


def _profit_row(agent_id: str | None, figures: list[AgentProfit]) -> ProfitRow:
    money = [from_micro(sum(getattr(f, name) for f in figures)) for name in ("pnl", "gross_win", "gross_loss")]
    return ProfitRow(agent_id, sum(f.trades for f in figures), sum(f.wins for f in figures), *money,
                     from_micro(max((f.best for f in figures), default=0)),
                     from_micro(min((f.worst for f in figures), default=0)), from_micro(sum(f.fees for f in figures)))


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
        watching = (await self.agent_loop.watch(agent_id, agent.get("strategy_json"))
                    if agent.get("status") in ("active", "paused") else None)
        return AgentScreen(agent, strategy_view(agent.get("strategy_json")), children, positions, trades,
                           remote_balance(agent) if self.remote_enabled else None,
                           await self.agent_loop.parity(agent_id),
                           last.finished_at if last is not None and not last.skipped else None, watching)


    async def profit(self, user_id: int) -> ProfitScreen:
        """`user_id`'s closed agent trades per agent and in total (simulations excluded)."""
        figures = await self.manager.db.read(reports.profit_by_agent, user_id)
        return ProfitScreen([_profit_row(f.agent_id, [f]) for f in figures], _profit_row(None, figures))

    async def performance(self, user_id: int) -> ProfitScreen:
        """`user_id`'s closed agent trades per token (`ProfitRow.agent_id` holds the symbol), best first."""
        figures = await self.manager.db.read(reports.profit_by_token, user_id)
        return ProfitScreen([_profit_row(f.agent_id, [f]) for f in figures], _profit_row(None, figures))

    async def trades(self, user_id: int, limit: int) -> list[dict[str, Any]]:
        """`user_id`'s newest closed agent trades (P&L in USDC), newest first."""
        rows = await self.manager.db.read(reports.latest_trades, user_id, limit)
        return [{"agent_id": r["agent_id"], "symbol": r["symbol"], "entry_price": r["entry_price"],
                 "exit_price": r["exit_price"], "pnl": from_micro(r["pnl"]), "exit_reason": r["exit_reason"],
                 "closed_at": r["closed_at"]} for r in rows]

    async def periods(self, user_id: int, period: str, n: int, today: date) -> list[PeriodRow]:
        """The last `n` periods up to the one containing `today`, newest first, empty ones included."""
        if period not in PERIODS:
            raise ValueError(f"period must be one of {PERIODS}")
        current = period_start(today, period)
        first = _back(current, period, n - 1)
        rows = await self.manager.db.read(reports.closed_since, user_id, first.isoformat())
        totals: dict[date, tuple[int, int]] = {}
        for closed_at, pnl in rows:
            key = period_start(date.fromisoformat(closed_at[:10]), period)
            count, total = totals.get(key, (0, 0))
            totals[key] = (count + 1, total + pnl)
        starts = [_back(current, period, k) for k in range(n)]
        return [PeriodRow(s, totals.get(s, (0, 0))[0], from_micro(totals.get(s, (0, 0))[1])) for s in starts]

    async def open_positions(self, user_id: int) -> list[dict[str, Any]]:
        """`user_id`'s open positions at current prices, with their stop and target levels."""
        return await self.risk.marked_positions(user_id)

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
