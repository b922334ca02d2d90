"""Migrations and connection settings (SPEC §10)."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from storage import Database, MigrationError, load_migrations, open_database, sqlite_path
from storage.migrate import MIGRATIONS_DIR

ROOT = Path(__file__).resolve().parent.parent
TABLES = {"users", "automaton_agents", "ledger_entries", "positions", "trades", "spawn_decisions", "bots",
          "bot_conversations", "backtests", "simulations", "signals", "schema_migrations"}


def schema(path: Path) -> list[tuple[str, str, str]]:
    """Every schema object (type, name, sql), read with the plain sqlite3 module."""
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT type, name, COALESCE(sql, '') FROM sqlite_master ORDER BY type, name").fetchall()


@pytest.fixture
def migrations(tmp_path: Path) -> Path:
    """A private copy of the migrations folder that a test may extend or edit."""
    folder = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, folder)
    return folder


async def test_fresh_database_has_the_schema(db: Database) -> None:
    names = {r["name"] for r in await db.fetchall("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert names >= TABLES
    views = {r["name"] for r in await db.fetchall("SELECT name FROM sqlite_master WHERE type = 'view'")}
    assert "user_ai_hierarchy" in views
    newest = len(load_migrations())
    assert db.schema_version == newest >= 1
    rows = await db.fetchall("SELECT version, name, checksum FROM schema_migrations ORDER BY version")
    assert [r["version"] for r in rows] == list(range(1, newest + 1))
    assert [r["checksum"] for r in rows] == [m.checksum for m in load_migrations()]


async def test_hierarchy_view(db: Database) -> None:
    async with db.transaction() as tx:
        await tx.execute("INSERT INTO users(user_id) VALUES (1)")
        await tx.execute("INSERT INTO automaton_agents(agent_id, user_id, generation) VALUES ('a', 1, 1)")
        await tx.execute("INSERT INTO automaton_agents(agent_id, user_id, parent_agent_id, generation)"
                         " VALUES ('b', 1, 'a', 2)")
        await tx.execute("INSERT INTO automaton_agents(agent_id, user_id, parent_agent_id, generation)"
                         " VALUES ('c', 1, 'b', 3)")
    rows = await db.fetchall("SELECT agent_id, root_agent_id, depth, path FROM user_ai_hierarchy ORDER BY path")
    assert [tuple(r) for r in rows] == [("a", "a", 0, "a"), ("b", "a", 1, "a/b"), ("c", "a", 2, "a/b/c")]


async def test_migrating_twice_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "twice.db"
    first = await open_database(f"sqlite:///{path}")
    await first.close()
    before = schema(path)
    second = await open_database(f"sqlite:///{path}")
    try:
        assert second.schema_version == first.schema_version
        assert await second.fetchval("SELECT COUNT(*) FROM schema_migrations") == first.schema_version
    finally:
        await second.close()
    assert schema(path) == before


def test_run_migrations_script(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "cli.db"
    for _ in range(2):
        out = subprocess.run([sys.executable, "run_migrations.py", f"sqlite:///{path}"], cwd=ROOT,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert f"schema version {len(load_migrations())}" in out.stdout
    assert path.exists()


def test_run_migrations_script_refuses_newer_database(tmp_path: Path) -> None:
    path = tmp_path / "newer.db"
    subprocess.run([sys.executable, "run_migrations.py", f"sqlite:///{path}"], cwd=ROOT, check=True,
                   capture_output=True, timeout=60)
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO schema_migrations(version, name, checksum) VALUES (999, 'future', 'x')")
    out = subprocess.run([sys.executable, "run_migrations.py", f"sqlite:///{path}"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert "newer" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("round_", range(5))
async def test_concurrent_first_starts_all_succeed(tmp_path: Path, round_: int) -> None:
    """Processes (here: connections) opening a fresh file at once must all start: the WAL
    switch and the first migration race for the write lock."""
    url = f"sqlite:///{tmp_path / 'race.db'}"
    opened = await asyncio.gather(*(open_database(url) for _ in range(8)), return_exceptions=True)
    try:
        assert not [o for o in opened if isinstance(o, BaseException)]
        assert {o.schema_version for o in opened if isinstance(o, Database)} == {len(load_migrations())}
    finally:
        for o in opened:
            if isinstance(o, Database):
                await o.close()
    assert len({name for _, name, _ in schema(tmp_path / "race.db")}) > len(TABLES)


async def test_database_newer_than_code_is_refused(tmp_path: Path, migrations: Path) -> None:
    url = f"sqlite:///{tmp_path / 'n.db'}"
    extra = len(load_migrations(migrations)) + 1
    (migrations / f"{extra:03d}_extra.sql").write_text("CREATE TABLE extra_table (x INTEGER);\n")
    db = await open_database(url, migrations_dir=migrations)
    assert db.schema_version == extra
    await db.close()
    with pytest.raises(MigrationError, match="newer"):
        await open_database(url)


async def test_edited_migration_is_refused(tmp_path: Path, migrations: Path) -> None:
    url = f"sqlite:///{tmp_path / 'e.db'}"
    await (await open_database(url, migrations_dir=migrations)).close()
    mig = load_migrations(migrations)[0]
    first = migrations / f"{mig.version:03d}_{mig.name}.sql"
    first.write_text(first.read_text() + "\n-- an innocent-looking edit\n")
    with pytest.raises(MigrationError, match="edited"):
        await open_database(url, migrations_dir=migrations)


async def test_failing_migration_rolls_back_completely(tmp_path: Path, migrations: Path) -> None:
    path = tmp_path / "f.db"
    url = f"sqlite:///{path}"
    good = len(load_migrations(migrations))
    bad = migrations / f"{good + 1:03d}_bad.sql"
    bad.write_text(
        "CREATE TABLE half_done (x INTEGER);\n"
        "INSERT INTO half_done VALUES (1);\n"
        "ALTER TABLE users ADD COLUMN half_column TEXT;\n"
        "INSERT INTO no_such_table VALUES (1);\n")
    with pytest.raises(MigrationError, match=f"{good + 1:03d}_bad"):
        await open_database(url, migrations_dir=migrations)
    objects = {name for _, name, _ in schema(path)}
    assert "half_done" not in objects and "users" in objects
    with sqlite3.connect(path) as conn:
        assert "half_column" not in {r[1] for r in conn.execute("PRAGMA table_info(users)")}
        assert conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone() == (good,)
    # Fixed, the migration applies on the next start.
    bad.write_text("CREATE TABLE half_done (x INTEGER);\n")
    db = await open_database(url, migrations_dir=migrations)
    try:
        assert db.schema_version == good + 1
        assert await db.fetchval("SELECT COUNT(*) FROM half_done") == 0
    finally:
        await db.close()


async def test_failing_first_migration_leaves_no_schema(tmp_path: Path) -> None:
    folder = tmp_path / "only_bad"
    folder.mkdir()
    (folder / "001_init.sql").write_text("CREATE TABLE t (x INTEGER);\nCREATE TABLE t (x INTEGER);\n")
    with pytest.raises(MigrationError):
        await open_database(f"sqlite:///{tmp_path / 'b.db'}", migrations_dir=folder)
    objects = {name for _, name, _ in schema(tmp_path / "b.db")}
    assert "t" not in objects


@pytest.mark.parametrize(("files", "message"), [
    (["001_a.sql", "003_c.sql"], "gaps"),
    (["001_a.sql", "001_b.sql"], "gaps"),
    (["1_a.sql"], "bad migration file name"),
    (["001_Bad-Name.sql"], "bad migration file name"),
])
def test_bad_migration_folders(tmp_path: Path, files: list[str], message: str) -> None:
    for name in files:
        (tmp_path / name).write_text("SELECT 1;\n")
    with pytest.raises(MigrationError, match=message):
        load_migrations(tmp_path)


async def test_connection_settings(db: Database) -> None:
    assert str(await db.fetchval("PRAGMA journal_mode")).lower() == "wal"
    assert await db.fetchval("PRAGMA foreign_keys") == 1
    assert await db.fetchval("PRAGMA busy_timeout") >= 1000
    async with db.transaction() as tx:      # the writer connection too
        assert (await tx.fetchone("PRAGMA foreign_keys"))[0] == 1
        assert (await tx.fetchone("PRAGMA busy_timeout"))[0] >= 1000
        assert str((await tx.fetchone("PRAGMA journal_mode"))[0]).lower() == "wal"


async def test_foreign_keys_are_enforced(db: Database) -> None:
    with pytest.raises(sqlite3.IntegrityError):
        await db.execute("INSERT INTO ledger_entries(agent_id, user_id, kind, amount, balance_after)"
                         " VALUES ('ghost', 1, 'deposit', 1, 1)")
    assert await db.fetchval("SELECT COUNT(*) FROM ledger_entries") == 0


async def test_schema_guards_money(db: Database) -> None:
    """The schema itself refuses a negative balance, locked > balance, and a second live root."""
    async with db.transaction() as tx:
        await tx.execute("INSERT INTO users(user_id) VALUES (1)")
        await tx.execute("INSERT INTO automaton_agents(agent_id, user_id, generation) VALUES ('a', 1, 1)")
    for sql in ("UPDATE automaton_agents SET isolated_balance = -1",
                "UPDATE automaton_agents SET locked_balance = 1",
                "INSERT INTO automaton_agents(agent_id, user_id, generation) VALUES ('b', 1, 1)",
                "INSERT INTO automaton_agents(agent_id, user_id, generation) VALUES ('c', 1, 2)"):
        with pytest.raises(sqlite3.IntegrityError):
            await db.execute(sql)


async def test_transaction_rolls_back_on_error(db: Database) -> None:
    with pytest.raises(RuntimeError):
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO users(user_id) VALUES (5)")
            raise RuntimeError("boom")
    assert await db.fetchval("SELECT COUNT(*) FROM users") == 0
    await db.execute("INSERT INTO users(user_id) VALUES (6)")        # the connection is still usable
    assert await db.fetchval("SELECT COUNT(*) FROM users") == 1


@pytest.mark.parametrize(("url", "path"), [
    ("sqlite:///./data/bot.db", "./data/bot.db"), ("sqlite:////abs/x.db", "/abs/x.db"),
    ("sqlite:///:memory:", ":memory:"), ("sqlite://", ":memory:"), ("plain.db", "plain.db"),
])
def test_sqlite_path(url: str, path: str) -> None:
    assert sqlite_path(url) == path


@pytest.mark.parametrize("url", ["postgresql://u@h/db", "sqlite:///", "", "  "])
def test_sqlite_path_refuses(url: str) -> None:
    with pytest.raises(ValueError):
        sqlite_path(url)


async def test_open_creates_the_folder(tmp_path: Path) -> None:
    db = await open_database(f"sqlite:///{tmp_path / 'a' / 'b' / 'c.db'}")
    try:
        assert (tmp_path / "a" / "b" / "c.db").exists()
    finally:
        await db.close()
    await db.close()   # closing twice is harmless
