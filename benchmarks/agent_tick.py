"""Benchmark of one autonomous-loop tick: 10,000 active agents over 50 tokens.

Seeds a temp-file SQLite database (WAL, the production settings) with executemany, runs the real
`AgentLoop` over an in-process market that behaves like the AVE client (prices in batches of at
most 200 ids per upstream call, counted) behind the real `CachedMarketData`, and prints:

* the cold first tick (token resolution, candle fetches, every agent's trading core started and
  stored), warm quiet ticks inside the same bar (no candles read), and a busy tick after the next
  bar closes where 5 of the 50 tokens dipped so ~1,000 agents open a position at the new bar's
  open (one manager transaction each);
* upstream price calls per tick (must be ⌈50/200⌉ = 1) and the peak RSS.

Targets: a tick < 1 s, RSS < 300 MB. Run: `python benchmarks/agent_tick.py [--agents N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.agent_loop import AgentLoop
from agents.events import CollectingSink
from agents.manager import IsolatedAIManager
from engine.market.base import Candles, PriceQuote, TokenInfo, TokenNotFoundError
from engine.market.cache import CachedMarketData
from storage import open_database

HOUR = 3600
START = 472223 * HOUR + 600
SYMBOLS = ["WETH", "SOL", "PEPE", *(f"T{i:03d}" for i in range(3, 50))]
MAX_IDS = 200


class BenchMarket:
    """AVE-like in-process market: counted price batches of ≤200 ids, synthetic hourly candles."""

    def __init__(self, clock: Any) -> None:
        self.clock = clock
        self.ids = {s: f"0x{i:040x}-bsc" for i, s in enumerate(SYMBOLS)}
        self.dipping: set[str] = set()
        self.calls_total = 0
        self.kline_calls = 0

    @property
    def is_demo(self) -> bool:
        return True

    def stats(self) -> dict[str, Any]:
        return {"calls_total": self.calls_total}

    async def get_prices(self, token_ids: Sequence[str]) -> dict[str, PriceQuote]:
        ids = list(dict.fromkeys(token_ids))
        self.calls_total += math.ceil(len(ids) / MAX_IDS)
        now = int(self.clock())
        return {t: PriceQuote(t, 95.0 if t in self.dipping else 100.0, now) for t in ids}

    async def get_klines(self, token_id: str, interval_minutes: int, *, limit: int = 300,
                         from_time: int | None = None, to_time: int | None = None) -> Candles:
        self.kline_calls += 1
        step = interval_minutes * 60
        end = int((to_time if to_time is not None else self.clock()) // step) * step
        rows = []
        live = int(self.clock() // step) * step
        for k in range(limit, 0, -1):
            t = end - (k - 1) * step
            if t >= live:  # the bar in progress: only its open so far
                rows.append((t, 100.0, 100.0, 100.0, 100.0, 10.0))
                continue
            close = 95.0 if (t == live - step and token_id in self.dipping) else 100.0 + 0.1 * (k % 3)
            rows.append((t, 100.0, 101.0, 94.0, close, 1000.0))
        return Candles.from_rows(rows)

    async def search_tokens(self, keyword: str, chain: str | None = None, limit: int = 20) -> list[TokenInfo]:
        return []

    async def resolve_token(self, symbol_or_id: str, chain: str | None = None) -> TokenInfo:
        token_id = self.ids.get(symbol_or_id.upper())
        if token_id is None:
            raise TokenNotFoundError(symbol_or_id)
        return TokenInfo(token_id, symbol_or_id.upper(), "bsc")

    async def aclose(self) -> None:
        return None


def strategy(symbol: str, variant: int) -> str:
    return json.dumps({
        "conditions": [{"type": "price_drop", "token": symbol, "chain": "bsc", "threshold": 3 + variant,
                        "timeframe": "1h"}],
        "match": "any",
        "actions": [{"type": "buy", "amount_percent": 10 + 5 * variant, "token": symbol, "chain": "bsc"}],
        "risk_management": {"stop_loss_percent": 5, "take_profit_percent": 8},
    })


async def seed(db: Any, agents: int) -> None:
    """One user and one funded generation-1 agent per user; 10% without a strategy (default)."""
    strategies = {(s, v): strategy(s, v) for s in SYMBOLS for v in range(4)}
    users, rows, ledger = [], [], []
    for i in range(agents):
        uid = 1_000 + i
        agent_id = f"bench{i:07d}"
        strat = None if i % 10 == 9 else strategies[(SYMBOLS[i % len(SYMBOLS)], (i // len(SYMBOLS)) % 4)]
        users.append((uid,))
        rows.append((agent_id, uid, 100_000_000, 100_000_000, strat))
        ledger.append((agent_id, uid, "deposit", 100_000_000, 100_000_000, "seed", f"seed:{agent_id}"))
    async with db.transaction() as tx:
        await tx.executemany("INSERT INTO users(user_id) VALUES (?)", users)
        await tx.executemany(
            "INSERT INTO automaton_agents(agent_id, user_id, generation, isolated_balance, peak_balance,"
            " strategy_json) VALUES (?, ?, 1, ?, ?, ?)", rows)
        await tx.executemany(
            "INSERT INTO ledger_entries(agent_id, user_id, kind, amount, balance_after, ref, idempotency_key)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)", ledger)


async def main(agents: int) -> int:
    now = {"t": float(START)}
    with tempfile.TemporaryDirectory() as tmp:
        db = await open_database(f"sqlite:///{Path(tmp) / 'bench.db'}")
        try:
            t0 = time.perf_counter()
            await seed(db, agents)
            seed_s = time.perf_counter() - t0
            upstream = BenchMarket(lambda: now["t"])
            # price_ttl 0: every tick fetches all 50 prices upstream, the worst case for the loop
            market = CachedMarketData(upstream, price_ttl=0.0, clock=lambda: now["t"], wall_clock=lambda: now["t"])
            manager = IsolatedAIManager(db)
            loop = AgentLoop(db, manager, market, CollectingSink(), clock=lambda: now["t"])

            cold = await loop.tick()
            quiet = []
            for _ in range(5):
                now["t"] += 1
                quiet.append(await loop.tick())
            now["t"] += HOUR
            upstream.dipping = {upstream.ids[s] for s in SYMBOLS[10:15]}
            busy = await loop.tick()
            now["t"] += 1
            after = await loop.tick()
        finally:
            await db.close()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    quiet_s = statistics.median(r.duration for r in quiet)
    print(f"agents={agents} tokens={len(SYMBOLS)} seed={seed_s:.2f}s")
    print(f"cold tick:  {cold.duration * 1000:8.1f} ms  evaluated={cold.agents_evaluated} "
          f"price_calls={cold.price_calls} opened={cold.trades_opened} errors={len(cold.errors)}")
    print(f"quiet tick: {quiet_s * 1000:8.1f} ms  (median of {len(quiet)}) "
          f"price_calls={[r.price_calls for r in quiet]} opened={sum(r.trades_opened for r in quiet)}")
    print(f"busy tick:  {busy.duration * 1000:8.1f} ms  price_calls={busy.price_calls} "
          f"opened={busy.trades_opened} ({busy.duration / max(busy.trades_opened, 1) * 1000:.2f} ms/trade)")
    print(f"next tick:  {after.duration * 1000:8.1f} ms  closed={after.trades_closed} "
          f"opened={after.trades_opened} (same bar again: nothing opened twice)")
    print(f"peak RSS:   {rss_mb:8.1f} MB")
    expected_calls = math.ceil(len(SYMBOLS) / MAX_IDS)
    ok = (all(r.price_calls == expected_calls for r in [cold, *quiet, busy]) and quiet_s < 1.0
          and cold.duration < 1.0 and rss_mb < 300)
    print(f"price calls per tick = {expected_calls} (⌈{len(SYMBOLS)}/{MAX_IDS}⌉); quiet tick < 1 s; "
          f"RSS < 300 MB: {'PASS' if ok else 'FAIL'}")
    print(f"RESULT agents={agents} cold_s={cold.duration:.4f} quiet_s={quiet_s:.4f} busy_s={busy.duration:.4f} "
          f"opened={busy.trades_opened} price_calls={busy.price_calls} rss_mb={rss_mb:.1f}")
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=10_000)
    raise SystemExit(asyncio.run(main(parser.parse_args().agents)))
