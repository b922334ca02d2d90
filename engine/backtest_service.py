"""`/backtest` end to end: parse the arguments, fetch candles, run the pool job, store the result.

Argument grammar (also shown to users on a bad argument)::

    /backtest [TOKEN] [TIMEFRAME] [DAYS]

    TOKEN      PEPE             a symbol (resolved through the market data source)
               PEPE:bsc         a symbol on one chain ("symbol:chain")
               0xabc…-bsc       an AVE token id ("address-chain")
    TIMEFRAME  5m 15m 30m 1h 4h 1d            (default 1h; 60m, 240m, 24h are accepted too)
    DAYS       a whole number from 1 to 365   (default 30)

Arguments are recognised by their shape, so any of them may be left out: a number is the
days, a number with a time unit (m/h/d/w) is the timeframe, anything else is the token
(default: the strategy's own token). Each may appear once. The range must hold at least
`MIN_CANDLES` and at most `MAX_CANDLES` candles.

Errors are typed: `BacktestArgsError` for bad input (nothing stored), `BacktestServiceError`
for a run that failed (its `backtests` row is marked failed). Both messages are plain text
for the user; the bot layer escapes them.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.backtest import BacktestInputError
from engine.bars import CandleError, grid_candles
from engine.core import Costs
from engine.market.ave import split_token_id
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
from engine.pool import (
    BacktestBusyError,
    BacktestError,
    BacktestJob,
    BacktestOutcome,
    BacktestPool,
    BacktestQueueFullError,
    BacktestTimeoutError,
)
from engine.signals import evaluate, explain_condition
from engine.strategy import TIMEFRAME_MINUTES, TIMEFRAMES, Strategy, StrategyError, describe_strategy
from storage.db import Database
from storage.repos import BacktestRepo, BotRepo, NewSignal, SignalRepo, UserRepo, dumps, to_iso

log = logging.getLogger(__name__)

DEFAULT_TIMEFRAME = "1h"
DEFAULT_DAYS = 30
MIN_DAYS, MAX_DAYS = 1, 365
MIN_CANDLES = 50
MAX_CANDLES = 100_000
MAX_STORED_SIGNALS = 500
MAX_STORED_TRADES = 1000
REPORT_TRADES = 20
TOKEN_MAX = 100
USAGE = ("Usage: /backtest [token] [timeframe] [days], e.g. /backtest PEPE 1h 30, /backtest PEPE:bsc 4h 90 "
         "or /backtest 0xabc…-bsc 15m 7. Timeframes: " + " ".join(TIMEFRAMES) + f"; days {MIN_DAYS}–{MAX_DAYS}.")
MARKET_DOWN = "The market data service is unavailable right now, try again in a minute."

_NUMBER = re.compile(r"^[+-]?(\d+([.,]\d*)?|[.,]\d+)(e[+-]?\d+)?$", re.IGNORECASE)
_NUMBER_WORDS = {"nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"}
_TIMEFRAME = re.compile(r"^(\d{1,6})\s?(m|min|mins|h|hr|hrs|d|w)$", re.IGNORECASE)
_UNIT_MINUTES = {"m": 1, "min": 1, "mins": 1, "h": 60, "hr": 60, "hrs": 60, "d": 1440, "w": 10080}
_MINUTES_TO_TIMEFRAME = {m: tf for tf, m in TIMEFRAME_MINUTES.items()}
_CHAIN = re.compile(r"^[a-z0-9_]{1,16}$")
_TOKEN_EXTRA = set("._-$")


class BacktestArgsError(ValueError):
    """A `/backtest` argument is invalid; the message says which and how to fix it."""


class BacktestServiceError(Exception):
    """A backtest could not be completed; the message is written for the user."""


@dataclass(frozen=True)
class BacktestRequest:
    """Parsed `/backtest` arguments; `token` None means the strategy's own token."""

    token: str | None = None
    chain: str | None = None
    timeframe: str = DEFAULT_TIMEFRAME
    days: int = DEFAULT_DAYS

    @property
    def interval_minutes(self) -> int:
        return TIMEFRAME_MINUTES[self.timeframe]

    @property
    def expected_candles(self) -> int:
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
    strategy_description: str
    signals_stored: int = 0
    elapsed: float = 0.0
    settings: dict[str, float] = field(default_factory=dict)


