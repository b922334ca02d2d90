"""/ai_portfolio and /ai_status: the agent tree, paginated buttons, details with Back, Refresh in place."""

from __future__ import annotations

import re

from telegram import Update
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, filters

from agents.errors import AgentNotFoundError
from bot import keyboards
from bot.callbacks import AGENT_ID, match, pattern
from bot.context import AppContext
from bot.guards import UserFacingError, button, command, edit, reply
from bot.render import agent_text, portfolio_text


async def show_portfolio(update: Update, context: AppContext, *, page: int, edit_in_place: bool) -> None:
    services = context.services
    uid = update.effective_user.id
    portfolio = await services.manager.get_user_ai_portfolio(uid)
    risk, unrealized = await services.portfolio_extras(uid, portfolio)
    text = portfolio_text(portfolio, page, risk=risk, unrealized=unrealized, demo=services.market.is_demo)
    markup = keyboards.portfolio(portfolio["agents"], page) if portfolio["agents"] else keyboards.preset_amounts("new")
    await (edit if edit_in_place else reply)(update, text, markup)


async def show_agent(update: Update, context: AppContext, agent_id: str, page: int, *, edit_in_place: bool) -> None:
    services = context.services
    uid = update.effective_user.id
    agent = await services.manager.get_agent_info(agent_id, uid)
    positions = await services.manager.open_positions(agent_id)
    trades = await services.manager.recent_trades(agent_id)
    children = await services.manager.list_children(agent_id, uid)
    strategy, remote = await services.agent_extras(agent)
    parity = await services.agent_loop.parity(agent_id)
    text = agent_text(agent, positions=positions, trades=trades, children=children, strategy=strategy, remote=remote,
                      parity=None if parity is None else parity.summary(),
                      costs=services.agent_loop.costs.describe())
    await (edit if edit_in_place else reply)(update, text, keyboards.agent_details(agent, page))


@command
async def portfolio_cmd(update: Update, context: AppContext) -> None:
    """/ai_portfolio."""
    await show_portfolio(update, context, page=0, edit_in_place=False)


@command
async def status_cmd(update: Update, context: AppContext) -> None:
    """/ai_status [agent_id]: one agent, or the user's agents as buttons."""
    args = context.args or []
    if len(args) > 1:
        raise UserFacingError("Usage: /ai_status [agent_id]")
    if not args:
        portfolio = await context.services.manager.get_user_ai_portfolio(update.effective_user.id)
        if not portfolio["agents"]:
            await reply(update, "You have no agents yet. Use /automaton to create one.")
            return
        await reply(update, "Choose an agent:", keyboards.agent_list(portfolio["agents"]))
        return
    agent_id = args[0].strip().lower()
    if not re.fullmatch(AGENT_ID, agent_id):
        raise AgentNotFoundError(None)  # same reply as a foreign or missing id
    await show_agent(update, context, agent_id, 0, edit_in_place=False)


@button
async def portfolio_button(update: Update, context: AppContext) -> None:
    (page,) = match("portfolio", update.callback_query.data) or ("0",)
    await show_portfolio(update, context, page=int(page), edit_in_place=True)


@button
async def agent_button(update: Update, context: AppContext) -> None:
    agent_id, page = match("agent", update.callback_query.data) or ("", "0")
    await show_agent(update, context, agent_id, int(page), edit_in_place=True)


def register(app: Application) -> None:
    private = filters.ChatType.PRIVATE
    app.add_handler(CommandHandler("ai_portfolio", portfolio_cmd, filters=private))
    app.add_handler(CommandHandler("ai_status", status_cmd, filters=private))
    app.add_handler(CallbackQueryHandler(portfolio_button, pattern=pattern("portfolio")))
    app.add_handler(CallbackQueryHandler(agent_button, pattern=pattern("agent")))
