"""SimulationService against a scripted market: signals, paper trades, events, ownership, restarts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agents.design.strategy_bots import StrategyBots
from bot.cards import end_reason, simulation_card
from bot.messages import describe
from bot.signal_text import explanation_text, stored_explanation
from bot.strategy_text import describe_strategy
from engine.events import CollectingSink, SignalFired, SimulationEnded, TradeClosed, TradeOpened
from engine.live import warmup_bars
from engine.market.base import Candles, PriceQuote, TemporaryMarketError, TokenInfo, TokenNotFoundError
from engine.market.cache import CachedMarketData
from engine.market.demo import DemoMarket
from engine.signals import evaluate, explain_latest
from engine.simulate.simulations import (
    SimulationError,
    SimulationExistsError,
    SimulationLimitError,
    SimulationNotFoundError,
    SimulationService,
)
from engine.strategy import Strategy, parse_strategy
from storage import Database, open_database
from storage.bots_repo import BotRepo
from storage.runs_repo import SimulationRepo
from storage.signals_repo import SignalRepo, TradeRepo
from storage.users_repo import UserRepo

pytestmark = pytest.mark.both_backends  # SQLite and PostgreSQL

H = 3600
T0 = 1_700_000_000 // H * H
ALICE, BOB = 71, 72
TOKEN_ID = "0x70c0000000000000000000000000000000000001-bsc"

STRATEGY: Strategy = parse_strategy({
    "conditions": [{"type": "price_drop", "token": "TOK", "chain": "bsc", "threshold": 3, "timeframe": "1h"}],
    "actions": [{"type": "buy", "token": "TOK", "chain": "bsc", "amount_percent": 50}],
    "risk_management": {"stop_loss_percent": 5, "take_profit_percent": 8},
})


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class ScriptedMarket:
    """A `MarketData` test double: hourly bars and a current price the test controls."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.is_demo = False
        self.bars: list[tuple[float, ...]] = [(T0 + i * H, 100.0, 100.5, 99.5, 100.0, 10.0) for i in range(48)]
        self.price = 100.0
        self.forming: tuple[float, float, float] | None = None  # (open, high, low) of the live bar
        self.fail: Exception | None = None
        self.kline_calls: list[dict[str, Any]] = []
        self.price_calls: list[list[str]] = []

    def add_bar(self, close: float, open_: float | None = None) -> None:
        last = self.bars[-1]
        o = last[4] if open_ is None else open_
        self.bars.append((last[0] + H, o, max(o, close), min(o, close), close, 10.0))
        self.forming = None

    async def resolve_token(self, symbol_or_id: str, chain: str | None = None) -> TokenInfo:
        if self.fail:
            raise self.fail
        if symbol_or_id.upper() != "TOK":
            raise TokenNotFoundError("market.token_not_found", token=symbol_or_id, chain=chain)
        return TokenInfo(token_id=TOKEN_ID, symbol="TOK", chain="bsc")

    async def get_klines(self, token_id: str, interval_minutes: int, *, limit: int = 300,
                         from_time: int | None = None, to_time: int | None = None) -> Candles:
        self.kline_calls.append({"limit": limit, "to_time": to_time})
        if self.fail:
            raise self.fail
        assert interval_minutes == 60 and token_id == TOKEN_ID
        end = self.clock.now if to_time is None else to_time
        rows = [b for b in self.bars if b[0] <= end]
        live = self.bars[-1][0] + H
        if self.forming is not None and end >= live:
            o, h, lo = self.forming
            rows.append((live, o, h, lo, self.price, 1.0))
        return Candles.from_rows(rows[-limit:])

    async def get_prices(self, token_ids: Sequence[str]) -> dict[str, PriceQuote]:
        self.price_calls.append(list(token_ids))
        if self.fail:
            raise self.fail
        return {t: PriceQuote(t, self.price, int(self.clock.now)) for t in token_ids if t == TOKEN_ID}

    async def search_tokens(self, keyword: str, chain: str | None = None, limit: int = 20) -> list[TokenInfo]:
        return [await self.resolve_token(keyword, chain)]

    async def aclose(self) -> None:
        return None


@pytest.fixture
async def sim_db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await open_database(f"sqlite:///{tmp_path / 'sim.db'}")
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
def clock() -> Clock:
    return Clock(T0 + 48 * H + 600)  # ten minutes into the live bar after 48 closed ones


