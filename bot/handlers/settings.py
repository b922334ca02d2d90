"""/settings: notification preferences per kind (signals, trades, spawns, risk): on / silent / off."""

from __future__ import annotations

from telegram import Update
from telegram.ext import Application, CommandHandler, filters

from bot import callbacks, keyboards
from bot.context import AppContext
from bot.guards import button, command, edit, reply
from storage.notify import NotifyKind, NotifyLevel

EXPLAIN = {NotifyLevel.ON: "🔔 on", NotifyLevel.SILENT: "🔕 silent", NotifyLevel.OFF: "🚫 off"}


async def _prefs(context: AppContext, uid: int) -> dict[str, str]:
    return (await context.services.users.get_prefs(uid)).as_dict()


def _text(prefs: dict[str, str]) -> str:
    rows = [f"• {k}: {EXPLAIN[NotifyLevel(v)]}" for k, v in prefs.items()]
    return "⚙️ <b>Notifications</b>\n\n" + "\n".join(rows) + (
        "\n\n<i>silent</i> delivers without a sound; <i>off</i> sends nothing. Tap to change.")


async def show_settings(update: Update, context: AppContext, *, edit_in_place: bool) -> None:
    """The preferences screen, as a new message or in place of the pressed one."""
    prefs = await _prefs(context, update.effective_user.id)
    await (edit if edit_in_place else reply)(update, _text(prefs), keyboards.settings_menu(prefs))


@command
async def settings_cmd(update: Update, context: AppContext) -> None:
    """/settings."""
    await show_settings(update, context, edit_in_place=False)


@button(callbacks.MENU_SETTINGS)
async def menu_button(update: Update, context: AppContext) -> None:
    """The main menu's Settings."""
    await show_settings(update, context, edit_in_place=False)


@button(callbacks.SETTING)
async def setting_button(update: Update, context: AppContext, kind: NotifyKind, level: NotifyLevel) -> None:
    await context.services.users.set_pref(update.effective_user.id, kind, level)
    await show_settings(update, context, edit_in_place=True)


def register(app: Application) -> None:
    app.add_handler(CommandHandler("settings", settings_cmd, filters=filters.ChatType.PRIVATE))
    app.add_handler(menu_button.handler())
    app.add_handler(setting_button.handler())
