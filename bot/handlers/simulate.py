"""/simulate start|stop|status: live paper simulation of the selected strategy bot."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from telegram import Update
from telegram.ext import Application, CommandHandler, filters

from bot import callbacks, keyboards
from bot.capital import capital_for, capital_text, capital_word, parse_capital
from bot.cards import simulation_card
from bot.commands import usage
from bot.context import AppContext
from bot.guards import UserFacingError, button, command, edit, reply
from bot.i18n import t
from bot.render import clip, esc
from bot.selection import bot_strategy, selected_strategy
from engine.strategy import Strategy

MAX_ENDED_SHOWN = 5


async def start_simulation(update: Update, context: AppContext, bot: Any, strategy: Strategy,
                           capital: Decimal | None = None) -> None:
    """Start a live paper simulation of `bot`'s strategy with `capital` (None: the main agent's
    balance, else the default); used by /simulate start [capital] and the bot's button."""
    services = context.services
    uid = update.effective_user.id
    capital, source = await capital_for(services, uid, capital)
    sim = await services.simulations.start(uid, bot.bot_id, bot.name, strategy, timeframe=strategy.finest_timeframe,
                                           capital=capital)
    params = {"simulation_id": sim.simulation_id, "name": esc(bot.name)}
    started = (t("📡 Simulation #{simulation_id} of <b>{name}</b> started on the demo market with paper money (not "
                 "your agents' money).", **params) if services.market.is_demo
               else t("📡 Simulation #{simulation_id} of <b>{name}</b> started with paper money (not your agents' "
                      "money).", **params))
    await reply(update, started + "\n" + esc(capital_text(capital, source)) + "\n\n"
                + t("I'll message you when a signal fires or a paper trade opens or closes. "
                    "Use /simulate status to check on it, /simulate stop to end it."))


async def _status(update: Update, context: AppContext) -> None:
    """Running simulations first, then the ended ones with their final results (newest first)."""
    every = await context.services.simulations.status(update.effective_user.id, include_finished=True)
    running = [s for s in every if s.status == "running"]
    ended = [s for s in every if s.status != "running"][:MAX_ENDED_SHOWN]
    if not every:
        await reply(update, t("No simulation yet. Start one with /simulate start."))
        return
    parts = [t("📡 <b>Simulations</b>")]
    parts += [esc(simulation_card(s)) for s in running] or [t("None is running now. Start one with /simulate start.")]
    if ended:
        parts += [t("<b>Ended</b>")] + [esc(simulation_card(s)) for s in ended]
    await reply(update, clip("\n\n".join(parts)), keyboards.simulations(running))


@command
async def simulate_cmd(update: Update, context: AppContext) -> None:
    """/simulate start|stop|status."""
    args = [a.lower() for a in (context.args or [])]
    if not args or args[0] not in ("start", "stop", "status") or len(args) > (2 if args[0] == "start" else 1):
        raise UserFacingError(usage("simulate"))
    if args[0] == "start":
        capital = parse_capital(capital_word(args[1]) or args[1]) if len(args) == 2 else None
        await start_simulation(update, context, *await selected_strategy(update, context), capital)
    elif args[0] == "status":
        await _status(update, context)
    else:
        sims = await context.services.simulations.status(update.effective_user.id)
        if not sims:
            await reply(update, t("No simulation is running."))
            return
        if len(sims) == 1:  # one running: ask once, then the final result card
            only = sims[0]
            await reply(update, t("Stop simulation #{simulation_id} of <b>{name}</b>?",
                                  simulation_id=only.simulation_id, name=esc(only.bot_name)),
                        keyboards.confirm_stop_simulation(only.simulation_id))
            return
        await reply(update, t("Which simulation should stop?"), keyboards.simulations(sims))


@button(callbacks.BOT_SIMULATE)
async def simulate_button(update: Update, context: AppContext, bot_id: int) -> None:
    """A bot's Simulate button: start simulating that bot (the selection stays as it is)."""
    await start_simulation(update, context, *await bot_strategy(update, context, bot_id))


@button(callbacks.SIM_STOP)
async def stop_button(update: Update, context: AppContext, sim_id: int) -> None:
    sim = await context.services.simulations.get(update.effective_user.id, sim_id)
    await edit(update, t("Stop simulation #{simulation_id}?", simulation_id=sim.simulation_id),
               keyboards.confirm_stop_simulation(sim.simulation_id))


@button(callbacks.SIM_STOP_OK)
async def stop_ok_button(update: Update, context: AppContext, sim_id: int) -> None:
    uid = update.effective_user.id
    sims = context.services.simulations
    sim = await sims.stop(uid, sim_id)
    final = simulation_card(await sims.summary(uid, sim.simulation_id))
    await edit(update, clip(t("⏹ Simulation #{simulation_id} stopped. Final result:\n\n{result}",
                              simulation_id=sim.simulation_id, result=esc(final))))


def register(app: Application) -> None:
    app.add_handler(CommandHandler("simulate", simulate_cmd, filters=filters.ChatType.PRIVATE))
    app.add_handlers([simulate_button.handler(), stop_button.handler(), stop_ok_button.handler()])
