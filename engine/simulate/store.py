"""The simulations' storage side: versioned commits of a step, ending a run, the parity replay.

Every change to a running simulation is one transaction guarded by the state's `version`: a
step computed from a state someone else (a stop, another poller) has moved on is dropped whole,
so nothing is booked twice. Events are published only after their commit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from engine.events import Event, EventSink, SignalFired, SimulationEnded
from engine.live import bar_start
from engine.parity import SIMULATION_PREDATES, TRADES_PREDATE, LiveTrade, Offload, ParityReport, replay_with
from engine.simulate.booking import Effects, book_exit
from engine.simulate.state import SimState
from engine.strategy import TIMEFRAME_MINUTES, Strategy, StrategyError, parse_strategy
from storage.bars_repo import BarRepo
from storage.bots_repo import BotRepo
from storage.db import Database
from storage.runs_repo import SimulationRecord, SimulationRepo
from storage.signals_repo import NewSignal, SignalRepo, TradeRepo
from storage.values import from_iso, to_iso

log = logging.getLogger(__name__)

# Why a simulation ended (`SimulationEnded.reason`, and the logs); the bot words them.
STOPPED = "stopped"  # by its owner
UNREADABLE = "unreadable"  # its stored state or strategy could not be read
BOT_DELETED = "bot_deleted"
MAX_DURATION = "max_duration"  # `SimulationEnded.max_hours` says how long that was


class SimulationStore:
    """The repositories of the simulations, with the versioned writes and the replay on top."""

    def __init__(self, db: Database, events: EventSink, clock: Callable[[], float], offload: Offload | None) -> None:
        self.db = db
        self.events = events
        self.clock = clock
        self.offload = offload  # where parity replays run (the backtest pool in production)
        self.sims = SimulationRepo(db)
        self.bots = BotRepo(db)
        self.signals = SignalRepo(db)
        self.trades = TradeRepo(db)
        self.bars = BarRepo(db)

    @staticmethod
    def state_or_none(record: SimulationRecord) -> SimState | None:
        """The record's decoded state; None (logged) when it is unusable."""
        try:
            return SimState.from_dict(record.state)
        except ValueError as exc:
            log.warning("simulation %s: %s", record.simulation_id, exc)
            return None

    @staticmethod
    def strategy_or_none(record: SimulationRecord) -> Strategy | None:
        """The record's strategy; None when it no longer validates."""
        try:
            return parse_strategy(record.strategy_json)
        except (StrategyError, ValueError):
            return None

    async def commit(self, record: SimulationRecord, expected_version: int, state: SimState, effects: Effects,
                     *, last_poll_at: str | None = None, end_status: str | None = None,
                     stopped_at: str | None = None) -> bool:
        """Write the step if the simulation is still running at `expected_version`."""
        async with self.db.transaction() as tx:
            row = await self.sims.get_by_id(record.simulation_id, tx=tx)
            if row is None or row.status != "running":
                return False
            current = row.state.get("version", 0)
            if current is not None and current != expected_version:
                return False  # someone else (stop, another poller) moved it on: drop this step
            await self._drop_known_signals(record, effects, tx)
            await self.signals.add_many(effects.signals, tx=tx)
            if effects.bars is not None:
                await self.bars.save(record.token_id, TIMEFRAME_MINUTES[record.timeframe], effects.bars, tx=tx)
            for trade in effects.trades:
                await self.trades.add_simulation_trade(trade, tx=tx)
            if end_status is None:
                await self.sims.save_state(record.simulation_id, state.to_dict(), last_poll_at, tx=tx)
            else:
                await self.sims.end(record.simulation_id, end_status, stopped_at or to_iso(self.clock()),
                                    state.to_dict(), tx=tx)
        return True

    async def _drop_known_signals(self, record: SimulationRecord, effects: Effects, tx: Any) -> None:
        """Signals already stored for their bar (a replayed bar after a restart) are not written or pushed."""
        fresh: list[NewSignal] = []
        for signal in effects.signals:
            if signal.bar_time is None or not await self.signals.exists_for_simulation_bar(
                    record.simulation_id, signal.bar_time, signal.side, tx=tx):
                fresh.append(signal)
        if len(fresh) != len(effects.signals):
            kept_sides = {s.side for s in fresh}
            effects.events = [e for e in effects.events if not isinstance(e, SignalFired) or e.side in kept_sides]
            effects.signals = fresh

    async def end(self, record: SimulationRecord, state: SimState | None, price: float | None, status: str,
                  reason: str, *, publish: bool = True) -> bool:
        """End a running simulation (`reason` one of the codes above), closing its position at
        `price` (else the last known price).

        Retries when a concurrent poll moved the state on in between; False if it was not running.
        """
        for _ in range(5):
            now_iso = to_iso(self.clock())
            if state is None:
                ended = await self.sims.end(record.simulation_id, status, now_iso)
                if ended:
                    log.warning("simulation %s ended (%s): %s", record.simulation_id, status, reason)
                return ended
            new = replace(state)
            effects = Effects()
            if new.position is not None:
                exit_price = price if price is not None else (new.last_price or new.position.entry_price)
                interval = TIMEFRAME_MINUTES.get(record.timeframe, 60)
                book_exit(record, new, new.costs.sell_fill(exit_price), "stopped" if status == "stopped" else "end",
                          now_iso, effects, bar_time=bar_start(self.clock(), interval))
            new.version = state.version + 1
            if await self.commit(record, state.version, new, effects, end_status=status, stopped_at=now_iso):
                if publish:
                    effects.events.append(await self._ended(record, new, reason))
                    await self.publish(effects.events)
                log.info("simulation %s %s: %s", record.simulation_id, status, reason)
                return True
            fresh = await self.sims.get_by_id(record.simulation_id)
            if fresh is None or not fresh.running:
                return False
            record, state = fresh, self.state_or_none(fresh)
        return False

    async def _ended(self, record: SimulationRecord, state: SimState, reason: str) -> SimulationEnded:
        hours = (from_iso(record.ends_at) - from_iso(record.started_at)) / 3600.0 if reason == MAX_DURATION else None
        return SimulationEnded(user_id=record.user_id, simulation_id=record.simulation_id, bot_name=state.bot_name,
                               reason=reason, max_hours=hours, parity=await self.parity_or_none(record, state))

    async def parity(self, record: SimulationRecord, state: SimState | None = None) -> ParityReport:
        """Replay the bars this simulation traded on through the backtest and compare the trades."""
        state = state or self.state_or_none(record)
        strategy = self.strategy_or_none(record)
        if state is None or strategy is None or state.since is None:
            return ParityReport(0, 0, unavailable=SIMULATION_PREDATES)
        interval = TIMEFRAME_MINUTES[record.timeframe]
        last = state.last_bar_time
        if last is None:
            return ParityReport(0, 0)
        first = state.since - state.window_bars * interval * 60
        bars = await self.bars.load(record.token_id, interval, first, last)
        trades = await self.trades.for_simulation(record.user_id, record.simulation_id, limit=10_000)
        live = [LiveTrade(t.entry_bar_time, t.entry_price, t.exit_bar_time, t.exit_price, t.exit_reason)
                for t in trades if t.entry_bar_time is not None]
        if len(live) != len(trades):
            return ParityReport(len(trades), 0, unavailable=TRADES_PREDATE)
        if state.position is not None and state.position.entry_bar_time is not None:
            live.append(LiveTrade(state.position.entry_bar_time, state.position.entry_price))
        report = await replay_with(self.offload, strategy, bars, interval, state.since, live, state.costs)
        if report.first_difference:
            log.warning("simulation %s diverged from its backtest replay: %r", record.simulation_id,
                        report.first_difference)
        return report

    async def parity_or_none(self, record: SimulationRecord, state: SimState) -> ParityReport | None:
        """`parity`, or None (logged) when the replay itself failed."""
        try:
            return await self.parity(record, state)
        except Exception:  # a report must never break ending or showing a simulation
            log.exception("simulation %s: parity replay failed", record.simulation_id)
            return None

    async def publish(self, events: list[Event]) -> None:
        """Publish committed events; a failing sink is logged, never raised."""
        for event in events:
            try:
                await self.events.publish(event)
            except Exception:
                # a failing notifier must never break the simulation loop
                log.exception("publishing %s failed", type(event).__name__)
