"""Live paper simulation of a strategy bot (SPEC §7 "Simulate").

How one simulation runs (each `poll_once`, called every `poll_seconds` by the worker):

1. One batched `get_prices` call for the tokens of all running simulations.
2. The rolling window: the last `window_bars` *closed* candles of the simulation's timeframe
   (`get_klines(..., to_time=<start of the live bar> - 1)`). The live bar itself is represented
   by the polled price, which is what fills and stop-loss/take-profit checks use. Asking for
   closed bars explicitly matters: a cached "latest candles" answer fetched just before a bar
   boundary would otherwise hand us that bar with a stale, partial close.
3. Signals are evaluated only when a bar has closed since the last processed one
   (`last_bar_time` in the state), with `engine.signals.explain_latest` on that window: the same
   code and bar semantics as the backtest, which the window reproduces exactly (it is longer
   than every condition's lookback). After a pause (restart, outage) only the newest closed bar
   is evaluated; missed bars are not replayed, so no stale notifications.
4. Paper trading against the polled price, mirroring the backtest: a sell signal exits first
   (the backtest exits at the next open, before intrabar moves), then stop-loss (checked first)
   and take-profit; a buy signal opens `amount_percent` of equity when flat and nothing was
   closed in the same poll. Fills include slippage; fees are charged on both sides. A level that
   the price has moved past fills at the polled price (the backtest's "gap" rule), since we only
   see the market at poll times.
5. The signals, closed trades and new state are written in one transaction guarded by the
   state's `version`, then the events are published. A restart mid-bar finds `last_bar_time`
   already at that bar and does nothing twice.

Simulations end on `/simulate stop` (status `stopped`), after `max_duration_hours` (`finished`,
with a `SimulationEnded` event), when their bot is deleted, or when their stored data is
unusable (`failed`). An open position is closed at the last known price when a simulation ends.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import ROUND_DOWN, Decimal
from typing import Any

from agents.events import Event, EventSink, SignalFired, SimulationEnded, TradeClosed, TradeOpened
from engine.market.base import (
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
from engine.signals import explain_latest, format_price, lookback_bars
from engine.strategy import TIMEFRAME_MINUTES, TIMEFRAMES, Strategy, StrategyError, describe_strategy, parse_strategy
from storage.db import Database
from storage.repos import (
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
STATE_FORMAT = 1
_MICRO_Q = Decimal("0.000001")

__all__ = [
    "MAX_RUNNING_PER_USER", "PaperPosition", "PollReport", "ResumeReport", "SimulationError",
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


# -- state -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PaperPosition:
    """The open paper position of a simulation (prices are fills, slippage included)."""

    size: float
    entry_price: float
    cost: Decimal
    stop_loss: float | None
    take_profit: float | None
    opened_at: str
    entry_bar_time: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"size": self.size, "entry_price": self.entry_price, "cost_micro": to_micro(self.cost),
                "stop_loss": self.stop_loss, "take_profit": self.take_profit, "opened_at": self.opened_at,
                "entry_bar_time": self.entry_bar_time}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PaperPosition:
        size, entry = float(data["size"]), float(data["entry_price"])
        if not (size > 0 and entry > 0 and math.isfinite(size) and math.isfinite(entry)):
            raise ValueError("invalid position")
        sl, tp = data.get("stop_loss"), data.get("take_profit")
        return cls(size=size, entry_price=entry, cost=from_micro(int(data["cost_micro"])),
                   stop_loss=None if sl is None else float(sl), take_profit=None if tp is None else float(tp),
                   opened_at=str(data["opened_at"]),
                   entry_bar_time=None if data.get("entry_bar_time") is None else int(data["entry_bar_time"]))

    def value_at(self, price: float) -> Decimal:
        """Mark-to-market value before exit costs (the backtest's equity convention)."""
        return _usdc(self.size * price)


@dataclass
class SimState:
    """Everything a running simulation carries between polls (stored as `state_json`)."""

    bot_name: str
    chain: str
    demo: bool
    initial_micro: int
    cash_micro: int
    fee_bps: float
    slippage_bps: float
    window_bars: int
    last_bar_time: int | None = None
    window_first: int | None = None
    window_last: int | None = None
    last_price: float | None = None
    last_price_at: str | None = None
    position: PaperPosition | None = None
    version: int = 0
    last_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT, "bot_name": self.bot_name, "chain": self.chain, "demo": self.demo,
            "initial_micro": self.initial_micro, "cash_micro": self.cash_micro, "fee_bps": self.fee_bps,
            "slippage_bps": self.slippage_bps, "window_bars": self.window_bars,
            "last_bar_time": self.last_bar_time, "window_first": self.window_first,
            "window_last": self.window_last, "last_price": self.last_price, "last_price_at": self.last_price_at,
            "position": None if self.position is None else self.position.to_dict(), "version": self.version,
            "last_error": self.last_error,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SimState:
        """Decode and check a stored state (ValueError when it is unusable)."""
        try:
            position = data.get("position")

            def opt_int(key: str) -> int | None:
                return None if data.get(key) is None else int(data[key])

            state = cls(
                bot_name=str(data.get("bot_name") or "Strategy bot"), chain=str(data.get("chain") or ""),
                demo=bool(data.get("demo", False)), initial_micro=int(data["initial_micro"]),
                cash_micro=int(data["cash_micro"]), fee_bps=float(data["fee_bps"]),
                slippage_bps=float(data["slippage_bps"]), window_bars=int(data["window_bars"]),
                last_bar_time=opt_int("last_bar_time"), window_first=opt_int("window_first"),
                window_last=opt_int("window_last"),
                last_price=None if data.get("last_price") is None else float(data["last_price"]),
                last_price_at=data.get("last_price_at"),
                position=None if position is None else PaperPosition.from_dict(position),
                version=int(data.get("version", 0)), last_error=data.get("last_error"))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"unusable simulation state: {exc}") from None
        if state.initial_micro <= 0 or state.cash_micro < 0 or not 1 <= state.window_bars <= 5000:
            raise ValueError("unusable simulation state: bad amounts or window")
        return state