Progress = Callable[[str], Awaitable[None]]


# -- argument parsing ------------------------------------------------------------------------------

def _parse_days(text: str) -> int:
    if not text.isascii() or not text.lstrip("+").isdigit():
        raise BacktestArgsError(f"Days must be a whole number from {MIN_DAYS} to {MAX_DAYS}. {USAGE}")
    digits = text.lstrip("+")
    if len(digits) > 6 or not MIN_DAYS <= int(digits) <= MAX_DAYS:
        raise BacktestArgsError(f"Days must be from {MIN_DAYS} to {MAX_DAYS}. {USAGE}")
    return int(digits)


def _parse_timeframe(text: str) -> str:
    match = _TIMEFRAME.match(text)
    if match is None:
        raise BacktestArgsError(f"Unknown timeframe. Use one of {' '.join(TIMEFRAMES)}.")
    minutes = int(match.group(1)) * _UNIT_MINUTES[match.group(2).lower()]
    timeframe = _MINUTES_TO_TIMEFRAME.get(minutes)
    if timeframe is None:
        hint = " For the number of days write just the number, e.g. 30." if match.group(2).lower() == "d" else ""
        raise BacktestArgsError(f"Unknown timeframe {text}. Use one of {' '.join(TIMEFRAMES)}.{hint}")
    return timeframe


def _parse_token(text: str) -> tuple[str, str | None]:
    """A symbol, `symbol:chain` or an `address-chain` id, checked for harmless characters."""
    if len(text) > TOKEN_MAX:
        raise BacktestArgsError(f"That token is too long. {USAGE}")
    token, chain = text, None
    if ":" in text:
        token, _, chain_part = text.rpartition(":")
        chain = chain_part.strip().lower()
        if not _CHAIN.match(chain):
            raise BacktestArgsError("After ':' give a chain name like bsc, eth, base or solana (e.g. PEPE:bsc).")
    token = token.strip().lstrip("$")
    if not token:
        raise BacktestArgsError(f"The token is missing. {USAGE}")
    if not all(c.isalnum() or c in _TOKEN_EXTRA for c in token):
        raise BacktestArgsError("A token is a symbol like PEPE, PEPE:bsc or an id like 0xabc…-bsc "
                                "(letters, digits, '.', '_', '-' only).")
    if chain is not None and split_token_id(token) is not None:
        raise BacktestArgsError("A token id already names its chain: drop the ':chain' part.")
    return token, chain


def _kind(arg: str) -> str:
    lowered = arg.lower()
    if _NUMBER.match(arg) or lowered in _NUMBER_WORDS or (arg[:1] in "+-" and arg[1:2].isdigit()):
        return "days"
    if _TIMEFRAME.match(arg) and ":" not in arg:
        return "timeframe"
    return "token"


