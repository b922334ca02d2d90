"""Concurrent spawns and withdrawals on one user's tree cannot overdraw (SPEC §3).

Operations run as separate asyncio tasks AND through separate `Database` objects (separate
SQLite connections) on the same file, so both the in-process lock and SQLite's
`BEGIN IMMEDIATE` write lock are exercised.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from agents import (
    AgentExistsError,
    InsufficientFundsError,
    IsolatedAIManager,
    MoneyRules,
    SpawnNotAllowedError,
    get_isolated_ai_manager,
)
from storage import Database, open_database
from tests.invariants import check_invariants

pytestmark = pytest.mark.both_backends  # SQLite and PostgreSQL

D = Decimal
USER = 7
RULES = MoneyRules(max_children=100)


@pytest.fixture
async def managers(db: Database, db_url: str) -> AsyncIterator[list[IsolatedAIManager]]:
    """Three managers, each over its own Database (own connections) on the same file."""
    others = [await open_database(db_url), await open_database(db_url)]
    try:
        yield [get_isolated_ai_manager(d, rules=RULES) for d in (db, *others)]
    finally:
        for other in others:
            await other.close()


async def funded_root(manager: IsolatedAIManager, children: int = 0) -> str:
    """A root with 1000 deposited and 1000 earned (2000 in total), and `children` children of 100."""
    root = (await manager.create_user_main_agent(USER, D(1000)))["agent_id"]
    await manager.record_agent_profit(root, D(1000))
    for _ in range(children):
        await manager.spawn_child_agent(root, D(100), "setup")
    return root


async def total_balance(db: Database) -> int:
    return int(await db.fetchval("SELECT COALESCE(SUM(isolated_balance), 0) FROM automaton_agents"))


def outcomes(results: list[Any], allowed: tuple[type[BaseException], ...]) -> list[Any]:
    """The successful results; every failure must be one of the `allowed` refusals."""
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, allowed):
            raise result
    return [r for r in results if not isinstance(r, BaseException)]


async def test_concurrent_withdrawals_exactly_drain(managers: list[IsolatedAIManager], db: Database) -> None:
    await funded_root(managers[0], children=2)
    tasks = [asyncio.create_task(managers[i % 3].withdraw(USER, D(100))) for i in range(30)]
    done = outcomes(await asyncio.gather(*tasks, return_exceptions=True), (InsufficientFundsError,))
    # 2000 available, 100 each: exactly 20 fit, whatever the interleaving.
    assert len(done) == 20
    assert sum(r["amount"] for r in done) == D(2000)
    assert all(sum(r["parts"].values()) == r["amount"] for r in done)
    assert await total_balance(db) == 0
    assert await db.fetchval("SELECT COUNT(*) FROM automaton_agents WHERE status <> 'closed'") == 0
    await check_invariants(db)


async def test_concurrent_spawns_spend_earnings_once(managers: list[IsolatedAIManager], db: Database) -> None:
    root = await funded_root(managers[0])
    tasks = [asyncio.create_task(managers[i % 3].spawn_child_agent(root, D(100), f"race {i}")) for i in range(20)]
    done = outcomes(await asyncio.gather(*tasks, return_exceptions=True),
                    (SpawnNotAllowedError, InsufficientFundsError))
    # 1000 of earnings, 100 each: exactly 10 children.
    assert len(done) == 10
    assert len({c["agent_id"] for c in done}) == 10
    assert await db.fetchval("SELECT COUNT(*) FROM automaton_agents WHERE parent_agent_id = ?", (root,)) == 10
    assert await db.fetchval("SELECT isolated_balance FROM automaton_agents WHERE agent_id = ?", (root,)) \
        == 1000 * 1_000_000
    assert await total_balance(db) == 2000 * 1_000_000
    await check_invariants(db)


async def test_mixed_race_never_overdraws(managers: list[IsolatedAIManager], db: Database) -> None:
    root = await funded_root(managers[0], children=1)      # 2000 total; 900 earnings left to spawn
    rng = random.Random(1234)
    ops: list[tuple[str, D]] = [("spawn", D(rng.choice([10, 50, 120, 200]))) for _ in range(16)]
    ops += [("withdraw", D(rng.choice([30, 150, 333, "0.000007"]))) for _ in range(24)]
    rng.shuffle(ops)
    tasks = []
    for i, (kind, amount) in enumerate(ops):
        m = managers[i % 3]
        coro = m.spawn_child_agent(root, amount, "race") if kind == "spawn" else m.withdraw(USER, amount)
        tasks.append(asyncio.create_task(coro))
    results = await asyncio.gather(*tasks, return_exceptions=True)
    outcomes(results, (SpawnNotAllowedError, InsufficientFundsError))
    withdrawn = [r["amount"] for r in results if isinstance(r, dict) and "parts" in r]
    spawned = [r["isolated_balance"] for r in results if isinstance(r, dict) and "generation" in r]
    assert withdrawn and spawned, "the race should let some of each through"
    # No overdraw: what left is at most what was there, and everything that left is accounted for.
    assert sum(withdrawn) <= D(2000)
    assert await total_balance(db) == (D(2000) - sum(withdrawn)) * 1_000_000
    # Spawns were funded from earnings only once: at most the 900 left after the setup child.
    assert sum(spawned) <= D(900)
    ledger_withdrawn = -await db.fetchval("SELECT COALESCE(SUM(amount), 0) FROM ledger_entries WHERE kind = 'withdraw'")
    assert ledger_withdrawn == sum(withdrawn) * 1_000_000
    await check_invariants(db)


async def test_concurrent_creates_make_one_root(managers: list[IsolatedAIManager], db: Database) -> None:
    tasks = [asyncio.create_task(managers[i % 3].create_user_main_agent(USER, D(10 + i))) for i in range(12)]
    done = outcomes(await asyncio.gather(*tasks, return_exceptions=True), (AgentExistsError,))
    assert len(done) == 1
    assert await db.fetchval("SELECT COUNT(*) FROM automaton_agents") == 1
    await check_invariants(db)


async def test_concurrent_replays_of_one_key_apply_once(managers: list[IsolatedAIManager], db: Database) -> None:
    await managers[0].create_user_main_agent(USER, D(100))
    tasks = [asyncio.create_task(managers[i % 3].deposit(USER, D(25), idempotency_key="same"))
             for i in range(12)]
    tasks += [asyncio.create_task(managers[i % 3].withdraw(USER, D(30), idempotency_key="once"))
              for i in range(12)]
    results = outcomes(await asyncio.gather(*tasks, return_exceptions=True), ())
    deposits, withdrawals = results[:12], results[12:]
    assert len({d["agent_id"] for d in deposits}) == 1
    assert all(w == withdrawals[0] for w in withdrawals)
    assert await total_balance(db) == 95 * 1_000_000
    assert await db.fetchval("SELECT COUNT(*) FROM ledger_entries") == 3
    await check_invariants(db)