@pytest.fixture
def market(clock: Clock) -> ScriptedMarket:
    return ScriptedMarket(clock)


@pytest.fixture
def sink() -> CollectingSink:
    return CollectingSink()


def make_service(db: Database, market: ScriptedMarket, sink: CollectingSink, clock: Clock,
                 **kw: Any) -> SimulationService:
    return SimulationService(db, market, sink, poll_seconds=60, clock=clock, **kw)


async def new_bot(db: Database, user_id: int, name: str = "Dip bot") -> int:
    bots = StrategyBots(db)
    bot = await bots.create(user_id, name)
    await bots.set_strategy(user_id, bot.bot_id, STRATEGY)
    return bot.bot_id


async def dip_and_poll(service: SimulationService, market: ScriptedMarket, clock: Clock) -> Any:
    """Bar 48 closes 3.5% lower; poll a minute into bar 49, which opened at 96.6."""
    market.add_bar(96.5, open_=100.0)
    clock.now = T0 + 49 * H + 60
    market.price = 96.6
    market.forming = (96.6, 96.6, 96.6)
    return await service.poll_once()


async def test_dip_signal_paper_trade_take_profit(sim_db: Database, market: ScriptedMarket, sink: CollectingSink,
                                                  clock: Clock) -> None:
    service = make_service(sim_db, market, sink, clock)
    bot_id = await new_bot(sim_db, ALICE)
    record = await service.start(ALICE, bot_id, "Dip bot", STRATEGY)
    assert record.running and record.symbol == "TOK" and record.token_id == TOKEN_ID
    assert record.state["core"]["last_close"] == T0 + 47 * H  # the live bar is never part of the window
    assert record.state["since"] == T0 + 48 * H  # signals count from the first bar that closes while running
    assert market.kline_calls[-1] == {"limit": warmup_bars(STRATEGY, 60), "to_time": T0 + 48 * H - 1}

    quiet = await service.poll_once()  # same bar: nothing new to evaluate
    assert quiet.simulations == 1 and quiet.evaluated == 0 and quiet.signals == 0 and not quiet.errors
    assert sink.events == []

    report = await dip_and_poll(service, market, clock)
    assert (report.evaluated, report.signals, report.opened, report.closed) == (1, 1, 1, 0)
    fired, opened = sink.events
    assert isinstance(fired, SignalFired) and isinstance(opened, TradeOpened)
    assert explanation_text(fired.reasons, fired.side) == "price dropped 3.5% in 1h ≥ your 3%"
    assert [r.condition for r in fired.reasons] == STRATEGY.entry_conditions()
    assert (fired.side, fired.price, fired.bot_name, fired.simulation_id) == ("buy", 96.5, "Dip bot",
                                                                              record.simulation_id)
    assert opened.cost == Decimal("500.000000") and opened.price == pytest.approx(96.6 * 1.001)
    [signal] = await SignalRepo(sim_db).for_simulation(ALICE, record.simulation_id)
    assert (signal.side, signal.bar_time) == ("buy", T0 + 48 * H)
    # stored as the typed reasons, shown in the same words as the push
    assert stored_explanation(signal.reason, signal.side, signal.token_id) == "price dropped 3.5% in 1h ≥ your 3%"
    assert signal.bot_id == bot_id

    # polling again within the bar neither re-signals nor re-buys
    again = await service.poll_once()
    assert (again.evaluated, again.signals, again.opened) == (0, 0, 0)
    assert len(sink.events) == 2

    [status] = await service.status(ALICE)
    assert status.position is not None and status.position.cost == Decimal("500.000000")
    assert status.signals == 1 and status.trades == 0 and status.cash == Decimal("1000.000000")
    assert status.time_left_seconds == pytest.approx(24 * H - (H - 600 + 60))
    assert status.strategy is not None and "price drops 3% within 1h" in describe_strategy(status.strategy)

    market.price = 105.0  # above the 8% take-profit from a 96.6966 fill...
    assert (await service.poll_once()).closed == 0  # ...but with a stop-loss a target waits for the close
    market.add_bar(105.0, open_=96.6)  # bar 49 closes with its high through the target
    clock.now = T0 + 50 * H + 30
    closing = await service.poll_once()
    assert closing.closed == 1 and closing.signals == 0
    closed = sink.events[-1]
    assert isinstance(closed, TradeClosed) and closed.reason == "take_profit" and closed.agent_id is None
    size = 500 / (96.6 * 1.001 * 1.003)
    target = 96.6 * 1.001 * 1.08  # filled at the level, not at the higher price seen
    assert closed.exit_price == pytest.approx(target * 0.999)
    expected_pnl = size * target * 0.999 * 0.997 - 500
    assert float(closed.pnl) == pytest.approx(expected_pnl, abs=2e-6) and closed.pnl > 0
    [trade] = await TradeRepo(sim_db).for_simulation(ALICE, record.simulation_id)
    assert trade.pnl == closed.pnl and trade.exit_reason == "take_profit" and trade.cost == Decimal("500.000000")
    [status] = await service.status(ALICE)
    assert status.position is None and status.trades == 1
    assert status.equity == status.cash == Decimal(1000) + closed.pnl
    assert status.pnl == closed.pnl and status.pnl_pct == pytest.approx(float(closed.pnl) / 10)
    assert status.parity is not None and (status.parity.total, status.parity.identical) == (1, 1)
    fees = size * 96.6 * 1.001 * 0.003 + size * target * 0.999 * 0.003  # both fills
    assert float(status.fees_paid) == pytest.approx(fees, abs=2e-6)


