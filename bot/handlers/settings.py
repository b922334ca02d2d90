"""/settings: notification preferences per kind (signals, trades, spawns, risk): on / silent / off."""

from __future__ import annotations

from telegram import Update
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, filters

from bot import keyboards
from bot.callbacks import match, pattern
from bot.context import AppContext
from bot.guards import button, command, edit, reply

KINDS = ("signals", "trades", "spawns", "risk")
EXPLAIN = {"on": "🔔 on", "silent": "🔕 silent", "off": "🚫 off"}


async def _prefs(context: AppContext, uid: int) -> dict[str, str]:
    prefs = await context.services.users.get_prefs(uid)
    return {k: getattr(prefs, k) for k in KINDS}


def _text(prefs: dict[str, str]) -> str:
    rows = [f"• {k}: {EXPLAIN[v]}" for k, v in prefs.items()]
    return "⚙️ <b>Notifications</b>\n\n" + "\n".join(rows) + (
        "\n\n<i>silent</i> delivers without a sound; <i>off</i> sends nothing. Tap to change.")


async def show_settings(update: Update, context: AppContext, *, edit_in_place: bool) -> None:
    prefs = await _prefs(context, update.effective_user.id)
    await (edit if edit_in_place else reply)(update, _text(prefs), keyboards.settings_menu(prefs))


@command
async def settings_cmd(update: Update, context: AppContext) -> None:
    """/settings."""
    await show_settings(update, context, edit_in_place=False)


@button
async def setting_button(update: Update, context: AppContext) -> None:
    kind, value = match("setting", update.callback_query.data) or ("", "")
    await context.services.users.set_pref(update.effective_user.id, kind, value)
    await show_settings(update, context, edit_in_place=True)


def register(app: Application) -> None:
    app.add_handler(CommandHandler("settings", settings_cmd, filters=filters.ChatType.PRIVATE))
    app.add_handler(CallbackQueryHandler(setting_button, pattern=pattern("setting")))
