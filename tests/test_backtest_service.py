"""BacktestService: end-to-end runs on the demo market and a real pool, the request limits, errors."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from bot.backtest_args import parse_backtest_args
from bot.cards import metrics_rows, progress_text
from bot.messages import describe
from bot.messages.engine import MARKET_DOWN
from bot.signal_text import stored_explanation
from bot.strategy_text import describe_strategy
from engine.backtest import BacktestInputError, run_backtest
from engine.backtest_service import (
    MAX_STORED_SIGNALS,
    BacktestReport,
    BacktestRequest,
    BacktestRequestError,
    BacktestService,
    BacktestServiceError,
)
from engine.errors import CodedError
from engine.market.base import Candles, MarketDataError, PriceQuote, TemporaryMarketError, TokenInfo
from engine.market.demo import DemoMarket
from engine.pool import (
    BacktestBusyError,
    BacktestError,
    BacktestJob,
    BacktestPool,
    BacktestQueueFullError,
    BacktestTimeoutError,
)
from engine.signal_reasons import decode_reasons
from engine.strategy import Strategy, parse_strategy
from storage import Database, open_database
from storage.runs_repo import BacktestRepo
from storage.signals_repo import SignalRepo
from storage.users_repo import UserRepo

USER, OTHER = 501, 502
NOW = 1_717_000_000.0  # fixed "now" for the deterministic demo market
PEPE_ID = "0x514ad355aec892241cbf8cb58844b7e352bea2f5-bsc"

STRATEGY: Strategy = parse_strategy({
    "conditions": [{"type": "price_drop", "token": "PEPE", "chain": "bsc", "threshold": 2, "timeframe": "1h"},
                   {"type": "price_rise", "token": "PEPE", "chain": "bsc", "threshold": 3, "timeframe": "4h",
                    "signal": "sell"}],
    "actions": [{"type": "buy", "token": "PEPE", "chain": "bsc", "amount_percent": 50},
                {"type": "sell", "token": "PEPE", "chain": "bsc"}],
    "risk_management": {"stop_loss_percent": 3, "take_profit_percent": 5},
})


@pytest.fixture
async def bt_db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await open_database(f"sqlite:///{tmp_path / 'bt.db'}")
    try:
        await UserRepo(database).ensure(USER)
        await UserRepo(database).ensure(OTHER)
        yield database
    finally:
        await database.close()


@pytest.fixture
def pool() -> Any:
    workers = BacktestPool(max_workers=2)
    yield workers
    workers.shutdown(wait=False)


class Progress:
    def __init__(self) -> None:
        self.messages: list[str] = []

    async def __call__(self, stage: str, candles: int) -> None:
        self.messages.append(progress_text(stage, candles))


# -- end to end -----------------------------------------------------------------------------------

async def test_end_to_end_on_demo_market(bt_db: Database, pool: BacktestPool) -> None:
    market = DemoMarket(clock=lambda: NOW)
    service = BacktestService(bt_db, market, pool, timeout=60, clock=lambda: NOW)
    progress = Progress()
    report = await service.run(USER, None, STRATEGY, parse_backtest_args(["PEPE", "1h", "30"]), progress)

    assert progress.messages == ["Fetching candles…", "Running backtest on 720 candles…"]
    assert report.symbol == "PEPE" and report.token_id == PEPE_ID and report.chain == "bsc"
    assert report.candles == 720 and report.days == 30 and report.timeframe == "1h" and report.demo
    assert report.chart_png.startswith(b"\x89PNG")
    assert "Buy 50% of the balance in PEPE" in describe_strategy(report.strategy)

    # identical to running the engine in-process on the same candles
    candles = await market.get_klines(PEPE_ID, 60, limit=720)
    local = run_backtest(STRATEGY, candles, interval_minutes=60)
    assert report.metrics == local.metrics
    assert report.metrics["total_trades"] == len(local.trades) > 0
    assert len(report.trades) == min(20, len(local.trades))

    stored = await BacktestRepo(bt_db).get(USER, report.backtest_id)
    assert stored is not None and stored.status == "completed" and stored.demo and stored.token_id == PEPE_ID
    assert stored.metrics == json.loads(json.dumps(local.metrics))
    assert len(stored.trades) == len(local.trades) and stored.finished_at is not None
    assert await BacktestRepo(bt_db).get(OTHER, report.backtest_id) is None

    signals = await SignalRepo(bt_db).for_backtest(USER, report.backtest_id, limit=1000)
    expected = local.signals()[:MAX_STORED_SIGNALS]
    assert report.signals_stored == len(signals) == len(expected) > 0
    assert [(s.side, s.bar_time) for s in signals] == [(e["side"], e["time"]) for e in expected]
    words = {s.signal_id: stored_explanation(s.reason, s.side, s.token_id) for s in signals}
    buys = [words[s.signal_id] for s in signals if s.side == "buy"]
    sells = [words[s.signal_id] for s in signals if s.side == "sell"]
    assert buys and all(re.fullmatch(r"price dropped \d+\.\d% in 1h ≥ your 2%", w) for w in buys)
    assert all(re.fullmatch(r"price rose \d+\.\d% in 4h ≥ your 3%", w) for w in sells)
    # stored as the typed reasons: the fired conditions and what they measured
    buy = next(s for s in signals if s.side == "buy")
    typed = decode_reasons(buy.reason, side="buy", token=buy.token_id)
    assert typed is not None and len(typed) == 1 and typed[0].value >= 2
    drop = STRATEGY.conditions[0]
    assert typed[0].condition.model_dump(include={"type", "threshold", "timeframe", "signal"}) == drop.model_dump(
        include={"type", "threshold", "timeframe", "signal"})

    labels = dict(metrics_rows(report))
    assert labels["Token"] == "PEPE (bsc) · demo data"
    assert labels["Period"] == "30 days of 1h candles (720)"
    assert labels["Trades"] == str(len(local.trades))
    assert labels["Final equity"].startswith("$") and "from $1,000.00" in labels["Final equity"]


async def test_another_token_repoints_the_strategy(bt_db: Database, pool: BacktestPool) -> None:
    service = BacktestService(bt_db, DemoMarket(clock=lambda: NOW), pool, clock=lambda: NOW)
    report = await service.run(USER, None, STRATEGY, parse_backtest_args(["WETH", "4h", "60"]), Progress())
    assert report.symbol == "WETH" and report.candles == 360
    assert "in WETH on eth" in describe_strategy(report.strategy)
    stored = await BacktestRepo(bt_db).get(USER, report.backtest_id)
    assert stored is not None and json.loads(stored.strategy_json)["actions"][0]["token"] == "WETH"


async def test_unknown_token(bt_db: Database) -> None:
    service = BacktestService(bt_db, DemoMarket(clock=lambda: NOW), BacktestPool(1), clock=lambda: NOW)
    with pytest.raises(BacktestServiceError) as info:
        await service.run(USER, None, STRATEGY, parse_backtest_args(["NOPE"]), Progress())
    assert describe(info.value).startswith("No token called NOPE on any chain in the demo market (it has PEPE (bsc)")
    assert describe(info.value).endswith("). Try a symbol like PEPE, PEPE:bsc or an id like 0xabc…-bsc.")
    [row] = await BacktestRepo(bt_db).recent(USER)
    assert row.status == "failed" and "backtest.token_not_found" in (row.error or "")


async def test_too_little_history(bt_db: Database) -> None:
    young = DemoMarket(clock=lambda: NOW, history_days=1)  # only 24 hourly candles exist
    service = BacktestService(bt_db, young, BacktestPool(1), clock=lambda: NOW)
    with pytest.raises(BacktestServiceError) as info:
        await service.run(USER, None, STRATEGY, parse_backtest_args(["PEPE", "1h", "30"]), Progress())
    assert describe(info.value).startswith("Too short a range: PEPE has only 24 1h candles in the last 30 days")
    [row] = await BacktestRepo(bt_db).recent(USER)
    assert row.status == "failed" and row.token_id == PEPE_ID


class BrokenMarket:
    """Resolves tokens but every candle request fails like an outage."""

    is_demo = False

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error or TemporaryMarketError("market.temporary", status=None)

    async def resolve_token(self, symbol_or_id: str, chain: str | None = None) -> TokenInfo:
        return TokenInfo(token_id="0xdead-bsc", symbol=symbol_or_id.upper(), chain=chain or "bsc")

    async def get_klines(self, token_id: str, interval_minutes: int, *, limit: int = 300,
                         from_time: int | None = None, to_time: int | None = None) -> Candles:
        raise self.error

    async def get_prices(self, token_ids: Sequence[str]) -> dict[str, PriceQuote]:
        raise self.error

    async def search_tokens(self, keyword: str, chain: str | None = None, limit: int = 20) -> list[TokenInfo]:
        raise self.error

    async def aclose(self) -> None:
        return None


async def test_market_outage_is_a_clear_error_and_a_failed_row(bt_db: Database) -> None:
    service = BacktestService(bt_db, BrokenMarket(), BacktestPool(1), clock=lambda: NOW)
    with pytest.raises(MarketDataError) as info:
        await service.run(USER, 7, STRATEGY, parse_backtest_args([]), Progress())
    assert describe(info.value) == MARKET_DOWN
    [row] = await BacktestRepo(bt_db).recent(USER)
    assert row.status == "failed" and row.error == str(info.value) and row.bot_id is None  # no such bot: detached
    with pytest.raises(MarketDataError):  # the user is free again: the next run reaches the market, not "busy"
        await service.run(USER, None, STRATEGY, parse_backtest_args([]), Progress())


class GatedMarket(DemoMarket):
    """The demo market, but candle requests wait until `gate` is set."""

    def __init__(self) -> None:
        super().__init__(clock=lambda: NOW)
        self.gate = asyncio.Event()
        self.waiting = asyncio.Event()

    async def get_klines(self, token_id: str, interval_minutes: int, **kw: Any) -> Candles:
        self.waiting.set()
        await self.gate.wait()
        return await super().get_klines(token_id, interval_minutes, **kw)


async def test_one_backtest_per_user(bt_db: Database, pool: BacktestPool) -> None:
    market = GatedMarket()
    service = BacktestService(bt_db, market, pool, clock=lambda: NOW)
    first = asyncio.create_task(service.run(USER, None, STRATEGY, parse_backtest_args([]), Progress()))
    await asyncio.wait_for(market.waiting.wait(), 5)
    with pytest.raises(BacktestBusyError) as busy:
        await service.run(USER, None, STRATEGY, parse_backtest_args([]), Progress())
    assert describe(busy.value) == "You already have a backtest running; wait for it to finish."
    market.gate.set()
    report = await asyncio.wait_for(first, 60)
    assert isinstance(report, BacktestReport) and report.candles == 720
    rows = await BacktestRepo(bt_db).recent(USER)
    assert [r.status for r in rows] == ["completed"]  # the refused run stored nothing


class FailingPool:
    """Stands in for BacktestPool and raises a chosen error from submit."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def submit(self, user_id: int, job: BacktestJob, timeout: float = 60.0) -> Any:
        raise self.error


