"""Strategy bots: each user's named containers (at most `MAX_BOTS`) for a designed strategy.

A bot holds a name, an optional validated strategy and the designer conversation. Names are
stored as plain text: the bot layer escapes them for HTML. Ids arrive from untrusted input,
so every entry point re-validates them and scopes the lookup to the caller; a foreign
id gets the same `BotNotFoundError` as a missing one. Refusals are `StrategyBotError`s with a
code (``design.…``) and params; `bot.messages.design` words them.
"""

from __future__ import annotations

import builtins
import json
import logging
import re
import time
import unicodedata
from collections.abc import Callable

from engine.errors import CodedError
from engine.strategy import Strategy, strategy_view
from storage.bots_repo import BotRecord, BotRepo, ConversationRepo
from storage.db import Database
from storage.runs_repo import SimulationRepo
from storage.users_repo import UserRepo
from storage.values import to_iso, valid_id

log = logging.getLogger(__name__)

MAX_BOTS = 3
NAME_MAX = 32
MESSAGE_MAX = 8000
HISTORY_KEEP = 200  # designer messages kept per bot; older ones are pruned
_SPACES = re.compile(r"\s+")


class StrategyBotError(CodedError):
    """Base of strategy-bot refusals (``design.…`` codes)."""


class BotNotFoundError(StrategyBotError):
    """No such bot for this user (also the answer for another user's bot)."""

    def __init__(self) -> None:
        super().__init__("design.bot_not_found")


class BotLimitError(StrategyBotError):
    """The user already has `MAX_BOTS` bots."""


class BotNameError(StrategyBotError):
    """The name is not text, empty, too long, contains control characters or is already used."""


def clean_name(raw: object) -> str:
    """Trim and collapse whitespace; 1–32 characters, no control characters."""
    if not isinstance(raw, str):
        raise BotNameError("design.name_not_text")
    # Cheap length guard before any normalisation work on a huge string.
    if len(raw) > NAME_MAX * 8:
        raise BotNameError("design.name_too_long", max_chars=NAME_MAX)
    name = _SPACES.sub(" ", raw).strip()
    if not name:
        raise BotNameError("design.name_empty")
    if len(name) > NAME_MAX:
        raise BotNameError("design.name_too_long", max_chars=NAME_MAX)
    if any(unicodedata.category(c) == "Cc" for c in name):
        raise BotNameError("design.name_control_chars")
    return name


