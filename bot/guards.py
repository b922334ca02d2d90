"""Handler guards: private chats only, user registration, buttons answered first, typed errors -> clear replies."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable

from telegram import CallbackQuery, InlineKeyboardMarkup, Update
from telegram.constants import ChatType
from telegram.error import BadRequest, NetworkError
from telegram.ext import CallbackQueryHandler

from bot.callbacks import CallbackKind
from bot.context import AppContext
from bot.delivery.scope import current
from bot.i18n import N_, t
from bot.messages import describe
from bot.render import esc
from engine.errors import CodedError

log = logging.getLogger(__name__)
Handler = Callable[[Update, AppContext], Awaitable[None]]
ButtonFunc = Callable[..., Awaitable[None]]  # (update, context, *the parsed callback arguments)
# Marked for the catalogs; translated where shown, `t(PRIVATE_ONLY)`.
PRIVATE_ONLY = N_("🔒 Agents can only be controlled in a private chat with me.")
STALE_BUTTON = N_("This button is no longer valid.")
SOMETHING_WRONG = N_("⚠️ Something went wrong on my side. Please try again in a moment.")
MAX_TOAST = 190  # Telegram cuts callback answers at 200 characters


class UserFacingError(Exception):
    """A refusal from the bot layer itself (bad arguments); its text, already in the user's
    language (`t(...)` where it is raised), is shown escaped."""


async def reply(update: Update, text: str, markup: InlineKeyboardMarkup | None = None) -> int:
    """Queue an HTML reply (text already safe) in the update's chat; returns its outbox id.

    The outbox stores it before this returns and the sender delivers it through 429s and
    outages (`bot.delivery`); the update's scope keys it, so processing the update again
    after a crash does not send it twice. A press on an inline message (no chat) is answered
    in the user's private chat.
    """
    chat_id = _chat_of(update)
    if chat_id is None:
        return 0
    scope = current()
    (outbox_id,) = await scope.outbox.add([scope.outbox.message(chat_id, text, markup, key=scope.next_key())])
    return outbox_id


async def edit(update: Update, text: str, markup: InlineKeyboardMarkup | None = None) -> None:
    """Edit the pressed message in place (queued like a reply); an identical refresh is not an error."""
    query = update.callback_query
    if query is None:
        return
    scope = current()
    if query.inline_message_id is not None:
        row = scope.outbox.edit(query.from_user.id, text, markup, inline_message_id=query.inline_message_id,
                                key=scope.next_key())
    elif query.message is not None:
        row = scope.outbox.edit(query.message.chat.id, text, markup, message_id=query.message.message_id,
                                key=scope.next_key())
    else:
        return
    await scope.outbox.add([row])


def update_key(update: Update) -> str:
    """The idempotency key of a money operation an update asks for: processing the update again
    (after a crash, the inbox does) repeats nothing."""
    return f"tg:{update.update_id}"


def _chat_of(update: Update) -> int | None:
    if update.effective_chat is not None:
        return update.effective_chat.id
    return update.effective_user.id if update.effective_user is not None else None


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
        await services.users.ensure(user.id, user.username, user.first_name, language_code=user.language_code)
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
            await reply(update, t(PRIVATE_ONLY))
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
            await _answer(query, t(PRIVATE_ONLY), alert=True)
            return
        # PTB hands a query with empty data to the first patterned handler, so the data is
        # parsed again strictly here (the 64-byte limit included).
        args = () if self.kind is None else self.kind.parse(query.data)
        if args is None:
            await _answer(query, t(STALE_BUTTON))
            return
        toast = t(self.toast) if self.toast else None
        if not await _answer(query, toast):
            # The Bot API did not take it (outage): retry briefly in the background. Telegram
            # drops answers after a few seconds, so the work does not wait for it.
            context.services.background.spawn(_answer_later(query, toast), name="answer-callback")
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
    `toast` is an English constant marked with `N_`, translated at each press.
    """
    return lambda func: Button(kind, func, toast)


async def _answer(query: CallbackQuery, text: str | None = None, alert: bool = False) -> bool:
    """Answer a press; False when the Bot API could not be reached (worth a retry)."""
    try:
        await query.answer(text[:MAX_TOAST] if text else None, show_alert=alert)
    except BadRequest:  # too old (the bot was down): the press is still handled
        log.debug("callback query already answered or expired")
    except NetworkError as exc:  # the answer only stops a spinner: the work matters more
        log.info("could not answer a callback query (%s)", type(exc).__name__)
        return False
    return True


ANSWER_RETRIES = (0.5, 1.0, 2.0, 4.0)  # ~7.5 s in all: Telegram refuses answers much later than that


async def _answer_later(query: CallbackQuery, text: str | None) -> None:
    for delay in ANSWER_RETRIES:
        await asyncio.sleep(delay)
        if await _answer(query, text):
            return


def refusal(exc: Exception) -> str:
    """The words for a refusal: a lower layer's coded error, or the bot layer's own text."""
    return describe(exc) if isinstance(exc, CodedError) else str(exc)
