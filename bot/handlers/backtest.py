"""/backtest [token] [timeframe] [days]: progress edited in place, then a metrics card and the chart."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from telegram import Message, Update
from telegram.error import BadRequest
from telegram.ext import Application, CommandHandler, filters

from bot import callbacks
from bot.backtest_args import argument_words, parse_backtest_args
from bot.cards import metrics_rows, progress_text
from bot.context import AppContext
from bot.guards import button, command
from bot.render import MAX_CAPTION, clip, esc
from bot.selection import select_strategy, selected_strategy
from engine.strategy import Strategy

log = logging.getLogger(__name__)


def metrics_card(report: object, rows: list[tuple[str, str]]) -> str:
    demo = " <i>(demo market)</i>" if getattr(report, "demo", False) else ""
    head = (f"📈 <b>Backtest: {esc(getattr(report, 'symbol', ''))}</b> {esc(getattr(report, 'timeframe', ''))} · "
            f"{getattr(report, 'days', '')} days · {getattr(report, 'candles', '')} candles{demo}")
    return "\n".join([head, "", *(f"{esc(k)}: <b>{esc(v)}</b>" for k, v in rows)])


async def run_backtest_for(update: Update, context: AppContext, bot: Any, strategy: Strategy, args: list[str]) -> None:
    """Backtest `bot`'s strategy; used by /backtest and the bot's Backtest button."""
    services = context.services
    uid = update.effective_user.id
    request = parse_backtest_args(args, strategy.finest_timeframe)
    chat_id = update.effective_chat.id
    progress_msg: Message = await context.bot.send_message(chat_id, "⏳ Preparing backtest…")

    async def progress(stage: str, candles: int) -> None:
        with contextlib.suppress(BadRequest):
            await progress_msg.edit_text("⏳ " + esc(progress_text(stage, candles)))

    try:
        report = await services.backtests.run(uid, bot.bot_id, strategy, request, progress)
    except Exception as exc:
        with contextlib.suppress(BadRequest):
            await progress_msg.edit_text("❌ Backtest failed.")
        raise exc
    card = metrics_card(report, metrics_rows(report))
    with contextlib.suppress(BadRequest):
        await progress_msg.edit_text("✅ Backtest complete.")
    if len(card) <= MAX_CAPTION:
        await context.bot.send_photo(chat_id, report.chart_png, caption=card)
    else:
        await context.bot.send_message(chat_id, clip(card))
        await context.bot.send_photo(chat_id, report.chart_png)


@command
async def backtest_cmd(update: Update, context: AppContext) -> None:
    """/backtest [token] [timeframe] [days]."""
    args = argument_words(context.args or [])  # the grammar's refusal before "select a bot first"
    bot, strategy = await selected_strategy(update, context)
    await run_backtest_for(update, context, bot, strategy, args)


@button(callbacks.BOT_BACKTEST)
async def backtest_button(update: Update, context: AppContext, bot_id: int) -> None:
    """A bot's Backtest button: select that bot, then backtest it with the default arguments."""
    bot, strategy = await select_strategy(update, context, bot_id)
    await run_backtest_for(update, context, bot, strategy, [])


def register(app: Application) -> None:
    app.add_handler(CommandHandler("backtest", backtest_cmd, filters=filters.ChatType.PRIVATE))
    app.add_handler(backtest_button.handler())
