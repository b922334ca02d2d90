"""The migrations, applied to an empty database, produce exactly the checked-in schema.

A migration edited by mistake, or a table changed outside the numbered sequence, shows up here as
a readable diff. After an intended schema change, regenerate the snapshot:
`UPDATE_SCHEMA_SNAPSHOT=1 pytest tests/test_schema_snapshot.py`, and review the diff.
"""

from __future__ import annotations

import difflib
import os
import sqlite3
from pathlib import Path

from storage import open_database

SNAPSHOT = Path(__file__).resolve().parent / "schema.sql"


def schema_text(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL"
                            " AND name NOT LIKE 'sqlite_%' ORDER BY type, name").fetchall()
    return "".join(f"-- {kind} {name}\n{' '.join(sql.split())};\n\n" for kind, name, sql in rows)


async def test_migrations_match_the_schema_snapshot(tmp_path: Path) -> None:
    db = await open_database(f"sqlite:///{tmp_path / 'fresh.db'}")
    await db.close()
    actual = schema_text(tmp_path / "fresh.db")
    if os.environ.get("UPDATE_SCHEMA_SNAPSHOT") == "1":
        SNAPSHOT.write_text(actual, encoding="utf-8")
    expected = SNAPSHOT.read_text(encoding="utf-8")
    diff = "".join(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True), "tests/schema.sql",
                                        "migrations applied"))
    assert actual == expected, f"schema drift:\n{diff}"


def test_the_snapshot_lists_the_money_tables() -> None:
    text = SNAPSHOT.read_text(encoding="utf-8")
    for name in ("automaton_agents", "ledger_entries", "money_operations", "positions", "trades",
                 "agents_one_live_root", "agents_stamp_update", "user_ai_hierarchy"):
        assert f" {name}\n" in text
