"""A backtest end to end: fetch candles, run the pool job, store the result.

The bot parses the user's arguments (`bot.backtest_args`) into a `BacktestRequest`: a token or
None for the strategy's own, a timeframe and a number of days. The limits below are the
engine's rules and the request checks them when it is built: the range must hold at least
`MIN_CANDLES` and at most `MAX_CANDLES` candles.

Refusals are typed, with codes the bot words: `BacktestRequestError` for a request outside the
limits (nothing stored), `BacktestServiceError` for a run that failed, and the market's and the
pool's own errors (`MarketDataError`, `engine.pool.BacktestError`); a failed run's `backtests`
row is marked failed with the error.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.backtest import BacktestInputError
from engine.bars import CandleError, grid_candles
from engine.capital import MAX_CAPITAL, MIN_CAPITAL, capital_ok
from engine.charts import ChartWords
from engine.errors import CodedError
from engine.market.base import (
    AuthError,
    Candles,
    MarketData,
    PermanentMarketError,
    TokenInfo,
    TokenNotFoundError,
    no_token_called,
)
from engine.pool import BacktestBusyError, BacktestJob, BacktestOutcome, BacktestPool
from engine.signal_reasons import SignalReason, encode_reasons
from engine.signals import bar_reasons, evaluate
from engine.strategy import TIMEFRAME_MINUTES, Strategy, StrategyError
from storage.bots_repo import BotRepo
from storage.db import Database
from storage.runs_repo import BacktestRepo
from storage.signals_repo import NewSignal, SignalRepo
from storage.users_repo import UserRepo
from storage.values import dumps, to_iso

log = logging.getLogger(__name__)

DEFAULT_TIMEFRAME = "1h"
DEFAULT_DAYS = 30
MIN_DAYS, MAX_DAYS = 1, 365
MIN_CANDLES = 50
MAX_CANDLES = 100_000
DEFAULT_CANDLES = 100  # without a number of days: enough days for about this many candles
MAX_STORED_SIGNALS = 500
MAX_STORED_TRADES = 1000
REPORT_TRADES = 20


class BacktestRequestError(CodedError):
    """A backtest request outside the engine's limits (days, timeframe, number of candles)."""


class BacktestServiceError(CodedError):
    """A backtest could not be completed (``"backtest.…"`` codes)."""


