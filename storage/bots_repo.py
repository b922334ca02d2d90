"""Strategy bots, their conversations and the per-user daily LLM budget."""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from typing import Any

from storage import users_repo
from storage.db import Database, Transaction
from storage.dialect import NOW
from storage.repo_base import Repo

# -- strategy bots -------------------------------------------------------------------------------

@dataclass(frozen=True)
class BotRecord:
    """One strategy bot row; `strategy_json` is None until a strategy is designed."""

    bot_id: int
    user_id: int
    name: str
    strategy_json: str | None
    created_at: str
    updated_at: str


_BOT_COLUMNS = "bot_id, user_id, name, strategy_json, created_at, updated_at"
_NOW_SQL = NOW


def _bot(row: Any) -> BotRecord:
    return BotRecord(bot_id=int(row["bot_id"]), user_id=int(row["user_id"]), name=row["name"],
                     strategy_json=row["strategy_json"], created_at=row["created_at"],
                     updated_at=row["updated_at"])


class BotRepo(Repo):
    """The `bots` table. Every read and write is scoped to the owner."""

    async def create(self, user_id: int, name: str, *, strategy_json: str | None = None,
                     tx: Transaction | None = None) -> BotRecord:
        async with self._write(tx) as t:
            bot_id = await t.insert("INSERT INTO bots(user_id, name, strategy_json) VALUES (?, ?, ?)",
                                    (user_id, name, strategy_json))
            row = await t.fetchone(f"SELECT {_BOT_COLUMNS} FROM bots WHERE bot_id = ?", (bot_id,))
        return _bot(row)

    async def get(self, user_id: int, bot_id: int, *, tx: Transaction | None = None) -> BotRecord | None:
        row = await self._one(f"SELECT {_BOT_COLUMNS} FROM bots WHERE bot_id = ? AND user_id = ?",
                              (bot_id, user_id), tx)
        return None if row is None else _bot(row)

    async def list_for_user(self, user_id: int, *, tx: Transaction | None = None) -> builtins.list[BotRecord]:
        rows = await self._all(f"SELECT {_BOT_COLUMNS} FROM bots WHERE user_id = ? ORDER BY bot_id",
                               (user_id,), tx)
        return [_bot(r) for r in rows]

    async def rename(self, user_id: int, bot_id: int, name: str, *, tx: Transaction | None = None) -> bool:
        async with self._write(tx) as t:
            cur = await t.execute(f"UPDATE bots SET name = ?, updated_at = {_NOW_SQL}"
                                  " WHERE bot_id = ? AND user_id = ?", (name, bot_id, user_id))
            return cur.rowcount > 0

    async def set_strategy(self, user_id: int, bot_id: int, strategy_json: str | None, *,
                           tx: Transaction | None = None) -> bool:
        async with self._write(tx) as t:
            cur = await t.execute(f"UPDATE bots SET strategy_json = ?, updated_at = {_NOW_SQL}"
                                  " WHERE bot_id = ? AND user_id = ?", (strategy_json, bot_id, user_id))
            return cur.rowcount > 0

    async def delete(self, user_id: int, bot_id: int, *, tx: Transaction | None = None) -> bool:
        """Delete the bot; foreign keys cascade its conversation and detach its backtests/simulations."""
        async with self._write(tx) as t:
            cur = await t.execute("DELETE FROM bots WHERE bot_id = ? AND user_id = ?", (bot_id, user_id))
            return cur.rowcount > 0


class ConversationRepo(Repo):
    """The designer conversation of each bot (`bot_conversations`)."""

    async def append(self, bot_id: int, user_id: int, role: str, content: str, *,
                     tx: Transaction | None = None) -> int:
        if role not in ("user", "assistant"):
            raise ValueError("role must be 'user' or 'assistant'")
        async with self._write(tx) as t:
            return await t.insert("INSERT INTO bot_conversations(bot_id, user_id, role, content) VALUES (?, ?, ?, ?)",
                                  (bot_id, user_id, role, content))

    async def recent(self, bot_id: int, user_id: int, limit: int = 10) -> builtins.list[tuple[str, str]]:
        """The last `limit` (role, content) pairs, oldest first."""
        rows = await self.db.fetchall(
            "SELECT role, content FROM bot_conversations WHERE bot_id = ? AND user_id = ?"
            " ORDER BY id DESC LIMIT ?", (bot_id, user_id, max(0, int(limit))))
        return [(r[0], r[1]) for r in reversed(rows)]

    async def prune(self, bot_id: int, user_id: int, keep: int, *, tx: Transaction | None = None) -> int:
        """Delete all but the newest `keep` messages of the bot; returns how many were deleted."""
        async with self._write(tx) as t:
            cur = await t.execute(
                "DELETE FROM bot_conversations WHERE bot_id = ? AND user_id = ? AND id NOT IN"
                " (SELECT id FROM bot_conversations WHERE bot_id = ? AND user_id = ? ORDER BY id DESC LIMIT ?)",
                (bot_id, user_id, bot_id, user_id, max(0, int(keep))))
            return cur.rowcount




# -- LLM usage -----------------------------------------------------------------------------------

class LlmUsageRepo:
    """Per-user daily LLM call counts (the designer's daily limit), persisted across restarts."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def take(self, user_id: int, day: str, limit: int) -> bool:
        """Count one call for `user_id` on `day` if fewer than `limit` were made; False otherwise."""
        async with self.db.transaction() as tx:
            row = await tx.fetchone("SELECT calls FROM llm_usage WHERE user_id = ? AND day = ?", (user_id, day))
            used = 0 if row is None else int(row["calls"])
            if used >= limit:
                return False
            await tx.run(users_repo.ensure, user_id)
            await tx.execute(
                "INSERT INTO llm_usage(user_id, day, calls) VALUES (?, ?, 1)"
                " ON CONFLICT(user_id, day) DO UPDATE SET calls = llm_usage.calls + 1", (user_id, day))
            # Older days are no longer needed by the limit.
            await tx.execute("DELETE FROM llm_usage WHERE user_id = ? AND day < ?", (user_id, day))
            return True

    async def used(self, user_id: int, day: str) -> int:
        return int(await self.db.fetchval("SELECT calls FROM llm_usage WHERE user_id = ? AND day = ?",
                                          (user_id, day)) or 0)
