"""Handler decorators: private chats only, user registration, typed errors -> clear replies."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from telegram import InlineKeyboardMarkup, Update
from telegram.constants import ChatType, ParseMode
from telegram.error import BadRequest, Forbidden, NetworkError

from agents.errors import AgentError
from bot.context import AppContext
from bot.render import clip, esc

log = logging.getLogger(__name__)
Handler = Callable[[Update, AppContext], Awaitable[None]]
PRIVATE_ONLY = "🔒 Agents can only be controlled in a private chat with me."


class UserFacingError(Exception):
    """A refusal from the bot layer itself (bad arguments); its text is shown escaped."""


# The reply calls go through `Bot.do_api_request` without a return type: the Bot API echoes the
# whole message back, and parsing it (keyboard included) into PTB objects was the largest share
# of the bot's CPU per reply, for a result no handler reads (benchmarks/bot_load.py).
# `build_application` silences PTB's "use Bot.send_message" hint for exactly these two calls.
RAW_METHODS = ("sendMessage", "editMessageText")
_NO_PREVIEW = {"is_disabled": True}


async def reply(update: Update, text: str, markup: InlineKeyboardMarkup | None = None) -> None:
    """Reply with HTML (text already safe) in the update's chat.

    A network error (Bot API unreachable for a moment) is retried with backoff so the
    user's answer is not lost; Telegram's refusals (BadRequest, Forbidden) are not.
    """
    msg = update.effective_message
    if msg is None:
        return
    params: dict[str, Any] = {"chat_id": msg.chat_id, "text": clip(text), "parse_mode": ParseMode.HTML,
                              "link_preview_options": _NO_PREVIEW}
    if markup is not None:
        params["reply_markup"] = markup
    for attempt in range(4):
        try:
            await msg.get_bot().do_api_request("sendMessage", api_kwargs=params)
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
    params: dict[str, Any] = {"text": clip(text), "parse_mode": ParseMode.HTML, "link_preview_options": _NO_PREVIEW}
    if query.inline_message_id is not None:
        params["inline_message_id"] = query.inline_message_id
    elif query.message is not None:
        params |= {"chat_id": query.message.chat.id, "message_id": query.message.message_id}
    else:
        return
    if markup is not None:
        params["reply_markup"] = markup
    try:
        await query.get_bot().do_api_request("editMessageText", api_kwargs=params)
    except BadRequest as exc:
        if "not modified" not in str(exc).lower():
            raise


async def _register(update: Update, context: AppContext) -> int:
    user = update.effective_user
    assert user is not None
    services = context.services
    if user.id not in services.known_users:
        await services.users.ensure(user.id, user.username, user.first_name)
        services.known_users.add(user.id)
    return user.id


def command(func: Handler) -> Handler:
    """For message handlers: refuse group chats, register the user, answer typed errors."""

    @functools.wraps(func)
    async def wrapper(update: Update, context: AppContext) -> None:
        if update.effective_user is None or update.effective_chat is None:
            return
        if update.effective_chat.type != ChatType.PRIVATE:
            await reply(update, PRIVATE_ONLY)
            return
        await _register(update, context)
        try:
            await func(update, context)
        except (AgentError, UserFacingError) as exc:
            await reply(update, "⚠️ " + esc(exc))
        except _domain_errors() as exc:
            await reply(update, "⚠️ " + esc(exc))

    return wrapper


def button(func: Handler) -> Handler:
    """For callback handlers: answer the query, refuse groups, register, map typed errors to alerts."""

    @functools.wraps(func)
    async def wrapper(update: Update, context: AppContext) -> None:
        query = update.callback_query
        if query is None or update.effective_user is None:
            return
        chat = update.effective_chat
        if chat is not None and chat.type != ChatType.PRIVATE:
            await query.answer(PRIVATE_ONLY, show_alert=True)
            return
        await _register(update, context)
        try:
            await func(update, context)
        except (AgentError, UserFacingError, *_domain_errors()) as exc:
            await _answer(query, context, "⚠️ " + str(exc)[:190], alert=True)
            return
        await _answer(query, context)

    return wrapper


async def _answer(query: Any, context: AppContext, text: str | None = None, alert: bool = False) -> None:
    # Telegram shows a spinner until the query is answered, and answering twice is an
    # error, so a handler that already answered through `toast` is skipped here.
    if getattr(context, "answered", False):
        return
    try:
        await query.answer(text, show_alert=alert)
    except BadRequest:
        log.debug("callback query already answered or expired")


async def toast(update: Update, context: AppContext, text: str, alert: bool = False) -> None:
    """Answer the pressed button with a short text (once)."""
    query = update.callback_query
    if query is None or getattr(context, "answered", False):
        return
    await query.answer(text[:190], show_alert=alert)
    context.answered = True  # type: ignore[attr-defined]


@functools.cache
def _domain_errors() -> tuple[type[Exception], ...]:
    """Typed, user-facing errors of the lower layers (imported lazily to keep startup light)."""
    errors: list[type[Exception]] = []
    for mod, name in (("agents.design.strategy_bots", "StrategyBotError"), ("engine.strategy", "StrategyError"),
                      ("engine.backtest_service", "BacktestServiceError"),
                      ("engine.backtest_service", "BacktestArgsError"),
                      ("engine.simulate.simulations", "SimulationError")):
        try:
            module = __import__(mod, fromlist=[name])
            errors.append(getattr(module, name))
        except (ImportError, AttributeError):
            continue
    return tuple(errors)
