"""Booking one simulation step: paper entries and exits, signal rows, and the events they publish.

Pure functions over a `SimState` and an `Effects` record: nothing is written here. The step's
effects are committed together by `engine.simulate.store.SimulationStore.commit`, so a poll that
loses a race (a stop, another poller) drops all of them at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from engine.core import Fill
from engine.events import Event, SignalFired, TradeClosed, TradeOpened
from engine.market.base import Candles
from engine.signal_reasons import encode_reasons
from engine.signals import SignalArrays, explain_bar
from engine.simulate.state import PaperPosition, SimState
from engine.strategy import Strategy
from storage.money import from_micro, percent_of, to_micro, usdc_down
from storage.runs_repo import SimulationRecord
from storage.signals_repo import NewSignal, NewTrade


@dataclass
class Effects:
    """The outcome of one simulation step, committed together."""

    signals: list[NewSignal] = field(default_factory=list)
    trades: list[NewTrade] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    opened: int = 0
    bars: Candles | None = None


def record_signals(record: SimulationRecord, state: SimState, sig: SignalArrays, window: Candles,
                   start: int, effects: Effects) -> None:
    """Signal rows for every new closed bar; notifications only for the newest (no stale pushes)."""
    newest = len(window) - 1
    for i in range(start, len(window)):
        latest = explain_bar(sig, window, i)
        if latest is None:
            continue
        for side in ("buy", "sell"):
            if not (latest.buy if side == "buy" else latest.sell):
                continue
            reasons = latest.reasons(side)
            effects.signals.append(NewSignal(
                user_id=record.user_id, bot_id=record.bot_id, simulation_id=record.simulation_id,
                token_id=record.token_id, side=side, price=latest.close, reason=encode_reasons(reasons),
                bar_time=latest.time))
            if i == newest:
                effects.events.append(SignalFired(
                    user_id=record.user_id, symbol=record.symbol, side=side, price=latest.close,
                    reasons=reasons, bot_name=state.bot_name, demo=state.demo,
                    simulation_id=record.simulation_id))


def book_entry(record: SimulationRecord, state: SimState, strategy: Strategy, fill: Fill, now_iso: str,
               effects: Effects) -> bool:
    """Book the core's entry with `amount_percent` of the cash; False when nothing can be bought."""
    costs = state.costs
    spend = percent_of(from_micro(state.cash_micro), strategy.buy.amount_percent)
    if spend <= 0:
        return False
    size = costs.units_for(float(spend), fill.fill)
    if not (size > 0 and math.isfinite(size)):
        return False
    state.position = PaperPosition(size=size, entry_price=fill.fill, cost=spend, stop_loss=fill.stop,
                                   take_profit=fill.target, opened_at=now_iso, entry_bar_time=fill.bar_time)
    effects.opened += 1
    fee = usdc_down(size * fill.fill * costs.fee)
    state.fees_micro += to_micro(fee)
    state.slippage_micro += to_micro(usdc_down(size * (fill.fill - fill.price)))
    effects.events.append(TradeOpened(user_id=record.user_id, agent_id=None, symbol=record.symbol,
                                      price=fill.fill, cost=spend, demo=state.demo,
                                      simulation_id=record.simulation_id, fee=fee,
                                      fee_bps=costs.fee_bps, slippage_bps=costs.slippage_bps))
    return True


def book_exit(record: SimulationRecord, state: SimState, exit_fill: float, reason: str, now_iso: str,
              effects: Effects, *, bar_time: int | None) -> None:
    """Close the open paper position at `exit_fill` (an `engine.core` exit reason); no-op when flat."""
    pos = state.position
    if pos is None:
        return
    costs = state.costs
    proceeds = usdc_down(costs.proceeds(pos.size, exit_fill))
    trade = NewTrade(user_id=record.user_id, simulation_id=record.simulation_id, token_id=record.token_id,
                     symbol=record.symbol, size=pos.size, entry_price=pos.entry_price, exit_price=exit_fill,
                     cost=pos.cost, proceeds=proceeds, exit_reason=reason, opened_at=pos.opened_at,
                     closed_at=now_iso, entry_bar_time=pos.entry_bar_time, exit_bar_time=bar_time)
    fee = usdc_down(pos.size * exit_fill * costs.fee)
    state.fees_micro += to_micro(fee)
    if costs.slippage < 1:
        state.slippage_micro += to_micro(usdc_down(pos.size * exit_fill * costs.slippage / (1 - costs.slippage)))
    state.cash_micro = max(0, state.cash_micro - to_micro(pos.cost) + to_micro(proceeds))
    state.position = None
    effects.trades.append(trade)
    effects.events.append(TradeClosed(user_id=record.user_id, agent_id=None, symbol=record.symbol,
                                      entry_price=pos.entry_price, exit_price=exit_fill, pnl=trade.pnl,
                                      reason=reason, demo=state.demo, simulation_id=record.simulation_id,
                                      fee=fee, fee_bps=costs.fee_bps, slippage_bps=costs.slippage_bps))
