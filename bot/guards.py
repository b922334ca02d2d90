"""Handler guards: private chats only, user registration, buttons answered first, typed errors -> clear replies."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from telegram import Bot, CallbackQuery, InlineKeyboardMarkup, Update
from telegram.constants import ChatType
from telegram.error import BadRequest, Forbidden, NetworkError
from telegram.ext import CallbackQueryHandler

from bot.callbacks import CallbackKind
from bot.context import AppContext
from bot.messages import describe
from bot.render import clip, esc
from engine.errors import CodedError

log = logging.getLogger(__name__)
Handler = Callable[[Update, AppContext], Awaitable[None]]
ButtonFunc = Callable[..., Awaitable[None]]  # (update, context, *the parsed callback arguments)
PRIVATE_ONLY = "🔒 Agents can only be controlled in a private chat with me."
STALE_BUTTON = "This button is no longer valid."
MAX_TOAST = 190  # Telegram cuts callback answers at 200 characters


class UserFacingError(Exception):
    """A refusal from the bot layer itself (bad arguments); its text is shown escaped."""


# The reply calls go through `Bot.do_api_request` without a return type: the Bot API echoes the
# whole message back, and parsing it (keyboard included) into PTB objects was the largest share
# of the bot's CPU per reply, for a result no handler reads (benchmarks/bot_load.py).
# `build_application` silences PTB's "use Bot.send_message" hint for exactly these two calls.
RAW_METHODS = ("sendMessage", "editMessageText")


def _with_defaults(bot: Bot, params: dict[str, Any]) -> dict[str, Any]:
    """Apply the application's `Defaults` (parse mode, link previews) to a raw call's parameters.

    PTB fills its Defaults in only for its typed methods; `do_api_request` sends its arguments
    as given, so the raw calls read them here instead of repeating them.
    """
    defaults = getattr(bot, "defaults", None)
    if defaults is not None:
        if defaults.parse_mode is not None:
            params.setdefault("parse_mode", defaults.parse_mode)
        if defaults.link_preview_options is not None:
            params.setdefault("link_preview_options", defaults.link_preview_options)
    return params


async def reply(update: Update, text: str, markup: InlineKeyboardMarkup | None = None) -> None:
    """Reply with HTML (text already safe) in the update's chat.

    A network error (Bot API unreachable for a moment) is retried with backoff so the
    user's answer is not lost; Telegram's refusals (BadRequest, Forbidden) are not.
    """
    msg = update.effective_message
    if msg is None:
        return
    bot = msg.get_bot()
    params = _with_defaults(bot, {"chat_id": msg.chat_id, "text": clip(text)})
    if markup is not None:
        params["reply_markup"] = markup
    for attempt in range(4):
        try:
            await bot.do_api_request("sendMessage", api_kwargs=params)
            return
        except (BadRequest, Forbidden):
            raise
        except NetworkError:
            if attempt == 3:
                raise
            await asyncio.sleep(0.5 * 2**attempt)


async def edit(update: Update, text: str, markup: InlineKeyboardMarkup | None = None) -> None:
    """Edit the pressed message in place; an identical refresh is not an error."""
    query = update.callback_query
    if query is None:
        return
    bot = query.get_bot()
    params = _with_defaults(bot, {"text": clip(text)})
    if query.inline_message_id is not None:
        params["inline_message_id"] = query.inline_message_id
    elif query.message is not None:
        params |= {"chat_id": query.message.chat.id, "message_id": query.message.message_id}
    else:
        return
    if markup is not None:
        params["reply_markup"] = markup
    try:
        await bot.do_api_request("editMessageText", api_kwargs=params)
    except BadRequest as exc:
        if "not modified" not in str(exc).lower():
            raise


async def register_user(update: object, context: AppContext) -> None:
    """Remember everyone who writes to the bot or presses a button in a private chat (once, then cached).

    Runs in handler group -1 for every update (`build_application`), before the feature
    handlers, and never stops them: group chats are still refused by `command` and `button`.
    """
    if not isinstance(update, Update) or (update.message is None and update.callback_query is None):
        return
    user, chat = update.effective_user, update.effective_chat
    if user is None or user.is_bot or (chat is not None and chat.type != ChatType.PRIVATE):
        return
    services = context.services
    if user.id in services.known_users:
        return
    try:
        await services.users.ensure(user.id, user.username, user.first_name)
    except Exception:
        # Not raised: the error handler would apologise, and the feature handler that needs the
        # row reports its own failure; the next update tries again (the id is not cached).
        log.warning("could not register user %s", user.id, exc_info=True)
        return
    services.known_users.add(user.id)


def command(func: Handler) -> Handler:
    """For message handlers: refuse group chats, answer typed errors."""

    @functools.wraps(func)
    async def wrapper(update: Update, context: AppContext) -> None:
        if update.effective_user is None or update.effective_chat is None:
            return
        if update.effective_chat.type != ChatType.PRIVATE:
            await reply(update, PRIVATE_ONLY)
            return
        try:
            await func(update, context)
        except (CodedError, UserFacingError) as exc:
            await reply(update, "⚠️ " + esc(refusal(exc)))

    return wrapper


class Button:
    """A button's callback: parse the data strictly, answer the query first, then do the work.

    Telegram shows a spinner until the query is answered and drops an answer that comes too
    late, so the answer (empty, or the `toast` given up front) goes out before the handler
    runs; a slow handler (a backtest) then reports through messages and edits. For the same
    reason a refusal raised by the handler is a message, not an alert. Only the checks made
    before any work (group chat, data of no known kind) are answered with their own text.
    """

    def __init__(self, kind: CallbackKind | None, func: ButtonFunc, toast: str | None) -> None:
        self.kind = kind
        self.func = func
        self.toast = toast
        functools.update_wrapper(self, func)

    async def __call__(self, update: Update, context: AppContext) -> None:
        query = update.callback_query
        if query is None or update.effective_user is None:
            return
        chat = update.effective_chat
        if chat is not None and chat.type != ChatType.PRIVATE:
            await _answer(query, PRIVATE_ONLY, alert=True)
            return
        # PTB hands a query with empty data to the first patterned handler, so the data is
        # parsed again strictly here (the 64-byte limit included).
        args = () if self.kind is None else self.kind.parse(query.data)
        if args is None:
            await _answer(query, STALE_BUTTON)
            return
        await _answer(query, self.toast)
        try:
            await self.func(update, context, *args)
        except (CodedError, UserFacingError) as exc:
            await reply(update, "⚠️ " + esc(refusal(exc)))

    def handler(self) -> CallbackQueryHandler[AppContext, None]:
        """The PTB handler routing this button's kind (every press when the kind is None)."""
        return CallbackQueryHandler(self, pattern=None if self.kind is None else self.kind.pattern)


def button(kind: CallbackKind | None, *, toast: str | None = None) -> Callable[[ButtonFunc], Button]:
    """Decorate `async def f(update, context, *args)` as the handler of callback `kind`.

    `args` are the kind's parsed arguments; register it with `app.add_handler(f.handler())`.
    """
    return lambda func: Button(kind, func, toast)


async def _answer(query: CallbackQuery, text: str | None = None, alert: bool = False) -> None:
    try:
        await query.answer(text[:MAX_TOAST] if text else None, show_alert=alert)
    except BadRequest:  # too old (the bot was down): the press is still handled
        log.debug("callback query already answered or expired")
    except NetworkError:  # the answer only stops a spinner: the work matters more
        log.info("could not answer a callback query", exc_info=True)


def refusal(exc: Exception) -> str:
    """The words for a refusal: a lower layer's coded error, or the bot layer's own text."""
    return describe(exc) if isinstance(exc, CodedError) else str(exc)
