"""/backtest [token] [timeframe] [days]: progress edited in place, then a metrics card and the chart."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from telegram import Update
from telegram.ext import Application, CommandHandler, filters

from bot import callbacks
from bot.backtest_args import argument_words, parse_backtest_args
from bot.capital import capital_for, capital_text
from bot.cards import metrics_rows, progress_text
from bot.chart_words import chart_words
from bot.context import AppContext
from bot.delivery.scope import Scope, current
from bot.guards import SOMETHING_WRONG, UserFacingError, button, command, refusal
from bot.i18n import t, tn
from bot.render import MAX_CAPTION, clip, esc
from bot.selection import bot_strategy, selected_strategy
from engine.backtest_service import BacktestRequest
from engine.errors import CodedError
from engine.pool import BacktestBusyError
from engine.strategy import Strategy

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger(__name__)


def metrics_card(report: object, rows: list[tuple[str, str]]) -> str:
    demo = " " + t("<i>(demo market)</i>") if getattr(report, "demo", False) else ""
    head = t("📈 <b>Backtest: {symbol}</b> {timeframe} · {days} · {candles}",
             symbol=esc(getattr(report, "symbol", "")), timeframe=esc(getattr(report, "timeframe", "")),
             days=tn("{n} day", "{n} days", int(getattr(report, "days", 0))),
             candles=tn("{n} candle", "{n} candles", int(getattr(report, "candles", 0)))) + demo
    return "\n".join([head, "", *(f"{esc(k)}: <b>{esc(v)}</b>" for k, v in rows)])


async def run_backtest_for(update: Update, context: AppContext, bot: Any, strategy: Strategy, args: list[str]) -> None:
    """Backtest `bot`'s strategy; used by /backtest and the bot's Backtest button.

    The arguments are checked here (a refusal is the command's reply); the run itself goes on in
    the background, so the user's next message is not held up behind it (a user's updates are
    processed one at a time). Progress, result and chart are queued in the outbox under this
    update's scope, so a result that is ready while Telegram is unreachable is delivered later.
    """
    services = context.services
    request = parse_backtest_args(args, strategy.finest_timeframe)
    amount, source = await capital_for(services, update.effective_user.id, request.capital)
    # the chart in the user's words
    request = replace(request, capital=float(amount), bot_name=bot.name, words=chart_words())
    if services.backtests.is_busy(update.effective_user.id):  # refused before any progress message
        raise BacktestBusyError("backtest.busy")
    chat_id = update.effective_chat.id
    scope = current()
    (progress_id,) = await scope.outbox.add([scope.outbox.message(chat_id, t("⏳ Preparing backtest…"),
                                                                   key=scope.next_key())])
    run = _run(services, scope, chat_id, progress_id, update.effective_user.id, bot, strategy, request, source)
    services.background.spawn(run, name=f"backtest-{update.effective_user.id}")


async def _run(services: Services, scope: Scope, chat_id: int, progress_id: int, user_id: int, bot: Any,
               strategy: Strategy, request: BacktestRequest, source: str) -> None:
    outbox = scope.outbox

    async def say(*rows: Any) -> None:
        await outbox.add(list(rows))

    def progress_edit(text: str) -> Any:
        return outbox.edit(chat_id, text, edit_of=progress_id, key=scope.next_key())

    async def progress(stage: str, candles: int) -> None:
        await say(progress_edit("⏳ " + esc(progress_text(stage, candles))))

    try:
        report = await services.backtests.run(user_id, bot.bot_id, strategy, request, progress)
    except (CodedError, UserFacingError) as exc:
        await say(progress_edit(t("❌ Backtest failed.")), outbox.message(chat_id, "⚠️ " + esc(refusal(exc)),
                                                                         key=scope.next_key()))
        return
    except Exception:
        log.exception("backtest for user %s failed unexpectedly", user_id)
        await say(progress_edit(t("❌ Backtest failed.")),
                  outbox.message(chat_id, t(SOMETHING_WRONG), key=scope.next_key()))
        return
    card = metrics_card(report, metrics_rows(report)) + "\n" + esc(capital_text(report.capital, source))
    rows = [progress_edit(t("✅ Backtest complete."))]
    if len(card) <= MAX_CAPTION:
        rows.append(outbox.photo(chat_id, report.chart_png, caption=card, key=scope.next_key()))
    else:
        rows += [outbox.message(chat_id, clip(card), key=scope.next_key()),
                 outbox.photo(chat_id, report.chart_png, key=scope.next_key())]
    await say(*rows)


@command
async def backtest_cmd(update: Update, context: AppContext) -> None:
    """/backtest [token] [timeframe] [days]."""
    args = argument_words(context.args or [])  # the grammar's refusal before "select a bot first"
    bot, strategy = await selected_strategy(update, context)
    await run_backtest_for(update, context, bot, strategy, args)


@button(callbacks.BOT_BACKTEST)
async def backtest_button(update: Update, context: AppContext, bot_id: int) -> None:
    """A bot's Backtest button: backtest that bot with the default arguments (the selection stays)."""
    bot, strategy = await bot_strategy(update, context, bot_id)
    await run_backtest_for(update, context, bot, strategy, [])


def register(app: Application) -> None:
    app.add_handler(CommandHandler("backtest", backtest_cmd, filters=filters.ChatType.PRIVATE))
    app.add_handler(backtest_button.handler())
