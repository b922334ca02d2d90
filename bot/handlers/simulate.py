"""/simulate start|stop|status: live paper simulation of the selected strategy bot."""

from __future__ import annotations

from typing import Any

from telegram import Update
from telegram.ext import Application, CommandHandler, filters

from bot import callbacks, keyboards
from bot.cards import simulation_card
from bot.commands import usage
from bot.context import AppContext
from bot.guards import UserFacingError, button, command, edit, reply
from bot.render import clip, esc, usdc
from bot.selection import select_strategy, selected_strategy
from engine.strategy import Strategy

USAGE = usage("simulate")


async def start_simulation(update: Update, context: AppContext, bot: Any, strategy: Strategy) -> None:
    """Start a live paper simulation of `bot`'s strategy; used by /simulate start and the bot's button."""
    services = context.services
    uid = update.effective_user.id
    sim = await services.simulations.start(uid, bot.bot_id, bot.name, strategy, timeframe=strategy.finest_timeframe)
    demo = " on the demo market" if services.market.is_demo else ""
    await reply(update, f"📡 Simulation #{sim.simulation_id} of <b>{esc(bot.name)}</b> started{demo} with "
                        f"{usdc(services.simulations.initial_equity)} of paper capital (not your agents' money).\n\n"
                        "I'll message you when a signal fires or a paper trade opens or closes. "
                        "Use /simulate status to check on it, /simulate stop to end it.")


async def _status(update: Update, context: AppContext) -> None:
    sims = await context.services.simulations.status(update.effective_user.id)
    if not sims:
        await reply(update, "No simulation is running. Start one with /simulate start.")
        return
    blocks = [simulation_card(s) for s in sims]
    await reply(update, clip("📡 <b>Simulations</b>\n\n" + "\n\n".join(esc(b) for b in blocks)),
                keyboards.simulations(sims))


@command
async def simulate_cmd(update: Update, context: AppContext) -> None:
    """/simulate start|stop|status."""
    args = [a.lower() for a in (context.args or [])]
    if len(args) != 1 or args[0] not in ("start", "stop", "status"):
        raise UserFacingError(USAGE)
    if args[0] == "start":
        await start_simulation(update, context, *await selected_strategy(update, context))
    elif args[0] == "status":
        await _status(update, context)
    else:
        sims = await context.services.simulations.status(update.effective_user.id)
        if not sims:
            await reply(update, "No simulation is running.")
            return
        if len(sims) == 1:  # one running: ask once, then the final result card
            only = sims[0]
            await reply(update, f"Stop simulation #{only.simulation_id} of <b>{esc(only.bot_name)}</b>?",
                        keyboards.confirm_stop_simulation(only.simulation_id))
            return
        await reply(update, "Which simulation should stop?", keyboards.simulations(sims))


@button(callbacks.BOT_SIMULATE)
async def simulate_button(update: Update, context: AppContext, bot_id: int) -> None:
    """A bot's Simulate button: select that bot, then start simulating it."""
    await start_simulation(update, context, *await select_strategy(update, context, bot_id))


@button(callbacks.SIM_STOP)
async def stop_button(update: Update, context: AppContext, sim_id: int) -> None:
    sim = await context.services.simulations.get(update.effective_user.id, sim_id)
    await edit(update, f"Stop simulation #{sim.simulation_id}?", keyboards.confirm_stop_simulation(sim.simulation_id))


@button(callbacks.SIM_STOP_OK)
async def stop_ok_button(update: Update, context: AppContext, sim_id: int) -> None:
    uid = update.effective_user.id
    sims = context.services.simulations
    sim = await sims.stop(uid, sim_id)
    final = simulation_card(await sims.summary(uid, sim.simulation_id))
    await edit(update, clip(f"⏹ Simulation #{sim.simulation_id} stopped. Final result:\n\n{esc(final)}"))


def register(app: Application) -> None:
    app.add_handler(CommandHandler("simulate", simulate_cmd, filters=filters.ChatType.PRIVATE))
    app.add_handlers([simulate_button.handler(), stop_button.handler(), stop_ok_button.handler()])
