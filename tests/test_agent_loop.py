"""Unit tests of the autonomous agent loop against an in-process scripted market."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import numpy as np
import pytest

from agents.autonomy.agent_loop import DEFAULT_TOKENS, AgentLoop, TickError
from agents.ledger.manager import IsolatedAIManager
from bot.cards import parity_line
from engine.events import CollectingSink, TradeClosed, TradeOpened
from engine.market.base import Candles, PriceQuote, TemporaryMarketError, TokenInfo, TokenNotFoundError
from storage import Database
from tests.invariants import check_invariants, money_snapshot

pytestmark = pytest.mark.both_backends  # SQLite and PostgreSQL

HOUR = 3600
BOUNDARY = 472223 * HOUR  # a whole hour
NOW = BOUNDARY + 600  # ten minutes into the forming bar


class ScriptedMarket:
    """A `MarketData` whose prices and candles the test sets; counts every call."""

    def __init__(self, clock: Any = lambda: NOW) -> None:
        self.clock = clock
        self.tokens: dict[str, TokenInfo] = {}
        self.prices: dict[str, float] = {}
        self.candles: dict[tuple[str, int], list[tuple[float, ...]]] = {}
        self.price_calls: list[list[str]] = []
        self.kline_calls: list[tuple[str, int, int, int | None]] = []
        self.resolve_calls: list[tuple[str, str | None]] = []
        self.fail_prices = 0
        self.fail_klines = 0
        self.block: asyncio.Event | None = None

    @property
    def is_demo(self) -> bool:
        return True

    def add(self, symbol: str, chain: str = "bsc", price: float = 1.0) -> str:
        token_id = f"0x{symbol.lower():0>40}-{chain}"
        self.tokens[token_id] = TokenInfo(token_id, symbol, chain)
        self.prices[token_id] = price
        return token_id

    def set_closes(self, token_id: str, closes: Sequence[float], *, interval: int = 60,
                   forming: float | tuple[float, float, float] | None = None, end: int = BOUNDARY,
                   highs: dict[int, float] | None = None) -> None:
        """Closed bars ending at `end` (the last one starts at end - interval), each opening at the
        previous close, plus an optional forming bar: a price (opens at the last close) or
        (open, high, low). `highs` overrides the high of bar i."""
        step = interval * 60
        rows = []
        start = end - step * len(closes)
        prev = closes[0]
        for i, c in enumerate(closes):
            high = max(prev, c, (highs or {}).get(i, 0.0))
            rows.append((start + i * step, prev, high, min(prev, c), c, 1000.0))
            prev = c
        if isinstance(forming, tuple):
            o, h, lo = forming
            rows.append((end, o, h, lo, self.prices.get(token_id, o), 1000.0))
        elif forming is not None:
            rows.append((end, prev, max(prev, forming), min(prev, forming), forming, 1000.0))
        self.candles[(token_id, interval)] = rows

    def stats(self) -> dict[str, Any]:
        return {"upstream_calls_total": len(self.price_calls)}

    async def get_prices(self, token_ids: Sequence[str]) -> dict[str, PriceQuote]:
        self.price_calls.append(list(token_ids))
        if self.block is not None:
            await self.block.wait()
        if self.fail_prices:
            self.fail_prices -= 1
            raise TemporaryMarketError("AVE market data is temporarily unavailable: HTTP 500")
        return {t: PriceQuote(t, self.prices[t], int(self.clock())) for t in token_ids if t in self.prices}

    async def get_klines(self, token_id: str, interval_minutes: int, *, limit: int = 300,
                         from_time: int | None = None, to_time: int | None = None) -> Candles:
        self.kline_calls.append((token_id, interval_minutes, limit, to_time))
        if self.fail_klines:
            self.fail_klines -= 1
            raise TemporaryMarketError("AVE market data is temporarily unavailable: timeout")
        rows = [r for r in self.candles.get((token_id, interval_minutes), [])
                if to_time is None or r[0] <= to_time]
        return Candles.from_rows(rows[-limit:])

    async def search_tokens(self, keyword: str, chain: str | None = None, limit: int = 20) -> list[TokenInfo]:
        return [t for t in self.tokens.values() if t.symbol.casefold() == keyword.casefold()][:limit]

    async def resolve_token(self, symbol_or_id: str, chain: str | None = None) -> TokenInfo:
        self.resolve_calls.append((symbol_or_id, chain))
        if symbol_or_id in self.tokens:
            return self.tokens[symbol_or_id]
        for info in self.tokens.values():
            if info.symbol.casefold() == symbol_or_id.casefold() and (chain is None or info.chain == chain):
                return info
        raise TokenNotFoundError(f"No token called {symbol_or_id}")

    async def aclose(self) -> None:
        return None


def dip_strategy(token: str = "TKN", *, amount: float = 50, sl: float = 10, tp: float = 20,
                 sell_rise: float | None = None) -> str:
    conditions: list[dict[str, Any]] = [
        {"type": "price_drop", "token": token, "chain": "bsc", "threshold": 3, "timeframe": "1h"}]
    actions: list[dict[str, Any]] = [{"type": "buy", "amount_percent": amount, "token": token, "chain": "bsc"}]
    if sell_rise is not None:
        conditions.append({"type": "price_rise", "token": token, "chain": "bsc", "threshold": sell_rise,
                           "timeframe": "1h", "signal": "sell"})
        actions.append({"type": "sell", "token": token, "chain": "bsc"})
    return json.dumps({"conditions": conditions, "match": "any", "actions": actions,
                       "risk_management": {"stop_loss_percent": sl, "take_profit_percent": tp}})


async def make_agent(manager: IsolatedAIManager, user_id: int, strategy: str | None,
                     balance: str = "100") -> str:
    agent = await manager.create_user_main_agent(user_id, Decimal(balance))
    if strategy is not None:
        await manager.assign_strategy(agent["agent_id"], user_id, None, strategy)
    return agent["agent_id"]


@pytest.fixture
def market() -> ScriptedMarket:
    return ScriptedMarket()


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def loop(db: Database, manager: IsolatedAIManager, market: ScriptedMarket, events: CollectingSink,
         clock: Clock) -> AgentLoop:
    return AgentLoop(db, manager, market, events, clock=clock)


FLAT = [100.0] * 4


async def dip_then_open(loop: AgentLoop, market: ScriptedMarket, clock: Clock, tkn: str, *,
                        dip: float = 95.0, open_: float | None = 95.2) -> Any:
    """First tick on flat history, then the bar at BOUNDARY closes at `dip` and the next one opens."""
    market.set_closes(tkn, FLAT)
    first = await loop.tick()
    assert first.trades_opened == 0  # history before the agent only warms the lookbacks up
    clock.now = BOUNDARY + HOUR + 600
    market.prices[tkn] = open_ if open_ is not None else dip
    forming = None if open_ is None else (open_, open_, open_)
    market.set_closes(tkn, [*FLAT, dip], end=BOUNDARY + HOUR, forming=forming)
    return await loop.tick()


async def test_buys_at_the_next_open_after_a_dip_with_cost_fee_slippage_and_levels(
        loop: AgentLoop, manager: IsolatedAIManager, market: ScriptedMarket, events: CollectingSink,
        db: Database, clock: Clock) -> None:
    tkn = market.add("TKN", price=100.0)
    agent_id = await make_agent(manager, 1, dip_strategy())
    report = await dip_then_open(loop, market, clock, tkn)
    assert report.trades_opened == 1 and report.errors == [] and report.agents_evaluated == 1
    [pos] = await manager.open_positions(agent_id)
    assert pos["cost"] == Decimal("50.000000")
    fill = 95.2 * 1.001  # the open of the bar after the signal, plus slippage
    assert pos["entry_price"] == pytest.approx(fill)
    assert pos["size"] == pytest.approx(50 / 1.003 / fill)
    assert pos["stop_loss"] == pytest.approx(fill * 0.9)
    assert pos["take_profit"] == pytest.approx(fill * 1.2)
    assert pos["open_key"] == f"open:{agent_id}:{tkn}:{BOUNDARY + HOUR}"
    assert pos["entry_bar_time"] == BOUNDARY + HOUR
    info = await manager.get_agent_info(agent_id, 1)
    assert info["available_balance"] == Decimal("50.000000")
    [event] = events.events
    assert isinstance(event, TradeOpened) and event.agent_id == agent_id and event.cost == Decimal("50.000000")
    assert event.demo is True and event.fee == pytest.approx(Decimal("0.15"), abs=Decimal("0.001"))
    assert (event.fee_bps, event.slippage_bps) == (30, 10)
    await check_invariants(db)


async def test_an_order_waits_for_the_next_bar_to_open(
        loop: AgentLoop, manager: IsolatedAIManager, market: ScriptedMarket, clock: Clock) -> None:
    tkn = market.add("TKN", price=100.0)
    agent_id = await make_agent(manager, 1, dip_strategy())
    report = await dip_then_open(loop, market, clock, tkn, open_=None)  # nothing traded in the new bar yet
    assert report.trades_opened == 0 and await manager.open_positions(agent_id) == []
    clock.now += 300
    market.set_closes(tkn, [*FLAT, 95.0], end=BOUNDARY + HOUR, forming=(94.0, 94.5, 93.9))
    assert (await loop.tick()).trades_opened == 1
    [pos] = await manager.open_positions(agent_id)
    assert pos["entry_price"] == pytest.approx(94.0 * 1.001)  # that bar's open, whenever we saw it


async def test_replayed_ticks_and_a_restart_book_nothing_twice(
        loop: AgentLoop, manager: IsolatedAIManager, market: ScriptedMarket, db: Database, events: CollectingSink,
        clock: Clock) -> None:
    tkn = market.add("TKN", price=100.0)
    agent_id = await make_agent(manager, 1, dip_strategy())
    assert (await dip_then_open(loop, market, clock, tkn)).trades_opened == 1
    after_open = await money_snapshot(db)
    for _ in range(2):
        again = await loop.tick()
        assert again.trades_opened == 0 and again.trades_closed == 0
    restarted = AgentLoop(db, manager, market, events, clock=clock)  # a new process, same database
    assert (await restarted.tick()).trades_opened == 0
    assert await money_snapshot(db) == after_open
    assert len(await manager.open_positions(agent_id)) == 1
    await check_invariants(db)


async def test_stop_settles_on_the_forming_bar_target_waits_for_the_close_sell_signal_at_the_open(
        db: Database, manager: IsolatedAIManager, market: ScriptedMarket, events: CollectingSink,
        clock: Clock) -> None:
    tkn = market.add("TKN", price=100.0)
    stop_agent = await make_agent(manager, 1, dip_strategy())
    tp_agent = await make_agent(manager, 2, dip_strategy(tp=3))
    sell_agent = await make_agent(manager, 3, dip_strategy(sell_rise=4, tp=50))
    loop = AgentLoop(db, manager, market, events, clock=clock)
    assert (await dip_then_open(loop, market, clock, tkn)).trades_opened == 3
    fill = 95.2 * 1.001
    # bar BOUNDARY+H closes at 99.8 (+5%: agent 3's sell signal), its high 98.5 passes agent 2's target
    clock.now = BOUNDARY + 2 * HOUR + 60
    market.prices[tkn] = 99.9
    market.set_closes(tkn, [*FLAT, 95.0, 99.8], end=BOUNDARY + 2 * HOUR, highs={5: 99.8}, forming=(99.9, 99.9, 99.9))
    report = await loop.tick()
    assert report.trades_closed == 2
    [tp] = await manager.recent_trades(tp_agent)
    assert tp["exit_reason"] == "take_profit" and tp["exit_price"] == pytest.approx(fill * 1.03 * 0.999)
    [sig] = await manager.recent_trades(sell_agent)
    assert sig["exit_reason"] == "signal" and sig["exit_price"] == pytest.approx(99.9 * 0.999)
    assert len(await manager.open_positions(stop_agent)) == 1
    # the polled price falls through agent 1's stop: the forming bar's low settles it, at the level
    clock.now += 600
    market.prices[tkn] = 80.0
    market.set_closes(tkn, [*FLAT, 95.0, 99.8], end=BOUNDARY + 2 * HOUR, highs={5: 99.8}, forming=(99.9, 99.9, 80.0))
    report = await loop.tick()
    assert report.trades_closed == 1
    [trade] = await manager.recent_trades(stop_agent)
    assert trade["exit_reason"] == "stop_loss" and trade["pnl"] < 0
    assert trade["exit_price"] == pytest.approx(fill * 0.9 * 0.999)
    closed = [e for e in events.events if isinstance(e, TradeClosed)]
    assert sorted(e.reason for e in closed) == ["signal", "stop_loss", "take_profit"]
    await check_invariants(db)


async def test_price_outage_aborts_without_changes_and_next_tick_works(
        loop: AgentLoop, manager: IsolatedAIManager, market: ScriptedMarket, db: Database, clock: Clock) -> None:
    tkn = market.add("TKN", price=100.0)
    agent_id = await make_agent(manager, 1, dip_strategy())
    market.set_closes(tkn, FLAT)
    await loop.tick()
    clock.now = BOUNDARY + HOUR + 600
    market.set_closes(tkn, [*FLAT, 95.0], end=BOUNDARY + HOUR, forming=(95.2, 95.2, 95.2))
    before = await money_snapshot(db)
    market.fail_prices = 1
    report = await loop.tick()
    assert report.aborted and not report.ok and "prices" in report.errors[0]
    assert await money_snapshot(db) == before
    market.fail_prices = 1
    with pytest.raises(TickError):
        await loop.run()
    report = await loop.tick()
    assert report.ok and report.trades_opened == 1
    assert len(await manager.open_positions(agent_id)) == 1


async def test_candle_outage_decides_nothing_until_the_bars_are_back(
        loop: AgentLoop, manager: IsolatedAIManager, market: ScriptedMarket, db: Database, clock: Clock) -> None:
    tkn = market.add("TKN", price=100.0)
    agent_id = await make_agent(manager, 1, dip_strategy())
    market.set_closes(tkn, FLAT)
    await loop.tick()
    clock.now = BOUNDARY + HOUR + 600
    market.set_closes(tkn, [*FLAT, 95.0], end=BOUNDARY + HOUR, forming=(95.2, 95.2, 95.2))
    market.fail_klines = 1
    report = await loop.tick()
    assert report.ok and any("candles" in e for e in report.errors) and report.trades_opened == 0
    assert (await loop.tick()).trades_opened == 1  # the missed close is processed, the entry at its open
    [pos] = await manager.open_positions(agent_id)
    assert pos["entry_price"] == pytest.approx(95.2 * 1.001)
    await check_invariants(db)


async def test_overlapping_tick_is_skipped(
        loop: AgentLoop, manager: IsolatedAIManager, market: ScriptedMarket) -> None:
    tkn = market.add("TKN", price=95.0)
    market.set_closes(tkn, [100, 100, 95])
    await make_agent(manager, 1, dip_strategy())
    market.block = asyncio.Event()
    first = asyncio.create_task(loop.tick())
    await asyncio.sleep(0.01)
    second = await loop.tick()
    assert second.skipped and second.trades_opened == 0
    market.block.set()
    done = await first
    assert not done.skipped


async def test_one_price_call_one_candle_call_per_group_and_none_on_a_quiet_tick(
        loop: AgentLoop, manager: IsolatedAIManager, market: ScriptedMarket, clock: Clock) -> None:
    ids = [market.add(sym, price=10.0) for sym in ("AAA", "BBB", "CCC")]
    for token_id in ids:
        market.set_closes(token_id, [10, 10, 10])
    for n, sym in enumerate(("AAA", "BBB", "CCC") * 4):
        # two different strategies per token: grouped and evaluated together
        await make_agent(manager, 100 + n, dip_strategy(sym, amount=10 if n % 2 else 20))
    report = await loop.tick()
    assert report.agents_evaluated == 12 and report.tokens == 3 and report.price_calls == 1
    assert len(market.price_calls) == 1 and sorted(market.price_calls[0]) == sorted(ids)
    assert sorted(c[0] for c in market.kline_calls) == sorted(ids)
    # a quiet tick in the same bar reads no candles; symbols resolve once and stay cached
    market.kline_calls.clear()
    clock.now += 60
    await loop.tick()
    assert market.kline_calls == []
    assert len(market.resolve_calls) == 3 and len(market.price_calls) == 2


async def test_default_strategy_rotates_over_the_default_tokens(
        db: Database, manager: IsolatedAIManager, market: ScriptedMarket, events: CollectingSink,
        clock: Clock) -> None:
    chains = {"WETH": "eth", "SOL": "solana", "PEPE": "bsc"}
    ids = {sym: market.add(sym, chain, price=100.0) for sym, chain in chains.items()}
    agents = [await make_agent(manager, 200 + n, None) for n in range(12)]
    loop = AgentLoop(db, manager, market, events, clock=clock)
    for token_id in ids.values():
        market.set_closes(token_id, FLAT)
    await loop.tick()
    clock.now = BOUNDARY + HOUR + 600
    for token_id in ids.values():  # -4%: the default (3% dip) fires; the next bar opens at 96
        market.set_closes(token_id, [*FLAT, 96.0], end=BOUNDARY + HOUR, forming=(96.0, 96.0, 96.0))
        market.prices[token_id] = 96.0
    report = await loop.tick()
    assert report.trades_opened == 12
    symbols = {a: (await manager.open_positions(a))[0]["symbol"] for a in agents}
    assert set(symbols.values()) <= set(DEFAULT_TOKENS) and len(set(symbols.values())) >= 2
    costs = [(await manager.open_positions(a))[0]["cost"] for a in agents]
    assert costs == [Decimal("20.000000")] * len(agents)  # the default buys 20% of available
    loop2 = AgentLoop(db, manager, market, events, clock=clock)
    await loop2.tick()
    assert {a: (await manager.open_positions(a))[0]["symbol"] for a in agents} == symbols


async def test_invalid_strategy_and_unknown_token_are_reported_not_fatal(
        loop: AgentLoop, manager: IsolatedAIManager, market: ScriptedMarket, clock: Clock) -> None:
    tkn = market.add("TKN", price=100.0)
    good = await make_agent(manager, 1, dip_strategy())
    await make_agent(manager, 2, '{"conditions": []}')
    await make_agent(manager, 3, dip_strategy("NOPE"))
    report = await dip_then_open(loop, market, clock, tkn)
    assert report.trades_opened == 1 and len(await manager.open_positions(good)) == 1
    assert any("invalid" in e for e in report.errors) and any("NOPE" in e for e in report.errors)
    calls = len(market.resolve_calls)
    await loop.tick()
    assert len(market.resolve_calls) == calls  # the unknown token is not looked up again every tick


async def test_paused_agents_keep_protective_stops_but_trade_no_signals(
        loop: AgentLoop, manager: IsolatedAIManager, market: ScriptedMarket, clock: Clock) -> None:
    tkn = market.add("TKN", price=100.0)
    agent_id = await make_agent(manager, 1, dip_strategy())
    await dip_then_open(loop, market, clock, tkn)
    await manager.pause_agent(agent_id, 1)
    market.prices[tkn] = 50.0
    market.set_closes(tkn, [*FLAT, 95.0], end=BOUNDARY + HOUR, forming=(95.2, 95.2, 50.0))
    report = await loop.tick()
    assert report.trades_closed == 1 and report.agents_evaluated == 0
    assert (await manager.recent_trades(agent_id))[0]["exit_reason"] == "stop_loss"
    # the crash closes as a new dip: a paused agent does not buy it
    clock.now = BOUNDARY + 2 * HOUR + 60
    market.set_closes(tkn, [*FLAT, 95.0, 50.0], end=BOUNDARY + 2 * HOUR, forming=(50.0, 50.0, 50.0))
    assert (await loop.tick()).trades_opened == 0


async def test_a_4h_strategy_trades_4h_bars(
        loop: AgentLoop, manager: IsolatedAIManager, market: ScriptedMarket, clock: Clock) -> None:
    tkn = market.add("TKN", price=100.0)
    strategy = json.loads(dip_strategy())
    strategy["conditions"][0]["timeframe"] = "4h"
    await make_agent(manager, 1, json.dumps(strategy))
    four = 240 * 60
    start = BOUNDARY // four * four
    clock.now = start + 600
    market.set_closes(tkn, FLAT, interval=240, end=start)
    await loop.tick()
    assert {c[1] for c in market.kline_calls} == {240}  # no cap at 1h
    clock.now = start + four + 600
    market.set_closes(tkn, [*FLAT, 95.0], interval=240, end=start + four, forming=(95.2, 95.2, 95.2))
    market.prices[tkn] = 95.2
    assert (await loop.tick()).trades_opened == 1


async def test_agent_parity_replays_its_trades_through_the_backtest(
        loop: AgentLoop, manager: IsolatedAIManager, market: ScriptedMarket, clock: Clock) -> None:
    tkn = market.add("TKN", price=100.0)
    agent_id = await make_agent(manager, 1, dip_strategy(tp=3))
    # the bar after the dip opens at 95.0, the open its closed candle shows later
    await dip_then_open(loop, market, clock, tkn, open_=95.0)
    clock.now = BOUNDARY + 2 * HOUR + 60
    market.set_closes(tkn, [*FLAT, 95.0, 99.0], end=BOUNDARY + 2 * HOUR, highs={5: 99.0})
    assert (await loop.tick()).trades_closed == 1
    parity = await loop.parity(agent_id)
    assert parity is not None and parity.ok and (parity.total, parity.identical) == (1, 1)
    assert parity_line(parity) == "Parity: replayed through the backtest: 1/1 trades identical"
    assert await loop.parity("no-such-agent") is None


async def test_agent_parity_reports_a_divergence(
        loop: AgentLoop, manager: IsolatedAIManager, market: ScriptedMarket, clock: Clock,
        caplog: pytest.LogCaptureFixture) -> None:
    """A source that later shows another open than the one traded on is caught and logged."""
    tkn = market.add("TKN", price=100.0)
    agent_id = await make_agent(manager, 1, dip_strategy(tp=3))
    await dip_then_open(loop, market, clock, tkn, open_=95.2)  # the closed candle will say 95.0
    clock.now = BOUNDARY + 2 * HOUR + 60
    market.set_closes(tkn, [*FLAT, 95.0, 99.0], end=BOUNDARY + 2 * HOUR, highs={5: 99.0})
    await loop.tick()
    parity = await loop.parity(agent_id)
    assert parity is not None and not parity.ok and (parity.total, parity.identical) == (1, 0)
    diff = parity.first_difference
    assert diff is not None and diff.number == 1 and diff.live is not None and diff.backtest is not None
    assert diff.live.entry_time == diff.backtest.entry_time and diff.live.entry_price != diff.backtest.entry_price
    assert "diverged from its backtest replay" in caplog.text


def test_rejects_bad_configuration(db: Database, manager: IsolatedAIManager, market: ScriptedMarket) -> None:
    with pytest.raises(ValueError):
        AgentLoop(db, manager, market, CollectingSink(), fee_bps=-1)
    with pytest.raises(ValueError):
        AgentLoop(db, manager, market, CollectingSink(), default_tokens=())
    assert np.isfinite(NOW)


async def test_one_tokens_bad_candles_do_not_stop_the_others(
        loop: AgentLoop, manager: IsolatedAIManager, market: ScriptedMarket, clock: Clock) -> None:
    good = market.add("TKN", price=100.0)
    bad = market.add("BAD", price=100.0)
    await make_agent(manager, 1, dip_strategy())
    await make_agent(manager, 2, dip_strategy("BAD"))
    market.set_closes(bad, FLAT)
    market.candles[(bad, 60)][1] = (market.candles[(bad, 60)][1][0], 100.0, 90.0, 80.0, 100.0, 1.0)  # high < close
    report = await dip_then_open(loop, market, clock, good)
    assert report.ok and report.trades_opened == 1
    assert any("candles BAD" in e and "candles.high_below_body" in e for e in report.errors)
