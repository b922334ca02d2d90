"""/settings: notification preferences per kind (on / silent / off) and the language."""

from __future__ import annotations

from telegram import Update
from telegram.ext import Application, CommandHandler, filters

from bot import callbacks, i18n, keyboards
from bot.context import AppContext
from bot.guards import button, command, edit, reply
from bot.i18n import N_, t
from bot.keyboards import KIND_NAMES, LEVEL_NAMES
from storage.notify import NotifyKind, NotifyLevel

ICONS = {NotifyLevel.ON: "🔔", NotifyLevel.SILENT: "🔕", NotifyLevel.OFF: "🚫"}
AUTOMATIC = N_("automatic ({language}, from your Telegram app)")


async def _prefs(context: AppContext, uid: int) -> dict[str, str]:
    return (await context.services.users.get_prefs(uid)).as_dict()


def _text(prefs: dict[str, str], chosen: str | None) -> str:
    rows = [f"• {t(KIND_NAMES[NotifyKind(k)])}: {ICONS[NotifyLevel(v)]} {t(LEVEL_NAMES[NotifyLevel(v)])}"
            for k, v in prefs.items()]
    language = (i18n.NATIVE_NAMES[chosen] if chosen is not None
                else t(AUTOMATIC, language=i18n.NATIVE_NAMES[i18n.current()]))
    return "\n".join([
        t("⚙️ <b>Notifications</b>"), "", *rows, "",
        t("<i>silent</i> delivers without a sound; <i>off</i> sends nothing. Tap to change."), "",
        t("🌐 <b>Language</b>: {language}", language=language),
    ])


async def show_settings(update: Update, context: AppContext, *, edit_in_place: bool) -> None:
    """The preferences screen, as a new message or in place of the pressed one."""
    uid = update.effective_user.id
    prefs = await _prefs(context, uid)
    chosen = context.services.languages.chosen(uid)
    await (edit if edit_in_place else reply)(update, _text(prefs, chosen), keyboards.settings_menu(prefs, chosen))


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


@button(callbacks.LANGUAGE)
async def language_button(update: Update, context: AppContext, code: str) -> None:
    """Choose a language (or "auto"); the screen is redrawn in it at once."""
    user = update.effective_user
    chosen = None if code == "auto" else code
    await context.services.languages.choose(user.id, chosen)
    i18n.activate(i18n.resolve(chosen, user.language_code))
    await show_settings(update, context, edit_in_place=True)


def register(app: Application) -> None:
    app.add_handler(CommandHandler("settings", settings_cmd, filters=filters.ChatType.PRIVATE))
    app.add_handler(menu_button.handler())
    app.add_handler(setting_button.handler())
    app.add_handler(language_button.handler())
