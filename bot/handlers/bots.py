"""/bots and /newbot: strategy bots (at most `MAX_BOTS`); plain text while a bot is selected goes to the designer."""

from __future__ import annotations

import asyncio
import contextlib
import json

from telegram import Update
from telegram.constants import ChatAction
from telegram.ext import Application, CommandHandler, MessageHandler, filters

from agents.design.strategy_bots import MAX_BOTS
from agents.screens import BotScreen
from bot import callbacks, i18n, keyboards
from bot.commands import strategy_example
from bot.context import AppContext
from bot.design_text import design_text
from bot.guards import UserFacingError, button, command, edit, reply
from bot.i18n import t
from bot.render import clip, cost_warning_text, esc
from bot.strategy_text import describe_strategy
from engine.core import cost_warnings

RENAMING = "renaming_bot"
RENAME_SECONDS = 15 * 60  # an open rename prompt (stored: any replica takes the answer)
MAX_TEXT_IN = 2000


def _bot_text(screen: BotScreen) -> str:
    strategy = screen.strategy.strategy
    name = esc(screen.bot.name)
    lines = [t("🧠 <b>{name}</b> ✅ selected", name=name) if screen.selected else f"🧠 <b>{name}</b>"]
    if screen.strategy.invalid:
        lines += ["", t("⚠️ The stored strategy is no longer valid. Describe a strategy in a message to replace it.")]
    elif strategy is None:
        lines += ["", t("No strategy yet. Describe one in a message, for example:"), strategy_example()]
    else:
        config = json.dumps(strategy.to_config(), indent=1)
        lines += ["", esc(describe_strategy(strategy)), "", f"<pre>{esc(config)}</pre>"]
    return clip("\n".join(lines))


async def show_bots(update: Update, context: AppContext, *, edit_in_place: bool) -> None:
    services = context.services
    uid = update.effective_user.id
    bots = await services.bots.list(uid)
    selected = await services.bots.selected(uid)
    if not bots:
        text = t("🧠 You have no strategy bots yet. Create one to design a strategy by chatting.")
    else:
        text = (t("🧠 <b>Your strategy bots</b> (max {max_bots})\n\n"
                  "Tap one to see its strategy, backtest or simulate it.", max_bots=MAX_BOTS)
                + ("\n" + t("Messages you send now edit <b>{name}</b>.", name=esc(selected.name)) if selected else ""))
    markup = keyboards.bots_list(bots, selected.bot_id if selected else None, MAX_BOTS)
    await (edit if edit_in_place else reply)(update, text, markup)


async def show_bot(update: Update, context: AppContext, bot_id: int, *, edit_in_place: bool) -> None:
    services = context.services
    uid = update.effective_user.id
    screen = await services.screens.bot(uid, bot_id)
    await (edit if edit_in_place else reply)(update, _bot_text(screen),
                                             keyboards.bot_actions(screen.bot.bot_id, screen.selected))


@command
async def bots_cmd(update: Update, context: AppContext) -> None:
    """/bots."""
    await show_bots(update, context, edit_in_place=False)


@command
async def newbot_cmd(update: Update, context: AppContext) -> None:
    """/newbot [name]."""
    name = " ".join(context.args or []).strip() or None
    await _create(update, context, name)


async def _create(update: Update, context: AppContext, name: str | None) -> None:
    bot = await context.services.bots.create(update.effective_user.id, name)
    await reply(update, t("✅ Strategy bot <b>{name}</b> created and selected.\n\n"
                          "Now describe your strategy in plain words, for example:\n{example}",
                          name=esc(bot.name), example=strategy_example()),
                keyboards.bot_actions(bot.bot_id, True))


async def _menu(update: Update, context: AppContext) -> None:
    """The main menu's Strategy bots, Backtest and Simulate: all start from the list of bots."""
    await show_bots(update, context, edit_in_place=False)


MENU_BUTTONS = [button(kind)(_menu) for kind in (callbacks.MENU_BOTS, callbacks.MENU_BACKTEST, callbacks.MENU_SIMULATE)]


@button(callbacks.BOT_LIST)
async def list_button(update: Update, context: AppContext) -> None:
    await show_bots(update, context, edit_in_place=True)


@button(callbacks.BOT_NEW)
async def new_button(update: Update, context: AppContext) -> None:
    await _create(update, context, None)


@button(callbacks.BOT_SHOW)
async def show_button(update: Update, context: AppContext, bot_id: int) -> None:
    await show_bot(update, context, bot_id, edit_in_place=True)


@button(callbacks.BOT_SELECT)
async def select_button(update: Update, context: AppContext, bot_id: int) -> None:
    await context.services.bots.select(update.effective_user.id, bot_id)
    await show_bot(update, context, bot_id, edit_in_place=True)


