"""PostgreSQL-only behaviour of the storage backend: URL forms, a connection the server dropped,
rows read by name and position, and the SQL translation's edge cases."""

from __future__ import annotations

from decimal import Decimal

import psycopg
import pytest

from agents import MoneyRules, get_isolated_ai_manager
from storage import open_database
from storage.pg_connection import pg_sql
from tests import pg_server
from tests.invariants import check_invariants

pytestmark = pytest.mark.skipif(not pg_server.available(), reason="PostgreSQL tests are off")


def test_statements_are_translated_once_with_literals_kept() -> None:
    assert pg_sql("SELECT ? FROM t WHERE a = ? AND b LIKE 'x%?'") == "SELECT %s FROM t WHERE a = %s AND b LIKE 'x%%?'"
    assert pg_sql("INSERT INTO t(at) VALUES (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))") == \
        "INSERT INTO t(at) VALUES (iso_now())"
    assert pg_sql("SELECT 'it''s ?' , ?") == "SELECT 'it''s ?' , %s"


async def test_railways_postgres_scheme_and_rows_by_name() -> None:
    url = pg_server.fresh_database_url().replace("postgresql://", "postgres://", 1)
    db = await open_database(url)
    try:
        assert db.dialect == "postgresql" and db.schema_version >= 7
        manager = get_isolated_ai_manager(db, rules=MoneyRules())
        agent = await manager.create_user_main_agent(5, Decimal(100))
        row = await db.fetchone("SELECT agent_id, isolated_balance FROM automaton_agents")
        assert row["agent_id"] == row[0] == agent["agent_id"] and dict(row)["isolated_balance"] == 100_000_000
        total = await db.fetchval("SELECT SUM(isolated_balance) FROM automaton_agents")
        assert total == 100_000_000 and isinstance(total, int)  # numeric SUM comes back as int, as in SQLite
    finally:
        await db.close()


async def test_a_dropped_connection_is_replaced_and_money_stays_consistent() -> None:
    url = pg_server.fresh_database_url()
    db = await open_database(url)
    manager = get_isolated_ai_manager(db, rules=MoneyRules())
    try:
        await manager.create_user_main_agent(6, Decimal(100))
        with psycopg.connect(url, autocommit=True) as admin:  # the server drops every client of the database
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                          " WHERE datname = current_database() AND pid <> pg_backend_pid()")
        # every writer and reader found its connection gone: each runs again on a new one (BEGIN
        # failed, so nothing had been sent) and the deposit happens once
        for _ in range(6):
            result = await manager.deposit(6, Decimal(10), idempotency_key="after-drop")
            assert result["isolated_balance"] == Decimal("110.000000")
        assert (await manager.get_main_agent(6))["isolated_balance"] == Decimal("110.000000")  # once
        await check_invariants(db)
    finally:
        await db.close()


async def test_an_unreachable_server_fails_fast_with_a_clear_error() -> None:
    with pytest.raises(psycopg.OperationalError):
        await open_database("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")


async def test_money_transactions_are_serializable_and_reads_are_snapshots() -> None:
    db = await open_database(pg_server.fresh_database_url())
    try:
        assert await db.run(lambda tx: tx.value("SHOW transaction_isolation")) == "serializable"
        assert await db.read(lambda tx: (tx.value("SHOW transaction_isolation"),
                                         tx.value("SHOW transaction_read_only"))) == ("repeatable read", "on")
        async with db.transaction() as tx:  # the statement-by-statement form: non-money writes
            assert (await tx.fetchone("SHOW transaction_isolation"))[0] == "read committed"
    finally:
        await db.close()


BATCHES = [
    ("INSERT INTO users(user_id, username) VALUES (?, ?)", [(1, "a"), (2, "b"), (3, "c")]),
    # one table, two column sets, and the same twin twice in one transaction
    ("UPDATE users SET username = ?, blocked = 1 WHERE user_id = ?", [("a2", 1), ("b2", 2)]),
    ("UPDATE users SET first_name = ? WHERE user_id = ?", [("A", 1), ("C", 3)]),
    ("UPDATE users SET username = ?, blocked = 1 WHERE user_id = ?", [("c2", 3)]),
    # a key named twice: applied in order (the later value wins), as executemany does
    ("UPDATE users SET first_name = ? WHERE user_id = ?", [("x", 2), ("y", 2)]),
    ("INSERT INTO users(user_id, username) VALUES (?, ?) ON CONFLICT(user_id) DO NOTHING", [(3, "no"), (4, "d")]),
    ("INSERT INTO users(user_id, username) VALUES (?, ?) ON CONFLICT(user_id) DO UPDATE SET"
     " username = excluded.username", [(4, "d2"), (5, "e")]),
    ("INSERT INTO users(user_id, username) VALUES (?, ?) ON CONFLICT(user_id) DO UPDATE SET"
     " username = excluded.username", [(5, "e2"), (5, "e3")]),
    ("UPDATE users SET first_name = ?, notify_trades = 'off' WHERE user_id = ?", [("50%", 5)]),
]


async def _apply_batches(url: str) -> list[tuple[object, ...]]:
    db = await open_database(url)
    try:
        async with db.transaction() as tx:
            for sql, rows in BATCHES:
                await tx.executemany(sql, rows)
        async with db.transaction() as tx:  # the twins are empty again in the next transaction
            await tx.executemany(BATCHES[1][0], [("later", 4)])
        rows = await db.fetchall("SELECT user_id, username, first_name, blocked, notify_trades FROM users"
                                 " ORDER BY user_id")
        return [tuple(r) for r in rows]
    finally:
        await db.close()


async def test_batched_writes_leave_what_executemany_leaves_on_sqlite(tmp_path) -> None:
    expected = await _apply_batches(f"sqlite:///{tmp_path / 'batches.db'}")
    assert expected == [(1, "a2", "A", 1, "on"), (2, "b2", "y", 1, "on"), (3, "c2", "C", 1, "on"),
                        (4, "later", None, 1, "on"), (5, "e3", "50%", 0, "off")]
    assert await _apply_batches(pg_server.fresh_database_url()) == expected
