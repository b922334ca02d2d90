"""/profit, /trades [n], /daily /weekly /monthly [n]: reports over the user's closed paper trades."""

from __future__ import annotations

from datetime import UTC, datetime

from telegram import Update
from telegram.ext import Application, CommandHandler, filters

from bot.commands import usage
from bot.context import AppContext
from bot.guards import UserFacingError, command, reply
from bot.report_text import periods_text, positions_text, profit_text, trades_text

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


@command
async def status_cmd(update: Update, context: AppContext) -> None:
    """/status: open positions with current price, unrealized P&L and stop/target levels."""
    if context.args:
        raise UserFacingError(usage("status"))
    await reply(update, positions_text(await context.services.screens.open_positions(update.effective_user.id)))


PERIOD_COMMANDS = {"daily": ("day", 7, 31), "weekly": ("week", 4, 26), "monthly": ("month", 6, 24)}


@command
async def periods_cmd(update: Update, context: AppContext) -> None:
    """/daily [n], /weekly [n], /monthly [n]: closed P&L per calendar period, the last n of them."""
    name = (update.effective_message.text or "").split()[0].lstrip("/").split("@", 1)[0].lower()
    period, default, most = PERIOD_COMMANDS[name]
    args = context.args or []
    if len(args) > 1 or (args and not (args[0].isdigit() and 1 <= int(args[0]) <= most)):
        raise UserFacingError(usage(name, f"/{name} {default} (1 to {most})"))
    n = int(args[0]) if args else default
    today = datetime.now(UTC).date()
    rows = await context.services.screens.periods(update.effective_user.id, period, n, today)
    await reply(update, periods_text(rows, period))


def register(app: Application) -> None:
    private = filters.ChatType.PRIVATE
    app.add_handlers([CommandHandler("profit", profit_cmd, filters=private),
                      CommandHandler("trades", trades_cmd, filters=private),
                      CommandHandler("status", status_cmd, filters=private),
                      CommandHandler(list(PERIOD_COMMANDS), periods_cmd, filters=private)])
