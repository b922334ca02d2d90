"""/stopall: pause every agent and sell its open paper positions, after one confirmation."""

from __future__ import annotations

from telegram import InlineKeyboardButton as Btn
from telegram import InlineKeyboardMarkup as Markup
from telegram import Update
from telegram.ext import Application, CommandHandler, filters

from bot import callbacks
from bot.context import AppContext
from bot.guards import button, command, edit, reply
from bot.i18n import t, tn
from bot.render import esc, signed


def confirm_keyboard() -> Markup:
    return Markup([[Btn(t("🛑 Yes, stop everything"), callback_data=callbacks.STOP_ALL_OK.build()),
                    Btn(t("✖️ Keep running"), callback_data=callbacks.STOP_ALL_NO.build())]])


@command
async def stopall_cmd(update: Update, context: AppContext) -> None:
    """/stopall: say what will stop, then ask."""
    uid = update.effective_user.id
    portfolio = await context.services.manager.get_user_ai_portfolio(uid)
    agents = [a for a in portfolio["agents"] if a["status"] != "closed"]
    active = sum(1 for a in agents if a["status"] == "active")
    positions = 0
    for agent in agents:
        positions += len(await context.services.manager.open_positions(agent["agent_id"], uid))
    if not active and not positions:
        await reply(update, t("Nothing is running: no active agent and no open position."))
        return
    await reply(update, "\n".join([
        t("🛑 <b>Stop everything?</b>"), "",
        t("• Active agents to pause: {n}", n=active),
        t("• Open paper positions to sell at the current price: {n}", n=positions), "",
        t("Balances stay where they are; resume agents one by one from /ai_status."),
    ]), confirm_keyboard())


@button(callbacks.STOP_ALL_OK)
async def confirm_button(update: Update, context: AppContext) -> None:
    """Stop: pause and close through the agent loop (the same exit fill as a stop-loss)."""
    report = await context.services.agent_loop.stop_all(update.effective_user.id)
    await context.services.notifier.flush()  # the sell receipts go out with the answer
    if not report.paused and not report.closed and not report.left_open:
        await edit(update, t("Nothing was running any more: no agent paused, no position sold."))
        return
    lines = [t("🛑 <b>Stopped.</b>"), "",
             tn("{n} agent paused.", "{n} agents paused.", report.paused),
             tn("{n} position sold, P&amp;L {pnl} USDC.", "{n} positions sold, P&amp;L {pnl} USDC.", report.closed,
                pnl=signed(report.pnl))]
    if report.left_open:
        lines.append(t("⚠️ No price right now for {symbols}: kept open with its stop-loss and take-profit; "
                       "send /stopall again in a minute.", symbols=esc(", ".join(sorted(set(report.left_open))))))
    await edit(update, "\n".join(lines))


@button(callbacks.STOP_ALL_NO)
async def keep_button(update: Update, context: AppContext) -> None:
    await edit(update, t("Nothing was stopped: your agents keep running."))


def register(app: Application) -> None:
    app.add_handler(CommandHandler("stopall", stopall_cmd, filters=filters.ChatType.PRIVATE))
    app.add_handler(confirm_button.handler())
    app.add_handler(keep_button.handler())
