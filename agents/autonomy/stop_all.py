""""Stop everything": pause every active agent of a user and close its open paper positions.

Closing goes through the agent loop's order desk, so a position closed here is filled, booked and
reported exactly like a stop the loop hits (the polled price, the sell slippage and fee of
`engine.core.Costs`, one transaction, a close keyed by position so nothing is booked twice).
A position whose token has no price now stays open, still guarded by its stop and target, and
the report says so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from decimal import Decimal

from agents.autonomy.loop_model import LoopPosition, TickReport
from agents.autonomy.loop_orders import OrderDesk
from agents.errors import AgentError
from agents.ledger import reasons
from agents.ledger.manager import IsolatedAIManager
from engine.core import Fill
from engine.live import bar_start
from engine.market.base import MarketData, MarketDataError
from storage.money import to_micro

log = logging.getLogger(__name__)
STOPPED = "stopped"  # the exit reason (engine.core.EXIT_REASONS) of a position closed by the user


@dataclass
class StopAllReport:
    """What "stop everything" did: agents paused, positions closed (and their P&L), left open."""

    paused: int = 0
    closed: int = 0
    pnl: Decimal = Decimal(0)
    left_open: list[str] = field(default_factory=list)  # symbols without a price now


async def stop_all(manager: IsolatedAIManager, market: MarketData, desk: OrderDesk, user_id: int,
                   now: float) -> StopAllReport:
    """Pause `user_id`'s active agents, then close their open positions at the current price."""
    report = StopAllReport()
    portfolio = await manager.get_user_ai_portfolio(user_id)
    agents = [a for a in portfolio["agents"] if a["status"] != "closed"]
    for agent in agents:
        if agent["status"] == "active":
            try:
                await manager.pause_agent(agent["agent_id"], user_id, reason=reasons.reason("status.stopped_by_you"))
                report.paused += 1
            except AgentError:  # changed status meanwhile (the risk worker paused it): nothing to do
                log.info("agent %s not paused by stop-all: no longer active", agent["agent_id"])
    positions = [p for a in agents for p in await manager.open_positions(a["agent_id"], user_id)]
    if not positions:
        return report
    try:
        prices = {q.token_id: q.price_usd for q in (await market.get_prices(
            sorted({p["token_id"] for p in positions}))).values()}
    except MarketDataError as exc:
        log.warning("stop-all for user %s: no prices (%s)", user_id, exc.code)
        prices = {}
    tick = TickReport()
    desk.begin()
    planned = []
    for p in positions:
        price = prices.get(p["token_id"])
        if price is None or not price > 0:
            report.left_open.append(p["symbol"])
            continue
        pos = LoopPosition(p["position_id"], p["agent_id"], user_id, p["token_id"], p["symbol"], p["size"],
                           p["entry_price"], to_micro(p["cost"]), p["stop_loss"], p["take_profit"], None)
        desk.plan_close(pos, Fill("sell", bar_start(now, 1), price, desk.costs.sell_fill(price), STOPPED))
        planned.append(pos)
    before = tick.trades_closed
    await desk.flush(tick, None)
    report.closed = tick.trades_closed - before
    report.pnl = await _realized(manager, [p.position_id for p in planned], user_id, agents)
    return report


async def _realized(manager: IsolatedAIManager, position_ids: list[int], user_id: int,
                    agents: list[dict]) -> Decimal:
    """The P&L of the trades that closed `position_ids` (read back from the ledger: the truth)."""
    wanted, total = set(position_ids), Decimal(0)
    for agent in agents:
        for trade in await manager.recent_trades(agent["agent_id"], limit=50, user_id=user_id):
            if trade.get("position_id") in wanted:
                total += trade["pnl"]
    return total
