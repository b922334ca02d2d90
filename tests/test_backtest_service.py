"""BacktestService: argument grammar, end-to-end runs on the demo market and a real pool, errors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from engine.backtest import BacktestInputError, run_backtest
from engine.backtest_service import (
    MARKET_DOWN,
    MAX_STORED_SIGNALS,
    BacktestArgsError,
    BacktestReport,
    BacktestRequest,
    BacktestService,
    BacktestServiceError,
    format_metrics,
    parse_backtest_args,
)
from engine.market.base import Candles, PriceQuote, TemporaryMarketError, TokenInfo
from engine.market.demo import DemoMarket
from engine.pool import (
    BacktestBusyError,
    BacktestError,
    BacktestJob,
    BacktestPool,
    BacktestQueueFullError,
    BacktestTimeoutError,
)
from engine.strategy import Strategy, parse_strategy
from storage import Database, open_database
from storage.repos import BacktestRepo, SignalRepo, UserRepo

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

    async def __call__(self, text: str) -> None:
        self.messages.append(text)


# -- argument grammar -----------------------------------------------------------------------------

@pytest.mark.parametrize("args, expected", [
    ([], BacktestRequest(None, None, "1h", 30)),
    (["PEPE"], BacktestRequest("PEPE", None, "1h", 30)),
    (["PEPE", "4h", "90"], BacktestRequest("PEPE", None, "4h", 90)),
    (["pepe:BSC", "15m", "7"], BacktestRequest("pepe", "bsc", "15m", 7)),
    (["$PEPE"], BacktestRequest("PEPE", None, "1h", 30)),
    ([PEPE_ID, "5m", "3"], BacktestRequest(PEPE_ID, None, "5m", 3)),
    (["7", "15m"], BacktestRequest(None, None, "15m", 7)),  # any order, recognised by shape
    (["1D", "365"], BacktestRequest(None, None, "1d", 365)),
    (["60m"], BacktestRequest(None, None, "1h", 30)),
    (["24h", "120"], BacktestRequest(None, None, "1d", 120)),
    (["1INCH"], BacktestRequest("1INCH", None, "1h", 30)),
    (["+45"], BacktestRequest(None, None, "1h", 45)),
])
def test_good_arguments(args: list[str], expected: BacktestRequest) -> None:
    assert parse_backtest_args(args) == expected
    assert BacktestService.parse_args(args) == expected


@pytest.mark.parametrize("args, needle", [
    (["PEPE", "1h", "abc!"], "token"),            # two tokens
    (["PEPE", "1h", "-5"], "Days must be"),
    (["PEPE", "1h", "0"], "Days must be"),
    (["PEPE", "1h", "366"], "Days must be"),
    (["PEPE", "1h", "99999999999999999999"], "Days must be"),
    (["PEPE", "1h", "nan"], "Days must be"),
    (["PEPE", "1h", "inf"], "Days must be"),
    (["PEPE", "1h", "2.5"], "whole number"),
    (["PEPE", "1h", "1e3"], "whole number"),
    (["PEPE", "2h", "30"], "Unknown timeframe"),
    (["PEPE", "1m", "30"], "Unknown timeframe"),
    (["PEPE", "30d"], "just the number"),
    (["<b>PEPE</b>"], "A token is a symbol"),
    (["PE&PE"], "A token is a symbol"),
    (["P" * 101], "too long"),
    (["PEPE:b$c"], "chain name"),
    (["PEPE:"], "chain name"),
    ([":bsc"], "missing"),
    ([PEPE_ID + ":bsc"], "already names its chain"),
    (["PEPE", "1h", "30", "extra"], "Too many arguments"),
    (["1h", "4h"], "only one timeframe"),
    (["10", "20"], "only one number of days"),
    (["1d", "30"], "Too short a range"),           # 30 candles < 50
    (["4h", "5"], "Too short a range"),            # 30 candles
    (["5m", "365"], "Too many candles"),           # 105,120 candles
])
def test_bad_arguments(args: list[str], needle: str) -> None:
    with pytest.raises(BacktestArgsError) as info:
        parse_backtest_args(args)
    assert needle in str(info.value)
    assert "<" not in str(info.value)  # the message never echoes markup


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
    assert "Buy 50% of the balance in PEPE" in report.strategy_description

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
    buys = [s for s in signals if s.side == "buy"]
    sells = [s for s in signals if s.side == "sell"]
    assert buys and all("price dropped" in s.reason and "in 1h ≥ your 2%" in s.reason for s in buys)
    assert all("price rose" in s.reason and "≥ your 3%" in s.reason for s in sells)

    labels = dict(format_metrics(report))
    assert labels["Token"] == "PEPE (bsc) · demo data"
    assert labels["Period"] == "30 days of 1h candles (720)"
    assert labels["Trades"] == str(len(local.trades))
    assert labels["Final equity"].startswith("$") and "from $1,000.00" in labels["Final equity"]


async def test_another_token_repoints_the_strategy(bt_db: Database, pool: BacktestPool) -> None:
    service = BacktestService(bt_db, DemoMarket(clock=lambda: NOW), pool, clock=lambda: NOW)
    report = await service.run(USER, None, STRATEGY, parse_backtest_args(["WETH", "4h", "60"]), Progress())
    assert report.symbol == "WETH" and report.candles == 360
    assert "in WETH on eth" in report.strategy_description
    stored = await BacktestRepo(bt_db).get(USER, report.backtest_id)
    assert stored is not None and json.loads(stored.strategy_json)["actions"][0]["token"] == "WETH"


async def test_unknown_token(bt_db: Database) -> None:
    service = BacktestService(bt_db, DemoMarket(clock=lambda: NOW), BacktestPool(1), clock=lambda: NOW)
    with pytest.raises(BacktestServiceError, match="No token called NOPE"):
        await service.run(USER, None, STRATEGY, parse_backtest_args(["NOPE"]), Progress())
    [row] = await BacktestRepo(bt_db).recent(USER)
    assert row.status == "failed" and "No token called NOPE" in (row.error or "")


async def test_too_little_history(bt_db: Database) -> None:
    young = DemoMarket(clock=lambda: NOW, history_days=1)  # only 24 hourly candles exist
    service = BacktestService(bt_db, young, BacktestPool(1), clock=lambda: NOW)
    with pytest.raises(BacktestServiceError, match="Too short a range: PEPE has only 24 1h candles"):
        await service.run(USER, None, STRATEGY, parse_backtest_args(["PEPE", "1h", "30"]), Progress())
    [row] = await BacktestRepo(bt_db).recent(USER)
    assert row.status == "failed" and row.token_id == PEPE_ID


class BrokenMarket:
    """Resolves tokens but every candle request fails like an outage."""

    is_demo = False

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error or TemporaryMarketError("AVE timed out")

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
    with pytest.raises(BacktestServiceError) as info:
        await service.run(USER, 7, STRATEGY, parse_backtest_args([]), Progress())
    assert str(info.value) == MARKET_DOWN
    [row] = await BacktestRepo(bt_db).recent(USER)
    assert row.status == "failed" and row.error == MARKET_DOWN and row.bot_id is None  # no such bot: detached
    assert not service.is_busy(USER)


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
    assert service.is_busy(USER)
    with pytest.raises(BacktestServiceError, match="already have a backtest running"):
        await service.run(USER, None, STRATEGY, parse_backtest_args([]), Progress())
    market.gate.set()
    report = await asyncio.wait_for(first, 60)
    assert isinstance(report, BacktestReport) and report.candles == 720
    assert not service.is_busy(USER)
    rows = await BacktestRepo(bt_db).recent(USER)
    assert [r.status for r in rows] == ["completed"]  # the refused run stored nothing


class FailingPool:
    """Stands in for BacktestPool and raises a chosen error from submit."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def submit(self, user_id: int, job: BacktestJob, timeout: float = 60.0) -> Any:
        raise self.error