class StrategyBots:
    """Create, list, select, rename, delete bots and keep their strategy and conversation."""

    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self._clock = clock
        self._users = UserRepo(db)
        self._bots = BotRepo(db)
        self._conversations = ConversationRepo(db)
        self._simulations = SimulationRepo(db)

    # -- helpers ---------------------------------------------------------------------------
    @staticmethod
    def _id(bot_id: object) -> int:
        checked = valid_id(bot_id)
        if checked is None:
            raise BotNotFoundError()
        return checked

    # -- CRUD ------------------------------------------------------------------------------
    async def create(self, user_id: int, name: str | None = None) -> BotRecord:
        """A new bot (named "Bot N" by default), selected automatically.

        Raises `BotLimitError` for a fourth bot and `BotNameError` for a bad or duplicate name.
        """
        wanted = None if name is None else clean_name(name)
        async with self.db.transaction() as tx:
            await self._users.ensure(user_id, tx=tx)
            existing = await self._bots.list_for_user(user_id, tx=tx)
            if len(existing) >= MAX_BOTS:
                raise BotLimitError("design.bot_limit", max_bots=MAX_BOTS)
            taken = {b.name.casefold() for b in existing}
            if wanted is None:
                wanted = next(f"Bot {n}" for n in range(1, MAX_BOTS + 2) if f"bot {n}" not in taken)
            elif wanted.casefold() in taken:
                raise BotNameError("design.name_taken", name=wanted)
            bot = await self._bots.create(user_id, wanted, tx=tx)
            await self._users.select_bot(user_id, bot.bot_id, tx=tx)
        return bot

    async def get(self, user_id: int, bot_id: object) -> BotRecord:
        """The caller's bot, or `BotNotFoundError` (missing, foreign or malformed id)."""
        bot = await self._bots.get(user_id, self._id(bot_id))
        if bot is None:
            raise BotNotFoundError()
        return bot

    async def rename(self, user_id: int, bot_id: object, name: str) -> BotRecord:
        """Rename the caller's bot (same rules as `create`)."""
        new_name = clean_name(name)
        checked = self._id(bot_id)
        async with self.db.transaction() as tx:
            bots = await self._bots.list_for_user(user_id, tx=tx)
            if not any(b.bot_id == checked for b in bots):
                raise BotNotFoundError()
            if any(b.bot_id != checked and b.name.casefold() == new_name.casefold() for b in bots):
                raise BotNameError("design.name_taken", name=new_name)
            await self._bots.rename(user_id, checked, new_name, tx=tx)
        return await self.get(user_id, checked)

    async def delete(self, user_id: int, bot_id: object) -> BotRecord:
        """Delete the caller's bot: its running simulations stop, it is unselected, its
        conversation goes; stored backtests and signals stay, detached from it."""
        checked = self._id(bot_id)
        async with self.db.transaction() as tx:
            bot = await self._bots.get(user_id, checked, tx=tx)
            if bot is None:
                raise BotNotFoundError()
            stopped = await self._simulations.stop_for_bot(user_id, checked, to_iso(self._clock()), tx=tx)
            if await self._users.selected_bot_id(user_id, tx=tx) == checked:
                await self._users.select_bot(user_id, None, tx=tx)
            await self._bots.delete(user_id, checked, tx=tx)
        if stopped:
            log.info("deleting bot %s stopped %d simulation(s)", checked, stopped)
        return bot

    async def select(self, user_id: int, bot_id: object) -> BotRecord:
        """Make the caller's bot the selected one (plain text then goes to its designer)."""
        checked = self._id(bot_id)
        async with self.db.transaction() as tx:
            bot = await self._bots.get(user_id, checked, tx=tx)
            if bot is None:
                raise BotNotFoundError()
            await self._users.select_bot(user_id, checked, tx=tx)
        return bot

    async def selected(self, user_id: int) -> BotRecord | None:
        """The selected bot, or None (nothing selected, or the selection no longer exists)."""
        bot_id = await self._users.selected_bot_id(user_id)
        if bot_id is None:
            return None
        return await self._bots.get(user_id, bot_id)

    # -- strategy --------------------------------------------------------------------------
    async def set_strategy(self, user_id: int, bot_id: object, strategy: Strategy | None) -> BotRecord:
        """Store a validated strategy on the caller's bot (None clears it)."""
        checked = self._id(bot_id)
        if strategy is not None and not isinstance(strategy, Strategy):
            raise StrategyBotError("design.strategy_not_validated")
        text = None if strategy is None else json.dumps(strategy.to_config(), separators=(",", ":"))
        if not await self._bots.set_strategy(user_id, checked, text):
            raise BotNotFoundError()
        return await self.get(user_id, checked)

    @staticmethod
    def strategy(bot: BotRecord) -> Strategy | None:
        """The bot's strategy, or None when it has none (or the stored one no longer validates)."""
        view = strategy_view(bot.strategy_json)
        if view.invalid:
            log.warning("bot %s has a stored strategy that no longer validates", bot.bot_id)
        return view.strategy

    # -- conversation ----------------------------------------------------------------------
    async def history(self, user_id: int, bot_id: object, limit: int = 10) -> builtins.list[tuple[str, str]]:
        """The last `limit` (role, content) messages with the designer, oldest first."""
        bot = await self.get(user_id, bot_id)
        return await self._conversations.recent(bot.bot_id, user_id, max(0, min(int(limit), HISTORY_KEEP)))

    async def add_message(self, user_id: int, bot_id: object, role: str, content: str) -> None:
        """Append a designer message (role 'user' or 'assistant'); old history is pruned."""
        if role not in ("user", "assistant"):
            raise StrategyBotError("design.unknown_role", role=role)
        checked = self._id(bot_id)
        async with self.db.transaction() as tx:
            if await self._bots.get(user_id, checked, tx=tx) is None:
                raise BotNotFoundError()
            await self._conversations.append(checked, user_id, role, str(content)[:MESSAGE_MAX], tx=tx)
            await self._conversations.prune(checked, user_id, HISTORY_KEEP, tx=tx)

    # `list` last: inside the class body the name shadows the builtin from here on.
    async def list(self, user_id: int) -> builtins.list[BotRecord]:
        """The caller's bots, oldest first."""
        return await self._bots.list_for_user(user_id)
