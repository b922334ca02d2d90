"""The `users` row every other table hangs off: plain functions on a `SyncTx`."""

from __future__ import annotations

from storage.connection import SyncTx

NAME_LIMIT = 64


def ensure(tx: SyncTx, user_id: int, username: str | None = None, first_name: str | None = None) -> None:
    """Register `user_id` if new; refresh the names when given (one upsert statement)."""
    if username is None and first_name is None:
        tx.run("INSERT INTO users(user_id) VALUES (?) ON CONFLICT(user_id) DO NOTHING", (user_id,))
        return
    tx.run("INSERT INTO users(user_id, username, first_name) VALUES (?, ?, ?) ON CONFLICT(user_id) DO UPDATE"
           " SET username = COALESCE(excluded.username, users.username),"
           " first_name = COALESCE(excluded.first_name, users.first_name)",
           (user_id, None if username is None else username[:NAME_LIMIT],
            None if first_name is None else first_name[:NAME_LIMIT]))
