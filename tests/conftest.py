"""Shared fixtures: a migrated temp-file database and an isolated AI manager over it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agents import IsolatedAIManager, MoneyRules, get_isolated_ai_manager
from engine.events import CollectingSink
from storage import Database, open_database


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """A `sqlite:///` URL of a fresh file in this test's temp folder."""
    return f"sqlite:///{tmp_path / 'test.db'}"


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