async def test_stop_loss_then_reentry_only_at_the_next_open(sim_db: Database, market: ScriptedMarket,
                                                            sink: CollectingSink, clock: Clock) -> None:
    service = make_service(sim_db, market, sink, clock)
    record = await service.start(ALICE, await new_bot(sim_db, ALICE), "Dip bot", STRATEGY)
    await dip_and_poll(service, market, clock)
    # the polled price falls through the stop: the partial bar settles it at once, at the level
    market.price = 90.0
    market.forming = (96.6, 96.6, 90.0)
    report = await service.poll_once()
    assert (report.signals, report.closed, report.opened) == (0, 1, 0)
    closed = [e for e in sink.events if isinstance(e, TradeClosed)]
    assert len(closed) == 1 and closed[0].reason == "stop_loss" and closed[0].pnl < 0
    assert closed[0].exit_price == pytest.approx(96.6 * 1.001 * 0.95 * 0.999)
    # bar 49 closes 5.7% down: a new buy signal, which fills only at bar 50's open
    market.add_bar(91.0, open_=96.6)
    clock.now = T0 + 50 * H + 30
    report = await service.poll_once()
    assert (report.signals, report.closed, report.opened) == (1, 0, 0)  # bar 50 has no trade yet
    market.forming = (91.2, 91.2, 91.2)
    assert (await service.poll_once()).opened == 1
    [status] = await service.status(ALICE)
    assert status.position is not None and status.position.entry_price == pytest.approx(91.2 * 1.001)
    assert status.signals == 2 and status.trades == 1
    assert record.simulation_id == status.simulation_id
    # the second entry is on bar 50, still forming: the replay judges it once that bar is stored
    assert status.parity is not None and status.parity.ok and status.parity.total == 1


async def test_sell_signal_exits(sim_db: Database, market: ScriptedMarket, sink: CollectingSink,
                                 clock: Clock) -> None:
    strategy = parse_strategy({
        "conditions": [{"type": "price_drop", "token": "TOK", "threshold": 3},
                       {"type": "price_rise", "token": "TOK", "threshold": 2, "signal": "sell"}],
        "actions": [{"type": "buy", "token": "TOK", "amount_percent": 100}, {"type": "sell", "token": "TOK"}],
    })
    service = make_service(sim_db, market, sink, clock)
    await service.start(ALICE, await new_bot(sim_db, ALICE), "Swing", strategy)
    await dip_and_poll(service, market, clock)
    market.add_bar(99.0, open_=96.6)  # +2.6% in 1h: sell signal
    clock.now = T0 + 50 * H + 5
    market.price = 99.1
    market.forming = (99.1, 99.1, 99.1)  # the exit fills at the next bar's open
    settling = await service.poll_once()  # 5 s after the close: AVE may still be aggregating it
    assert (settling.evaluated, settling.signals, settling.closed) == (0, 0, 0)
    clock.now = T0 + 50 * H + 30
    report = await service.poll_once()
    assert (report.signals, report.closed) == (1, 1)
    sell = [e for e in sink.events if isinstance(e, SignalFired)][-1]
    assert sell.side == "sell" and explanation_text(sell.reasons, sell.side) == "price rose 2.6% in 1h ≥ your 2%"
    assert [e.reason for e in sink.events if isinstance(e, TradeClosed)] == ["signal"]


