"""/start, /help, /cancel, the main menu, and the fallbacks (unknown commands, stale buttons, groups)."""

from __future__ import annotations

from telegram import BotCommand, Update
from telegram.constants import ChatType
from telegram.ext import Application, ApplicationHandlerStop, CommandHandler, MessageHandler, filters

from bot import callbacks, keyboards
from bot.commands import ADMIN_COMMANDS, COMMANDS, arguments, closest, description, strategy_example
from bot.context import AppContext
from bot.guards import PRIVATE_ONLY, STALE_BUTTON, button, command, edit, reply
from bot.i18n import N_, t
from bot.render import esc

EDIT_GUARD_GROUP = -2  # before user registration (-1) and every feature (0)
EDITED = N_("✏️ I don't act on edited messages. Send the command again as a new message.")
NOT_TEXT = N_("I only understand text: commands like /help, or a strategy in plain words while a strategy bot "
              "is selected. (A command in a photo's caption is not run: send it as a message.)")
UNKNOWN = N_("I don't know that command. Use /help to see what I can do.")


def bot_commands() -> list[BotCommand]:
    """The command menu registered with set_my_commands."""
    return [BotCommand(name, description(desc)) for name, _, desc in COMMANDS]


def help_text(is_admin: bool) -> str:
    rows = COMMANDS + (ADMIN_COMMANDS if is_admin else [])
    lines = [t("<b>Commands</b>"), ""]
    for name, args, desc in rows:
        lines.append(f"/{name} {esc(arguments(args))}".rstrip() + f" — {esc(description(desc))}")
    lines += ["", t("While a strategy bot is selected, plain messages describe or edit its strategy, e.g. {example}.",
                    example=strategy_example())]
    return "\n".join(lines)


def welcome_text(first_name: str | None, demo: bool) -> str:
    hello = (t("👋 Hi {name}! I run an <b>autonomous trading agent</b> for you.", name=esc(first_name)) if first_name
             else t("👋 Hi there! I run an <b>autonomous trading agent</b> for you."))
    trades = (t("• It trades on live DEX prices (demo market now), and when it earns enough it spawns child agents "
                "funded from its earnings.") if demo
              else t("• It trades on live DEX prices, and when it earns enough it spawns child agents funded from its "
                     "earnings."))
    return "\n".join([
        hello,
        "",
        t("• /automaton creates your generation-1 agent with paper USDC."),
        trades,
        t("• Design strategies by chatting in /bots, test them with /backtest and /simulate."),
        "",
        t("Everything here is paper trading: no real funds move."),
    ])


@command
async def start(update: Update, context: AppContext) -> None:
    """Register the user and show the main menu."""
    user = update.effective_user
    await reply(update, welcome_text(user.first_name if user else None, context.services.market.is_demo),
                keyboards.main_menu())


@command
async def help_cmd(update: Update, context: AppContext) -> None:
    """List every command with its usage."""
    uid = update.effective_user.id if update.effective_user else 0
    await reply(update, help_text(uid in context.services.settings.admin_user_ids))


@command
async def cancel(update: Update, context: AppContext) -> None:
    """Leave a pending prompt (a rename, a withdrawal to confirm). The selected strategy bot stays
    selected: choosing another is /bots' job, and a cancel that also deselected surprised users."""
    if await context.services.shared.clear(update.effective_user.id):
        await reply(update, t("Cancelled."))
        return
    selected = await context.services.bots.selected(update.effective_user.id)
    if selected is not None:
        await reply(update, t("Nothing to cancel. <b>{name}</b> stays selected: your messages edit its strategy "
                              "(/bots to choose another).", name=esc(selected.name)))
        return
    await reply(update, t("Nothing to cancel. Use /help to see what I can do."))


@button(callbacks.MENU)
async def menu_button(update: Update, context: AppContext) -> None:
    """🏠 Menu on a sub-screen: the main menu in its place."""
    user = update.effective_user
    await edit(update, welcome_text(user.first_name, context.services.market.is_demo), keyboards.main_menu())


@button(callbacks.MENU_HELP)
async def help_button(update: Update, context: AppContext) -> None:
    """The main menu's Help: the command list in place of the menu (each feature routes its own entry)."""
    await edit(update, help_text(update.effective_user.id in context.services.settings.admin_user_ids))


async def unknown_command(update: Update, context: AppContext) -> None:
    """Any other /command gets a clear reply."""
    if update.effective_chat and update.effective_chat.type != ChatType.PRIVATE:
        return
    typed = (update.effective_message.text or "").split()[0] if update.effective_message else ""
    guess = closest(typed)
    await reply(update, t("I don't know that command. Did you mean /{command}? Use /help to see what I can do.",
                          command=guess) if guess else t(UNKNOWN))


async def group_message(update: Update, context: AppContext) -> None:
    """Commands in group chats are refused: agents are controlled privately."""
    await reply(update, t(PRIVATE_ONLY))


@button(None, toast=STALE_BUTTON)
async def stale_button(update: Update, context: AppContext) -> None:
    """Callback data that matches no pattern: malformed, forged, overlong, or from an old version."""


def register(app: Application) -> None:
    private = filters.ChatType.PRIVATE
    app.add_handler(CommandHandler("start", start, filters=private))
    app.add_handler(CommandHandler("help", help_cmd, filters=private))
    app.add_handler(CommandHandler("cancel", cancel, filters=private))
    app.add_handler(help_button.handler())
    app.add_handler(menu_button.handler())


async def edited_message(update: Update, context: AppContext) -> None:
    """An edited message never runs anything (editing "/deposit 100" into "/deposit 1000" must not
    deposit again): say so in a private chat, and stop every other handler."""
    if update.effective_chat is not None and update.effective_chat.type == ChatType.PRIVATE:
        await reply(update, t(EDITED))
    raise ApplicationHandlerStop


async def not_text(update: Update, context: AppContext) -> None:
    """Stickers, photos, voice, locations, files (a command in a caption too) get a hint, not silence."""
    await reply(update, t(NOT_TEXT))


def register_edit_guard(app: Application) -> None:
    """Before every other group: edited messages go no further."""
    app.add_handler(MessageHandler(filters.UpdateType.EDITED_MESSAGE, edited_message), group=EDIT_GUARD_GROUP)


def register_fallbacks(app: Application) -> None:
    """Registered after every feature: within a group the first matching handler wins."""
    app.add_handler(MessageHandler(filters.COMMAND & filters.ChatType.GROUPS, group_message))
    app.add_handler(MessageHandler(filters.COMMAND & filters.ChatType.PRIVATE, unknown_command))
    app.add_handler(MessageHandler(filters.ChatType.PRIVATE & filters.UpdateType.MESSAGE & ~filters.TEXT
                                   & ~filters.StatusUpdate.ALL, not_text))
    app.add_handler(stale_button.handler())
