"""/backtest [token] [timeframe] [days]: progress edited in place, then a metrics card and the chart."""

from __future__ import annotations

import contextlib
import logging

from telegram import Message, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest
from telegram.ext import Application, CommandHandler, filters

from bot.context import AppContext
from bot.guards import UserFacingError, command
from bot.handlers.bots import selected_strategy
from bot.render import MAX_CAPTION, clip, esc

log = logging.getLogger(__name__)


def metrics_card(report: object, rows: list[tuple[str, str]]) -> str:
    demo = " <i>(demo market)</i>" if getattr(report, "demo", False) else ""
    head = (f"📈 <b>Backtest: {esc(getattr(report, 'symbol', ''))}</b> {esc(getattr(report, 'timeframe', ''))} · "
            f"{getattr(report, 'days', '')} days · {getattr(report, 'candles', '')} candles{demo}")
    return "\n".join([head, "", *(f"{esc(k)}: <b>{esc(v)}</b>" for k, v in rows)])


async def run_backtest_for(update: Update, context: AppContext, args: list[str]) -> None:
    """Backtest the selected bot; used by /backtest and the bot's Backtest button."""
    services = context.services
    uid = update.effective_user.id
    bot, strategy = await selected_strategy(update, context)
    request = services.backtests.parse_args(args, strategy.finest_timeframe)
    chat_id = update.effective_chat.id
    progress_msg: Message = await context.bot.send_message(chat_id, "⏳ Preparing backtest…")

    async def progress(text: str) -> None:
        with contextlib.suppress(BadRequest):
            await progress_msg.edit_text("⏳ " + esc(text), parse_mode=ParseMode.HTML)

    try:
        report = await services.backtests.run(uid, bot.bot_id, strategy, request, progress)
    except Exception as exc:
        with contextlib.suppress(BadRequest):
            await progress_msg.edit_text("❌ Backtest failed.")
        raise exc
    card = metrics_card(report, services.backtests.format_metrics(report))
    with contextlib.suppress(BadRequest):
        await progress_msg.edit_text("✅ Backtest complete.")
    if len(card) <= MAX_CAPTION:
        await context.bot.send_photo(chat_id, report.chart_png, caption=card, parse_mode=ParseMode.HTML)
    else:
        await context.bot.send_message(chat_id, clip(card), parse_mode=ParseMode.HTML)
        await context.bot.send_photo(chat_id, report.chart_png)


@command
async def backtest_cmd(update: Update, context: AppContext) -> None:
    """/backtest [token] [timeframe] [days]."""
    args = context.args or []
    if len(args) > 3:
        raise UserFacingError("Usage: /backtest [token] [timeframe] [days], e.g. /backtest PEPE 1h 30")
    await run_backtest_for(update, context, args)


def register(app: Application) -> None:
    app.add_handler(CommandHandler("backtest", backtest_cmd, filters=filters.ChatType.PRIVATE))