async def test_market_error_leaves_state_unchanged(sim_db: Database, market: ScriptedMarket, sink: CollectingSink,
                                                   clock: Clock) -> None:
    service = make_service(sim_db, market, sink, clock)
    record = await service.start(ALICE, await new_bot(sim_db, ALICE), "Dip bot", STRATEGY)
    sims = SimulationRepo(sim_db)
    before = (await sims.get(ALICE, record.simulation_id)).state  # type: ignore[union-attr]
    market.add_bar(96.5, open_=100.0)
    clock.now = T0 + 49 * H + 60
    market.fail = TemporaryMarketError("market.temporary", status=503)
    report = await service.poll_once()
    assert report.market_error == "market.temporary"
    assert report.errors == {record.simulation_id: "market.temporary"}
    assert describe(market.fail) == "The market data service is unavailable right now, try again in a minute."
    after = (await sims.get(ALICE, record.simulation_id)).state  # type: ignore[union-attr]
    assert after == before and sink.events == []
    # recovery: the missed bar is evaluated on the next good poll
    market.fail = None
    market.price = 96.6
    assert (await service.poll_once()).signals == 1


async def test_one_batched_price_call_for_all_simulations(sim_db: Database, market: ScriptedMarket,
                                                          sink: CollectingSink, clock: Clock) -> None:
    service = make_service(sim_db, market, sink, clock)
    await service.start(ALICE, await new_bot(sim_db, ALICE, "a"), "a", STRATEGY)
    await service.start(BOB, await new_bot(sim_db, BOB, "b"), "b", STRATEGY)
    market.price_calls.clear()
    market.kline_calls.clear()
    report = await dip_and_poll(service, market, clock)
    assert report.simulations == 2 and report.signals == 2
    assert market.price_calls == [[TOKEN_ID]]  # one call, token de-duplicated
    assert len(market.kline_calls) == 2  # one closed window and one forming bar, shared by both
    assert {e.user_id for e in sink.events if isinstance(e, SignalFired)} == {ALICE, BOB}


async def test_start_stop_status_and_ownership(sim_db: Database, market: ScriptedMarket, sink: CollectingSink,
                                               clock: Clock) -> None:
    service = make_service(sim_db, market, sink, clock)
    mine = await new_bot(sim_db, ALICE)
    theirs = await new_bot(sim_db, BOB)
    with pytest.raises(SimulationNotFoundError) as foreign:
        await service.start(ALICE, theirs, "x", STRATEGY)  # someone else's bot
    assert describe(foreign.value) == "Strategy bot not found. Use /bots to see yours."
    with pytest.raises(SimulationNotFoundError):
        await service.start(ALICE, "1; DROP", "x", STRATEGY)  # type: ignore[arg-type]
    with pytest.raises(SimulationError) as timeframe:
        await service.start(ALICE, mine, "x", STRATEGY, timeframe="2h")
    assert describe(timeframe.value) == "Unknown timeframe 2h. Use one of 5m 15m 30m 1h 4h 1d."
    other_token = STRATEGY.with_token("NOPE", "bsc")
    with pytest.raises(SimulationError) as no_token:
        await service.start(ALICE, mine, "x", other_token)
    assert describe(no_token.value) == "No token called NOPE on bsc."
    record = await service.start(ALICE, mine, "Dip bot", STRATEGY)
    with pytest.raises(SimulationExistsError) as exists:
        await service.start(ALICE, mine, "Dip bot", STRATEGY)
    assert describe(exists.value) == "This bot is already being simulated. Use /simulate stop first."
    bob_sim = await service.start(BOB, theirs, "Bob bot", STRATEGY)

    assert [s.simulation_id for s in await service.status(ALICE)] == [record.simulation_id]
    assert [s.simulation_id for s in await service.status(BOB)] == [bob_sim.simulation_id]
    for bad in (bob_sim.simulation_id, 10_000, "abc", -1, True):
        with pytest.raises(SimulationNotFoundError) as missing:
            await service.stop(ALICE, bad)
        assert describe(missing.value) == "Simulation not found. Use /simulate status to see yours."
        with pytest.raises(SimulationNotFoundError):
            await service.summary(ALICE, bad)
    with pytest.raises(SimulationNotFoundError):
        await service.stop(ALICE, bot_id=theirs)
    with pytest.raises(SimulationError):
        await service.stop(ALICE)

    await dip_and_poll(service, market, clock)  # Alice now holds a position
    market.price = 98.0
    stopped = await service.stop(ALICE, bot_id=mine)
    assert stopped.status == "stopped" and stopped.stopped_at is not None
    [trade] = await TradeRepo(sim_db).for_simulation(ALICE, record.simulation_id)
    assert trade.exit_reason == "stopped" and trade.exit_price == pytest.approx(98.0 * 0.999)
    assert await service.status(ALICE) == []
    assert [s.status for s in await service.status(ALICE, include_finished=True)] == ["stopped"]
    with pytest.raises(SimulationError) as ended:
        await service.stop(ALICE, record.simulation_id)
    assert describe(ended.value) == f"Simulation #{record.simulation_id} is already stopped."
    # Bob's simulation is untouched, and a stopped bot can be simulated again
    assert (await service.summary(BOB, bob_sim.simulation_id)).status == "running"
    assert (await service.get(ALICE, record.simulation_id)).status == "stopped"
    with pytest.raises(SimulationNotFoundError):
        await service.get(ALICE, bob_sim.simulation_id)
    again = await service.start(ALICE, mine, "Dip bot", STRATEGY)
    assert again.running
    assert (await service.stop_for_bot(ALICE, mine)).status == "stopped"  # type: ignore[union-attr]
    assert await service.stop_for_bot(ALICE, mine) is None  # nothing running any more
    assert await service.stop_for_bot(ALICE, theirs) is None  # not Alice's
    assert (await service.summary(BOB, bob_sim.simulation_id)).status == "running"


