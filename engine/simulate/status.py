"""The simulate screen's read model: one simulation's figures as typed data (the bot renders it)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from engine.parity import ParityReport
from engine.simulate.state import PaperPosition
from engine.simulate.store import SimulationStore
from engine.strategy import Strategy
from storage.money import from_micro
from storage.runs_repo import SimulationRecord
from storage.values import from_iso


@dataclass(frozen=True)
class SimulationStatus:
    """A simulation as the simulate screen shows it. Money in USDC.

    `strategy` is None when the stored strategy no longer validates.
    """

    simulation_id: int
    bot_id: int | None
    bot_name: str
    symbol: str
    token_id: str
    chain: str
    timeframe: str
    status: str
    demo: bool
    initial_equity: Decimal
    cash: Decimal
    equity: Decimal
    pnl: Decimal
    pnl_pct: float
    position: PaperPosition | None
    unrealized_pnl: Decimal | None
    last_price: float | None
    signals: int
    trades: int
    started_at: str
    ends_at: str
    time_left_seconds: float
    strategy: Strategy | None
    last_error: str | None = None
    fee_bps: float = 30.0
    slippage_bps: float = 10.0
    fees_paid: Decimal = Decimal(0)
    slippage_paid: Decimal = Decimal(0)
    parity: ParityReport | None = None


async def read_status(store: SimulationStore, record: SimulationRecord, now: float) -> SimulationStatus | None:
    """The figures of `record` at `now` (marked at the last polled price); None when its state is unusable."""
    state = store.state_or_none(record)
    if state is None:
        return None
    initial, cash = from_micro(state.initial_micro), from_micro(state.cash_micro)
    equity, unrealized = cash, None
    position = state.position
    if position is not None:
        mark = state.last_price or position.entry_price
        unrealized = position.value_at(mark) - position.cost
        equity = cash + unrealized
    pnl = equity - initial
    left = max(0.0, from_iso(record.ends_at) - now) if record.running else 0.0
    return SimulationStatus(
        simulation_id=record.simulation_id, bot_id=record.bot_id, bot_name=state.bot_name,
        symbol=record.symbol, token_id=record.token_id, chain=state.chain, timeframe=record.timeframe,
        status=record.status, demo=state.demo, initial_equity=initial, cash=cash, equity=equity, pnl=pnl,
        pnl_pct=float(pnl / initial * 100) if initial else 0.0, position=position,
        unrealized_pnl=unrealized, last_price=state.last_price,
        signals=await store.signals.count_for_simulation(record.simulation_id),
        trades=await store.trades.count_for_simulation(record.simulation_id),
        started_at=record.started_at, ends_at=record.ends_at, time_left_seconds=left,
        strategy=store.strategy_or_none(record), last_error=state.last_error, fee_bps=state.fee_bps,
        slippage_bps=state.slippage_bps, fees_paid=from_micro(state.fees_micro),
        slippage_paid=from_micro(state.slippage_micro), parity=await store.parity_or_none(record, state))
