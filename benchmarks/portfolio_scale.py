"""Benchmark: `/ai_portfolio` latency with 200 users in the database and with 100,000.

Two temp-file SQLite databases (WAL, production settings) are seeded with executemany: every user
has a root agent with ledger rows, every 10th user a child, and the measured user a family of 4
agents with trades. The measured call is the screen's data read,
`IsolatedAIManager.get_user_ai_portfolio` for that user, alternated between the two databases
(interleaved, so both see the same machine state), 300 rounds each after a warm-up.

Target: the 100k / 200 median latency ratio <= 1.5 (a per-user screen costs that user's rows).
Run: `python benchmarks/portfolio_scale.py [--users N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents import get_isolated_ai_manager
from storage import open_database

ME = 1


async def seed(db: Any, users: int) -> None:
    """`users` users, each with a funded root agent; every 10th with a child."""
    user_rows, agents, ledger = [], [], []
    for i in range(2, users + 1):
        root = f"r{i:07d}"
        user_rows.append((i,))
        agents.append((root, i, None, 1, 50_000_000, 50_000_000))
        ledger.append((root, i, "deposit", 50_000_000, 50_000_000, "seed"))
        ledger.append((root, i, "profit", 1_000_000, 51_000_000, "seed"))
        if i % 10 == 0:
            agents.append((f"c{i:07d}", i, root, 2, 10_000_000, 10_000_000))
            ledger.append((f"c{i:07d}", i, "spawn_in", 10_000_000, 10_000_000, "seed"))
    async with db.transaction() as tx:
        await tx.executemany("INSERT INTO users(user_id) VALUES (?)", user_rows)
        await tx.executemany("INSERT INTO automaton_agents(agent_id, user_id, parent_agent_id, generation,"
                             " isolated_balance, peak_balance) VALUES (?, ?, ?, ?, ?, ?)", agents)
        await tx.executemany("INSERT INTO ledger_entries(agent_id, user_id, kind, amount, balance_after, ref)"
                             " VALUES (?, ?, ?, ?, ?, ?)", ledger)


async def my_family(db: Any) -> None:
    """The measured user: a root that earned, three children, a few closed trades."""
    manager = get_isolated_ai_manager(db)
    root = (await manager.create_user_main_agent(ME, Decimal(500)))["agent_id"]
    await manager.record_agent_profit(root, Decimal(200), "seed")
    for _ in range(3):
        await manager.spawn_child_agent(root, Decimal(20), "seed")
    for _ in range(3):
        pid = await manager.open_position(root, token_id="0xabc", symbol="ABC", size=1.0, price=10.0, cost=Decimal(10))
        await manager.close_position(pid, exit_price=11.0, proceeds=Decimal(11), reason="take_profit")


async def main(users: int, rounds: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        small = await open_database(f"sqlite:///{Path(tmp) / 'small.db'}")
        large = await open_database(f"sqlite:///{Path(tmp) / 'large.db'}")
        try:
            t0 = time.perf_counter()
            await seed(small, 200)
            await seed(large, users)
            for db in (small, large):
                await my_family(db)
            print(f"seeded 200 and {users:,} users in {time.perf_counter() - t0:.1f} s")
            managers = {"200": get_isolated_ai_manager(small), "large": get_isolated_ai_manager(large)}
            samples: dict[str, list[float]] = {"200": [], "large": []}
            for _ in range(20):  # warm-up: caches, statement cache
                for m in managers.values():
                    await m.get_user_ai_portfolio(ME)
            for _ in range(rounds):
                for name, m in managers.items():
                    t = time.perf_counter()
                    p = await m.get_user_ai_portfolio(ME)
                    samples[name].append(time.perf_counter() - t)
                    assert p["agent_count"] == 4
        finally:
            await small.close()
            await large.close()
    med = {k: statistics.median(v) for k, v in samples.items()}
    low = {k: min(v) for k, v in samples.items()}
    ratio = med["large"] / med["200"]
    for k in samples:
        label = "200" if k == "200" else f"{users:,}"
        print(f"{label:>8} users: median {med[k] * 1000:.3f} ms, min {low[k] * 1000:.3f} ms")
    ok = ratio <= 1.5
    print(f"ratio {ratio:.2f} (target <= 1.5): {'PASS' if ok else 'FAIL'}")
    print(f"RESULT portfolio_ratio={ratio:.2f} portfolio_ratio_min={low['large'] / low['200']:.2f} "
          f"portfolio_200_ms={med['200'] * 1000:.3f} portfolio_{users // 1000}k_ms={med['large'] * 1000:.3f}")
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args()
    raise SystemExit(asyncio.run(main(args.users, args.rounds)))
