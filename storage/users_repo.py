"""The `users` row every other table hangs off: plain functions on a `SyncTx` (composable inside a
money transaction) and `UserRepo`, the class the bot uses (preferences, blocked flag, selected bot)."""

from __future__ import annotations

from storage.connection import SyncTx
from storage.db import Transaction
from storage.notify import COLUMNS, NotifyKind, NotifyLevel, NotifyPrefs
from storage.repo_base import Repo

NAME_LIMIT = 64


def ensure(tx: SyncTx, user_id: int, username: str | None = None, first_name: str | None = None,
           language_code: str | None = None) -> None:
    """Register `user_id` if new; refresh the names and the app's language when given (one upsert)."""
    if username is None and first_name is None and language_code is None:
        tx.run("INSERT INTO users(user_id) VALUES (?) ON CONFLICT(user_id) DO NOTHING", (user_id,))
        return
    tx.run("INSERT INTO users(user_id, username, first_name, telegram_language) VALUES (?, ?, ?, ?)"
           " ON CONFLICT(user_id) DO UPDATE SET username = COALESCE(excluded.username, users.username),"
           " first_name = COALESCE(excluded.first_name, users.first_name),"
           " telegram_language = COALESCE(excluded.telegram_language, users.telegram_language)",
           (user_id, None if username is None else username[:NAME_LIMIT],
            None if first_name is None else first_name[:NAME_LIMIT],
            None if language_code is None else language_code[:16]))


def _set_telegram_language(tx: SyncTx, user_id: int, code: str) -> int:
    return tx.run("UPDATE users SET telegram_language = ? WHERE user_id = ?", (code, user_id))


class UserRepo(Repo):
    """The `users` table: registration, notification preferences, blocked flag, selected bot."""

    async def ensure(self, user_id: int, username: str | None = None, first_name: str | None = None,
                     *, language_code: str | None = None, tx: Transaction | None = None) -> None:
        """Register `user_id` if new; refresh the names and the app's language when given."""
        if tx is None:  # the hot path (first message of every user): one upsert, one round trip
            await self.db.run(ensure, user_id, username, first_name, language_code)
        else:
            await tx.run(ensure, user_id, username, first_name, language_code)

    async def exists(self, user_id: int) -> bool:
        return await self.db.fetchval("SELECT 1 FROM users WHERE user_id = ?", (user_id,)) is not None

    async def get_prefs(self, user_id: int) -> NotifyPrefs:
        """The user's preferences (all 'on' for an unknown user)."""
        row = await self.db.fetchone(f"SELECT {', '.join(COLUMNS)} FROM users WHERE user_id = ?", (user_id,))
        if row is None:
            return NotifyPrefs()
        return NotifyPrefs(tuple(NotifyLevel(v) for v in row))

    async def set_pref(self, user_id: int, kind: str, value: str) -> NotifyPrefs:
        """Set one preference; `kind` and `value` are checked against fixed lists (ValueError)."""
        kind, value = NotifyKind(kind).value, NotifyLevel(value).value  # ValueError outside the fixed lists
        column = f"notify_{kind}"  # safe: `kind` is one of the fixed names above
        async with self.db.transaction() as tx:
            await tx.run(ensure, user_id)
            await tx.execute(f"UPDATE users SET {column} = ? WHERE user_id = ?", (value, user_id))
        return await self.get_prefs(user_id)

    async def mark_blocked(self, user_id: int, blocked: bool = True) -> None:
        """Record that the user blocked (or unblocked) the bot."""
        await self.db.execute("UPDATE users SET blocked = ? WHERE user_id = ?", (1 if blocked else 0, user_id))

    async def is_blocked(self, user_id: int) -> bool:
        return bool(await self.db.fetchval("SELECT blocked FROM users WHERE user_id = ?", (user_id,)))

    async def selected_bot_id(self, user_id: int, *, tx: Transaction | None = None) -> int | None:
        row = await self._one("SELECT selected_bot_id FROM users WHERE user_id = ?", (user_id,), tx)
        return None if row is None or row[0] is None else int(row[0])

    async def select_bot(self, user_id: int, bot_id: int | None, *, tx: Transaction | None = None) -> None:
        """Set (or clear with None) the user's selected strategy bot. Ownership is the caller's job."""
        async with self._write(tx) as t:
            await t.run(ensure, user_id)
            await t.execute("UPDATE users SET selected_bot_id = ? WHERE user_id = ?", (bot_id, user_id))

    async def languages(self, user_ids: list[int]) -> dict[int, tuple[str | None, str | None]]:
        """(chosen language, Telegram app's language) of each known user among `user_ids`."""
        if not user_ids:
            return {}
        marks = ", ".join("?" * len(user_ids))
        rows = await self.db.fetchall(
            f"SELECT user_id, language, telegram_language FROM users WHERE user_id IN ({marks})", tuple(user_ids))
        return {int(uid): (chosen, app) for uid, chosen, app in rows}

    async def set_language(self, user_id: int, language: str | None) -> None:
        """The user's own choice of language (None: follow the Telegram app)."""
        async with self.db.transaction() as tx:
            await tx.run(ensure, user_id)
            await tx.execute("UPDATE users SET language = ? WHERE user_id = ?", (language, user_id))

    async def set_telegram_language(self, user_id: int, code: str) -> bool:
        """Remember a known user's Telegram app `language_code` (for notifications); False for a
        user not registered yet (registration is the bot's call, e.g. never from a group chat)."""
        return bool(await self.db.run(_set_telegram_language, user_id, code[:16]))

    async def count_users(self) -> int:
        return int(await self.db.fetchval("SELECT COUNT(*) FROM users") or 0)