@pytest.mark.parametrize("error, needle", [
    (BacktestBusyError("busy"), "already have a backtest running"),
    (BacktestQueueFullError("full"), "Too many backtests are queued"),
    (BacktestTimeoutError("slow"), "took longer than 5 s"),
    (BacktestError("the backtest worker stopped unexpectedly; please try again"), "worker stopped"),
    (BacktestInputError("candle times must be strictly increasing"), "can't be backtested"),
    (RuntimeError("boom"), "failed unexpectedly"),
])
async def test_pool_errors_map_to_clear_messages(bt_db: Database, error: Exception, needle: str) -> None:
    service = BacktestService(bt_db, DemoMarket(clock=lambda: NOW), FailingPool(error),  # type: ignore[arg-type]
                              timeout=5, clock=lambda: NOW)
    with pytest.raises(BacktestServiceError, match=needle):
        await service.run(USER, None, STRATEGY, parse_backtest_args([]), Progress())
    [row] = await BacktestRepo(bt_db).recent(USER)
    assert row.status == "failed" and row.error


async def test_progress_failures_do_not_abort(bt_db: Database) -> None:
    async def broken_progress(text: str) -> None:
        raise RuntimeError("message to edit was deleted")

    service = BacktestService(bt_db, BrokenMarket(), BacktestPool(1), clock=lambda: NOW)
    with pytest.raises(BacktestServiceError, match="unavailable"):  # fails later, at the market, not at progress
        await service.run(USER, None, STRATEGY, parse_backtest_args([]), broken_progress)


async def test_interrupted_rows_are_failed_on_start(bt_db: Database) -> None:
    repo = BacktestRepo(bt_db)
    await repo.create(USER, None, "PEPE", "PEPE", "1h", 30, "{}", demo=True)
    service = BacktestService(bt_db, DemoMarket(clock=lambda: NOW), BacktestPool(1), clock=lambda: NOW)
    assert await service.recover_interrupted() == 1
    [row] = await repo.recent(USER)
    assert row.status == "failed"


@pytest.mark.parametrize(("default", "args", "expected"), [
    ("5m", [], ("5m", 30)),           # a 5-minute strategy runs on 5-minute candles by default
    ("1d", [], ("1d", 100)),          # daily candles get enough days for ~100 bars
    ("4h", ["7"], None),              # explicit days too short for 4h candles: refused
    ("5m", ["1h", "10"], ("1h", 10)),  # explicit arguments win over the default
])
def test_default_timeframe_follows_the_strategy(default: str, args: list[str],
                                                expected: tuple[str, int] | None) -> None:
    if expected is None:
        with pytest.raises(BacktestArgsError, match="Too short"):
            BacktestService.parse_args(args, default)
        return
    request = BacktestService.parse_args(args, default)
    assert (request.timeframe, request.days) == expected
