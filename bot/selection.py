"""The strategy bot a command acts on: the user's selected bot and its strategy, or a clear refusal.

Shared by the strategy-bot, backtest and simulate handlers (a neutral module, so no handler
module imports another).
"""

from __future__ import annotations

from typing import Any

from telegram import Update

from bot.context import AppContext
from bot.guards import UserFacingError
from bot.i18n import t
from engine.strategy import Strategy, strategy_view
from storage.bots_repo import BotRecord


async def selected_strategy(update: Update, context: AppContext) -> tuple[Any, Strategy]:
    """The caller's selected bot and its strategy, or a clear refusal (backtest, simulate)."""
    services = context.services
    bot = await services.bots.selected(update.effective_user.id)
    if bot is None:
        raise UserFacingError(t("Select a strategy bot first: /bots (or create one with /newbot)."))
    return bot, strategy_of(bot)


def strategy_of(bot: BotRecord) -> Strategy:
    """The bot's strategy, or the refusal that says why there is none to run."""
    view = strategy_view(bot.strategy_json)
    if view.invalid:
        raise UserFacingError(t("{name}'s stored strategy is no longer valid: describe it again in a message.",
                                name=bot.name))
    if view.strategy is None:
        raise UserFacingError(t("{name} has no strategy yet: describe one in a message first.", name=bot.name))
    return view.strategy


async def bot_strategy(update: Update, context: AppContext, bot_id: int) -> tuple[Any, Strategy]:
    """The caller's bot `bot_id` (ownership checked) and its strategy, leaving the selection as it is."""
    bot = await context.services.bots.get(update.effective_user.id, bot_id)
    return bot, strategy_of(bot)


async def select_strategy(update: Update, context: AppContext, bot_id: int) -> tuple[Any, Strategy]:
    """Select the caller's bot `bot_id` (ownership checked), then return it and its strategy."""
    await context.services.bots.select(update.effective_user.id, bot_id)
    return await selected_strategy(update, context)
