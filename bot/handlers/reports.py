"""/status, /profit, /performance, /trades [n], /daily /weekly /monthly [n]: reports over the user's
closed paper trades and open positions, each with Refresh (in place, same argument) and 🏠 Menu."""

from __future__ import annotations

from datetime import UTC, datetime

from telegram import Update
from telegram.ext import Application, CommandHandler, filters

from bot import callbacks, keyboards
from bot.commands import usage
from bot.context import AppContext
from bot.guards import UserFacingError, button, command, edit, reply
from bot.i18n import t
from bot.report_text import performance_text, periods_text, positions_text, profit_text, trades_text

DEFAULT_TRADES = 10
MAX_TRADES = 30
PERIOD_COMMANDS = {"daily": ("day", 7, 31), "weekly": ("week", 4, 26), "monthly": ("month", 6, 24)}
NO_ARGUMENT = ("status", "profit", "performance")


async def report_text(context: AppContext, user_id: int, report: str, n: int) -> str:
    """The text of one report for `user_id` (`n`: its count argument, 0 where it has none)."""
    screens = context.services.screens
    if report == "status":
        return positions_text(await screens.open_positions(user_id))
    if report == "profit":
        return profit_text(await screens.profit(user_id))
    if report == "performance":
        return performance_text(await screens.performance(user_id))
    if report == "trades":
        return trades_text(await screens.trades(user_id, n), n)
    period = PERIOD_COMMANDS[report][0]
    return periods_text(await screens.periods(user_id, period, n, datetime.now(UTC).date()), period)


def _count(name: str, args: list[str], default: int, most: int, example: str) -> int:
    """The optional count argument of a report command (1..most), or a usage refusal."""
    if len(args) > 1 or (args and not (args[0].isdigit() and 1 <= int(args[0]) <= most)):
        raise UserFacingError(usage(name, t("{example} (1 to {most})", example=example, most=most)))
    return int(args[0]) if args else default


@command
async def report_cmd(update: Update, context: AppContext) -> None:
    """Any report command: check its argument, answer with the report and its buttons."""
    name = (update.effective_message.text or "").split()[0].lstrip("/").split("@", 1)[0].lower()
    args = context.args or []
    if name in NO_ARGUMENT:
        if args:
            raise UserFacingError(usage(name))
        n = 0
    elif name == "trades":
        n = _count(name, args, DEFAULT_TRADES, MAX_TRADES, "/trades 20")
    else:
        _, default, most = PERIOD_COMMANDS[name]
        n = _count(name, args, default, most, f"/{name} {default}")
    text = await report_text(context, update.effective_user.id, name, n)
    await reply(update, text, keyboards.report_refresh(name, n))


@button(callbacks.REFRESH)
async def refresh_button(update: Update, context: AppContext, report: str, n: int) -> None:
    """Refresh: the same report with the same argument, in place (forged counts are bounded)."""
    most = MAX_TRADES if report == "trades" else PERIOD_COMMANDS[report][2] if report in PERIOD_COMMANDS else 0
    n = 0 if report in NO_ARGUMENT else max(1, min(n, most))
    text = await report_text(context, update.effective_user.id, report, n)
    await edit(update, text, keyboards.report_refresh(report, n))


def register(app: Application) -> None:
    private = filters.ChatType.PRIVATE
    names = [*NO_ARGUMENT, "trades", *PERIOD_COMMANDS]
    app.add_handlers([CommandHandler(names, report_cmd, filters=private), refresh_button.handler()])