def _usdc(value: float) -> Decimal:
    """A float amount of USDC to Decimal, rounded down to micro-USDC (paper money never rounds up)."""
    if not math.isfinite(value):
        raise ValueError("non-finite amount")
    return Decimal(repr(value)).quantize(_MICRO_Q, rounding=ROUND_DOWN)


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


def _market_message(exc: MarketDataError) -> str:
    if isinstance(exc, TemporaryMarketError | AuthError):
        return MARKET_DOWN
    if isinstance(exc, PermanentMarketError):
        return f"The market data service refused the request: {exc}"
    return MARKET_DOWN


def window_bars_for(strategy: Strategy, interval_minutes: int) -> int:
    """Closed bars needed to evaluate the last bar exactly as over the full history."""
    need = max(lookback_bars(c.timeframe, interval_minutes) if c.type != "price_level" else 1
               for c in strategy.conditions)
    return need + 2


# -- the service -----------------------------------------------------------------------------------

class SimulationService:
    """Starts, stops, polls and reports live paper simulations of strategy bots."""

    def __init__(self, db: Database, market: MarketData, events: EventSink, *,
                 poll_seconds: float = PLAN_POLL_SECONDS["free"], max_duration_hours: float = 24.0,
                 initial_equity: Decimal = Decimal(1000), fee_bps: float = 30, slippage_bps: float = 10,
                 clock: Callable[[], float] = time.time) -> None:
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
        self._sims = SimulationRepo(db)
        self._signals = SignalRepo(db)
        self._trades = TradeRepo(db)
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
        closed = await self._closed_window(info.token_id, interval, window_bars, now)
        if len(closed) == 0:
            raise SimulationError(f"No recent {timeframe} candles for {info.symbol}; try another timeframe.")
        initial = to_micro(self.initial_equity)
        state = SimState(
            bot_name=str(bot_name)[:64] or "Strategy bot", chain=info.chain, demo=bool(self.market.is_demo),
            initial_micro=initial, cash_micro=initial, fee_bps=self.fee_bps, slippage_bps=self.slippage_bps,
            window_bars=window_bars, last_bar_time=int(closed.time[-1]), window_first=int(closed.time[0]),
            window_last=int(closed.time[-1]), last_price=float(closed.close[-1]), last_price_at=to_iso(now))
        ends = now + self.max_duration_hours * 3600.0
        try:
            async with self.db.transaction() as tx:
                await self._check_can_start(user_id, checked, tx=tx)
                record = await self._sims.create(
                    user_id, checked, info.token_id, info.symbol[:64], timeframe,
                    json.dumps(strategy.to_config(), separators=(",", ":")), state.to_dict(),
                    to_iso(now), to_iso(ends), tx=tx)
        except sqlite3.IntegrityError:
            # the unique index caught a concurrent start of the same bot
            raise SimulationExistsError("This bot is already being simulated. Use /simulate stop first.") from None
        log.info("simulation %s started for user %s on %s", record.simulation_id, user_id, info.token_id)
        return record

    async def _check_can_start(self, user_id: int, bot_id: int, *, tx: Any = None) -> None:
        owner = await (tx or self.db).fetchone("SELECT 1 FROM bots WHERE bot_id = ? AND user_id = ?",
                                               (bot_id, user_id))
        if owner is None:
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
            strategy_description=description, last_error=state.last_error)

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
        live_start = math.floor(now / period) * period
        expected = state.version
        new = replace(state)
        effects = _Effects()
        new.last_price, new.last_price_at, new.last_error = price, to_iso(now), None
        latest = None
        if new.last_bar_time is None or new.last_bar_time < live_start - period:
            key = (record.token_id, interval, state.window_bars)
            window = windows.get(key)
            if window is None:
                try:
                    window = await self._closed_window(record.token_id, interval, state.window_bars, now)
                except MarketDataError as exc:
                    windows[key] = _market_message(exc)
                    raise
                windows[key] = window
            elif isinstance(window, str):
                report.errors[record.simulation_id] = window
                return
            if len(window) and (new.last_bar_time is None or int(window.time[-1]) > new.last_bar_time):
                latest = explain_latest(strategy, window, interval)
                new.last_bar_time = int(window.time[-1])
                new.window_first, new.window_last = int(window.time[0]), int(window.time[-1])
                report.evaluated += 1
        now_iso = to_iso(now)
        if latest is not None:
            for side in ("buy", "sell"):
                if (latest.buy if side == "buy" else latest.sell):
                    text = latest.explanation(side)
                    effects.signals.append(NewSignal(
                        user_id=record.user_id, bot_id=record.bot_id, simulation_id=record.simulation_id,
                        token_id=record.token_id, side=side, price=latest.close, reason=text,
                        bar_time=latest.time))
                    effects.events.append(SignalFired(
                        user_id=record.user_id, symbol=record.symbol, side=side, price=latest.close,
                        explanation=text, bot_name=new.bot_name, demo=new.demo,
                        simulation_id=record.simulation_id))
        closed_now = False
        if new.position is not None and latest is not None and latest.sell:
            self._close(record, new, price, "signal", now_iso, effects)
            closed_now = True
        if new.position is not None:
            pos = new.position
            if pos.stop_loss is not None and price <= pos.stop_loss:
                self._close(record, new, price, "stop_loss", now_iso, effects)
                closed_now = True
            elif pos.take_profit is not None and price >= pos.take_profit:
                self._close(record, new, price, "take_profit", now_iso, effects)
                closed_now = True
        if new.position is None and not closed_now and latest is not None and latest.buy:
            self._open(record, new, strategy, price, now_iso, latest.time, effects)
        new.version = expected + 1
        if await self._commit(record, expected, new, effects, last_poll_at=now_iso):
            report.signals += len(effects.signals)
            report.opened += effects.opened
            report.closed += len(effects.trades)
            await self._publish(effects.events)

    # -- paper trading ---------------------------------------------------------------------
    @staticmethod
    def _open(record: SimulationRecord, state: SimState, strategy: Strategy, price: float, now_iso: str,
              bar_time: int, effects: _Effects) -> None:
        fee, slip = state.fee_bps / 10_000, state.slippage_bps / 10_000
        fraction = Decimal(repr(strategy.buy.amount_percent)) / 100
        spend = (from_micro(state.cash_micro) * fraction).quantize(_MICRO_Q, rounding=ROUND_DOWN)
        if spend <= 0:
            return
        fill = price * (1.0 + slip)
        size = float(spend) / (fill * (1.0 + fee))
        if not (size > 0 and math.isfinite(size)):
            return
        rm = strategy.risk_management
        state.position = PaperPosition(
            size=size, entry_price=fill, cost=spend,
            stop_loss=None if rm.stop_loss_percent is None else fill * (1.0 - rm.stop_loss_percent / 100.0),
            take_profit=None if rm.take_profit_percent is None else fill * (1.0 + rm.take_profit_percent / 100.0),
            opened_at=now_iso, entry_bar_time=bar_time)
        effects.opened += 1
        effects.events.append(TradeOpened(user_id=record.user_id, agent_id=None, symbol=record.symbol, price=fill,
                                          cost=spend, demo=state.demo, simulation_id=record.simulation_id))

    @staticmethod
    def _close(record: SimulationRecord, state: SimState, price: float, reason: str, now_iso: str,
               effects: _Effects) -> None:
        pos = state.position
        if pos is None:
            return
        fee, slip = state.fee_bps / 10_000, state.slippage_bps / 10_000
        exit_fill = price * (1.0 - slip)
        proceeds = _usdc(pos.size * exit_fill * (1.0 - fee))
        trade = NewTrade(user_id=record.user_id, simulation_id=record.simulation_id, token_id=record.token_id,
                         symbol=record.symbol, size=pos.size, entry_price=pos.entry_price, exit_price=exit_fill,
                         cost=pos.cost, proceeds=proceeds, exit_reason=reason, opened_at=pos.opened_at,
                         closed_at=now_iso)
        state.cash_micro = max(0, state.cash_micro - to_micro(pos.cost) + to_micro(proceeds))
        state.position = None
        effects.trades.append(trade)
        effects.events.append(TradeClosed(user_id=record.user_id, agent_id=None, symbol=record.symbol,
                                          entry_price=pos.entry_price, exit_price=exit_fill, pnl=trade.pnl,
                                          reason=reason, demo=state.demo, simulation_id=record.simulation_id))

    # -- persistence -----------------------------------------------------------------------
    async def _commit(self, record: SimulationRecord, expected_version: int, state: SimState, effects: _Effects,
                      *, last_poll_at: str | None = None, end_status: str | None = None,
                      stopped_at: str | None = None) -> bool:
        """Write the step if the simulation is still running at `expected_version`."""
        async with self.db.transaction() as tx:
            row = await tx.fetchone("SELECT status, state_json FROM simulations WHERE simulation_id = ?",
                                    (record.simulation_id,))
            if row is None or row["status"] != "running":
                return False
            try:
                current = json.loads(row["state_json"] or "{}").get("version", 0)
            except (ValueError, AttributeError):
                current = None
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
                self._close(record, new, exit_price, "stopped" if status == "stopped" else "end", now_iso, effects)
            new.version = state.version + 1
            if await self._commit(record, state.version, new, effects, end_status=status, stopped_at=now_iso):
                if publish:
                    effects.events.append(SimulationEnded(user_id=record.user_id,
                                                          simulation_id=record.simulation_id,
                                                          bot_name=new.bot_name, reason=reason))
                    await self._publish(effects.events)
                log.info("simulation %s %s: %s", record.simulation_id, status, reason)
                return True
            fresh = await self._sims.get_by_id(record.simulation_id)
            if fresh is None or not fresh.running:
                return False
            record, state = fresh, self._state_or_none(fresh)
        return False

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

    async def _closed_window(self, token_id: str, interval: int, bars: int, now: float) -> Candles:
        """The last `bars` closed candles (the live bar excluded, even if the source returns it)."""
        period = interval * 60
        live_start = math.floor(now / period) * period
        candles = await self.market.get_klines(token_id, interval, limit=bars, to_time=live_start - 1)
        keep = candles.time < live_start
        if bool(keep.all()):
            return candles
        return Candles(*(candles[f][keep] for f in ("time", "open", "high", "low", "close", "volume")))

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
