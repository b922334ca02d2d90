"""Live paper simulation of a strategy bot (SPEC §7 "Simulate").

How one simulation runs (each `poll_once`, called every `poll_seconds` by the worker):

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
   are charged on both sides; the amounts are rounded down to micro-USDC.
4. The signals, trades, processed bars and new state are written in one transaction guarded by
   the state's `version`, then the events are published. A restart finds the core's state at
   the last committed bar and does nothing twice.
5. `parity` replays the stored bars through the backtest and compares the trades.

Simulations end on `/simulate stop` (status `stopped`), after `max_duration_hours` (`finished`,
with a `SimulationEnded` event), when their bot is deleted, or when their stored data is
unusable (`failed`). An open position is closed at the last known price when a simulation ends.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from agents.events import Event, EventSink, SignalFired, SimulationEnded, TradeClosed, TradeOpened
from agents.money import percent_of, usdc_down
from engine.core import Costs, Fill, TradingCore
from engine.live import (
    FormingBar,
    advance,
    bar_start,
    closed_bars,
    forming_bar,
    new_bar_slice,
    settled_start,
    start_after,
    wants_forming_bar,
    warmup_bars,
)
from engine.market.base import (
    CANDLE_FIELDS,
    AuthError,
    Candles,
    MarketData,
    MarketDataError,
    PermanentMarketError,
    TemporaryMarketError,
    TokenInfo,
    TokenNotFoundError,
)
from engine.market.factory import PLAN_POLL_SECONDS
from engine.parity import LiveTrade, Offload, ParityReport, replay_with
from engine.signals import SignalArrays, evaluate, explain_bar, format_price
from engine.simulate.state import PaperPosition, SimState
from engine.strategy import TIMEFRAME_MINUTES, TIMEFRAMES, Strategy, StrategyError, describe_strategy, parse_strategy
from storage.bars_repo import BarRepo
from storage.db import Database
from storage.dialect import IntegrityError
from storage.repos import (
    BotRepo,
    NewSignal,
    NewTrade,
    SignalRepo,
    SimulationRecord,
    SimulationRepo,
    TradeRepo,
    from_iso,
    from_micro,
    to_iso,
    to_micro,
    valid_id,
)

log = logging.getLogger(__name__)

MAX_RUNNING_PER_USER = 3
MARKET_DOWN = "The market data service is unavailable right now, try again in a minute."

__all__ = [
    "MAX_RUNNING_PER_USER", "PaperPosition", "PollReport", "ResumeReport", "SimState", "SimulationError",
    "SimulationExistsError", "SimulationLimitError", "SimulationNotFoundError", "SimulationRecord",
    "SimulationService", "SimulationStatus",
]


class SimulationError(Exception):
    """Base of simulation errors; `str(err)` is a message for the user."""


class SimulationNotFoundError(SimulationError):
    """No such simulation (or strategy bot) for this user; also the answer for a foreign id."""

    def __init__(self, message: str = "Simulation not found. Use /simulate status to see yours.") -> None:
        super().__init__(message)


class SimulationExistsError(SimulationError):
    """The bot already has a running simulation."""


class SimulationLimitError(SimulationError):
    """The user already runs the maximum number of simulations."""


# -- reports ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SimulationStatus:
    """A simulation as `/simulate status` shows it. Money in USDC."""

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
    strategy_description: str
    last_error: str | None = None
    fee_bps: float = 30.0
    slippage_bps: float = 10.0
    fees_paid: Decimal = Decimal(0)
    slippage_paid: Decimal = Decimal(0)
    parity: ParityReport | None = None


@dataclass
class PollReport:
    """What one `poll_once` did; `errors` maps simulation id to a short reason."""

    simulations: int = 0
    evaluated: int = 0
    signals: int = 0
    opened: int = 0
    closed: int = 0
    finished: int = 0
    errors: dict[int, str] = field(default_factory=dict)
    market_error: str | None = None


@dataclass
class ResumeReport:
    """What `resume_all` found on start."""

    resumed: int = 0
    finished: int = 0
    failed: int = 0


@dataclass
class _Effects:
    """The outcome of one simulation step, committed together."""

    signals: list[NewSignal] = field(default_factory=list)
    trades: list[NewTrade] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    opened: int = 0
    bars: Candles | None = None


def _market_message(exc: MarketDataError) -> str:
    if isinstance(exc, TemporaryMarketError | AuthError):
        return MARKET_DOWN
    if isinstance(exc, PermanentMarketError):
        return f"The market data service refused the request: {exc}"
    return MARKET_DOWN


window_bars_for = warmup_bars  # the closed bars a simulation keeps to evaluate its newest bar exactly

# more missed bars than this after an outage are not replayed (AVE returns at most 1000 points)
MAX_CATCH_UP_BARS = 500


# -- the service -----------------------------------------------------------------------------------

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
        self.events = events
        self.poll_seconds = float(poll_seconds)
        self.max_duration_hours = float(max_duration_hours)
        self.initial_equity = Decimal(initial_equity)
        self.fee_bps = float(fee_bps)
        self.slippage_bps = float(slippage_bps)
        self._clock = clock
        self._offload = offload  # where parity replays run (the backtest pool in production)
        self._sims = SimulationRepo(db)
        self._bots = BotRepo(db)
        self._signals = SignalRepo(db)
        self._trades = TradeRepo(db)
        self._bars = BarRepo(db)
        self._poll_lock = asyncio.Lock()

    # -- start / stop ----------------------------------------------------------------------
    async def start(self, user_id: int, bot_id: int, bot_name: str, strategy: Strategy,
                    timeframe: str = "1h") -> SimulationRecord:
        """Start simulating the caller's bot on its strategy's token with `timeframe` candles."""
        checked = valid_id(bot_id)
        if checked is None:
            raise SimulationNotFoundError("Strategy bot not found. Use /bots to see yours.")
        if not isinstance(strategy, Strategy):
            raise SimulationError("This bot has no valid strategy to simulate yet.")
        if timeframe not in TIMEFRAME_MINUTES:
            raise SimulationError(f"Unknown timeframe {timeframe!s:.10}. Use one of {' '.join(TIMEFRAMES)}.")
        await self._check_can_start(user_id, checked)
        interval = TIMEFRAME_MINUTES[timeframe]
        info = await self._resolve(strategy)
        window_bars = window_bars_for(strategy, interval)
        now = self._clock()
        try:
            closed = await closed_bars(self.market, info.token_id, interval, window_bars, now)
        except MarketDataError as exc:
            raise SimulationError(_market_message(exc)) from None
        if len(closed) == 0:
            raise SimulationError(f"No recent {timeframe} candles for {info.symbol}; try another timeframe.")
        initial = to_micro(self.initial_equity)
        core = TradingCore.for_strategy(strategy, Costs(self.fee_bps, self.slippage_bps))
        start_after(core, closed)
        state = SimState(
            bot_name=str(bot_name)[:64] or "Strategy bot", chain=info.chain, demo=bool(self.market.is_demo),
            initial_micro=initial, cash_micro=initial, fee_bps=self.fee_bps, slippage_bps=self.slippage_bps,
            window_bars=window_bars, since=int(closed.time[-1]) + interval * 60,
            last_price=float(closed.close[-1]), last_price_at=to_iso(now))
        state.set_core(core.state)
        ends = now + self.max_duration_hours * 3600.0
        try:
            async with self.db.transaction() as tx:
                await self._check_can_start(user_id, checked, tx=tx)
                record = await self._sims.create(
                    user_id, checked, info.token_id, info.symbol[:64], timeframe,
                    json.dumps(strategy.to_config(), separators=(",", ":")), state.to_dict(),
                    to_iso(now), to_iso(ends), tx=tx)
                await self._bars.save(info.token_id, interval, closed, tx=tx)
        except IntegrityError:
            # the unique index caught a concurrent start of the same bot
            raise SimulationExistsError("This bot is already being simulated. Use /simulate stop first.") from None
        log.info("simulation %s started for user %s on %s", record.simulation_id, user_id, info.token_id)
        return record

    async def _check_can_start(self, user_id: int, bot_id: int, *, tx: Any = None) -> None:
        if await self._bots.get(user_id, bot_id, tx=tx) is None:
            raise SimulationNotFoundError("Strategy bot not found. Use /bots to see yours.")
        if await self._sims.running_for_bot(user_id, bot_id, tx=tx) is not None:
            raise SimulationExistsError("This bot is already being simulated. Use /simulate stop first.")
        if await self._sims.count_running_for_user(user_id, tx=tx) >= MAX_RUNNING_PER_USER:
            raise SimulationLimitError(
                f"You can run at most {MAX_RUNNING_PER_USER} simulations at once. Stop one first.")

    async def stop(self, user_id: int, simulation_id: object = None, *, bot_id: object = None) -> SimulationRecord:
        """Stop the caller's running simulation (by id, or the running one of `bot_id`).

        An open paper position is closed at the current price (the last polled one if the market
        is unavailable). A foreign or unknown id raises `SimulationNotFoundError`.
        """
        record = await self._find(user_id, simulation_id, bot_id)
        if not record.running:
            raise SimulationError(f"Simulation #{record.simulation_id} is already {record.status}.")
        state = self._state_or_none(record)
        price = None
        if state is not None and state.position is not None:
            price = await self._price_now(record.token_id)
        await self._end(record, state, price, "stopped", "stopped by you", publish=False)
        updated = await self._sims.get(user_id, record.simulation_id)
        assert updated is not None
        return updated

    async def stop_for_bot(self, user_id: int, bot_id: object) -> SimulationRecord | None:
        """Stop the running simulation of the caller's bot, if there is one (None otherwise)."""
        checked = valid_id(bot_id)
        record = None if checked is None else await self._sims.running_for_bot(user_id, checked)
        if record is None:
            return None
        try:
            return await self.stop(user_id, record.simulation_id)
        except SimulationError:
            return None  # it ended in between

    async def get(self, user_id: int, simulation_id: object) -> SimulationRecord:
        """The caller's simulation record in any status (`SimulationNotFoundError` otherwise)."""
        sim_id = valid_id(simulation_id)
        record = None if sim_id is None else await self._sims.get(user_id, sim_id)
        if record is None:
            raise SimulationNotFoundError()
        return record

    async def _find(self, user_id: int, simulation_id: object, bot_id: object) -> SimulationRecord:
        if simulation_id is not None:
            sim_id = valid_id(simulation_id)
            record = None if sim_id is None else await self._sims.get(user_id, sim_id)
        elif bot_id is not None:
            checked = valid_id(bot_id)
            record = None if checked is None else await self._sims.running_for_bot(user_id, checked)
            if record is None:
                raise SimulationNotFoundError("This bot has no running simulation.")
        else:
            raise SimulationError("Say which simulation to stop.")
        if record is None:
            raise SimulationNotFoundError()
        return record

    async def _price_now(self, token_id: str) -> float | None:
        try:
            quote = (await self.market.get_prices([token_id])).get(token_id)
        except MarketDataError:
            return None
        return _valid_price(None if quote is None else quote.price_usd)

    # -- reports ---------------------------------------------------------------------------
    async def status(self, user_id: int, *, include_finished: bool = False) -> list[SimulationStatus]:
        """The caller's running simulations (newest first), optionally with ended ones."""
        statuses = ("running", "stopped", "finished", "failed") if include_finished else ("running",)
        records = await self._sims.list_for_user(user_id, statuses, limit=10)
        out = []
        for record in records:
            summary = await self._summary(record)
            if summary is not None:
                out.append(summary)
        return out

    async def summary(self, user_id: int, simulation_id: object) -> SimulationStatus:
        """One of the caller's simulations, in any status."""
        sim_id = valid_id(simulation_id)
        record = None if sim_id is None else await self._sims.get(user_id, sim_id)
        summary = None if record is None else await self._summary(record)
        if summary is None:
            raise SimulationNotFoundError()
        return summary

    async def _summary(self, record: SimulationRecord) -> SimulationStatus | None:
        state = self._state_or_none(record)
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
        try:
            description = describe_strategy(parse_strategy(record.strategy_json))
        except StrategyError:
            description = "(the stored strategy is no longer valid)"
        left = max(0.0, from_iso(record.ends_at) - self._clock()) if record.running else 0.0
        return SimulationStatus(
            simulation_id=record.simulation_id, bot_id=record.bot_id, bot_name=state.bot_name,
            symbol=record.symbol, token_id=record.token_id, chain=state.chain, timeframe=record.timeframe,
            status=record.status, demo=state.demo, initial_equity=initial, cash=cash, equity=equity, pnl=pnl,
            pnl_pct=float(pnl / initial * 100) if initial else 0.0, position=position,
            unrealized_pnl=unrealized, last_price=state.last_price,
            signals=await self._signals.count_for_simulation(record.simulation_id),
            trades=await self._trades.count_for_simulation(record.simulation_id),
            started_at=record.started_at, ends_at=record.ends_at, time_left_seconds=left,
            strategy_description=description, last_error=state.last_error, fee_bps=state.fee_bps,
            slippage_bps=state.slippage_bps, fees_paid=from_micro(state.fees_micro),
            slippage_paid=from_micro(state.slippage_micro), parity=await self._parity_or_none(record, state))

    @staticmethod
    def describe(status: SimulationStatus) -> str:
        """A plain-text block for one simulation (the bot layer escapes it for HTML)."""
        demo = " (demo market)" if status.demo else ""
        lines = [f"#{status.simulation_id} {status.bot_name} · {status.symbol} {status.timeframe}{demo} · "
                 f"{status.status}",
                 f"Equity {_fmt_money(status.equity)} USDC ({_fmt_signed(status.pnl)}, {status.pnl_pct:+.2f}%)"]
        pos = status.position
        if pos is not None:
            size = f"{pos.size:,.0f}" if pos.size >= 1000 else f"{pos.size:.6g}"
            lines.append(f"Position {size} {status.symbol} @ {_fmt_price(pos.entry_price)}, "
                         f"cost {_fmt_money(pos.cost)} USDC, unrealized {_fmt_signed(status.unrealized_pnl or 0)}")
        else:
            lines.append("No open position")
        price = "n/a" if status.last_price is None else _fmt_price(status.last_price)
        lines.append(f"Signals {status.signals} · trades {status.trades} · last price {price}")
        lines.append(f"Costs: {Costs(status.fee_bps, status.slippage_bps).describe()}; paid "
                     f"{_fmt_money(status.fees_paid)} USDC in fees, {_fmt_money(status.slippage_paid)} in slippage")
        if status.parity is not None:
            lines.append(status.parity.summary())
        if status.status == "running":
            minutes = int(status.time_left_seconds // 60)
            lines.append(f"Time left {minutes // 60}h {minutes % 60:02d}m")
        if status.last_error:
            lines.append(f"Last problem: {status.last_error}")
        return "\n".join(lines)

    # -- restart ---------------------------------------------------------------------------
    async def resume_all(self) -> ResumeReport:
        """On start: keep valid running simulations, end the ones whose bot was deleted or whose
        time is up (finished), and fail the ones whose stored data is unusable."""
        report = ResumeReport()
        now = self._clock()
        for record in await self._sims.list_running():
            state = self._state_or_none(record)
            if state is None or self._strategy_or_none(record) is None:
                await self._end(record, None, None, "failed", "its stored data could not be read", publish=False)
                report.failed += 1
            elif record.bot_id is None:
                await self._end(record, state, state.last_price, "finished", "its strategy bot was deleted")
                report.finished += 1
            elif now >= from_iso(record.ends_at):
                await self._end(record, state, state.last_price, "finished", self._duration_text(record))
                report.finished += 1
            else:
                report.resumed += 1
        if report.resumed or report.finished or report.failed:
            log.info("simulations on start: %d resumed, %d finished, %d failed",
                     report.resumed, report.finished, report.failed)
        return report

    @staticmethod
    def _duration_text(record: SimulationRecord) -> str:
        hours = (from_iso(record.ends_at) - from_iso(record.started_at)) / 3600.0
        return f"it reached the maximum duration of {round(hours, 2):g} h"

    # -- polling ---------------------------------------------------------------------------
    async def poll_once(self) -> PollReport:
        """Advance every running simulation by one poll (see the module docstring)."""
        async with self._poll_lock:  # an overrunning poll never runs twice at once
            return await self._poll()

    async def _poll(self) -> PollReport:
        report = PollReport()
        records = await self._sims.list_running()
        report.simulations = len(records)
        if not records:
            return report
        now = self._clock()
        live: list[tuple[SimulationRecord, SimState, Strategy]] = []
        for record in records:
            state, strategy = self._state_or_none(record), self._strategy_or_none(record)
            if state is None or strategy is None:
                await self._end(record, None, None, "failed", "its stored data could not be read", publish=False)
                report.errors[record.simulation_id] = "unusable stored state"
                continue
            live.append((record, state, strategy))
        prices: dict[str, float] = {}
        try:
            quotes = await self.market.get_prices(sorted({r.token_id for r, _, _ in live}))
            prices = {tid: p for tid, q in quotes.items() if (p := _valid_price(q.price_usd)) is not None}
        except MarketDataError as exc:
            report.market_error = _market_message(exc)
            log.warning("simulation poll: prices unavailable: %s", exc)
        windows: dict[tuple[str, int, int], Candles | str] = {}
        for record, state, strategy in live:
            price = prices.get(record.token_id)
            if record.bot_id is None or now >= from_iso(record.ends_at):
                reason = "its strategy bot was deleted" if record.bot_id is None else self._duration_text(record)
                if await self._end(record, state, price or state.last_price, "finished", reason):
                    report.finished += 1
                continue
            if report.market_error is not None:
                report.errors[record.simulation_id] = report.market_error
                continue
            if price is None:
                report.errors[record.simulation_id] = f"no current price for {record.symbol}"
                continue
            try:
                await self._step(record, state, strategy, price, now, windows, report)
            except MarketDataError as exc:
                report.errors[record.simulation_id] = _market_message(exc)
            except Exception:
                # one broken simulation must not stop the others
                log.exception("simulation %s: poll step failed", record.simulation_id)
                report.errors[record.simulation_id] = "internal error"
        return report

    async def _step(self, record: SimulationRecord, state: SimState, strategy: Strategy, price: float,
                    now: float, windows: dict[tuple[str, int, int], Candles | str], report: PollReport) -> None:
        interval = TIMEFRAME_MINUTES[record.timeframe]
        period = interval * 60
        expected = state.version
        new = replace(state)
        effects = _Effects()
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
                self._record_signals(record, new, sig, window, start, effects)
                report.evaluated += 1
        if wants_forming_bar(core, price):
            forming = await self._forming(record.token_id, interval, now, windows)
            if forming is not None:
                fills += advance(core, Candles.empty(), None, None, forming)
        now_iso = to_iso(now)
        for fill in fills:
            if fill.side == "buy":
                if not self._open(record, new, strategy, fill, now_iso, effects):
                    core.cancel_entry()
            else:
                self._close(record, new, fill.fill, fill.reason, now_iso, effects, bar_time=fill.bar_time)
        new.set_core(core.state)
        new.version = expected + 1
        if await self._commit(record, expected, new, effects, last_poll_at=now_iso):
            report.signals += len(effects.signals)
            report.opened += effects.opened
            report.closed += len(effects.trades)
            await self._publish(effects.events)

    async def _window(self, record: SimulationRecord, interval: int, count: int, now: float,
                      windows: dict[tuple[str, int, int], Candles | str]) -> Candles | str:
        """The closed bars for this poll, fetched once per (token, interval, count) and shared."""
        key = (record.token_id, interval, count)
        window = windows.get(key)
        if window is None:
            try:
                window = await closed_bars(self.market, record.token_id, interval, count, now)
            except MarketDataError as exc:
                window = _market_message(exc)
            windows[key] = window
        return window

    async def _forming(self, token_id: str, interval: int, now: float, windows: dict[Any, Any]) -> FormingBar | None:
        """The forming bar, read once per poll and token; None while unknown (the next poll retries)."""
        key = ("forming", token_id, interval)
        if key not in windows:
            try:
                windows[key] = await forming_bar(self.market, token_id, interval, now)
            except MarketDataError:
                windows[key] = None
        return windows[key]

    @staticmethod
    def _record_signals(record: SimulationRecord, state: SimState, sig: SignalArrays, window: Candles,
                        start: int, effects: _Effects) -> None:
        """Signal rows for every new closed bar; notifications only for the newest (no stale pushes)."""
        newest = len(window) - 1
        for i in range(start, len(window)):
            latest = explain_bar(sig, window, i)
            if latest is None:
                continue
            for side in ("buy", "sell"):
                if not (latest.buy if side == "buy" else latest.sell):
                    continue
                text = latest.explanation(side)
                effects.signals.append(NewSignal(
                    user_id=record.user_id, bot_id=record.bot_id, simulation_id=record.simulation_id,
                    token_id=record.token_id, side=side, price=latest.close, reason=text, bar_time=latest.time))
                if i == newest:
                    effects.events.append(SignalFired(
                        user_id=record.user_id, symbol=record.symbol, side=side, price=latest.close,
                        explanation=text, bot_name=state.bot_name, demo=state.demo,
                        simulation_id=record.simulation_id))

    # -- paper trading ---------------------------------------------------------------------
    @staticmethod
    def _open(record: SimulationRecord, state: SimState, strategy: Strategy, fill: Fill, now_iso: str,
              effects: _Effects) -> bool:
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

    @staticmethod
    def _close(record: SimulationRecord, state: SimState, exit_fill: float, reason: str, now_iso: str,
               effects: _Effects, *, bar_time: int | None) -> None:
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

    # -- persistence -----------------------------------------------------------------------
    async def _commit(self, record: SimulationRecord, expected_version: int, state: SimState, effects: _Effects,
                      *, last_poll_at: str | None = None, end_status: str | None = None,
                      stopped_at: str | None = None) -> bool:
        """Write the step if the simulation is still running at `expected_version`."""
        async with self.db.transaction() as tx:
            row = await self._sims.get_by_id(record.simulation_id, tx=tx)
            if row is None or row.status != "running":
                return False
            current = row.state.get("version", 0)
            if current is not None and current != expected_version:
                return False  # someone else (stop, another poller) moved it on: drop this step
            fresh: list[NewSignal] = []
            for signal in effects.signals:
                if signal.bar_time is None or not await self._signals.exists_for_simulation_bar(
                        record.simulation_id, signal.bar_time, signal.side, tx=tx):
                    fresh.append(signal)
            if len(fresh) != len(effects.signals):
                kept_sides = {s.side for s in fresh}
                effects.events = [e for e in effects.events
                                  if not isinstance(e, SignalFired) or e.side in kept_sides]
                effects.signals = fresh
            await self._signals.add_many(fresh, tx=tx)
            if effects.bars is not None:
                await self._bars.save(record.token_id, TIMEFRAME_MINUTES[record.timeframe], effects.bars, tx=tx)
            for trade in effects.trades:
                await self._trades.add_simulation_trade(trade, tx=tx)
            if end_status is None:
                await self._sims.save_state(record.simulation_id, state.to_dict(), last_poll_at, tx=tx)
            else:
                await self._sims.end(record.simulation_id, end_status, stopped_at or to_iso(self._clock()),
                                     state.to_dict(), tx=tx)
        return True

    async def _end(self, record: SimulationRecord, state: SimState | None, price: float | None, status: str,
                   reason: str, *, publish: bool = True) -> bool:
        """End a running simulation, closing its position at `price` (else the last known price).

        Retries when a concurrent poll moved the state on in between; False if it was not running.
        """
        for _ in range(5):
            now_iso = to_iso(self._clock())
            if state is None:
                ended = await self._sims.end(record.simulation_id, status, now_iso)
                if ended:
                    log.warning("simulation %s ended (%s): %s", record.simulation_id, status, reason)
                return ended
            new = replace(state)
            effects = _Effects()
            if new.position is not None:
                exit_price = price if price is not None else (new.last_price or new.position.entry_price)
                interval = TIMEFRAME_MINUTES.get(record.timeframe, 60)
                self._close(record, new, new.costs.sell_fill(exit_price), "stopped" if status == "stopped" else "end",
                            now_iso, effects, bar_time=bar_start(self._clock(), interval))
            new.version = state.version + 1
            if await self._commit(record, state.version, new, effects, end_status=status, stopped_at=now_iso):
                if publish:
                    parity = await self._parity_or_none(record, new)
                    effects.events.append(SimulationEnded(user_id=record.user_id,
                                                          simulation_id=record.simulation_id,
                                                          bot_name=new.bot_name, reason=reason, parity=parity))
                    await self._publish(effects.events)
                log.info("simulation %s %s: %s", record.simulation_id, status, reason)
                return True
            fresh = await self._sims.get_by_id(record.simulation_id)
            if fresh is None or not fresh.running:
                return False
            record, state = fresh, self._state_or_none(fresh)
        return False

    async def parity(self, record: SimulationRecord, state: SimState | None = None) -> ParityReport:
        """Replay the bars this simulation traded on through the backtest and compare the trades."""
        state = state or self._state_or_none(record)
        strategy = self._strategy_or_none(record)
        if state is None or strategy is None or state.since is None:
            return ParityReport(0, 0, unavailable="this simulation predates the parity check")
        interval = TIMEFRAME_MINUTES[record.timeframe]
        last = state.last_bar_time
        if last is None:
            return ParityReport(0, 0)
        first = state.since - state.window_bars * interval * 60
        bars = await self._bars.load(record.token_id, interval, first, last)
        trades = await self._trades.for_simulation(record.user_id, record.simulation_id, limit=10_000)
        live = [LiveTrade(t.entry_bar_time, t.entry_price, t.exit_bar_time, t.exit_price, t.exit_reason)
                for t in trades if t.entry_bar_time is not None]
        if len(live) != len(trades):
            return ParityReport(len(trades), 0, unavailable="some trades predate the parity check")
        if state.position is not None and state.position.entry_bar_time is not None:
            live.append(LiveTrade(state.position.entry_bar_time, state.position.entry_price))
        report = await replay_with(self._offload, strategy, bars, interval, state.since, live, state.costs)
        if report.first_difference:
            log.warning("simulation %s diverged from its backtest replay: %s", record.simulation_id,
                        report.first_difference)
        return report

    async def _parity_or_none(self, record: SimulationRecord, state: SimState) -> ParityReport | None:
        try:
            return await self.parity(record, state)
        except Exception:  # a report must never break ending or showing a simulation
            log.exception("simulation %s: parity replay failed", record.simulation_id)
            return None

    async def _publish(self, events: list[Event]) -> None:
        for event in events:
            try:
                await self.events.publish(event)
            except Exception:
                # a failing notifier must never break the simulation loop
                log.exception("publishing %s failed", type(event).__name__)

    # -- market helpers --------------------------------------------------------------------
    async def _resolve(self, strategy: Strategy) -> TokenInfo:
        try:
            return await self.market.resolve_token(strategy.token, strategy.chain)
        except TokenNotFoundError as exc:
            text = str(exc)
            if not text.startswith("No token called"):
                text = f"No token called {strategy.token}" + (f" on {strategy.chain}" if strategy.chain else "")
            raise SimulationError(text + ".") from None
        except MarketDataError as exc:
            raise SimulationError(_market_message(exc)) from None

    @staticmethod
    def _state_or_none(record: SimulationRecord) -> SimState | None:
        try:
            return SimState.from_dict(record.state)
        except ValueError as exc:
            log.warning("simulation %s: %s", record.simulation_id, exc)
            return None

    @staticmethod
    def _strategy_or_none(record: SimulationRecord) -> Strategy | None:
        try:
            return parse_strategy(record.strategy_json)
        except StrategyError:
            return None
        except ValueError:
            return None


def _valid_price(value: float | None) -> float | None:
    if value is None:
        return None
    price = float(value)
    return price if math.isfinite(price) and price > 0 else None


def _fmt_money(value: Decimal) -> str:
    return f"{value:,.2f}"


def _fmt_signed(value: Decimal | int) -> str:
    amount = Decimal(value)
    return f"{'+' if amount > 0 else ''}{amount:,.2f}"


def _fmt_price(price: float) -> str:
    return format_price(price) if price < 1000 else f"{price:,.2f}"