@pytest.mark.parametrize("error, needle", [
    (BacktestBusyError("backtest.busy"), "already have a backtest running"),
    (BacktestQueueFullError("backtest.queue_full"), "Too many backtests are queued"),
    (BacktestTimeoutError("backtest.timeout", seconds=5.0), "took longer than 5 s and was stopped"),
    (BacktestError("backtest.worker_stopped"), "worker stopped"),
    (BacktestInputError("candles.not_increasing"), "can't be backtested: candle times must be strictly increasing."),
    (RuntimeError("boom"), "failed unexpectedly"),
])
async def test_pool_errors_map_to_clear_messages(bt_db: Database, error: Exception, needle: str) -> None:
    service = BacktestService(bt_db, DemoMarket(clock=lambda: NOW), FailingPool(error),  # type: ignore[arg-type]
                              timeout=5, clock=lambda: NOW)
    with pytest.raises(CodedError) as info:
        await service.run(USER, None, STRATEGY, parse_backtest_args([]), Progress())
    assert needle in describe(info.value)
    [row] = await BacktestRepo(bt_db).recent(USER)
    assert row.status == "failed" and row.error


async def test_progress_failures_do_not_abort(bt_db: Database) -> None:
    async def broken_progress(text: str) -> None:
        raise RuntimeError("message to edit was deleted")

    service = BacktestService(bt_db, BrokenMarket(), BacktestPool(1), clock=lambda: NOW)
    with pytest.raises(MarketDataError) as info:  # fails later, at the market, not at progress
        await service.run(USER, None, STRATEGY, parse_backtest_args([]), broken_progress)
    assert "unavailable" in describe(info.value)


