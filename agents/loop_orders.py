"""The agent loop's order desk: books the trading core's fills through the manager and tells the user."""

from __future__ import annotations

import logging
from decimal import Decimal

from agents.errors import AgentError
from agents.events import Event, EventSink, TradeClosed, TradeOpened
from agents.loop_model import LoopAgent, LoopPosition, Snapshot, TickReport
from agents.manager import IsolatedAIManager
from agents.money import from_micro, percent_of, to_micro, usdc_down
from engine.core import Costs, Fill
from engine.live import bar_start
from engine.strategy import Strategy

logger = logging.getLogger(__name__)



class OrderDesk:
    """Opens and closes paper positions at the core's fills; every booking is idempotent by key."""

    def __init__(self, manager: IsolatedAIManager, events: EventSink, costs: Costs, *, min_trade: Decimal,
                 demo: bool, symbols: dict[str, str]) -> None:
        self.manager = manager
        self.events = events
        self.costs = costs
        self.min_trade = min_trade
        self.demo = demo
        self.symbols = symbols

    async def open(self, agent: LoopAgent, strategy: Strategy, token_id: str, fill: Fill,
                    report: TickReport) -> LoopPosition | None:
        """Lock `amount_percent` of the available balance at the core's entry fill."""
        available = from_micro(agent.balance - agent.locked)
        cost = percent_of(available, strategy.buy.amount_percent)
        if cost < self.min_trade:
            return None
        size = self.costs.units_for(float(cost), fill.fill)
        symbol = self.symbols.get(token_id, strategy.token)
        try:
            opened = await self.manager.open_position(
                agent.agent_id, token_id=token_id, symbol=symbol, size=size, price=fill.fill,
                cost=cost, stop_loss=fill.stop, take_profit=fill.target,
                idempotency_key=f"open:{agent.agent_id}:{token_id}:{fill.bar_time}", entry_bar_time=fill.bar_time)
        except AgentError as exc:
            report.add_error(f"{agent.agent_id}: open refused: {exc}")
            return None
        if opened is None:
            return None  # this bar's entry was already made (a replayed tick)
        report.trades_opened += 1
        agent.locked += to_micro(cost)
        fee = usdc_down(size * fill.fill * self.costs.fee)
        await self.publish(TradeOpened(user_id=agent.user_id, agent_id=agent.agent_id, symbol=symbol,
                                        price=fill.fill, cost=cost, demo=self.demo, fee=fee,
                                        fee_bps=self.costs.fee_bps, slippage_bps=self.costs.slippage_bps))
        return LoopPosition(opened, agent.agent_id, agent.user_id, token_id, symbol, size, fill.fill,
                         to_micro(cost), fill.stop, fill.target, fill.bar_time)

    async def close(self, pos: LoopPosition, fill: Fill, report: TickReport) -> bool:
        proceeds = usdc_down(self.costs.proceeds(pos.size, fill.fill))
        try:
            result = await self.manager.close_position(
                pos.position_id, exit_price=fill.fill, proceeds=max(proceeds, Decimal(0)), reason=fill.reason,
                idempotency_key=f"close:{pos.agent_id}:{pos.position_id}", exit_bar_time=fill.bar_time)
        except AgentError as exc:
            report.add_error(f"{pos.agent_id}: close refused: {exc}")
            return False
        if result is None:
            return False  # already closed (a replayed tick)
        report.trades_closed += 1
        fee = usdc_down(pos.size * fill.fill * self.costs.fee)
        await self.publish(TradeClosed(user_id=pos.user_id, agent_id=pos.agent_id, symbol=pos.symbol,
                                        entry_price=pos.entry_price, exit_price=fill.fill, pnl=result["pnl"],
                                        reason=fill.reason, demo=self.demo, fee=fee,
                                        fee_bps=self.costs.fee_bps, slippage_bps=self.costs.slippage_bps))
        return True

    async def publish(self, event: Event) -> None:
        try:
            await self.events.publish(event)
        except Exception:  # a notification failure never breaks the loop
            logger.exception("event sink failed for %s", type(event).__name__)

    async def protect_orphans(self, snap: Snapshot, prices: dict[str, float], now: float,
                               report: TickReport) -> None:
        """Positions no strategy group trades any more (the strategy moved to another token or became
        invalid) keep their stop and target, judged on the polled price."""
        for pos in snap.positions:
            agent = snap.agents[pos.agent_id]
            if agent.group is not None and agent.group[0] == pos.token_id:
                continue
            price = prices.get(pos.token_id)
            if price is None:
                continue
            t = bar_start(now, 1)
            if pos.stop_loss is not None and price <= pos.stop_loss:
                await self.close(pos, Fill("sell", t, price, self.costs.sell_fill(price), "stop_loss"), report)
            elif pos.take_profit is not None and price >= pos.take_profit:
                await self.close(pos, Fill("sell", t, price, self.costs.sell_fill(price), "take_profit"), report)