async def test_the_card_is_plain_text(sim_db: Database, market: ScriptedMarket, sink: CollectingSink,
                                      clock: Clock) -> None:
    service = make_service(sim_db, market, sink, clock)
    await service.start(ALICE, await new_bot(sim_db, ALICE, "<b>Dip</b>"), "<b>Dip</b>", STRATEGY)
    await dip_and_poll(service, market, clock)
    [status] = await service.status(ALICE)
    text = simulation_card(status)
    assert text.splitlines()[0].startswith(f"#{status.simulation_id} <b>Dip</b> · TOK 1h · running")
    assert "Position 5.15" in text and "@ 96.6966" in text and "Signals 1 · trades 0" in text
    assert "Time left 23h 09m" in text  # started 51 min ago
    assert "Costs: fee 0.30% + slippage 0.10% per fill; paid 1.50 USDC in fees" in text
    # the entry is on the bar still forming: the replay covers closed bars only
    assert "Parity: replayed through the backtest: no closed bar with a trade yet" in text


async def test_at_most_three_running_per_user(sim_db: Database, market: ScriptedMarket, sink: CollectingSink,
                                              clock: Clock) -> None:
    service = make_service(sim_db, market, sink, clock)
    await UserRepo(sim_db).ensure(ALICE)
    ids = [(await BotRepo(sim_db).create(ALICE, f"b{i}")).bot_id for i in range(4)]  # bypasses the bot limit
    for bot_id in ids[:3]:
        await service.start(ALICE, bot_id, "b", STRATEGY)
    with pytest.raises(SimulationLimitError) as limit:
        await service.start(ALICE, ids[3], "b", STRATEGY)
    assert describe(limit.value) == "You can run at most 3 simulations at once. Stop one first."


async def test_max_duration_ends_the_simulation(sim_db: Database, market: ScriptedMarket, sink: CollectingSink,
                                                clock: Clock) -> None:
    service = make_service(sim_db, market, sink, clock, max_duration_hours=2)
    record = await service.start(ALICE, await new_bot(sim_db, ALICE), "Dip bot", STRATEGY)
    await dip_and_poll(service, market, clock)
    clock.now = T0 + 48 * H + 600 + 2 * H + 1
    market.price = 97.0
    report = await service.poll_once()
    assert report.finished == 1 and report.signals == 0
    ended = sink.events[-1]
    assert isinstance(ended, SimulationEnded) and ended.simulation_id == record.simulation_id
    assert ended.reason == "max_duration" and ended.max_hours == 2 and ended.bot_name == "Dip bot"
    assert end_reason(ended.reason, ended.max_hours) == "it reached the maximum duration of 2 h"
    assert [e.reason for e in sink.events if isinstance(e, TradeClosed)] == ["end"]
    [summary] = await service.status(ALICE, include_finished=True)
    assert summary.status == "finished" and summary.time_left_seconds == 0 and summary.position is None
    assert (await service.poll_once()).simulations == 0


