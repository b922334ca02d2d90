"""Crash safety: a process doing money operations is SIGKILLed at random moments.

After each kill the database reopens cleanly, every invariant holds, and no operation is
half-applied: a spawn has both its rows or neither, a remembered idempotent operation has
its ledger rows (and a keyed ledger row has its remembered operation), a closed position
has its trade.

The worker is this module run as `python -m tests.test_crash <database URL> <seed>`; the test runs
on SQLite and on PostgreSQL (a kill -9 of a client mid-transaction: the server rolls it back).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from agents import MoneyRules, get_isolated_ai_manager
from agents.errors import AgentError
from storage import Database, open_database
from tests.invariants import check_invariants

pytestmark = pytest.mark.both_backends  # SQLite and PostgreSQL

ROOT = Path(__file__).resolve().parent.parent
USERS = (501, 502)
KILLS = 8


async def worker(url: str, seed: int) -> None:
    """Run random money operations forever (until killed)."""
    rng = random.Random(seed)
    db = await open_database(url)
    manager = get_isolated_ai_manager(db, rules=MoneyRules(max_children=50))
    for user in USERS:
        if await manager.get_main_agent(user) is None:
            await manager.create_user_main_agent(user, Decimal(500))
    print("ready", flush=True)
    step = 0
    while True:
        step += 1
        user = rng.choice(USERS)
        key = f"s{seed}-{step}" if rng.random() < 0.5 else None
        agents = [r["agent_id"] for r in await db.fetchall(
            "SELECT agent_id FROM automaton_agents WHERE user_id = ? AND status <> 'closed'", (user,))]
        try:
            choice = rng.random()
            if not agents or choice < 0.1:
                if await manager.get_main_agent(user) is None:
                    await manager.create_user_main_agent(user, Decimal(300), idempotency_key=key)
                else:
                    await manager.deposit(user, Decimal(rng.randint(10, 200)), idempotency_key=key)
            elif choice < 0.4:
                amount = Decimal(rng.randint(-3000, 6000)) / 100 or Decimal(1)
                await manager.record_agent_profit(rng.choice(agents), amount, "crash", key)
            elif choice < 0.6:
                agent = rng.choice(agents)
                eligible, suggested = await manager.check_spawn_eligibility(agent)
                if eligible:
                    await manager.spawn_child_agent(agent, suggested, "crash", idempotency_key=key)
            elif choice < 0.75:
                await manager.withdraw(user, Decimal(rng.randint(1, 4000)) / 100, idempotency_key=key)
            elif choice < 0.88:
                await manager.open_position(rng.choice(agents), token_id="t", symbol="T", size=1.0, price=1.0,
                                            cost=Decimal(rng.randint(1, 3000)) / 100, idempotency_key=key)
            else:
                pos = await db.fetchone("SELECT position_id, cost FROM positions WHERE status = 'open'"
                                        " ORDER BY random() LIMIT 1")
                if pos is not None:
                    proceeds = Decimal(int(pos["cost"] * rng.uniform(0, 2))) / 1_000_000
                    await manager.close_position(pos["position_id"], exit_price=1.0, proceeds=proceeds,
                                                 reason="crash")
        except AgentError:
            pass


async def check_nothing_half_done(db: Database) -> None:
    """Atomicity checks beyond the invariants (which already pair spawn_out with spawn_in)."""
    orphans = await db.fetchall(
        "SELECT m.user_id, m.idempotency_key, m.kind FROM money_operations m"
        " WHERE NOT EXISTS (SELECT 1 FROM ledger_entries l WHERE l.idempotency_key LIKE"
        " m.user_id || ':' || m.idempotency_key || ':%')")
    assert not [tuple(r) for r in orphans], "an idempotent operation was recorded without its ledger rows"
    unrecorded = await db.fetchval(
        "SELECT COUNT(*) FROM ledger_entries l WHERE l.idempotency_key IS NOT NULL"
        " AND l.idempotency_key NOT LIKE 'close:%' AND l.idempotency_key NOT LIKE 'remote-child:%'"
        " AND NOT EXISTS (SELECT 1 FROM money_operations m"
        " WHERE l.idempotency_key LIKE m.user_id || ':' || m.idempotency_key || ':%')")
    assert unrecorded == 0, "keyed ledger rows were committed without their operation record"
    no_trade = await db.fetchval(
        "SELECT COUNT(*) FROM positions p WHERE p.status = 'closed'"
        " AND NOT EXISTS (SELECT 1 FROM trades t WHERE t.position_id = p.position_id)")
    assert no_trade == 0, "a position closed without its trade"
    spawns = await db.fetchval("SELECT COUNT(*) FROM automaton_agents WHERE parent_agent_id IS NOT NULL")
    decisions = await db.fetchval("SELECT COUNT(*) FROM spawn_decisions WHERE spawn = 1")
    assert spawns == decisions, "a spawn was committed without its decision (or the reverse)"
    if getattr(db, "dialect", "sqlite") == "sqlite":
        assert await db.fetchval("PRAGMA integrity_check") == "ok"


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
async def test_sigkill_during_money_operations(db_url: str) -> None:
    rng = random.Random(99)
    progress: list[int] = []
    for run in range(KILLS):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.test_crash", db_url, str(run), cwd=ROOT,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(ROOT)})
        try:
            assert proc.stdout is not None and proc.stderr is not None
            line = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
            if line.strip() != b"ready":
                raise AssertionError(f"worker did not start: {line!r} {await proc.stderr.read()!r}")
            await asyncio.sleep(rng.uniform(0.05, 0.5))
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGKILL)
            await proc.wait()
        if proc.returncode != -signal.SIGKILL:  # it stopped by itself: show why
            stderr = b"" if proc.stderr is None else await proc.stderr.read()
            raise AssertionError(f"the worker failed by itself: {stderr.decode()[-2000:]}")
        db = await open_database(db_url)
        try:
            await check_invariants(db)
            await check_nothing_half_done(db)
            progress.append(int(await db.fetchval("SELECT COUNT(*) FROM ledger_entries")))
        finally:
            await db.close()
    # The worker really did work between kills (the kills hit a busy process).
    assert progress[-1] > progress[0] > len(USERS)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
async def test_two_processes_hammering_the_same_users_never_overdraw(db_url: str) -> None:
    """Two worker processes run random money operations on the same users' trees at once (each its
    own connections: on PostgreSQL, two clients racing in SERIALIZABLE transactions), then are
    killed; every invariant holds and nothing is half done."""
    db = await open_database(db_url)
    manager = get_isolated_ai_manager(db, rules=MoneyRules(max_children=50))
    for user in USERS:  # both workers find them (neither races to create them)
        await manager.create_user_main_agent(user, Decimal(500))
    await db.close()
    procs = [await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.test_crash", db_url, str(100 + k), cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
        for k in range(2)]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert (await asyncio.wait_for(proc.stdout.readline(), timeout=30)).strip() == b"ready"
        await asyncio.sleep(3.0)
        for proc in procs:
            assert proc.returncode is None, (await proc.stderr.read()).decode()[-2000:]  # type: ignore[union-attr]
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.send_signal(signal.SIGKILL)
            await proc.wait()
    db = await open_database(db_url)
    try:
        await check_invariants(db)
        await check_nothing_half_done(db)
        assert await db.fetchval("SELECT COUNT(*) FROM ledger_entries") > 20  # both really worked
    finally:
        await db.close()


if __name__ == "__main__":
    asyncio.run(worker(sys.argv[1], int(sys.argv[2])))
