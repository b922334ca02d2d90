"""Move a running deployment from its SQLite file to an empty PostgreSQL database, losing nothing.

`copy_sqlite_to_postgres` copies every table (in foreign-key order, parents first) in ONE
PostgreSQL transaction, moves each identity sequence past the highest id SQLite ever handed out
(`sqlite_sequence` included: AUTOINCREMENT never reuses an id, and neither will the copy), then
verifies before committing: the same row count per table, the same sums of the money columns,
and the ledger's own identities on the copy (each agent's balance is the sum of its ledger rows;
its locked balance is the cost of its open positions; nothing negative). Any difference rolls the
whole copy back.

Not copied: `schema_migrations` (the target records its own, PostgreSQL-form checksums) and
`change_clock` (the copy's inserts stamp the change feed afresh, so the clock stays ahead of
every stamp; the agent loop reads its whole working set on its first tick anyway).
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from dataclasses import dataclass, field

import psycopg

from storage.connection import connect_sync
from storage.db import sqlite_path
from storage.pg_connection import PgSyncTx, connect
from storage.pg_migrate import apply_pg_migrations

SKIPPED = ("schema_migrations", "change_clock")
# Money columns (micro-USDC integers) whose sums must match after the copy, per table.
MONEY_COLUMNS = {
    "automaton_agents": ("isolated_balance", "locked_balance", "peak_balance"),
    "ledger_entries": ("amount", "balance_after"),
    "positions": ("cost",),
    "trades": ("pnl", "cost"),
}
BATCH = 5_000


class CopyError(RuntimeError):
    """The copy cannot start (target not empty, schemas differ) or did not verify."""


@dataclass
class CopyReport:
    """What was copied: rows per table, in the order they were written."""

    rows: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.rows.values())


def _tables_in_order(src: sqlite3.Connection) -> list[str]:
    """Every table, parents before the tables whose foreign keys point at them."""
    names = [r[0] for r in src.execute("SELECT name FROM sqlite_master WHERE type = 'table'"
                                       " AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    parents = {t: {r[2] for r in src.execute(f"PRAGMA foreign_key_list({t})")} - {t} for t in names}
    ordered: list[str] = []
    while len(ordered) < len(names):
        ready = [t for t in names if t not in ordered and parents[t] <= set(ordered)]
        if not ready:
            raise CopyError(f"foreign keys form a cycle among {sorted(set(names) - set(ordered))}")
        ordered += ready
    return [t for t in ordered if t not in SKIPPED]


def _columns(src: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in src.execute(f"PRAGMA table_info({table})")]


def _check_target(dst: psycopg.Connection, src: sqlite3.Connection, tables: list[str]) -> None:
    tx = PgSyncTx(dst)
    for table in tables:
        target_columns = [r[0] for r in tx.all(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema()"
            " AND table_name = ? ORDER BY ordinal_position", (table,))]
        if target_columns != _columns(src, table):
            raise CopyError(f"table {table} differs between the SQLite file and PostgreSQL: migrate both first")
        if tx.value(f"SELECT COUNT(*) FROM {table}"):
            raise CopyError(f"the PostgreSQL database is not empty (table {table} has rows): copy into a new one")


def _copy_table(src: sqlite3.Connection, tx: PgSyncTx, table: str) -> int:
    columns = _columns(src, table)
    marks = ", ".join("?" * len(columns))
    insert = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
    cursor = src.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY rowid")
    copied = 0
    while rows := cursor.fetchmany(BATCH):
        tx.many(insert, [tuple(r) for r in rows])
        copied += len(rows)
    return copied


def _reset_sequences(src: sqlite3.Connection, tx: PgSyncTx, tables: list[str]) -> None:
    used = dict(src.execute("SELECT name, seq FROM sqlite_sequence").fetchall()) if src.execute(
        "SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'").fetchone() else {}
    for table, column in tx.all(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema()"
            " AND is_identity = 'YES'"):
        if table not in tables:
            continue
        highest = max(int(tx.value(f"SELECT COALESCE(MAX({column}), 0) FROM {table}")), int(used.get(table, 0)))
        sequence = tx.value("SELECT pg_get_serial_sequence(?, ?)", (table, column))
        tx.value("SELECT setval(?::regclass, ?, ?)", (sequence, max(highest, 1), highest > 0))


def _sums(query: callable, tables: list[str]) -> dict[str, tuple[int, ...]]:  # type: ignore[valid-type]
    out = {}
    for table in tables:
        money = MONEY_COLUMNS.get(table, ())
        exprs = ["COUNT(*)", *(f"COALESCE(SUM({c}), 0)" for c in money)]
        out[table] = tuple(int(v) for v in query(f"SELECT {', '.join(exprs)} FROM {table}"))
    return out


def _ledger_identities(tx: PgSyncTx) -> list[str]:
    """What is wrong with the copied ledger (empty: nothing): the manager's own rules, in SQL."""
    problems = []
    balance = defaultdict(int)
    for agent_id, amount in tx.all("SELECT agent_id, amount FROM ledger_entries"):
        balance[agent_id] += int(amount)
    locked = defaultdict(int)
    for agent_id, cost in tx.all("SELECT agent_id, cost FROM positions WHERE status = 'open'"):
        locked[agent_id] += int(cost)
    for agent_id, isolated, held in tx.all("SELECT agent_id, isolated_balance, locked_balance FROM automaton_agents"):
        if int(isolated) != balance.get(agent_id, 0):
            problems.append(f"agent {agent_id}: balance {isolated} != ledger {balance.get(agent_id, 0)}")
        if int(held) != locked.get(agent_id, 0) or not 0 <= int(held) <= int(isolated):
            problems.append(f"agent {agent_id}: locked {held} does not match its open positions")
    return problems


def copy_sqlite_to_postgres(sqlite_url: str, postgres_url: str) -> CopyReport:
    """Copy the SQLite database into the (empty, then migrated) PostgreSQL one; see the module doc."""
    src = connect_sync(sqlite_path(sqlite_url))
    dst = connect(postgres_url)
    try:
        apply_pg_migrations(dst)
        tables = _tables_in_order(src)
        _check_target(dst, src, tables)
        report = CopyReport()
        before = _sums(lambda sql: src.execute(sql).fetchone(), tables)
        with dst.transaction():
            tx = PgSyncTx(dst)
            for table in tables:
                report.rows[table] = _copy_table(src, tx, table)
            _reset_sequences(src, tx, tables)
            after = _sums(lambda sql: tx.one(sql), tables)
            differ = [t for t in tables if before[t] != after[t]]
            problems = [f"{t}: {before[t]} rows/sums in SQLite, {after[t]} in PostgreSQL" for t in differ]
            problems += _ledger_identities(tx)
            if problems:
                raise CopyError("the copy did not verify (nothing was written): " + "; ".join(problems[:10]))
        return report
    finally:
        src.close()
        dst.close()
