"""State every replica shares: `app_state` (values the processes agree on) and
`conversation_state` (a user's open prompt), so any process can answer any update."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from storage.connection import SyncTx
from storage.db import Database
from storage.users_repo import ensure
from storage.values import to_iso


def _agreed(tx: SyncTx, name: str, proposed: str) -> str:
    tx.run("INSERT INTO app_state(name, value) VALUES (?, ?) ON CONFLICT(name) DO NOTHING", (name, proposed))
    return str(tx.value("SELECT value FROM app_state WHERE name = ?", (name,)))


def _put(tx: SyncTx, user_id: int, name: str, value: str, expires_at: str) -> None:
    ensure(tx, user_id)
    tx.run("INSERT INTO conversation_state(user_id, name, value, expires_at) VALUES (?, ?, ?, ?)"
           " ON CONFLICT(user_id, name) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
           (user_id, name, value, expires_at))


def _take(tx: SyncTx, user_id: int, name: str, now: str, expected: str | None) -> str | None:
    """The value (deleted), or None when absent, expired or not `expected` (left as it is)."""
    value = tx.value("SELECT value FROM conversation_state WHERE user_id = ? AND name = ? AND expires_at > ?",
                     (user_id, name, now))
    if value is None or (expected is not None and value != expected):
        return None
    tx.run("DELETE FROM conversation_state WHERE user_id = ? AND name = ?", (user_id, name))
    return str(value)


def _prune(tx: SyncTx, now: str) -> int:
    return tx.run("DELETE FROM conversation_state WHERE expires_at <= ?", (now,))


class SharedStateRepo:
    """Agreed values and per-user conversation state (JSON values with an expiry)."""

    def __init__(self, db: Database, clock: Callable[[], float]) -> None:
        self.db = db
        self._clock = clock

    async def agreed(self, name: str, proposed: str) -> str:
        """The value every process uses for `name`: the first proposal stored wins."""
        return await self.db.run(_agreed, name, proposed)

    async def put(self, user_id: int, name: str, value: Any, ttl_seconds: float) -> None:
        """Set the user's `name` (replacing what was there) until `ttl_seconds` from now."""
        await self.db.run(_put, user_id, name, json.dumps(value, sort_keys=True),
                          to_iso(self._clock() + ttl_seconds))

    async def get(self, user_id: int, name: str) -> Any:
        """The user's live `name`, or None."""
        value = await self.db.fetchval(
            "SELECT value FROM conversation_state WHERE user_id = ? AND name = ? AND expires_at > ?",
            (user_id, name, to_iso(self._clock())))
        return None if value is None else json.loads(value)

    async def take(self, user_id: int, name: str, expected: Any = None) -> Any:
        """Remove and return the user's live `name` in one transaction (None when absent or
        expired). With `expected`, only that exact value is taken: a second press of the same
        confirmation, on any replica, finds nothing."""
        want = None if expected is None else json.dumps(expected, sort_keys=True)
        value = await self.db.run(_take, user_id, name, to_iso(self._clock()), want)
        return None if value is None else json.loads(value)

    async def clear(self, user_id: int) -> int:
        """Forget every open prompt of the user; returns how many there were (live ones)."""
        now = to_iso(self._clock())
        async with self.db.transaction() as tx:
            live = await tx.fetchone("SELECT COUNT(*) FROM conversation_state WHERE user_id = ? AND expires_at > ?",
                                     (user_id, now))
            await tx.execute("DELETE FROM conversation_state WHERE user_id = ?", (user_id,))
        return int(live[0]) if live else 0

    async def prune(self) -> int:
        """Drop expired prompts (housekeeping); returns how many."""
        return await self.db.run(_prune, to_iso(self._clock()))
