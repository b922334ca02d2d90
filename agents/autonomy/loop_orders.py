"""The agent loop's order desk: collects a tick's fills, books them in one batch, tells the users.

During a tick the trading cores' fills are planned (`plan_open`, `plan_close`); `flush` books
them all with `IsolatedAIManager.book_fills` in ONE transaction together with the tick's other
writes (bars, core states), then publishes the events of what was booked. Every booking is
idempotent by key: an open is keyed `open:<agent>:<token>:<bar>`, a close
`close:<agent>:<position>`, so a tick replayed after a crash books nothing twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from agents.autonomy.loop_model import LoopAgent, LoopPosition, Snapshot, TickReport
from agents.errors import AgentError
from agents.ledger.fills import CloseOrder, FillOrder, OpenOrder
from agents.ledger.manager import IsolatedAIManager
from agents.ledger.rules import available
from engine.core import Costs, Fill
from engine.events import Event, EventSink, TradeClosed, TradeOpened
from engine.live import bar_start
from engine.strategy import Strategy
from storage import SyncTx
from storage.money import from_micro, percent_of, to_micro, usdc_down

logger = logging.getLogger(__name__)


@dataclass
class _Planned:
    """What the desk needs after the batch to report an order (`agent`: the opening agent)."""

    position: LoopPosition
    fill: Fill
    agent: LoopAgent | None = None
    cost: Decimal = Decimal(0)


class OrderDesk:
    """Plans opens and closes at the core's fills and books a tick's worth at once."""

    def __init__(self, manager: IsolatedAIManager, events: EventSink, costs: Costs, *, min_trade: Decimal,
                 demo: bool, symbols: dict[str, str]) -> None:
        self.manager = manager
        self.events = events
        self.costs = costs
        self.min_trade = min_trade
        self.demo = demo
        self.symbols = symbols
        self.begin()

    def begin(self) -> None:
        """Start a tick's batch."""
        self._orders: list[FillOrder] = []
        self._planned: list[_Planned] = []
        self._after: list[Callable[[], None]] = []
        self._refused: list[str] = []

    def plan_open(self, agent: LoopAgent, strategy: Strategy, token_id: str, fill: Fill) -> LoopPosition | None:
        """Plan locking `amount_percent` of the available balance at the core's entry fill; returns
        the position as the rest of the tick sees it (its id is known after `flush`)."""
        free = from_micro(available(agent.balance, agent.locked))
        cost = percent_of(free, strategy.buy.amount_percent)
        if cost < self.min_trade:
            return None
        size = self.costs.units_for(float(cost), fill.fill)
        symbol = self.symbols.get(token_id, strategy.token)
        try:
            order = self.manager.open_order(
                agent.agent_id, token_id=token_id, symbol=symbol, size=size, price=fill.fill, cost=cost,
                stop_loss=fill.stop, take_profit=fill.target,
                idempotency_key=f"open:{agent.agent_id}:{token_id}:{fill.bar_time}", entry_bar_time=fill.bar_time)
        except AgentError as exc:
            self._refused.append(f"{agent.agent_id}: open refused: {exc}")
            return None
        index = len(self._orders)
        self._orders.append(OpenOrder(order))
        agent.locked += order.cost  # later opens of this tick size from what is left
        position = LoopPosition(-(index + 1), agent.agent_id, agent.user_id, token_id, symbol, size, fill.fill,
                                order.cost, fill.stop, fill.target, fill.bar_time)
        self._planned.append(_Planned(position, fill, agent, cost))
        return position

    def plan_close(self, pos: LoopPosition, fill: Fill) -> None:
        """Plan closing `pos` (booked, or opened earlier in this batch) at the core's exit fill."""
        proceeds = max(usdc_down(self.costs.proceeds(pos.size, fill.fill)), Decimal(0))
        planned_open = -pos.position_id - 1 if pos.position_id < 0 else None
        self._orders.append(CloseOrder(
            exit_price=fill.fill, proceeds=to_micro(proceeds), reason=fill.reason,
            key=f"close:{pos.agent_id}:{pos.position_id}" if planned_open is None else None,
            exit_bar_time=fill.bar_time, position_id=None if planned_open is not None else pos.position_id,
            opened_by=planned_open))
        self._planned.append(_Planned(pos, fill))

    def after_commit(self, fn: Callable[[], None]) -> None:
        """Run `fn` once the batch committed."""
        self._after.append(fn)

    async def flush(self, report: TickReport, writes: Callable[[SyncTx], None] | None) -> None:
        """Book the batch and `writes` in one transaction, then report and publish what was booked."""
        for text in self._refused:
            report.add_error(text)
        if not self._orders and writes is None:
            return
        booked = await self.manager.book_fills(self._orders, also=writes)
        for fn in self._after:
            fn()
        for order, plan, result in zip(self._orders, self._planned, booked, strict=True):
            if isinstance(order, OpenOrder):
                await self._opened(plan, result.value, result.error, report)
            else:
                await self._closed(plan, result.value, result.error, report)
        self.begin()

    async def _opened(self, plan: _Planned, position_id: int | None, error: AgentError | None,
                      report: TickReport) -> None:
        pos = plan.position
        if position_id is None:  # refused, or this bar's entry was already made (a replayed tick)
            assert plan.agent is not None
            plan.agent.locked -= pos.cost
            if error is not None:
                report.add_error(f"{pos.agent_id}: open refused: {error}")
            return
        report.trades_opened += 1
        await self.publish(TradeOpened(user_id=pos.user_id, agent_id=pos.agent_id, symbol=pos.symbol,
                                       price=pos.entry_price, cost=plan.cost, demo=self.demo,
                                       fee=usdc_down(pos.size * pos.entry_price * self.costs.fee),
                                       fee_bps=self.costs.fee_bps, slippage_bps=self.costs.slippage_bps))

    async def _closed(self, plan: _Planned, result: dict | None, error: AgentError | None,
                      report: TickReport) -> None:
        if error is not None:
            report.add_error(f"{plan.position.agent_id}: close refused: {error}")
        if result is None:
            return  # already closed (a replayed tick), or its open was not booked
        report.trades_closed += 1
        pos, fill = plan.position, plan.fill
        await self.publish(TradeClosed(user_id=pos.user_id, agent_id=pos.agent_id, symbol=pos.symbol,
                                       entry_price=pos.entry_price, exit_price=fill.fill, pnl=result["pnl"],
                                       reason=fill.reason, demo=self.demo,
                                       fee=usdc_down(pos.size * fill.fill * self.costs.fee),
                                       fee_bps=self.costs.fee_bps, slippage_bps=self.costs.slippage_bps))

    async def publish(self, event: Event) -> None:
        try:
            await self.events.publish(event)
        except Exception:  # a notification failure never breaks the loop
            logger.exception("event sink failed for %s", type(event).__name__)

    def protect_orphans(self, snap: Snapshot, prices: dict[str, float], now: float) -> None:
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
                self.plan_close(pos, Fill("sell", t, price, self.costs.sell_fill(price), "stop_loss"))
            elif pos.take_profit is not None and price >= pos.take_profit:
                self.plan_close(pos, Fill("sell", t, price, self.costs.sell_fill(price), "take_profit"))
