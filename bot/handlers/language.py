"""The language of every update: set before any other handler runs (handler group -3)."""

from __future__ import annotations

from telegram import Update
from telegram.ext import Application, TypeHandler

from bot import i18n
from bot.context import AppContext

LANGUAGE_GROUP = -3  # before the edit guard (-2) and user registration (-1): both may answer


async def set_language(update: object, context: AppContext) -> None:
    """Answer this update in its sender's language (their /settings choice, else their app's)."""
    user = update.effective_user if isinstance(update, Update) else None
    if user is None or user.is_bot:
        i18n.activate(i18n.DEFAULT)
        return
    try:
        language = await context.services.languages.of_sender(user.id, user.language_code)
    except Exception:  # the database is down: answer in the app's language rather than not at all
        language = i18n.resolve(None, user.language_code)
    i18n.activate(language)


def register(app: Application) -> None:
    app.add_handler(TypeHandler(Update, set_language), group=LANGUAGE_GROUP)
