"""The per-user reads on PostgreSQL search an index too: each statement the public read functions
really run is EXPLAINed with sequential scans switched off; a table without a usable index still
shows a Seq Scan then, and fails the test."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import psycopg
import pytest

from agents import get_isolated_ai_manager
from storage import open_database
from storage.pg_connection import PgSyncTx, connect, pg_sql
from tests import pg_server
from tests.test_query_plans import PER_USER, Recording

pytestmark = pytest.mark.skipif(not pg_server.available(), reason="PostgreSQL tests are off")


class RecordingPgTx(Recording, PgSyncTx):
    """A PgSyncTx that remembers every statement it ran."""

    def __init__(self, conn: psycopg.Connection) -> None:
        super().__init__(conn)
        self.statements = []


@pytest.fixture(scope="module")
def seeded() -> tuple[str, str]:
    import asyncio

    url = pg_server.fresh_database_url()

    async def seed() -> str:
        db = await open_database(url)
        manager = get_isolated_ai_manager(db)
        root = ""
        for user in range(1, 40):
            agent = await manager.create_user_main_agent(user, Decimal(100))
            root = root or agent["agent_id"]
            pid = await manager.open_position(agent["agent_id"], token_id="0xabc", symbol="ABC", size=1.0,
                                              price=10.0, cost=Decimal(10))
            await manager.close_position(pid, exit_price=11.0, proceeds=Decimal(11), reason="take_profit")
        await db.close()
        return root

    root = asyncio.run(seed())
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ANALYZE")
    return url, root


def _seq_scans(conn: psycopg.Connection, sql: str, params: Any) -> list[str]:
    conn.execute("SET enable_seqscan = off")
    with psycopg.ClientCursor(conn) as cur:  # values bound client-side: EXPLAIN plans the real statement
        cur.execute("EXPLAIN " + pg_sql(sql), tuple(params))
        plan = [str(r[0]) for r in cur.fetchall()]
    return [line.strip() for line in plan if "Seq Scan" in line]


@pytest.mark.parametrize(("name", "read"), PER_USER, ids=[n for n, _ in PER_USER])
def test_per_user_reads_search_an_index_on_postgresql(seeded: tuple[str, str], name: str, read: Any) -> None:
    url, agent_id = seeded
    conn = connect(url)
    try:
        tx = RecordingPgTx(conn)
        read(tx, 1, agent_id)
        assert tx.statements, f"{name} ran no query"
        for sql, params in tx.statements:
            scans = _seq_scans(conn, sql, params)
            assert not scans, f"{name}: {sql}\n  {scans}"
    finally:
        conn.close()


def test_the_plan_check_sees_a_scan_on_postgresql(seeded: tuple[str, str]) -> None:
    conn = connect(seeded[0])
    try:
        assert _seq_scans(conn, "SELECT * FROM positions WHERE symbol = ?", ("ABC",))
    finally:
        conn.close()