async def test_interrupted_rows_are_failed_on_start(bt_db: Database) -> None:
    repo = BacktestRepo(bt_db)
    await repo.create(USER, None, "PEPE", "PEPE", "1h", 30, "{}", demo=True)
    service = BacktestService(bt_db, DemoMarket(clock=lambda: NOW), BacktestPool(1), clock=lambda: NOW)
    [row] = await repo.recent(USER)
    assert await service.recover_interrupted() == [(row.backtest_id, USER)]
    [row] = await repo.recent(USER)
    assert row.status == "failed"


async def test_with_replicas_only_backtests_older_than_the_timeout_are_failed(bt_db: Database) -> None:
    repo = BacktestRepo(bt_db)
    await repo.create(USER, None, "PEPE", "PEPE", "1h", 30, "{}", demo=True)  # created just now (the DB's clock)
    now = time.time()
    service = BacktestService(bt_db, DemoMarket(clock=lambda: now), BacktestPool(1), timeout=60, clock=lambda: now)
    assert await service.recover_interrupted(shared=True) == []  # a live replica may be running it
    [row] = await repo.recent(USER)
    assert row.status == "running"
    later = BacktestService(bt_db, DemoMarket(clock=lambda: now), BacktestPool(1), timeout=60,
                            clock=lambda: now + 121)
    assert await later.recover_interrupted(shared=True) == [(row.backtest_id, USER)]


@pytest.mark.parametrize(("request_args", "code", "words"), [
    (("PEPE", None, "2h", 30), "backtest.unknown_timeframe", "Unknown timeframe 2h. Use one of 5m 15m 30m 1h 4h 1d."),
    ((None, None, "1h", 0), "backtest.days_out_of_range", "Days must be from 1 to 365."),
    ((None, None, "1d", 30), "backtest.range_too_short", "Too short a range: 30 day(s) of 1d candles is only 30"),
    ((None, None, "5m", 365), "backtest.range_too_long", "Too many candles: 365 days of 5m candles is 105,120"),
])
def test_a_request_checks_the_engine_limits(request_args: tuple[Any, ...], code: str, words: str) -> None:
    with pytest.raises(BacktestRequestError) as info:
        BacktestRequest(*request_args)
    assert info.value.code == code and describe(info.value).startswith(words)
