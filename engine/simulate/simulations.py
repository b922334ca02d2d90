"""Live paper simulation of a strategy bot (SPEC §7 "Simulate"): the service's start/stop/read API.

How one simulation runs (each poll, every `poll_seconds`, by the worker; `engine.simulate.poller`):

1. One batched `get_prices` call for the tokens of all running simulations.
2. When a bar of the simulation's timeframe has closed since the last poll, the closed bars on
   the regular time grid (`engine.live.closed_bars`) are fed to the simulation's
   `engine.core.TradingCore` with their signals (`engine.signals.evaluate`, as in the backtest):
   orders decided at a close fill at the next bar's open, stops and targets against each bar's
   low / high, stop first. Missed bars (an outage, a restart) are processed in order, so the
   trades are those the backtest makes on the same bars; only the newest bar's signals are
   pushed as notifications.
3. The forming bar is read only when it can settle something now (`engine.live`): an order
   waiting for the open, or a stop the polled price has reached. Fills include slippage; fees
   are charged on both sides; the amounts are rounded down to micro-USDC
   (`engine.simulate.booking`).
4. The signals, trades, processed bars and new state are written in one transaction guarded by
   the state's `version`, then the events are published (`engine.simulate.store`). A restart
   finds the core's state at the last committed bar and does nothing twice.
5. The parity check replays the stored bars through the backtest and compares the trades (each
   status read and the end of a run report it).

Simulations end when their owner stops them (status `stopped`), after `max_duration_hours`
(`finished`, with a `SimulationEnded` event), when their bot is deleted, or when their stored
data is unusable (`failed`). An open position is closed at the last known price when a
simulation ends. Refusals are `engine.simulate.errors` (market failures are `MarketDataError`s).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from engine.capital import MAX_CAPITAL, MIN_CAPITAL, capital_ok
from engine.core import Costs, TradingCore
from engine.events import EventSink
from engine.live import closed_bars, start_after, warmup_bars
from engine.market.base import MarketData, MarketDataError, TokenInfo, TokenNotFoundError, no_token_called
from engine.market.factory import PLAN_POLL_SECONDS
from engine.parity import Offload
from engine.simulate.errors import (
    SimulationError,
    SimulationExistsError,
    SimulationLimitError,
    SimulationNotFoundError,
)
from engine.simulate.poller import Poller, PollReport, valid_price
from engine.simulate.state import SimState
from engine.simulate.status import SimulationStatus, read_status
from engine.simulate.store import BOT_DELETED, MAX_DURATION, STOPPED, UNREADABLE, SimulationStore
from engine.strategy import TIMEFRAME_MINUTES, Strategy
from storage.db import Database
from storage.dialect import is_integrity_error
from storage.money import floor_usdc, to_micro
from storage.runs_repo import SimulationRecord
from storage.values import from_iso, to_iso, valid_id

log = logging.getLogger(__name__)

MAX_RUNNING_PER_USER = 3

__all__ = [
    "MAX_RUNNING_PER_USER", "PollReport", "ResumeReport", "SimulationError", "SimulationExistsError",
    "SimulationLimitError", "SimulationNotFoundError", "SimulationService", "SimulationStatus",
]


@dataclass
class ResumeReport:
    """What `resume_all` found on start."""

    resumed: int = 0
    finished: int = 0
    failed: int = 0


class SimulationService:
    """Starts, stops, polls and reports live paper simulations of strategy bots."""

    def __init__(self, db: Database, market: MarketData, events: EventSink, *,
                 poll_seconds: float = PLAN_POLL_SECONDS["free"], max_duration_hours: float = 24.0,
                 initial_equity: Decimal = Decimal(1000), fee_bps: float = 30, slippage_bps: float = 10,
                 clock: Callable[[], float] = time.time, offload: Offload | None = None) -> None:
        if not (max_duration_hours > 0 and math.isfinite(max_duration_hours)):
            raise ValueError("max_duration_hours must be a positive number")
        if poll_seconds <= 0:
            raise ValueError("poll_seconds must be positive")
        self.db = db
        self.market = market
        self.poll_seconds = float(poll_seconds)
        self.max_duration_hours = float(max_duration_hours)
        self.initial_equity = floor_usdc(Decimal(str(initial_equity)))  # a setting: onto the micro-USDC grid
        if not self.initial_equity > 0:
            raise ValueError("initial_equity must be positive")
        self.fee_bps = float(fee_bps)
        self.slippage_bps = float(slippage_bps)
        self._clock = clock
        self._store = SimulationStore(db, events, clock, offload)
        self._poller = Poller(self._store, market)

    # -- start / stop ----------------------------------------------------------------------
    async def start(self, user_id: int, bot_id: int, bot_name: str, strategy: Strategy,
                    timeframe: str = "1h", capital: Decimal | None = None) -> SimulationRecord:
        """Start simulating the caller's bot on its strategy's token with `timeframe` candles and
        `capital` paper USDC (None: the service's default)."""
        initial = self.capital_of(capital)
        checked = valid_id(bot_id)
        if checked is None:
            raise SimulationNotFoundError("simulate.bot_not_found")
        if not isinstance(strategy, Strategy):
            raise SimulationError("simulate.no_strategy")
        if timeframe not in TIMEFRAME_MINUTES:
            raise SimulationError("simulate.unknown_timeframe", timeframe=str(timeframe))
        await self._check_can_start(user_id, checked)
        interval = TIMEFRAME_MINUTES[timeframe]
        info = await self._resolve(strategy)
        window_bars = warmup_bars(strategy, interval)
        now = self._clock()
        closed = await closed_bars(self.market, info.token_id, interval, window_bars, now)
        if len(closed) == 0:
            raise SimulationError("simulate.no_candles", timeframe=timeframe, symbol=info.symbol)
        core = TradingCore.for_strategy(strategy, Costs(self.fee_bps, self.slippage_bps))
        start_after(core, closed)
        state = SimState(
            bot_name=str(bot_name)[:64] or "Strategy bot", chain=info.chain, demo=bool(self.market.is_demo),
            initial_micro=initial, cash_micro=initial, fee_bps=self.fee_bps, slippage_bps=self.slippage_bps,
            window_bars=window_bars, since=int(closed.time[-1]) + interval * 60,
            last_price=float(closed.close[-1]), last_price_at=to_iso(now))
        state.set_core(core.state)
        ends = now + self.max_duration_hours * 3600.0
        store = self._store
        try:
            async with self.db.transaction() as tx:
                await self._check_can_start(user_id, checked, tx=tx)
                record = await store.sims.create(
                    user_id, checked, info.token_id, info.symbol[:64], timeframe,
                    json.dumps(strategy.to_config(), separators=(",", ":")), state.to_dict(),
                    to_iso(now), to_iso(ends), tx=tx)
                await store.bars.save(info.token_id, interval, closed, tx=tx)
        except Exception as exc:
            if not is_integrity_error(exc):
                raise
            # the unique index caught a concurrent start of the same bot
            raise SimulationExistsError() from None
        log.info("simulation %s started for user %s on %s", record.simulation_id, user_id, info.token_id)
        return record

    def capital_of(self, capital: Decimal | None) -> int:
        """The starting cash in micro-USDC: `capital` (within the engine's limits), else the default."""
        if capital is None:
            return to_micro(self.initial_equity)
        if not capital_ok(capital):
            raise SimulationError("simulate.capital_out_of_range", minimum=MIN_CAPITAL, maximum=MAX_CAPITAL)
        return to_micro(floor_usdc(capital))

    async def _check_can_start(self, user_id: int, bot_id: int, *, tx: Any = None) -> None:
        store = self._store
        if await store.bots.get(user_id, bot_id, tx=tx) is None:
            raise SimulationNotFoundError("simulate.bot_not_found")
        if await store.sims.running_for_bot(user_id, bot_id, tx=tx) is not None:
            raise SimulationExistsError()
        if await store.sims.count_running_for_user(user_id, tx=tx) >= MAX_RUNNING_PER_USER:
            raise SimulationLimitError("simulate.limit", maximum=MAX_RUNNING_PER_USER)

    async def _resolve(self, strategy: Strategy) -> TokenInfo:
        try:
            return await self.market.resolve_token(strategy.token, strategy.chain)
        except TokenNotFoundError as exc:
            raise SimulationError("simulate.token_not_found",
                                  reason=no_token_called(exc, strategy.token, strategy.chain)) from None

    async def stop(self, user_id: int, simulation_id: object = None, *, bot_id: object = None) -> SimulationRecord:
        """Stop the caller's running simulation (by id, or the running one of `bot_id`).

        An open paper position is closed at the current price (the last polled one if the market
        is unavailable). A foreign or unknown id raises `SimulationNotFoundError`.
        """
        record = await self._find(user_id, simulation_id, bot_id)
        if not record.running:
            raise SimulationError("simulate.already_ended", simulation_id=record.simulation_id, status=record.status)
        state = self._store.state_or_none(record)
        price = None
        if state is not None and state.position is not None:
            price = await self._price_now(record.token_id)
        await self._store.end(record, state, price, "stopped", STOPPED, publish=False)
        updated = await self._store.sims.get(user_id, record.simulation_id)
        assert updated is not None
        return updated

    async def stop_for_bot(self, user_id: int, bot_id: object) -> SimulationRecord | None:
        """Stop the running simulation of the caller's bot, if there is one (None otherwise)."""
        checked = valid_id(bot_id)
        record = None if checked is None else await self._store.sims.running_for_bot(user_id, checked)
        if record is None:
            return None
        try:
            return await self.stop(user_id, record.simulation_id)
        except SimulationError:
            return None  # it ended in between

    async def get(self, user_id: int, simulation_id: object) -> SimulationRecord:
        """The caller's simulation record in any status (`SimulationNotFoundError` otherwise)."""
        sim_id = valid_id(simulation_id)
        record = None if sim_id is None else await self._store.sims.get(user_id, sim_id)
        if record is None:
            raise SimulationNotFoundError()
        return record

    async def _find(self, user_id: int, simulation_id: object, bot_id: object) -> SimulationRecord:
        sims = self._store.sims
        if simulation_id is not None:
            sim_id = valid_id(simulation_id)
            record = None if sim_id is None else await sims.get(user_id, sim_id)
        elif bot_id is not None:
            checked = valid_id(bot_id)
            record = None if checked is None else await sims.running_for_bot(user_id, checked)
            if record is None:
                raise SimulationNotFoundError("simulate.bot_not_running")
        else:
            raise SimulationError("simulate.which")
        if record is None:
            raise SimulationNotFoundError()
        return record

    async def _price_now(self, token_id: str) -> float | None:
        try:
            quote = (await self.market.get_prices([token_id])).get(token_id)
        except MarketDataError:
            return None
        return valid_price(None if quote is None else quote.price_usd)

    # -- reports ---------------------------------------------------------------------------
    async def status(self, user_id: int, *, include_finished: bool = False) -> list[SimulationStatus]:
        """The caller's running simulations (newest first), optionally with ended ones."""
        statuses = ("running", "stopped", "finished", "failed") if include_finished else ("running",)
        records = await self._store.sims.list_for_user(user_id, statuses, limit=10)
        out = []
        for record in records:
            summary = await read_status(self._store, record, self._clock())
            if summary is not None:
                out.append(summary)
        return out

    async def summary(self, user_id: int, simulation_id: object) -> SimulationStatus:
        """One of the caller's simulations, in any status."""
        sim_id = valid_id(simulation_id)
        record = None if sim_id is None else await self._store.sims.get(user_id, sim_id)
        summary = None if record is None else await read_status(self._store, record, self._clock())
        if summary is None:
            raise SimulationNotFoundError()
        return summary

    # -- restart and polling ---------------------------------------------------------------
    async def resume_all(self) -> ResumeReport:
        """On start: keep valid running simulations, end the ones whose bot was deleted or whose
        time is up (finished), and fail the ones whose stored data is unusable."""
        report = ResumeReport()
        now = self._clock()
        store = self._store
        for record in await store.sims.list_running():
            state = store.state_or_none(record)
            if state is None or store.strategy_or_none(record) is None:
                await store.end(record, None, None, "failed", UNREADABLE, publish=False)
                report.failed += 1
            elif record.bot_id is None:
                await store.end(record, state, state.last_price, "finished", BOT_DELETED)
                report.finished += 1
            elif now >= from_iso(record.ends_at):
                await store.end(record, state, state.last_price, "finished", MAX_DURATION)
                report.finished += 1
            else:
                report.resumed += 1
        if report.resumed or report.finished or report.failed:
            log.info("simulations on start: %d resumed, %d finished, %d failed",
                     report.resumed, report.finished, report.failed)
        return report

    async def poll_once(self) -> PollReport:
        """Advance every running simulation by one poll (see the module docstring)."""
        return await self._poller.poll_once()

