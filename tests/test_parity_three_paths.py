"""The specification of the trading core: the backtest, `/simulate` and the agent loop make the
same trades (entry bar, exit bar, reason, prices) on the same market.

A scripted market replays a price path in time: each bar is polled after its open, at its high,
at its low and just before its close, and the forming bar shows only what has happened so far
(AVE's live candle). The simulation service and the agent loop run against it as in production;
the backtest runs on the finished candles. Paths: gaps through stops, both levels in one bar,
sell signals next to stops, sparse candles (intervals without trades are missing, as on AVE),
and 1h, 4h and 1d strategies.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agents import MoneyRules, get_isolated_ai_manager
from agents.autonomy.agent_loop import AgentLoop
from agents.design.strategy_bots import StrategyBots
from engine.backtest import run_backtest
from engine.events import CollectingSink
from engine.market.base import Candles, PriceQuote, TokenInfo, TokenNotFoundError
from engine.simulate.simulations import SimulationService
from engine.strategy import TIMEFRAME_MINUTES, parse_strategy
from storage import Database, open_database
from storage.signals_repo import TradeRepo

TOKEN_ID = "0x9a9a000000000000000000000000000000000001-bsc"
USER = 5150


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def price_path(seed: int, n: int, *, sparse: float = 0.0) -> dict[str, np.ndarray]:
    """A real-shaped path: log-normal moves, volatility bursts, opens that gap, long wicks;
    with `sparse`, that share of bars has no trades at all (missing, as AVE leaves them)."""
    rng = np.random.default_rng(seed)
    vol = 0.012 * np.where(rng.random(n) < 0.15, 3.0, 1.0)
    close = np.empty(n)
    open_ = np.empty(n)
    prev = 100.0
    for i in range(n):  # test data only
        gap = rng.normal(0, 0.02) if rng.random() < 0.08 else 0.0
        open_[i] = prev * np.exp(gap)
        close[i] = open_[i] * np.exp(rng.normal(0, vol[i]))
        prev = close[i]
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, vol * 0.8)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, vol * 0.8)))
    keep = np.ones(n, dtype=bool)
    if sparse:
        keep[1:-1] = rng.random(n - 2) >= sparse
    return {"open": open_, "high": high, "low": low, "close": close, "volume": rng.lognormal(5, 1, n),
            "keep": keep}


class ReplayMarket:
    """`MarketData` over a path in time: closed bars whole, the forming bar as far as it has got."""

    def __init__(self, path: dict[str, np.ndarray], start: int, minutes: int, clock: Clock) -> None:
        self.p, self.start, self.period, self.clock = path, start, minutes * 60, clock
        self.minutes = minutes
        self.phase = "close"  # how far the forming bar has got: open, high, low, close

    @property
    def is_demo(self) -> bool:
        return True

    def _bar(self, i: int, partial: bool) -> tuple[float, ...]:
        p = self.p
        o, h, lo, c = p["open"][i], p["high"][i], p["low"][i], p["close"][i]
        if partial:
            if self.phase == "open":
                h = lo = c = o
            elif self.phase == "high":
                lo, c = min(o, c), h
            elif self.phase == "low":
                c = lo
        return (self.start + i * self.period, o, h, lo, c, float(p["volume"][i]))

    def _live(self) -> int:
        return int((self.clock.now - self.start) // self.period)

    def last_price(self) -> float:
        i = self._live()
        for j in range(i, -1, -1):
            if self.p["keep"][j]:
                return self._bar(j, j == i)[4]
        return float(self.p["open"][0])

    async def get_klines(self, token_id: str, interval_minutes: int, *, limit: int = 300,
                         from_time: int | None = None, to_time: int | None = None) -> Candles:
        assert token_id == TOKEN_ID and interval_minutes == self.minutes
        end = self.clock.now if to_time is None else min(to_time, self.clock.now)
        live = self._live()
        last = int((end - self.start) // self.period)
        rows = [self._bar(i, i == live) for i in range(0, min(last, live) + 1) if self.p["keep"][i]]
        return Candles.from_rows(rows[-limit:])

    async def get_prices(self, token_ids: Sequence[str]) -> dict[str, PriceQuote]:
        return {t: PriceQuote(t, self.last_price(), int(self.clock.now)) for t in token_ids if t == TOKEN_ID}

    async def resolve_token(self, symbol_or_id: str, chain: str | None = None) -> TokenInfo:
        if symbol_or_id.upper() in ("PTH", TOKEN_ID.upper()):
            return TokenInfo(TOKEN_ID, "PTH", "bsc")
        raise TokenNotFoundError(f"No token called {symbol_or_id}")

    async def search_tokens(self, keyword: str, chain: str | None = None, limit: int = 20) -> list[TokenInfo]:
        return [await self.resolve_token(keyword, chain)]

    async def aclose(self) -> None:
        return None


def strategy(timeframe: str, *, sl: float | None, tp: float | None, sell: bool, drop: float = 1.5) -> dict[str, Any]:
    conds: list[dict[str, Any]] = [{"type": "price_drop", "token": "PTH", "chain": "bsc", "threshold": drop,
                                    "timeframe": timeframe}]
    actions: list[dict[str, Any]] = [{"type": "buy", "token": "PTH", "chain": "bsc", "amount_percent": 50}]
    if sell:
        conds.append({"type": "price_rise", "token": "PTH", "chain": "bsc", "threshold": 1.5,
                      "timeframe": timeframe, "signal": "sell"})
        actions.append({"type": "sell", "token": "PTH", "chain": "bsc"})
    return {"conditions": conds, "match": "any", "actions": actions,
            "risk_management": {"stop_loss_percent": sl, "take_profit_percent": tp}}


CASES = [
    pytest.param("1h", 3.0, 4.0, False, 0.0, 11, id="1h-stop-and-target-gaps"),
    pytest.param("1h", 1.2, 1.2, True, 0.0, 12, id="1h-both-levels-in-one-bar-and-sell-signals"),
    pytest.param("1h", 2.0, None, True, 0.15, 13, id="1h-sparse-candles-stop-and-signal"),
    pytest.param("1h", None, 2.5, False, 0.1, 14, id="1h-target-only-settles-on-the-forming-bar"),
    pytest.param("4h", 3.0, 5.0, True, 0.0, 15, id="4h"),
    pytest.param("1d", 4.0, 6.0, False, 0.05, 16, id="1d"),
]


@pytest.fixture
async def pdb(tmp_path: Path) -> AsyncIterator[Database]:
    database = await open_database(f"sqlite:///{tmp_path / 'parity.db'}")
    try:
        yield database
    finally:
        await database.close()


def _key(entry_time: Any, exit_time: Any, reason: Any, entry: float, exit_: float) -> tuple[Any, ...]:
    return (int(entry_time), int(exit_time), str(reason), round(float(entry), 9), round(float(exit_), 9))


@pytest.mark.parametrize(("timeframe", "sl", "tp", "sell", "sparse", "seed"), CASES)
async def test_backtest_simulate_and_agents_trade_identically(pdb: Database, timeframe: str, sl: float | None,
                                                             tp: float | None, sell: bool, sparse: float,
                                                             seed: int) -> None:
    minutes = TIMEFRAME_MINUTES[timeframe]
    period = minutes * 60
    n = 160
    warm = 40  # history before the live runs start
    path = price_path(seed, n, sparse=sparse)
    start = (1_700_000_000 // 86400) * 86400
    clock = Clock(start + warm * period + 30)
    market = ReplayMarket(path, start, minutes, clock)
    strat = parse_strategy(strategy(timeframe, sl=sl, tp=tp, sell=sell))

    # the simulation service and the agent loop start together, a little into bar `warm`
    sims = SimulationService(pdb, market, CollectingSink(), clock=clock, max_duration_hours=10_000)
    bot = await StrategyBots(pdb).create(USER, "Parity")
    sim = await sims.start(USER, bot.bot_id, bot.name, strat, timeframe=timeframe)
    manager = get_isolated_ai_manager(pdb, MoneyRules())
    agent = await manager.create_user_main_agent(USER, Decimal(1000))
    await manager.assign_strategy(agent["agent_id"], USER, None, json.dumps(strat.to_config()))
    loop = AgentLoop(pdb, manager, market, CollectingSink(), clock=clock)
    assert (await loop.tick()).ok

    for i in range(warm, n - 1):  # each bar: after its open, at its high, at its low, before its close
        for phase, at in (("open", 0.05), ("high", 0.3), ("low", 0.6), ("close", 0.95)):
            clock.now = start + i * period + at * period
            market.phase = phase
            assert not (await sims.poll_once()).errors
            report = await loop.tick()
            assert report.ok and not report.errors, report.errors

    closed = {k: v[:-1] for k, v in path.items()}  # every bar the live runs saw close
    keep = closed.pop("keep")
    candles = {"time": (start + np.arange(n - 1) * period)[keep], **{k: v[keep] for k, v in closed.items()}}
    candles["time"] = candles["time"].astype(np.int64)
    since = start + warm * period
    reference = run_backtest(strat, candles, interval_minutes=minutes, first_signal_time=since)
    expected = [_key(t.entry_time, t.exit_time, t.exit_reason, t.entry_price, t.exit_price)
                for t in reference.trades if t.exit_reason != "end"]
    assert len(expected) >= 3, "the path should trade"

    sim_trades = await TradeRepo(pdb).for_simulation(USER, sim.simulation_id, limit=1000)
    simulated = [_key(t.entry_bar_time, t.exit_bar_time, t.exit_reason, t.entry_price, t.exit_price)
                 for t in sim_trades]
    agent_trades = await TradeRepo(pdb).for_agent_since(agent["agent_id"], 0)
    traded = [_key(t.entry_bar_time, t.exit_bar_time, t.exit_reason, t.entry_price, t.exit_price)
              for t in agent_trades]
    assert simulated == expected
    assert traded == expected
    # and both live paths say so themselves
    sim_parity = (await sims.summary(USER, sim.simulation_id)).parity
    agent_parity = await loop.parity(agent["agent_id"])
    assert sim_parity is not None and sim_parity.ok and sim_parity.identical >= len(expected)
    assert agent_parity is not None and agent_parity.ok and agent_parity.identical >= len(expected)
