"""/automaton and /deposit: create the generation-1 agent, add capital, pause/resume, assign a strategy."""

from __future__ import annotations

from telegram import Update
from telegram.ext import Application, CommandHandler, filters

from agents.errors import AgentNotFoundError
from bot import callbacks, keyboards
from bot.commands import usage
from bot.context import AppContext
from bot.guards import UserFacingError, button, command, edit, reply, update_key
from bot.i18n import t
from bot.render import agent_summary, esc, first_run_hint, usdc
from bot.selection import strategy_of


def _one_arg(context: AppContext, command: str) -> str | None:
    args = context.args or []
    if len(args) > 1:
        raise UserFacingError(usage(command))
    return args[0] if args else None


async def show_automaton(update: Update, context: AppContext) -> None:
    """The user's main agent with its buttons, or preset amounts to create one."""
    services = context.services
    uid = update.effective_user.id
    agent = await services.manager.get_main_agent(uid)
    if agent is None:
        if await services.manager.had_closed_main_agent(uid):
            head = t("🤖 Your automaton was closed when its balance was withdrawn in full; its history stays in "
                     "/ai_portfolio. Start a new one:")
        else:
            head = t("🤖 You don't have an automaton yet.")
        text = head + "\n\n" + t("Choose a starting balance (paper USDC), or send <code>/automaton 250</code>. "
                                  "Minimum {minimum} USDC.", minimum=services.settings.min_deposit)
        await reply(update, text, keyboards.preset_amounts(callbacks.CREATE))
        return
    await reply(update, agent_summary(agent, demo=services.market.is_demo), keyboards.automaton_menu(agent))


async def _create(update: Update, context: AppContext, amount: str) -> None:
    services = context.services
    agent = await services.manager.create_user_main_agent(update.effective_user.id, amount,
                                                          idempotency_key=update_key(update))
    await reply(update, t("✅ Your automaton is live!") + "\n\n" + agent_summary(agent, demo=services.market.is_demo)
                + "\n\n" + first_run_hint(None, services.settings.agent_tick_seconds),
                keyboards.automaton_menu(agent))


@command
async def automaton_cmd(update: Update, context: AppContext) -> None:
    """/automaton [amount]."""
    amount = _one_arg(context, "automaton")
    agent = await context.services.manager.get_main_agent(update.effective_user.id)
    if amount is not None and agent is not None:  # the amount is not dropped in silence: offer it
        whole = _whole_usdc(amount)
        offer = (t("You already have an automaton; add {amount} USDC to it with the button below, or send "
                   "<code>/deposit {whole}</code>.", amount=esc(amount), whole=whole) if whole is not None
                 else t("You already have an automaton; send <code>/deposit 100</code> to add capital to it."))
        text = agent_summary(agent, demo=context.services.market.is_demo) + "\n\n" + offer
        markup = keyboards.deposit_offer(whole) if whole is not None else keyboards.automaton_menu(agent)
        await reply(update, text, markup)
        return
    if amount is None or agent is not None:
        await show_automaton(update, context)
        return
    await _create(update, context, amount)


def _whole_usdc(raw: str) -> int | None:
    """The amount as whole USDC when it is one a Deposit button can carry, else None."""
    return int(raw) if raw.isdigit() and 0 < int(raw) <= 1_000_000_000 else None


@command
async def deposit_cmd(update: Update, context: AppContext) -> None:
    """/deposit <amount>."""
    amount = _one_arg(context, "deposit")
    if amount is None:
        await reply(update, t("Usage: <code>/deposit 100</code> (paper USDC)."),
                    keyboards.preset_amounts(callbacks.DEPOSIT))
        return
    await _deposit(update, context, amount)


async def _deposit(update: Update, context: AppContext, amount: str) -> None:
    try:
        agent = await context.services.manager.deposit(update.effective_user.id, amount,
                                                       idempotency_key=update_key(update))
    except AgentNotFoundError:
        raise UserFacingError(t("You don't have an automaton yet. Use /automaton to create one.")) from None
    await reply(update, t("✅ Deposited. Your automaton's balance is now <b>{balance}</b>.",
                          balance=usdc(agent["isolated_balance"])), keyboards.automaton_menu(agent))


@button(callbacks.MENU_AUTOMATON)
async def menu_button(update: Update, context: AppContext) -> None:
    """The main menu's Automaton."""
    await show_automaton(update, context)


@button(callbacks.CREATE)
async def create_button(update: Update, context: AppContext, amount: int) -> None:
    if await context.services.manager.get_main_agent(update.effective_user.id):
        await show_automaton(update, context)
        return
    await _create(update, context, str(amount))


@button(callbacks.DEPOSIT)
async def deposit_button(update: Update, context: AppContext, amount: int) -> None:
    await _deposit(update, context, str(amount))


@button(callbacks.PAUSE)
async def pause_button(update: Update, context: AppContext, agent_id: str) -> None:
    agent = await context.services.manager.pause_agent(agent_id, update.effective_user.id)
    await edit(update, agent_summary(agent, demo=context.services.market.is_demo), keyboards.automaton_menu(agent))


@button(callbacks.RESUME)
async def resume_button(update: Update, context: AppContext, agent_id: str) -> None:
    agent = await context.services.manager.resume_agent(agent_id, update.effective_user.id)
    await edit(update, agent_summary(agent, demo=context.services.market.is_demo), keyboards.automaton_menu(agent))


@button(callbacks.ASSIGN)
async def assign_button(update: Update, context: AppContext, agent_id: str) -> None:
    """Choose which strategy bot drives this agent."""
    uid = update.effective_user.id
    await context.services.manager.get_agent_info(agent_id, uid)  # ownership
    bots = await context.services.bots.list(uid)
    text = t("🧠 Choose the strategy for this agent.") + (
        "" if bots else "\n\n" + t("You have no strategy bots yet: create one with /newbot, or keep the default."))
    await edit(update, text, keyboards.bots_to_assign(agent_id, bots))


@button(callbacks.ASSIGN_BOT)
async def assign_bot_button(update: Update, context: AppContext, agent_id: str, bot_id: int) -> None:
    uid = update.effective_user.id
    services = context.services
    if bot_id == 0:
        await services.manager.assign_strategy(agent_id, uid, None, None)
        await edit(update, t("✅ The agent now uses the default strategy."))
        return
    bot = await services.bots.get(uid, bot_id)
    strategy = strategy_of(bot)
    await services.manager.assign_strategy(agent_id, uid, bot.bot_id, strategy.model_dump_json())
    await edit(update, t("✅ Agent <code>{agent_id}</code> now trades with <b>{name}</b>.", agent_id=esc(agent_id),
                         name=esc(bot.name)))


def register(app: Application) -> None:
    private = filters.ChatType.PRIVATE
    app.add_handler(CommandHandler("automaton", automaton_cmd, filters=private))
    app.add_handler(CommandHandler("deposit", deposit_cmd, filters=private))
    app.add_handlers([b.handler() for b in (menu_button, create_button, deposit_button, pause_button, resume_button,
                                            assign_button, assign_bot_button)])
