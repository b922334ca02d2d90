"""Per-user screens cost that user's rows: every query they run searches an index, never scans a
table (checked with EXPLAIN QUERY PLAN on the statements the public read functions really run)."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from agents import get_isolated_ai_manager
from agents.ledger import views
from storage import SyncTx, agents_repo, ledger_repo, open_database, positions_repo, risk_repo, spawns_repo
from storage.connection import connect_sync
from storage.dialect import explain


class Recording:
    """Mixed in before a SyncTx-like class: remembers every statement the reads ran."""

    statements: list[tuple[str, Any]]

    def one(self, sql: str, params: Any = ()) -> Any:
        self.statements.append((sql, params))
        return super().one(sql, params)  # type: ignore[misc]

    def all(self, sql: str, params: Any = ()) -> list[Any]:
        self.statements.append((sql, params))
        return super().all(sql, params)  # type: ignore[misc]

    def value(self, sql: str, params: Any = ()) -> Any:
        self.statements.append((sql, params))
        return super().value(sql, params)  # type: ignore[misc]


class RecordingTx(Recording, SyncTx):
    """A SyncTx that remembers every statement it ran."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        super().__init__(conn)
        self.statements = []


@pytest.fixture
async def seeded(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "plans.db"
    db = await open_database(f"sqlite:///{path}")
    manager = get_isolated_ai_manager(db)
    root = ""
    for user in range(1, 40):  # enough rows that SQLite prefers an index where it has one
        agent = await manager.create_user_main_agent(user, Decimal(100))
        root = root or agent["agent_id"]
        pid = await manager.open_position(agent["agent_id"], token_id="0xabc", symbol="ABC", size=1.0, price=10.0,
                                          cost=Decimal(10))
        await manager.close_position(pid, exit_price=11.0, proceeds=Decimal(11), reason="take_profit")
    await db.execute("ANALYZE")
    await db.close()
    return path, root


PER_USER: list[tuple[str, Any]] = [
    ("portfolio", lambda tx, u, a: views.portfolio(tx, u)),
    ("agent card", lambda tx, u, a: views.agent(tx, a, u)),
    ("main agent", lambda tx, u, a: views.main_agent(tx, u)),
    ("ledger", lambda tx, u, a: views.ledger_rows(tx, a, u, 20)),
    ("children", lambda tx, u, a: views.children_of(tx, a, u)),
    ("open positions", lambda tx, u, a: views.open_positions(tx, a, u)),
    ("recent trades", lambda tx, u, a: views.recent_trades(tx, a, u, 5)),
    ("spawn inputs", lambda tx, u, a: views.spawn_inputs(tx, a)),
    ("withdrawable", lambda tx, u, a: agents_repo.withdrawable(tx, u)),
    ("sums", lambda tx, u, a: ledger_repo.sums_for_user(tx, u)),
    ("exposure", lambda tx, u, a: risk_repo.open_exposure(tx, u)),
    ("realized", lambda tx, u, a: risk_repo.realized_rows(tx, u)),
    ("trade record", lambda tx, u, a: spawns_repo.trade_record(tx, a)),
    ("positions by id", lambda tx, u, a: positions_repo.get_many(tx, [1, 2])),
]


@pytest.mark.parametrize(("name", "read"), PER_USER, ids=[n for n, _ in PER_USER])
def test_per_user_reads_search_an_index(seeded: tuple[Path, str], name: str, read: Any) -> None:
    path, agent_id = seeded
    conn = connect_sync(str(path))
    try:
        tx = RecordingTx(conn)
        read(tx, 1, agent_id)
        assert tx.statements, f"{name} ran no query"
        for sql, params in tx.statements:
            plan = [row[3] for row in conn.execute(explain(sql), params)]
            scans = [step for step in plan if step.startswith("SCAN") and "USING" not in step]
            assert not scans, f"{name}: {sql}\n  plan: {plan}"
    finally:
        conn.close()


def test_the_plan_check_sees_a_scan(seeded: tuple[Path, str]) -> None:
    path, _ = seeded
    conn = connect_sync(str(path))
    try:
        plan = [r[3] for r in conn.execute(explain("SELECT * FROM positions WHERE symbol = ?"), ("ABC",))]
        assert any(step.startswith("SCAN") for step in plan)
    finally:
        conn.close()
