"""Unit tests of the autonomous agent loop against an in-process scripted market."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import numpy as np
import pytest

from agents.agent_loop import DEFAULT_TOKENS, AgentLoop, TickError
from agents.events import CollectingSink, TradeClosed, TradeOpened
from agents.manager import IsolatedAIManager
from engine.market.base import Candles, PriceQuote, TemporaryMarketError, TokenInfo, TokenNotFoundError
from storage import Database
from tests.invariants import check_invariants, money_snapshot

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
                   forming: float | None = None, end: int = BOUNDARY) -> None:
        """Closed bars ending at `end` (the last one starts at end - interval) plus an optional forming bar."""
        step = interval * 60
        rows = []
        start = end - step * len(closes)
        prev = closes[0]
        for i, c in enumerate(closes):
            rows.append((start + i * step, prev, max(prev, c), min(prev, c), c, 1000.0))
            prev = c
        if forming is not None:
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


@pytest.fixture
def loop(db: Database, manager: IsolatedAIManager, market: ScriptedMarket, events: CollectingSink) -> AgentLoop:
    return AgentLoop(db, manager, market, events, clock=lambda: NOW)


async def test_buys_on_a_dip_with_cost_fee_slippage_and_levels(
        loop: AgentLoop, manager: IsolatedAIManager, market: ScriptedMarket, events: CollectingSink,
        db: Database) -> None:
    tkn = market.add("TKN", price=95.0)
    market.set_closes(tkn, [100, 100, 100, 95])  # -5% on the last closed bar
    agent_id = await make_agent(manager, 1, dip_strategy())

    report = await loop.tick()

    assert report.trades_opened == 1 and report.errors == [] and report.agents_evaluated == 1
    [pos] = await manager.open_positions(agent_id)
    assert pos["cost"] == Decimal("50.000000")
    fill = 95.0 * 1.001
    assert pos["entry_price"] == pytest.approx(fill)
    assert pos["size"] == pytest.approx(50 / 1.003 / fill)
    assert pos["stop_loss"] == pytest.approx(fill * 0.9)
    assert pos["take_profit"] == pytest.approx(fill * 1.2)
    assert pos["open_key"] == f"open:{agent_id}:{tkn}:{BOUNDARY - HOUR}"
    info = await manager.get_agent_info(agent_id, 1)
    assert info["available_balance"] == Decimal("50.000000")
    [event] = events.events
    assert isinstance(event, TradeOpened) and event.agent_id == agent_id and event.cost == Decimal("50.000000")
    assert event.demo is True
    await check_invariants(db)


async def test_no_entry_without_signal_and_the_forming_bar_is_ignored(
        loop: AgentLoop, manager: IsolatedAIManager, market: ScriptedMarket) -> None:
    tkn = market.add("TKN", price=50.0)
    market.set_closes(tkn, [100, 100, 100, 99], forming=50.0)  # the crash is still forming
    agent_id = await make_agent(manager, 1, dip_strategy())
    report = await loop.tick()
    assert report.trades_opened == 0 and report.agents_evaluated == 1
    assert await manager.open_positions(agent_id) == []
    # the candle request ends before the forming bar
    assert market.kline_calls[0][3] == BOUNDARY - 1


async def test_replayed_tick_opens_and_books_nothing_twice(
        loop: AgentLoop, manager: IsolatedAIManager, market: ScriptedMarket, db: Database) -> None:
    tkn = market.add("TKN", price=95.0)
    market.set_closes(tkn, [100, 100, 95])
    agent_id = await make_agent(manager, 1, dip_strategy())
    assert (await loop.tick()).trades_opened == 1
    market.prices[tkn] = 120.0  # take-profit
    first = await loop.tick()
    assert first.trades_closed == 1
    after_close = await money_snapshot(db)
    # same bar, signal still firing, same prices: a replay changes nothing
    for _ in range(2):
        again = await loop.tick()
        assert again.trades_opened == 0 and again.trades_closed == 0
    assert await money_snapshot(db) == after_close
    trades = await manager.recent_trades(agent_id)
    assert len(trades) == 1 and trades[0]["exit_reason"] == "take-profit" and trades[0]["pnl"] > 0
    await check_invariants(db)


async def test_stop_loss_take_profit_and_sell_signal_exits(
        db: Database, manager: IsolatedAIManager, market: ScriptedMarket, events: CollectingSink) -> None:
    tkn = market.add("TKN", price=95.0)
    market.set_closes(tkn, [100, 100, 95])
    stop_agent = await make_agent(manager, 1, dip_strategy())
    sell_agent = await make_agent(manager, 2, dip_strategy(sell_rise=4, tp=50))
    clock = {"now": NOW}
    loop = AgentLoop(db, manager, market, events, clock=lambda: clock["now"])
    assert (await loop.tick()).trades_opened == 2
    # next bar: +5% (fires the sell signal of agent 2), price 99.8; agent 1's stop is not hit
    clock["now"] = NOW + HOUR
    market.set_closes(tkn, [100, 100, 95, 99.8], end=BOUNDARY + HOUR)
    market.prices[tkn] = 99.8
    report = await loop.tick()
    assert report.trades_closed == 1
    assert (await manager.recent_trades(sell_agent))[0]["exit_reason"] == "sell signal"
    assert len(await manager.open_positions(stop_agent)) == 1
    market.prices[tkn] = 80.0  # below agent 1's stop
    report = await loop.tick()
    assert report.trades_closed == 1
    [trade] = await manager.recent_trades(stop_agent)
    assert trade["exit_reason"] == "stop-loss" and trade["pnl"] < 0
    closed = [e for e in events.events if isinstance(e, TradeClosed)]
    assert [e.reason for e in closed] == ["sell signal", "stop-loss"]
    assert closed[1].pnl == trade["pnl"]
    await check_invariants(db)


async def test_price_outage_aborts_without_changes_and_next_tick_works(
        loop: AgentLoop, manager: IsolatedAIManager, market: ScriptedMarket, db: Database) -> None:
    tkn = market.add("TKN", price=95.0)
    market.set_closes(tkn, [100, 100, 95])
    agent_id = await make_agent(manager, 1, dip_strategy())
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


async def test_candle_outage_skips_entries_but_stops_still_run(
        db: Database, manager: IsolatedAIManager, market: ScriptedMarket, events: CollectingSink) -> None:
    tkn = market.add("TKN", price=95.0)
    market.set_closes(tkn, [100, 100, 95])
    holder = await make_agent(manager, 1, dip_strategy())
    clock = {"now": NOW}
    loop = AgentLoop(db, manager, market, events, clock=lambda: clock["now"])
    assert (await loop.tick()).trades_opened == 1
    newcomer = await make_agent(manager, 2, dip_strategy())
    market.prices[tkn] = 70.0
    market.fail_klines = 1
    report = await loop.tick()
    assert report.ok and any("candles" in e for e in report.errors)
    assert report.trades_closed == 1 and report.trades_opened == 0
    assert await manager.open_positions(holder) == []
    assert await manager.open_positions(newcomer) == []
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
    assert not done.skipped and done.trades_opened == 1


async def test_one_price_call_and_one_candle_call_per_group(
        db: Database, manager: IsolatedAIManager, market: ScriptedMarket, events: CollectingSink) -> None:
    ids = [market.add(sym, price=10.0) for sym in ("AAA", "BBB", "CCC")]
    for token_id in ids:
        market.set_closes(token_id, [10, 10, 10])
    for n, sym in enumerate(("AAA", "BBB", "CCC") * 4):
        # two different strategies per token: grouped and compiled together
        await make_agent(manager, 100 + n, dip_strategy(sym, amount=10 if n % 2 else 20))
    loop = AgentLoop(db, manager, market, events, clock=lambda: NOW)
    report = await loop.tick()
    assert report.agents_evaluated == 12 and report.tokens == 3 and report.price_calls == 1
    assert len(market.price_calls) == 1 and sorted(market.price_calls[0]) == sorted(ids)
    assert sorted(c[0] for c in market.kline_calls) == sorted(ids)
    # symbols resolve once and stay cached
    await loop.tick()
    assert len(market.resolve_calls) == 3 and len(market.price_calls) == 2


async def test_default_strategy_rotates_over_the_default_tokens(
        db: Database, manager: IsolatedAIManager, market: ScriptedMarket, events: CollectingSink) -> None:
    chains = {"WETH": "eth", "SOL": "solana", "PEPE": "bsc"}
    ids = {sym: market.add(sym, chain, price=95.0) for sym, chain in chains.items()}
    for token_id in ids.values():
        market.set_closes(token_id, [100, 100, 100, 96])  # -4%: the default (3% dip) fires
    agents = [await make_agent(manager, 200 + n, None) for n in range(12)]
    loop = AgentLoop(db, manager, market, events, clock=lambda: NOW)
    report = await loop.tick()
    assert report.trades_opened == 12
    symbols = {a: (await manager.open_positions(a))[0]["symbol"] for a in agents}
    assert set(symbols.values()) <= set(DEFAULT_TOKENS) and len(set(symbols.values())) >= 2
    # the default buys 20% of available and a second tick keeps the same token per agent
    costs = [(await manager.open_positions(a))[0]["cost"] for a in agents]
    assert costs == [Decimal("20.000000")] * len(agents)
    loop2 = AgentLoop(db, manager, market, events, clock=lambda: NOW)
    await loop2.tick()
    assert {a: (await manager.open_positions(a))[0]["symbol"] for a in agents} == symbols


async def test_invalid_strategy_and_unknown_token_are_reported_not_fatal(
        loop: AgentLoop, manager: IsolatedAIManager, market: ScriptedMarket) -> None:
    tkn = market.add("TKN", price=95.0)
    market.set_closes(tkn, [100, 100, 95])
    good = await make_agent(manager, 1, dip_strategy())
    await make_agent(manager, 2, '{"conditions": []}')
    await make_agent(manager, 3, dip_strategy("NOPE"))
    report = await loop.tick()
    assert report.trades_opened == 1 and len(await manager.open_positions(good)) == 1
    assert any("invalid" in e for e in report.errors) and any("NOPE" in e for e in report.errors)
    # the unknown token is not looked up again every tick
    calls = len(market.resolve_calls)
    await loop.tick()
    assert len(market.resolve_calls) == calls


async def test_paused_agents_keep_protective_stops_but_do_not_enter(
        loop: AgentLoop, manager: IsolatedAIManager, market: ScriptedMarket) -> None:
    tkn = market.add("TKN", price=95.0)
    market.set_closes(tkn, [100, 100, 95])
    agent_id = await make_agent(manager, 1, dip_strategy())
    await loop.tick()
    await manager.pause_agent(agent_id, 1)
    market.prices[tkn] = 50.0
    report = await loop.tick()
    assert report.trades_closed == 1 and report.agents_evaluated == 0
    assert (await manager.recent_trades(agent_id))[0]["exit_reason"] == "stop-loss"


def test_rejects_bad_configuration(db: Database, manager: IsolatedAIManager, market: ScriptedMarket) -> None:
    with pytest.raises(ValueError):
        AgentLoop(db, manager, market, CollectingSink(), interval="2h")
    with pytest.raises(ValueError):
        AgentLoop(db, manager, market, CollectingSink(), default_tokens=())
    assert np.isfinite(NOW)
