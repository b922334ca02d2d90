"""Each user's language: their /settings choice, else their Telegram app's, cached per process.

Replies are written in the language of the update's sender (`bot.handlers.language` sets it
first for every update); notifications have no update, so the app's last `language_code` is
stored with the user and read from here.
"""

from __future__ import annotations

from collections.abc import Iterable

from bot.i18n import resolve
from storage.users_repo import UserRepo


class Languages:
    """(chosen, Telegram app's) language per user: read once, then cached; writes go through.

    With `cache=False` (several replicas on one database) a sender's language is read again for
    every update, since the user may have chosen another on a different replica; the cache then
    only serves `cached` (flood answers, digest headers) and notifications' first read."""

    def __init__(self, users: UserRepo, *, cache: bool = True) -> None:
        self.users = users
        self._cache = cache
        self._known: dict[int, tuple[str | None, str | None]] = {}

    async def of_sender(self, user_id: int, telegram_code: str | None) -> str:
        """The language to answer `user_id` in; remembers a changed app language."""
        known = self._known.get(user_id) if self._cache else None
        if known is None:
            found = await self.users.languages([user_id])
            if user_id not in found:  # not registered yet: registration stores the code; read it next time
                return resolve(None, telegram_code)
            known = found[user_id]
        chosen, app = known
        if telegram_code and telegram_code != app:
            if not await self.users.set_telegram_language(user_id, telegram_code):
                # not registered yet: registration stores the code; read it back next time
                self._known.pop(user_id, None)
                return resolve(chosen, telegram_code)
            app = telegram_code  # stored: not written again until it changes
        self._known[user_id] = (chosen, app)
        return resolve(chosen, telegram_code or app)

    async def of_users(self, user_ids: Iterable[int]) -> dict[int, str]:
        """The language of each of `user_ids` (English for a user never seen)."""
        ids = set(user_ids)
        missing = [uid for uid in ids if not self._cache or uid not in self._known]
        if missing:
            self._known.update(await self.users.languages(missing))
        return {uid: resolve(*self._known.get(uid, (None, None))) for uid in ids}

    async def choose(self, user_id: int, language: str | None) -> None:
        """Store the user's /settings choice (None: follow the Telegram app again)."""
        await self.users.set_language(user_id, language)
        _, app = self._known.get(user_id, (None, None))
        self._known[user_id] = (language, app)

    def cached(self, user_id: int) -> str:
        """The user's language as last read, without a query (English when not read yet)."""
        return resolve(*self._known.get(user_id, (None, None)))

    def chosen(self, user_id: int) -> str | None:
        """The user's /settings choice as last read (None: automatic)."""
        return self._known.get(user_id, (None, None))[0]