async def test_resume_continues_without_duplicate_signals(sim_db: Database, market: ScriptedMarket,
                                                          sink: CollectingSink, clock: Clock) -> None:
    first = make_service(sim_db, market, sink, clock)
    record = await first.start(ALICE, await new_bot(sim_db, ALICE), "Dip bot", STRATEGY)
    await dip_and_poll(first, market, clock)
    assert len(sink.events) == 2

    # "restart": a new service over the same database, mid-bar
    second_sink = CollectingSink()
    second = make_service(sim_db, market, second_sink, clock)
    resumed = await second.resume_all()
    assert (resumed.resumed, resumed.finished, resumed.failed) == (1, 0, 0)
    clock.now += 120
    report = await second.poll_once()
    assert (report.evaluated, report.signals, report.opened) == (0, 0, 0)
    assert second_sink.events == []
    assert await SignalRepo(sim_db).count_for_simulation(record.simulation_id) == 1
    # and it keeps trading from the stored position: bar 49 closes through the target
    market.add_bar(105.0, open_=96.6)
    clock.now = T0 + 50 * H + 30
    assert (await second.poll_once()).closed == 1
    assert isinstance(second_sink.events[-1], TradeClosed)


async def test_concurrent_pollers_do_not_double_signal(sim_db: Database, market: ScriptedMarket,
                                                       sink: CollectingSink, clock: Clock) -> None:
    a = make_service(sim_db, market, sink, clock)
    b = make_service(sim_db, market, sink, clock)  # e.g. an old process still running
    record = await a.start(ALICE, await new_bot(sim_db, ALICE), "Dip bot", STRATEGY)
    market.add_bar(96.5, open_=100.0)
    clock.now = T0 + 49 * H + 60
    market.price = 96.6
    market.forming = (96.6, 96.6, 96.6)
    await asyncio.gather(a.poll_once(), b.poll_once())
    assert await SignalRepo(sim_db).count_for_simulation(record.simulation_id) == 1
    assert [type(e).__name__ for e in sink.events] == ["SignalFired", "TradeOpened"]


async def test_resume_finishes_expired_orphaned_and_broken(sim_db: Database, market: ScriptedMarket,
                                                           sink: CollectingSink, clock: Clock) -> None:
    service = make_service(sim_db, market, sink, clock, max_duration_hours=1)
    expired = await service.start(ALICE, await new_bot(sim_db, ALICE, "a"), "a", STRATEGY)
    orphan_bot = await new_bot(sim_db, BOB, "b")
    orphan = await service.start(BOB, orphan_bot, "b", STRATEGY)
    broken = await service.start(BOB, await new_bot(sim_db, BOB, "c"), "c", STRATEGY)
    await sim_db.execute("DELETE FROM bots WHERE bot_id = ?", (orphan_bot,))  # FK sets bot_id NULL
    await sim_db.execute("UPDATE simulations SET state_json = '{\"cash_micro\": \"x\"}' WHERE simulation_id = ?",
                         (broken.simulation_id,))
    clock.now += 2 * H
    restarted = make_service(sim_db, market, sink, clock)
    report = await restarted.resume_all()
    assert (report.resumed, report.finished, report.failed) == (0, 2, 1)
    ended = {e.simulation_id: end_reason(e.reason, e.max_hours) for e in sink.events if isinstance(e, SimulationEnded)}
    assert ended == {expired.simulation_id: "it reached the maximum duration of 1 h",
                     orphan.simulation_id: "its strategy bot was deleted"}
    statuses = {r["simulation_id"]: r["status"] for r in await sim_db.fetchall(
        "SELECT simulation_id, status FROM simulations")}
    assert statuses == {expired.simulation_id: "finished", orphan.simulation_id: "finished",
                        broken.simulation_id: "failed"}


async def test_deleting_the_bot_stops_its_simulation(sim_db: Database, market: ScriptedMarket,
                                                     sink: CollectingSink, clock: Clock) -> None:
    service = make_service(sim_db, market, sink, clock)
    bot_id = await new_bot(sim_db, ALICE)
    record = await service.start(ALICE, bot_id, "Dip bot", STRATEGY)
    await StrategyBots(sim_db).delete(ALICE, bot_id)
    assert (await service.poll_once()).simulations == 0
    assert (await service.summary(ALICE, record.simulation_id)).status == "stopped"