def parse_backtest_args(args: Sequence[str], default_timeframe: str = DEFAULT_TIMEFRAME) -> BacktestRequest:
    """Parse `/backtest` arguments (see the module docstring); raises `BacktestArgsError`.

    Without a timeframe, `default_timeframe` is used (the bot passes the strategy's finest
    condition timeframe); without days, enough days for ~100 candles, at least 30.
    """
    words = [str(a).strip() for a in args if str(a).strip()]
    if len(words) > 3:
        raise BacktestArgsError(f"Too many arguments. {USAGE}")
    found: dict[str, str] = {}
    for word in words:
        kind = _kind(word)
        if kind in found:
            what = {"days": "number of days", "timeframe": "timeframe", "token": "token"}[kind]
            raise BacktestArgsError(f"Give only one {what}. {USAGE}")
        found[kind] = word
    token = chain = None
    if "token" in found:
        token, chain = _parse_token(found["token"])
    timeframe = _parse_timeframe(found["timeframe"]) if "timeframe" in found else default_timeframe
    days = (_parse_days(found["days"]) if "days" in found
            else max(DEFAULT_DAYS, -(-100 * TIMEFRAME_MINUTES[timeframe] // 1440)))
    request = BacktestRequest(token=token, chain=chain, timeframe=timeframe, days=days)
    count = request.expected_candles
    if count < MIN_CANDLES:
        raise BacktestArgsError(
            f"Too short a range: {days} day(s) of {timeframe} candles is only {count} candles; a backtest needs "
            f"at least {MIN_CANDLES}. Use more days or a shorter timeframe.")
    if count > MAX_CANDLES:
        raise BacktestArgsError(
            f"Too many candles: {days} days of {timeframe} candles is {count:,}; the limit is {MAX_CANDLES:,}. "
            "Use fewer days or a longer timeframe.")
    return request


# -- signal explanations ---------------------------------------------------------------------------

def signal_reasons(strategy: Strategy, candles: Mapping[str, np.ndarray], interval_minutes: float,
                   signals: Sequence[Mapping[str, Any]]) -> list[str]:
    """For each signal dict ({index, side, …}), why it fired in the user's own terms."""
    series = evaluate(strategy, candles, interval_minutes).conditions
    out: list[str] = []
    for sig in signals:
        i, side = int(sig["index"]), sig["side"]
        reasons = [explain_condition(cs.condition, float(cs.value[i])) for cs in series
                   if cs.condition.signal == side and bool(cs.fired[i])]
        out.append("; ".join(reasons) or f"{side} signal")
    return out


# -- formatting ------------------------------------------------------------------------------------

def _pct(value: Any, signed: bool = True) -> str:
    if value is None:
        return "n/a"
    return f"{float(value):+.2f}%" if signed else f"{float(value):.2f}%"


def _num(value: Any, places: int = 2) -> str:
    return "n/a" if value is None else f"{float(value):.{places}f}"


def _money(value: Any) -> str:
    if value is None:
        return "n/a"
    amount = float(value)
    return f"{'-' if amount < 0 else ''}${abs(amount):,.2f}"


def format_metrics(report: BacktestReport) -> list[tuple[str, str]]:
    """The metrics card as plain (label, value) pairs; the bot layer adds the HTML."""
    m = report.metrics
    rows = [
        ("Token", f"{report.symbol} ({report.chain})" + (" · demo data" if report.demo else "")),
        ("Period", f"{report.days} days of {report.timeframe} candles ({report.candles:,})"),
        ("Total return", _pct(m.get("total_return_pct"))),
        ("Buy & hold", _pct(m.get("buy_hold_return_pct"))),
        ("Trades", str(m.get("total_trades", 0))),
        ("Win rate", _pct(m.get("win_rate_pct"), signed=False)),
        ("Signals (buy / sell)", f"{m.get('buy_signals', 0)} / {m.get('sell_signals', 0)}"),
        ("Max drawdown", _pct(m.get("max_drawdown_pct"), signed=False)),
        ("Sharpe", _num(m.get("sharpe"))),
        ("Sortino", _num(m.get("sortino"))),
        ("Profit factor", _num(m.get("profit_factor"))),
        ("Expectancy", _money(m.get("expectancy"))),
        ("Exposure", _pct(m.get("exposure_pct"), signed=False)),
        ("Final equity", _money(m.get("final_equity"))
         + (f" (from {_money(report.settings['initial_equity'])})" if report.settings.get("initial_equity") else "")),
    ]
    st = report.settings
    if "fee_bps" in st and "slippage_bps" in st:
        paid = (f": paid {_money(st['fees_paid'])} in fees + {_money(st['slippage_paid'])} in slippage"
                if "fees_paid" in st and "slippage_paid" in st else "")
        rows.append(("Costs", Costs(st["fee_bps"], st["slippage_bps"]).describe() + paid))
    return rows


# -- the service -----------------------------------------------------------------------------------

class BacktestService:
    """Runs `/backtest` for a user: market data in, stored result and report out."""

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

    @staticmethod
    def parse_args(args: Sequence[str], default_timeframe: str = DEFAULT_TIMEFRAME) -> BacktestRequest:
        """See `parse_backtest_args`."""
        return parse_backtest_args(args, default_timeframe)

    @staticmethod
    def format_metrics(report: BacktestReport) -> list[tuple[str, str]]:
        """See the module-level `format_metrics`."""
        return format_metrics(report)

    def is_busy(self, user_id: int) -> bool:
        """True while a backtest of this user is fetching data or running."""
        return user_id in self._active

    async def recover_interrupted(self) -> int:
        """Mark backtests left 'running' by a previous process as failed (call once on start)."""
        return await self._backtests.fail_interrupted(to_iso(self._clock()))

    async def run(self, user_id: int, bot_id: int | None, strategy: Strategy, request: BacktestRequest,
                  progress: Progress) -> BacktestReport:
        """Fetch candles, run the backtest in the pool, store and return the report.

        Raises `BacktestServiceError` (user-facing message) on any failure; the stored row is
        then marked failed. One backtest per user at a time.
        """
        if not isinstance(strategy, Strategy):
            raise BacktestServiceError("This bot has no valid strategy to backtest.")
        if user_id in self._active:
            raise BacktestServiceError("You already have a backtest running; wait for it to finish.")
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
            # the bot may have been deleted since the command was parsed: keep the run, detached
            if bot_id is not None and await self._bots.get(user_id, bot_id, tx=tx) is None:
                bot_id = None
            backtest_id = await self._backtests.create(
                user_id, bot_id, token, token.upper()[:64], request.timeframe, request.days,
                dumps(strategy.to_config()), demo=demo, tx=tx)
        try:
            await self._progress(progress, "Fetching candles…")
            info = await self._resolve(token, chain)
            run_strategy = self._on_token(strategy, info) if request.token else strategy
            await self._backtests.set_token(backtest_id, info.token_id, info.symbol[:64],
                                            dumps(run_strategy.to_config()))
            candles = await self._candles(info, request)
            await self._progress(progress, f"Running backtest on {len(candles):,} candles…")
            title = f"{info.symbol} {request.timeframe} · {request.days}d" + (" (demo data)" if demo else "")
            job = BacktestJob(strategy=run_strategy.to_config(), candles=candles.as_dict(), title=title,
                              fee_bps=self.fee_bps, slippage_bps=self.slippage_bps,
                              initial_equity=self.initial_equity, interval_minutes=request.interval_minutes)
            outcome = await self._submit(user_id, job)
            stored = await self._store(user_id, bot_id, backtest_id, info, run_strategy, candles,
                                       request.interval_minutes, outcome)
        except BacktestServiceError as exc:
            await self._fail(backtest_id, str(exc))
            raise
        except Exception as exc:
            log.exception("backtest %s failed unexpectedly", backtest_id)
            await self._fail(backtest_id, f"internal error: {type(exc).__name__}")
            raise BacktestServiceError("The backtest failed unexpectedly; please try again later.") from exc
        except BaseException:
            await asyncio.shield(self._fail(backtest_id, "the backtest was interrupted"))
            raise
        return BacktestReport(
            backtest_id=backtest_id, metrics=dict(outcome.metrics), trades=list(outcome.trades[:REPORT_TRADES]),
            chart_png=outcome.chart_png, symbol=info.symbol, token_id=info.token_id, chain=info.chain,
            timeframe=request.timeframe, days=request.days, candles=len(candles), demo=demo,
            strategy_description=describe_strategy(run_strategy), signals_stored=stored,
            elapsed=outcome.elapsed, settings=dict(outcome.settings))

    # -- steps -----------------------------------------------------------------------------
    @staticmethod
    async def _progress(progress: Progress, text: str) -> None:
        # A failed progress edit (message deleted, flood limit) must not abort the backtest.
        try:
            await progress(text)
        except Exception:
            log.debug("backtest progress update failed", exc_info=True)

    async def _resolve(self, token: str, chain: str | None) -> TokenInfo:
        try:
            return await self.market.resolve_token(token, chain)
        except TokenNotFoundError as exc:
            text = str(exc)
            if not text.startswith("No token called"):
                text = f"No token called {token}" + (f" on {chain}" if chain else "")
            raise BacktestServiceError(f"{text}. Try a symbol like PEPE, PEPE:bsc or an id like 0xabc…-bsc.") \
                from None
        except MarketDataError as exc:
            raise BacktestServiceError(self._market_message(exc)) from None

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
        try:
            candles = await self.market.get_klines(info.token_id, request.interval_minutes,
                                                   limit=request.expected_candles)
        except MarketDataError as exc:
            raise BacktestServiceError(self._market_message(exc)) from None
        try:
            # on the regular time grid here already, so the signal reasons and the chart index
            # the very bars the engine trades on (the engine's own gridding is then a no-op)
            candles = grid_candles(candles, request.interval_minutes)
        except CandleError as exc:
            raise BacktestServiceError(f"These candles can't be backtested: {exc}.") from None
        if len(candles) < MIN_CANDLES:
            raise BacktestServiceError(
                f"Too short a range: {info.symbol} has only {len(candles)} {request.timeframe} candles in the last "
                f"{request.days} days; a backtest needs at least {MIN_CANDLES}. Try a shorter timeframe.")
        return candles

    async def _submit(self, user_id: int, job: BacktestJob) -> BacktestOutcome:
        try:
            return await self.pool.submit(user_id, job, timeout=self.timeout)
        except BacktestBusyError:
            raise BacktestServiceError("You already have a backtest running; wait for it to finish.") from None
        except BacktestQueueFullError:
            raise BacktestServiceError("Too many backtests are queued right now; try again in a minute.") from None
        except BacktestTimeoutError:
            raise BacktestServiceError(
                f"The backtest took longer than {self.timeout:g} s and was stopped. "
                "Try fewer days or a longer timeframe.") from None
        except BacktestError as exc:
            raise BacktestServiceError(str(exc) or "The backtest failed; please try again.") from None
        except BacktestInputError as exc:
            raise BacktestServiceError(f"These candles can't be backtested: {exc}.") from None
        except StrategyError as exc:
            raise BacktestServiceError(f"The strategy is not valid: {exc}.") from None

    async def _store(self, user_id: int, bot_id: int | None, backtest_id: int, info: TokenInfo,
                     strategy: Strategy, candles: Candles, interval: int, outcome: BacktestOutcome) -> int:
        kept = list(outcome.signals[:MAX_STORED_SIGNALS])
        # Explanations need each condition's value on the signal bar: one vectorised pass,
        # off the event loop because long histories take a few milliseconds.
        reasons = await asyncio.to_thread(signal_reasons, strategy, candles, interval, kept) if kept else []
        rows = [NewSignal(user_id=user_id, bot_id=bot_id, backtest_id=backtest_id, token_id=info.token_id,
                          side=sig["side"], price=float(sig["price"]), reason=reason, bar_time=int(sig["time"]))
                for sig, reason in zip(kept, reasons, strict=True)]
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

    @staticmethod
    def _market_message(exc: MarketDataError) -> str:
        if isinstance(exc, TemporaryMarketError):
            return MARKET_DOWN
        if isinstance(exc, AuthError):
            # an operator problem (bad AVE key): users only need to know data is unavailable
            log.error("market data authentication failed: %s", exc)
            return MARKET_DOWN
        if isinstance(exc, PermanentMarketError):
            log.warning("market data refused a backtest request: %s", exc)
            return f"The market data service refused the request: {exc}"
        return MARKET_DOWN
