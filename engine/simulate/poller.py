"""The simulations' poll loop: one batched price call, then one step per running simulation.

A step feeds the bars that closed since the last poll to the simulation's `TradingCore` (missed
bars in order, so the trades are those the backtest makes), reads the forming bar only when it
can settle something now, books the fills (`engine.simulate.booking`) and commits everything in
one versioned transaction (`engine.simulate.store`). Market data for a poll is fetched once per
token and shared by the simulations on it.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass, field, replace
from typing import Any

from engine.core import Fill, TradingCore
from engine.live import (
    FormingBar,
    advance,
    closed_bars,
    forming_bar,
    new_bar_slice,
    settled_start,
    wants_forming_bar,
)
from engine.market.base import CANDLE_FIELDS, Candles, MarketData, MarketDataError
from engine.signals import evaluate
from engine.simulate.booking import Effects, book_entry, book_exit, record_signals
from engine.simulate.state import SimState
from engine.simulate.store import BOT_DELETED, MAX_DURATION, UNREADABLE, SimulationStore
from engine.strategy import TIMEFRAME_MINUTES, Strategy
from storage.runs_repo import SimulationRecord
from storage.values import from_iso, to_iso

log = logging.getLogger(__name__)

# more missed bars than this after an outage are not replayed (AVE returns at most 1000 points)
MAX_CATCH_UP_BARS = 500

# Windows of closed bars by (token, interval, count), a market error code in their place, and
# forming bars by ("forming", token, interval): what one poll fetched, shared by its steps.
Windows = dict[tuple[Any, ...], Any]


@dataclass
class PollReport:
    """What one poll did; `errors` maps simulation id to a short reason code (a market error's code)."""

    simulations: int = 0
    evaluated: int = 0
    signals: int = 0
    opened: int = 0
    closed: int = 0
    finished: int = 0
    errors: dict[int, str] = field(default_factory=dict)
    market_error: str | None = None


def valid_price(value: float | None) -> float | None:
    """A finite positive price, else None."""
    if value is None:
        return None
    price = float(value)
    return price if math.isfinite(price) and price > 0 else None


class Poller:
    """Advances every running simulation by one poll."""

    def __init__(self, store: SimulationStore, market: MarketData) -> None:
        self.store = store
        self.market = market
        self._lock = asyncio.Lock()

    async def poll_once(self) -> PollReport:
        """One poll (see the module docstring)."""
        async with self._lock:  # an overrunning poll never runs twice at once
            return await self._poll()

    async def _poll(self) -> PollReport:
        report = PollReport()
        records = await self.store.sims.list_running()
        report.simulations = len(records)
        if not records:
            return report
        now = self.store.clock()
        live: list[tuple[SimulationRecord, SimState, Strategy]] = []
        for record in records:
            state, strategy = self.store.state_or_none(record), self.store.strategy_or_none(record)
            if state is None or strategy is None:
                await self.store.end(record, None, None, "failed", UNREADABLE, publish=False)
                report.errors[record.simulation_id] = "state_unusable"
                continue
            live.append((record, state, strategy))
        prices = await self._prices(sorted({r.token_id for r, _, _ in live}), report)
        windows: Windows = {}
        for record, state, strategy in live:
            price = prices.get(record.token_id)
            if record.bot_id is None or now >= from_iso(record.ends_at):
                reason = BOT_DELETED if record.bot_id is None else MAX_DURATION
                if await self.store.end(record, state, price or state.last_price, "finished", reason):
                    report.finished += 1
                continue
            if report.market_error is not None:
                report.errors[record.simulation_id] = report.market_error
                continue
            if price is None:
                report.errors[record.simulation_id] = "no_price"
                continue
            try:
                await self._step(record, state, strategy, price, now, windows, report)
            except MarketDataError as exc:
                report.errors[record.simulation_id] = exc.code
            except Exception:
                # one broken simulation must not stop the others
                log.exception("simulation %s: poll step failed", record.simulation_id)
                report.errors[record.simulation_id] = "internal"
        return report

    async def _prices(self, token_ids: list[str], report: PollReport) -> dict[str, float]:
        """One batched price call for every token; empty (and `report.market_error` set) when it fails."""
        try:
            quotes = await self.market.get_prices(token_ids)
        except MarketDataError as exc:
            report.market_error = exc.code
            log.warning("simulation poll: prices unavailable: %s", exc)
            return {}
        return {tid: p for tid, q in quotes.items() if (p := valid_price(q.price_usd)) is not None}

    async def _step(self, record: SimulationRecord, state: SimState, strategy: Strategy, price: float,
                    now: float, windows: Windows, report: PollReport) -> None:
        interval = TIMEFRAME_MINUTES[record.timeframe]
        period = interval * 60
        expected = state.version
        new = replace(state)
        effects = Effects()
        new.last_price, new.last_price_at, new.last_error = price, to_iso(now), None
        core = TradingCore.for_strategy(strategy, new.costs, new.core_state())
        fills: list[Fill] = []
        last = core.state.last_close
        if last is None or last < settled_start(now, interval) - period:
            missed = 0 if last is None else (settled_start(now, interval) - period - last) // period
            window = await self._window(record, interval, new.window_bars + min(missed, MAX_CATCH_UP_BARS),
                                        now, windows)
            if isinstance(window, str):
                report.errors[record.simulation_id] = window
                return
            start = new_bar_slice(core, window)
            if start < len(window):
                sig = evaluate(strategy, window, interval)
                fills += advance(core, window, sig.buy, sig.sell)
                effects.bars = Candles(*(window[f][start:] for f in CANDLE_FIELDS))
                record_signals(record, new, sig, window, start, effects)
                report.evaluated += 1
        if wants_forming_bar(core, price):
            forming = await self._forming(record.token_id, interval, now, windows)
            if forming is not None:
                fills += advance(core, Candles.empty(), None, None, forming)
        now_iso = to_iso(now)
        for fill in fills:
            if fill.side == "buy":
                if not book_entry(record, new, strategy, fill, now_iso, effects):
                    core.cancel_entry()
            else:
                book_exit(record, new, fill.fill, fill.reason, now_iso, effects, bar_time=fill.bar_time)
        new.set_core(core.state)
        new.version = expected + 1
        if await self.store.commit(record, expected, new, effects, last_poll_at=now_iso):
            report.signals += len(effects.signals)
            report.opened += effects.opened
            report.closed += len(effects.trades)
            await self.store.publish(effects.events)

    async def _window(self, record: SimulationRecord, interval: int, count: int, now: float,
                      windows: Windows) -> Candles | str:
        """The closed bars for this poll, fetched once per (token, interval, count) and shared;
        a market error code when they could not be fetched."""
        key = (record.token_id, interval, count)
        window = windows.get(key)
        if window is None:
            try:
                window = await closed_bars(self.market, record.token_id, interval, count, now)
            except MarketDataError as exc:
                window = exc.code
            windows[key] = window
        return window

    async def _forming(self, token_id: str, interval: int, now: float, windows: Windows) -> FormingBar | None:
        """The forming bar, read once per poll and token; None while unknown (the next poll retries)."""
        key = ("forming", token_id, interval)
        if key not in windows:
            try:
                windows[key] = await forming_bar(self.market, token_id, interval, now)
            except MarketDataError:
                windows[key] = None
        return windows[key]
