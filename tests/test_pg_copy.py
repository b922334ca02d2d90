"""`run_migrations.py --copy-from`: a populated SQLite database moves to an empty PostgreSQL one with
every row, the same money, sequences that never reuse an id, and a refusal to copy twice."""

from __future__ import annotations

import random
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from agents import MoneyRules, get_isolated_ai_manager
from agents.errors import AgentError
from storage import open_database
from storage.bots_repo import BotRepo
from storage.users_repo import UserRepo
from tests import pg_server
from tests.invariants import check_invariants, money_snapshot

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(not pg_server.available(), reason="PostgreSQL tests are off")


async def _populate(url: str) -> None:
    """Users with agent trees, earnings, spawns, withdrawals, positions and a strategy bot."""
    db = await open_database(url)
    manager = get_isolated_ai_manager(db, rules=MoneyRules(max_children=20))
    rng = random.Random(5)
    try:
        for user in (11, 12, 13):
            root = (await manager.create_user_main_agent(user, Decimal(500)))["agent_id"]
            await BotRepo(db).create(user, f"bot {user}")
            for step in range(40):
                try:
                    choice = rng.random()
                    if choice < 0.3:
                        await manager.record_agent_profit(root, Decimal(rng.randint(-2000, 6000)) / 100, "copy")
                    elif choice < 0.45:
                        eligible, amount = await manager.check_spawn_eligibility(root)
                        if eligible:
                            await manager.spawn_child_agent(root, amount, "copy", idempotency_key=f"s{step}")
                    elif choice < 0.6:
                        await manager.withdraw(user, Decimal(rng.randint(1, 3000)) / 100)
                    elif choice < 0.8:
                        await manager.open_position(root, token_id="t", symbol="T", size=1.0, price=1.0,
                                                    cost=Decimal(rng.randint(1, 2000)) / 100)
                    else:
                        pos = await db.fetchone("SELECT position_id, cost FROM positions WHERE status = 'open'"
                                                " AND user_id = ? LIMIT 1", (user,))
                        if pos is not None:
                            await manager.close_position(pos["position_id"], exit_price=1.1,
                                                         proceeds=Decimal(pos["cost"]) / 1_000_000, reason="signal")
                except AgentError:
                    pass
        await db.execute("DELETE FROM bots WHERE user_id = 13")  # a gap: ids are never reused after a copy
    finally:
        await db.close()


def _copy(source: str, target: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "run_migrations.py", "--copy-from", source, target], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)


async def test_a_populated_sqlite_database_moves_to_postgresql(tmp_path: Path) -> None:
    source = f"sqlite:///{tmp_path / 'bot.db'}"
    await _populate(source)
    target = pg_server.fresh_database_url(migrated=False)  # an empty database, as Railway hands one out
    done = _copy(source, target)
    assert done.returncode == 0, done.stderr
    assert "ledger identities verified" in done.stdout and "ledger_entries:" in done.stdout
    old, new = await open_database(source), await open_database(target)
    try:
        moved, kept = await money_snapshot(new), await money_snapshot(old)
        stamp = [r[0] for r in await old.fetchall("SELECT name FROM pragma_table_info('automaton_agents')")].index(
            "change_seq")  # the change feed is stamped afresh by the copy's inserts
        for table in kept:
            drop = stamp if table == "automaton_agents" else None
            def rows(snapshot: dict, t: str = table, d: int | None = drop) -> list:
                return sorted(tuple(v for i, v in enumerate(r) if i != d) for r in snapshot[t])
            assert rows(moved) == rows(kept), table  # every money row, every column
        for table in ("users", "bots", "spawn_decisions"):
            assert await new.fetchall(f"SELECT * FROM {table} ORDER BY 1") == \
                [tuple(r) for r in await old.fetchall(f"SELECT * FROM {table} ORDER BY 1")]
        await check_invariants(new)
        highest = await old.fetchval("SELECT seq FROM sqlite_sequence WHERE name = 'bots'")
        await UserRepo(new).ensure(14)
        bot = await BotRepo(new).create(14, "after the move")
        assert bot.bot_id > highest  # the deleted bot's id is not handed out again
        manager = get_isolated_ai_manager(new, rules=MoneyRules())
        await manager.create_user_main_agent(14, Decimal(100))  # the moved database keeps working
        await check_invariants(new)
    finally:
        await old.close()
        await new.close()
    again = _copy(source, target)
    assert again.returncode == 1 and "not empty" in again.stderr


def test_the_target_must_be_postgresql(tmp_path: Path) -> None:
    refused = _copy(f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}")
    assert refused.returncode == 2 and "postgresql://" in refused.stderr