def default_days(timeframe: str) -> int:
    """The days a backtest covers when none are given: `DEFAULT_DAYS`, or more for ~`DEFAULT_CANDLES` bars."""
    return max(DEFAULT_DAYS, -(-DEFAULT_CANDLES * TIMEFRAME_MINUTES[timeframe] // 1440))


@dataclass(frozen=True)
class BacktestRequest:
    """What to backtest: `token` None means the strategy's own token (`chain` goes with `token`).

    Building one checks the engine's limits (`BacktestRequestError`).
    """

    token: str | None = None
    chain: str | None = None
    timeframe: str = DEFAULT_TIMEFRAME
    days: int = DEFAULT_DAYS
    capital: float | None = None  # the starting equity in USDC (None: the service's default)
    bot_name: str = ""  # shown in the chart's title
    words: ChartWords = field(default_factory=ChartWords)  # the chart's words, in the user's language

    def __post_init__(self) -> None:
        if self.capital is not None and not capital_ok(self.capital):
            raise BacktestRequestError("backtest.capital_out_of_range", minimum=MIN_CAPITAL, maximum=MAX_CAPITAL)
        if self.timeframe not in TIMEFRAME_MINUTES:
            raise BacktestRequestError("backtest.unknown_timeframe", timeframe=str(self.timeframe))
        if not MIN_DAYS <= self.days <= MAX_DAYS:
            raise BacktestRequestError("backtest.days_out_of_range", minimum=MIN_DAYS, maximum=MAX_DAYS)
        count = self.expected_candles
        if count < MIN_CANDLES:
            raise BacktestRequestError("backtest.range_too_short", days=self.days, timeframe=self.timeframe,
                                       count=count, minimum=MIN_CANDLES)
        if count > MAX_CANDLES:
            raise BacktestRequestError("backtest.range_too_long", days=self.days, timeframe=self.timeframe,
                                       count=count, maximum=MAX_CANDLES)

    @property
    def interval_minutes(self) -> int:
        """The candle interval of `timeframe`."""
        return TIMEFRAME_MINUTES[self.timeframe]

    @property
    def expected_candles(self) -> int:
        """How many candles `days` of `timeframe` hold."""
        return math.ceil(self.days * 1440 / self.interval_minutes)


@dataclass(frozen=True)
class BacktestReport:
    """What the bot layer shows: metrics, the first trades, the chart and the context."""

    backtest_id: int
    metrics: dict[str, Any]
    trades: list[dict[str, Any]]
    chart_png: bytes
    symbol: str
    token_id: str
    chain: str
    timeframe: str
    days: int
    candles: int
    demo: bool
    strategy: Strategy  # as run: re-pointed at the requested token
    signals_stored: int = 0
    elapsed: float = 0.0
    settings: dict[str, float] = field(default_factory=dict)
    capital: float = 1000.0  # the starting equity it ran with


# Called with a stage of the run: FETCHING (candles 0), then RUNNING with the number of candles.
Progress = Callable[[str, int], Awaitable[None]]
FETCHING, RUNNING = "fetching", "running"


def signal_reasons(strategy: Strategy, candles: Mapping[str, np.ndarray], interval_minutes: float,
                   signals: Sequence[Mapping[str, Any]]) -> list[tuple[SignalReason, ...]]:
    """For each signal dict ({index, side, …}), the conditions of its side that fired on its bar."""
    evaluated = evaluate(strategy, candles, interval_minutes)
    return [bar_reasons(evaluated, int(sig["index"]), sig["side"]) for sig in signals]


class BacktestService:
    """Runs a backtest for a user: market data in, stored result and report out."""

    def __init__(self, db: Database, market: MarketData, pool: BacktestPool, *, timeout: float = 120.0,
                 fee_bps: float = 30, slippage_bps: float = 10, initial_equity: float = 1000.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.market = market
        self.pool = pool
        self.timeout = float(timeout)
        self.fee_bps = fee_bps
        self.slippage_bps = slippage_bps
        self.initial_equity = initial_equity
        self._clock = clock
        self._backtests = BacktestRepo(db)
        self._signals = SignalRepo(db)
        self._users = UserRepo(db)
        self._bots = BotRepo(db)
        self._active: set[int] = set()

    async def recover_interrupted(self, *, shared: bool = False) -> list[tuple[int, int]]:
        """Mark backtests left 'running' by a previous process as failed (call once on start);
        returns their (backtest_id, user_id), so their users can be told. `shared` (other
        replicas on the database): only those older than the backtest timeout, which no live
        process can still be running."""
        now = self._clock()
        before = to_iso(now - 2 * self.timeout) if shared else None
        return await self._backtests.fail_interrupted(to_iso(now), created_before=before)

    def is_busy(self, user_id: int) -> bool:
        """True while one of the user's backtests runs (a second one would be refused)."""
        return user_id in self._active

    async def run(self, user_id: int, bot_id: int | None, strategy: Strategy, request: BacktestRequest,
                  progress: Progress) -> BacktestReport:
        """Fetch candles, run the backtest in the pool, store and return the report.

        Raises a `CodedError` on any failure (see the module docstring); the stored row is then
        marked failed. One backtest per user at a time.
        """
        if not isinstance(strategy, Strategy):
            raise BacktestServiceError("backtest.no_strategy")
        if user_id in self._active:
            raise BacktestBusyError("backtest.busy")
        self._active.add(user_id)
        try:
            return await self._run(user_id, bot_id, strategy, request, progress)
        finally:
            self._active.discard(user_id)

    async def _run(self, user_id: int, bot_id: int | None, strategy: Strategy, request: BacktestRequest,
                   progress: Progress) -> BacktestReport:
        token = request.token or strategy.token
        chain = request.chain if request.token else strategy.chain
        demo = bool(self.market.is_demo)
        async with self.db.transaction() as tx:
            await self._users.ensure(user_id, tx=tx)
            # the bot may have been deleted since the request was made: keep the run, detached
            if bot_id is not None and await self._bots.get(user_id, bot_id, tx=tx) is None:
                bot_id = None
            backtest_id = await self._backtests.create(
                user_id, bot_id, token, token.upper()[:64], request.timeframe, request.days,
                dumps(strategy.to_config()), demo=demo, tx=tx)
        try:
            await self._progress(progress, FETCHING, 0)
            info = await self._resolve(token, chain)
            run_strategy = self._on_token(strategy, info) if request.token else strategy
            await self._backtests.set_token(backtest_id, info.token_id, info.symbol[:64],
                                            dumps(run_strategy.to_config()))
            candles = await self._candles(info, request)
            await self._progress(progress, RUNNING, len(candles))
            capital = self.capital_of(request)
            job = BacktestJob(strategy=run_strategy.to_config(), candles=candles.as_dict(),
                              title=self._title(request, info, capital, demo), words=request.words.as_dict(),
                              fee_bps=self.fee_bps, slippage_bps=self.slippage_bps,
                              initial_equity=capital, interval_minutes=request.interval_minutes)
            outcome = await self._submit(user_id, job)
            stored = await self._store(user_id, bot_id, backtest_id, info, run_strategy, candles,
                                       request.interval_minutes, outcome)
        except CodedError as exc:
            _log_market(exc)
            await self._fail(backtest_id, str(exc))
            raise
        except Exception as exc:
            log.exception("backtest %s failed unexpectedly", backtest_id)
            await self._fail(backtest_id, f"internal error: {type(exc).__name__}")
            raise BacktestServiceError("backtest.unexpected") from exc
        except BaseException:
            await asyncio.shield(self._fail(backtest_id, "the backtest was interrupted"))
            raise
        return BacktestReport(
            backtest_id=backtest_id, metrics=dict(outcome.metrics), trades=list(outcome.trades[:REPORT_TRADES]),
            chart_png=outcome.chart_png, symbol=info.symbol, token_id=info.token_id, chain=info.chain,
            timeframe=request.timeframe, days=request.days, candles=len(candles), demo=demo,
            strategy=run_strategy, signals_stored=stored,
            elapsed=outcome.elapsed, settings=dict(outcome.settings), capital=capital)

    def capital_of(self, request: BacktestRequest) -> float:
        """The starting equity of `request`: its own, else the service's default."""
        return float(request.capital) if request.capital is not None else float(self.initial_equity)

    def _title(self, request: BacktestRequest, info: TokenInfo, capital: float, demo: bool) -> str:
        """The chart's title (drawn into the image by the worker): bot, token, range, capital, costs."""
        words = request.words
        return words.title.format(
            bot=f"{request.bot_name[:40]} · " if request.bot_name else "", symbol=info.symbol,
            timeframe=request.timeframe, days=request.days, capital=f"{capital:,.0f}",
            fee=f"{self.fee_bps / 100:g}", slippage=f"{self.slippage_bps / 100:g}") + (words.demo if demo else "")

    # -- steps -----------------------------------------------------------------------------
    @staticmethod
    async def _progress(progress: Progress, stage: str, candles: int) -> None:
        # A failed progress edit (message deleted, flood limit) must not abort the backtest.
        try:
            await progress(stage, candles)
        except Exception:
            log.debug("backtest progress update failed", exc_info=True)

    async def _resolve(self, token: str, chain: str | None) -> TokenInfo:
        try:
            return await self.market.resolve_token(token, chain)
        except TokenNotFoundError as exc:
            raise BacktestServiceError("backtest.token_not_found", reason=no_token_called(exc, token, chain)) \
                from None

    @staticmethod
    def _on_token(strategy: Strategy, info: TokenInfo) -> Strategy:
        """The strategy re-pointed at the requested token (symbol if it validates, else the id)."""
        for token, chain in ((info.symbol, info.chain), (info.token_id, None)):
            try:
                return strategy.with_token(token, chain)
            except StrategyError:
                continue
        return strategy

    async def _candles(self, info: TokenInfo, request: BacktestRequest) -> Candles:
        candles = await self.market.get_klines(info.token_id, request.interval_minutes,
                                               limit=request.expected_candles)
        try:
            # on the regular time grid here already, so the signal reasons and the chart index
            # the very bars the engine trades on (the engine's own gridding is then a no-op)
            candles = grid_candles(candles, request.interval_minutes)
        except CandleError as exc:
            raise BacktestServiceError("backtest.bad_candles", problem=exc) from None
        if len(candles) < MIN_CANDLES:
            raise BacktestServiceError("backtest.too_little_history", symbol=info.symbol, candles=len(candles),
                                       timeframe=request.timeframe, days=request.days, minimum=MIN_CANDLES)
        return candles

    async def _submit(self, user_id: int, job: BacktestJob) -> BacktestOutcome:
        """The pool's run; its own refusals (busy, queue full, timeout, worker lost) pass through."""
        try:
            return await self.pool.submit(user_id, job, timeout=self.timeout)
        except BacktestInputError as exc:
            raise BacktestServiceError("backtest.bad_candles", problem=exc) from None
        except StrategyError as exc:
            raise BacktestServiceError("backtest.invalid_strategy", problem=exc) from None

    async def _store(self, user_id: int, bot_id: int | None, backtest_id: int, info: TokenInfo,
                     strategy: Strategy, candles: Candles, interval: int, outcome: BacktestOutcome) -> int:
        kept = list(outcome.signals[:MAX_STORED_SIGNALS])
        # The reasons need each condition's value on the signal bar: one vectorised pass,
        # off the event loop because long histories take a few milliseconds.
        reasons = await asyncio.to_thread(signal_reasons, strategy, candles, interval, kept) if kept else []
        rows = [NewSignal(user_id=user_id, bot_id=bot_id, backtest_id=backtest_id, token_id=info.token_id,
                          side=sig["side"], price=float(sig["price"]), reason=encode_reasons(why),
                          bar_time=int(sig["time"]))
                for sig, why in zip(kept, reasons, strict=True)]
        async with self.db.transaction() as tx:
            await self._signals.add_many(rows, tx=tx)
            await self._backtests.complete(backtest_id, outcome.metrics, outcome.trades[:MAX_STORED_TRADES],
                                           to_iso(self._clock()), tx=tx)
        return len(rows)

    async def _fail(self, backtest_id: int, error: str) -> None:
        try:
            await self._backtests.fail(backtest_id, error, to_iso(self._clock()))
        except Exception:
            log.exception("could not mark backtest %s failed", backtest_id)


def _log_market(exc: CodedError) -> None:
    """Market refusals an operator should see: a rejected key, a request the provider refused."""
    if isinstance(exc, AuthError):
        log.error("market data authentication failed: %s", exc)
    elif isinstance(exc, PermanentMarketError):
        log.warning("market data refused a backtest request: %s", exc)