class FailingSink:
    async def publish(self, event: Any) -> None:
        raise RuntimeError("telegram down")


async def test_a_failing_sink_never_breaks_the_poll(sim_db: Database, market: ScriptedMarket, clock: Clock) -> None:
    service = SimulationService(sim_db, market, FailingSink(), clock=clock)
    record = await service.start(ALICE, await new_bot(sim_db, ALICE), "Dip bot", STRATEGY)
    report = await dip_and_poll(service, market, clock)
    assert report.signals == 1 and not report.errors
    assert await SignalRepo(sim_db).count_for_simulation(record.simulation_id) == 1


@pytest.mark.parametrize("conditions", [
    [{"type": "price_drop", "token": "T", "threshold": 1.5, "timeframe": "4h"}],
    [{"type": "volume_spike", "token": "T", "threshold": 50, "timeframe": "1d"}],
    [{"type": "price_level", "token": "T", "price": 100, "direction": "below"},
     {"type": "price_rise", "token": "T", "threshold": 1, "timeframe": "30m", "signal": "sell"}],
])
def test_window_reproduces_the_full_history_evaluation(conditions: list[dict[str, Any]]) -> None:
    """The simulation's short closed-bar window gives the backtest's answer on every bar."""
    strategy = parse_strategy({"conditions": conditions, "match": "any",
                               "actions": [{"type": "buy", "token": "T", "amount_percent": 10}]})
    rng = np.random.default_rng(3)
    n = 400
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    candles = {"time": np.arange(n) * 900, "open": close, "high": close, "low": close, "close": close,
               "volume": rng.lognormal(3, 1, n)}
    full = evaluate(strategy, candles, 15)
    bars = warmup_bars(strategy, 15)
    for i in range(bars, n):
        window = {k: v[i - bars + 1:i + 1] for k, v in candles.items()}
        latest = explain_latest(strategy, window, 15)
        assert (latest is not None and latest.buy) == bool(full.buy[i])
        assert (latest is not None and latest.sell) == bool(full.sell[i])


async def test_live_signals_match_the_backtest_on_the_same_candles(sim_db: Database) -> None:
    """A day of polling the (cached) demo market signals on exactly the bars the backtest does."""
    clock = Clock(1_717_000_000.0)
    market = CachedMarketData(DemoMarket(clock=clock), clock=clock, wall_clock=clock)
    strategy = parse_strategy({
        "conditions": [{"type": "price_drop", "token": "PEPE", "chain": "bsc", "threshold": 0.6, "timeframe": "1h"},
                       {"type": "price_rise", "token": "PEPE", "chain": "bsc", "threshold": 0.6, "timeframe": "1h",
                        "signal": "sell"}],
        "actions": [{"type": "buy", "token": "PEPE", "chain": "bsc", "amount_percent": 20},
                    {"type": "sell", "token": "PEPE", "chain": "bsc"}],
    })
    service = SimulationService(sim_db, market, CollectingSink(), clock=clock, max_duration_hours=48)
    bots = StrategyBots(sim_db)
    bot = await bots.create(ALICE)
    record = await service.start(ALICE, bot.bot_id, bot.name, strategy, timeframe="15m")
    start = clock.now
    for _ in range(24 * 6):  # every 10 minutes for 24 h
        clock.now += 600
        report = await service.poll_once()
        assert not report.errors
    live = [(s.bar_time, s.side) for s in await SignalRepo(sim_db).for_simulation(ALICE, record.simulation_id, 1000)]
    history = await DemoMarket(clock=clock).get_klines(record.token_id, 15, limit=200)
    closed = {k: np.asarray(v)[:-1] for k, v in history.items()}  # drop the live bar
    full = evaluate(strategy, closed, 15)
    times = closed["time"]
    evaluated = (times > start - 900) & (times < clock.now - 900)  # bars that closed while running
    expected = sorted([(int(t), "buy") for t in times[full.buy & evaluated]]
                      + [(int(t), "sell") for t in times[full.sell & evaluated]])
    assert len(expected) >= 4  # the threshold is low enough for a busy day
    assert sorted(live) == expected
    [status] = await service.status(ALICE)
    assert status.trades >= 2 and status.parity is not None
    assert status.parity.ok and status.parity.total == status.trades + (status.position is not None)
