"""/profit and /trades [n]: reports over the user's closed paper trades."""

from __future__ import annotations

from telegram import Update
from telegram.ext import Application, CommandHandler, filters

from bot.commands import usage
from bot.context import AppContext
from bot.guards import UserFacingError, command, reply
from bot.report_text import profit_text, trades_text

DEFAULT_TRADES = 10
MAX_TRADES = 30


@command
async def profit_cmd(update: Update, context: AppContext) -> None:
    """/profit: closed P&L, win rate, profit factor, best and worst trade, per agent and in total."""
    if context.args:
        raise UserFacingError(usage("profit"))
    await reply(update, profit_text(await context.services.screens.profit(update.effective_user.id)))


@command
async def trades_cmd(update: Update, context: AppContext) -> None:
    """/trades [n]: the newest n closed trades (default 10, at most 30)."""
    args = context.args or []
    if len(args) > 1 or (args and not (args[0].isdigit() and 1 <= int(args[0]) <= MAX_TRADES)):
        raise UserFacingError(usage("trades", f"/trades 20 (1 to {MAX_TRADES})"))
    limit = int(args[0]) if args else DEFAULT_TRADES
    await reply(update, trades_text(await context.services.screens.trades(update.effective_user.id, limit), limit))


def register(app: Application) -> None:
    private = filters.ChatType.PRIVATE
    app.add_handlers([CommandHandler("profit", profit_cmd, filters=private),
                      CommandHandler("trades", trades_cmd, filters=private)])