@button(callbacks.BOT_RENAME)
async def rename_button(update: Update, context: AppContext, bot_id: int) -> None:
    bot = await context.services.bots.get(update.effective_user.id, bot_id)
    await context.services.shared.put(update.effective_user.id, RENAMING, bot.bot_id, RENAME_SECONDS)
    await reply(update, t("Send the new name for <b>{name}</b> (1–32 characters), or /cancel.", name=esc(bot.name)))


@button(callbacks.BOT_DELETE)
async def delete_button(update: Update, context: AppContext, bot_id: int) -> None:
    bot = await context.services.bots.get(update.effective_user.id, bot_id)
    await edit(update, t("Delete <b>{name}</b> and its conversation? Running simulations of it stop.",
                         name=esc(bot.name)), keyboards.confirm_delete_bot(bot.bot_id))


@button(callbacks.BOT_DELETE_OK)
async def delete_ok_button(update: Update, context: AppContext, bot_id: int) -> None:
    uid = update.effective_user.id
    bot = await context.services.bots.get(uid, bot_id)
    await context.services.simulations.stop_for_bot(uid, bot.bot_id)
    await context.services.bots.delete(uid, bot.bot_id)
    await edit(update, t("🗑 Deleted <b>{name}</b>.", name=esc(bot.name)))


async def _typing(update: Update, context: AppContext, stop: asyncio.Event) -> None:
    """Keep Telegram's 'typing…' indicator on while the designer works (it expires after ~5 s)."""
    while not stop.is_set():
        with contextlib.suppress(Exception):
            await context.bot.send_chat_action(update.effective_chat.id, ChatAction.TYPING)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), 4.0)


@command
async def text_message(update: Update, context: AppContext) -> None:
    """Plain text: a pending rename, else a message to the selected bot's strategy designer."""
    services = context.services
    uid = update.effective_user.id
    text = (update.effective_message.text or "").strip()
    renaming = await services.shared.get(uid, RENAMING)
    if renaming is not None and await services.shared.take(uid, RENAMING, expected=renaming) is not None:
        bot = await services.bots.rename(uid, int(renaming), text)
        await reply(update, t("✅ Renamed to <b>{name}</b>.", name=esc(bot.name)))
        return
    bot = await services.bots.selected(uid)
    if bot is None:
        await reply(update, t("To design a strategy, create or select a strategy bot first: /newbot or /bots.\n"
                              "Use /help to see everything I can do."))
        return
    if len(text) > MAX_TEXT_IN:
        raise UserFacingError(t("That message is too long ({length} characters); keep it under {most}.",
                                length=len(text), most=MAX_TEXT_IN))
    current = services.bots.strategy(bot)
    history = await services.bots.history(uid, bot.bot_id)
    stop = asyncio.Event()
    typing = asyncio.create_task(_typing(update, context, stop))
    try:
        result = await services.designer.design(uid, text, current, history, language=i18n.current())
    finally:
        stop.set()
        await typing
    await services.bots.add_message(uid, bot.bot_id, "user", text)
    if result.cleared:
        await services.bots.set_strategy(uid, bot.bot_id, None)
        answer = t("🧹 Strategy cleared for <b>{name}</b>. Describe the new one from scratch.", name=esc(bot.name))
        await services.bots.add_message(uid, bot.bot_id, "assistant", answer)
        await reply(update, answer)
        return
    answer = design_text(result)
    if result.strategy is None:
        await services.bots.add_message(uid, bot.bot_id, "assistant", answer)
        await reply(update, "🤔 " + esc(answer))
        return
    await services.bots.set_strategy(uid, bot.bot_id, result.strategy)
    await services.bots.add_message(uid, bot.bot_id, "assistant", answer)
    costs = services.agent_loop.costs
    warnings = "".join(f"\n\n⚠️ {cost_warning_text(code, result.strategy, costs)}"
                       for code in cost_warnings(result.strategy, costs))
    await reply(update, _design_head(result.changed, result.used_llm, esc(bot.name)) + f"\n\n{esc(answer)}{warnings}",
                keyboards.bot_actions(bot.bot_id, True))


def _design_head(changed: bool, used_llm: bool, name: str) -> str:
    """The first line of the designer's answer: whether the strategy changed, and who worked on it."""
    if changed:
        return (t("✅ Strategy updated (AI crew) for <b>{name}</b>.", name=name) if used_llm
                else t("✅ Strategy updated for <b>{name}</b>.", name=name))
    return (t("ℹ️ Strategy unchanged (AI crew) for <b>{name}</b>.", name=name) if used_llm
            else t("ℹ️ Strategy unchanged for <b>{name}</b>.", name=name))


def register(app: Application) -> None:
    private = filters.ChatType.PRIVATE
    app.add_handler(CommandHandler("bots", bots_cmd, filters=private))
    app.add_handler(CommandHandler("newbot", newbot_cmd, filters=private))
    app.add_handlers([b.handler() for b in (*MENU_BUTTONS, list_button, new_button, show_button, select_button,
                                            rename_button, delete_button, delete_ok_button)])


def register_text(app: Application) -> None:
    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND & filters.ChatType.PRIVATE, text_message))
