"""/ai_portfolio and /ai_status: the agent tree, paginated buttons, details with Back, Refresh in place."""

from __future__ import annotations

import re
import time

from telegram import Update
from telegram.ext import Application, CommandHandler, filters

from agents.errors import AgentNotFoundError
from bot import callbacks, keyboards
from bot.callbacks import AGENT_ID
from bot.cards import costs_text, parity_line
from bot.commands import usage
from bot.context import AppContext
from bot.guards import UserFacingError, button, command, edit, reply
from bot.i18n import t
from bot.render import agent_text, checked_text, portfolio_text
from bot.strategy_text import describe_strategy
from bot.watch_text import watch_text


async def show_portfolio(update: Update, context: AppContext, *, page: int, edit_in_place: bool) -> None:
    services = context.services
    uid = update.effective_user.id
    screen = await services.screens.portfolio(uid)
    text = portfolio_text(screen, page, demo=services.market.is_demo)
    markup = keyboards.portfolio(screen.agents, page) if screen.agents else keyboards.preset_amounts(callbacks.CREATE)
    await (edit if edit_in_place else reply)(update, text, markup)


async def show_agent(update: Update, context: AppContext, agent_id: str, page: int, *, edit_in_place: bool) -> None:
    services = context.services
    uid = update.effective_user.id
    screen = await services.screens.agent(uid, agent_id)
    own = screen.strategy.strategy
    text = agent_text(screen, strategy=None if own is None else describe_strategy(own),
                      parity=None if screen.parity is None else parity_line(screen.parity),
                      costs=costs_text(services.agent_loop.costs),
                      checked=checked_text(screen.last_check, services.settings.agent_tick_seconds, time.time()),
                      watching=None if screen.watch is None else watch_text(screen.watch))
    await (edit if edit_in_place else reply)(update, text, keyboards.agent_details(screen.agent, page))


@command
async def portfolio_cmd(update: Update, context: AppContext) -> None:
    """/ai_portfolio."""
    await show_portfolio(update, context, page=0, edit_in_place=False)


@command
async def status_cmd(update: Update, context: AppContext) -> None:
    """/ai_status [agent_id]: one agent, or the user's agents as buttons."""
    args = context.args or []
    if len(args) > 1:
        raise UserFacingError(usage("ai_status"))
    if not args:
        portfolio = await context.services.manager.get_user_ai_portfolio(update.effective_user.id)
        if not portfolio["agents"]:
            await reply(update, t("You have no agents yet. Use /automaton to create one."))
            return
        await reply(update, t("Choose an agent:"), keyboards.agent_list(portfolio["agents"]))
        return
    agent_id = args[0].strip().lower()
    if not re.fullmatch(AGENT_ID, agent_id):
        raise AgentNotFoundError(None)  # same reply as a foreign or missing id
    await show_agent(update, context, agent_id, 0, edit_in_place=False)


@button(callbacks.MENU_PORTFOLIO)
async def menu_button(update: Update, context: AppContext) -> None:
    """The main menu's Portfolio."""
    await show_portfolio(update, context, page=0, edit_in_place=False)


@button(callbacks.PORTFOLIO)
async def portfolio_button(update: Update, context: AppContext, page: int) -> None:
    await show_portfolio(update, context, page=page, edit_in_place=True)


@button(callbacks.AGENT_DETAILS)
async def agent_button(update: Update, context: AppContext, agent_id: str, page: int) -> None:
    await show_agent(update, context, agent_id, page, edit_in_place=True)


def register(app: Application) -> None:
    private = filters.ChatType.PRIVATE
    app.add_handler(CommandHandler("ai_portfolio", portfolio_cmd, filters=private))
    app.add_handler(CommandHandler("ai_status", status_cmd, filters=private))
    app.add_handlers([menu_button.handler(), portfolio_button.handler(), agent_button.handler()])
