"""Repositories as classes over the database, rows returned as frozen dataclasses.

Conventions:

* Every user-facing read filters by `user_id`, so a foreign id looks exactly like a missing one.
* Writes that must compose with others take an optional `tx` (a `storage.db.Transaction`);
  without it they run in their own `BEGIN IMMEDIATE` transaction. Reads without `tx` see
  committed data through the reader connection.
* Money is INTEGER micro-USDC in the database and `Decimal` USDC in the dataclasses
  (`storage.money`); times are ISO-8601 UTC text (`storage.values`).
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from storage.db import Database, Transaction


class Repo:
    """Shared plumbing: optional caller transaction, reads on the reader connection."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @asynccontextmanager
    async def _write(self, tx: Transaction | None) -> AsyncIterator[Transaction]:
        if tx is not None:
            yield tx
        else:
            async with self.db.transaction() as own:
                yield own

    async def _one(self, sql: str, params: Sequence[Any], tx: Transaction | None) -> Any:
        return await (tx.fetchone(sql, params) if tx is not None else self.db.fetchone(sql, params))

    async def _all(self, sql: str, params: Sequence[Any], tx: Transaction | None) -> builtins.list[Any]:
        return await (tx.fetchall(sql, params) if tx is not None else self.db.fetchall(sql, params))
