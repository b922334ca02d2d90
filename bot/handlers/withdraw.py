"""/withdraw <amount|all>: proportional withdrawal from the whole tree, after a confirmation button.

The pending request is stored in the database (`conversation_state`, so any replica can confirm
it) under a random nonce that the buttons carry, so a forged or stale confirmation (wrong nonce)
cannot withdraw anything; it expires after 15 minutes. The withdrawal is keyed
by the nonce: a second press, or the same press processed again after a restart, finds the
committed result in the ledger's journal and shows that receipt instead of withdrawing again.
"""

from __future__ import annotations

import secrets
from decimal import Decimal

from telegram import Update
from telegram.ext import Application, CommandHandler, filters

from bot import callbacks, keyboards
from bot.commands import usage
from bot.context import AppContext
from bot.guards import UserFacingError, button, command, edit, reply
from bot.i18n import N_, t, tn
from bot.render import esc, usdc, usdc_exact

PENDING = "pending_withdrawal"
PENDING_SECONDS = 15 * 60
EXPIRED = N_("This withdrawal request expired. Send /withdraw again.")


async def _ask(update: Update, context: AppContext, raw: str, *, offer_keep: bool = True) -> tuple[str, object]:
    """The confirmation: the exact amount the button will withdraw (fixed now, never "all at press
    time"), the split, and a warning for agents the withdrawal would leave below the minimum."""
    uid = update.effective_user.id
    manager = context.services.manager
    plan = await manager.preview_withdrawal(uid, raw)
    nonce = secrets.token_hex(4)
    await context.services.shared.put(uid, PENDING, {"nonce": nonce, "amount": str(plan["amount"])},
                                            PENDING_SECONDS)
    text = t("💸 Withdraw <b>{amount}</b> from your agents, proportionally to each agent's available balance?\n\n"
             "Available now: {available}.", amount=usdc_exact(plan["amount"]),
             available=usdc_exact(plan["total_available"]))
    if plan["dies"]:
        text += "\n\n" + tn("⚠️ This leaves {n} agent below the {minimum} minimum, so they stop trading: {agents}.",
                             "⚠️ This leaves {n} agents below the {minimum} minimum, so they stop trading: {agents}.",
                             len(plan["dies"]), minimum=usdc_exact(manager.rules.min_agent_balance),
                             agents=", ".join(f"<code>{esc(a)}</code>" for a in plan["dies"][:10]))
    stops_agents = bool(plan["closes"] or plan["dies"])
    keep = _keep_amount(plan, manager.rules.min_agent_balance) if offer_keep and stops_agents else None
    if plan["closes"]:
        text += "\n\n" + tn("ℹ️ {n} agent will be emptied and closed for good; you can start a new automaton "
                             "afterwards (your history stays in /ai_portfolio).",
                             "ℹ️ {n} agents will be emptied and closed for good; you can start a new automaton "
                             "afterwards (your history stays in /ai_portfolio).", len(plan["closes"]))
    if keep is not None:
        text += "\n\n" + t("Or keep {amount} in them (the minimum per agent) and withdraw the rest.",
                            amount=usdc_exact(keep))
    return text, keyboards.withdraw_confirm(nonce, None if keep is None else usdc_exact(keep))


def _keep_amount(plan: dict, minimum: Decimal) -> Decimal | None:
    """What to leave so every agent the withdrawal touches stays at the minimum (None: nothing to
    keep, or not even that much is available)."""
    keep = minimum * len(plan["parts"])
    return keep if 0 < keep < plan["total_available"] else None


@command
async def withdraw_cmd(update: Update, context: AppContext) -> None:
    """/withdraw <amount|all>: asks for confirmation first."""
    args = context.args or []
    if len(args) != 1:
        raise UserFacingError(usage("withdraw", t("/withdraw 25 or /withdraw all")))
    text, markup = await _ask(update, context, args[0].strip())
    await reply(update, text, markup)


@button(callbacks.WITHDRAW_ASK)
async def withdraw_ask_button(update: Update, context: AppContext) -> None:
    """The Withdraw button on the portfolio: offer 'all' with a confirmation."""
    text, markup = await _ask(update, context, "all")
    await reply(update, text + "\n\n" + t("For part of it, send <code>/withdraw 25</code>."), markup)


@button(callbacks.WITHDRAW_KEEP)
async def withdraw_keep_button(update: Update, context: AppContext) -> None:
    """The offer on a withdrawal that would stop or close agents: all but the minimum per agent,
    asked again with its own preview (what it does to each agent is shown before it is done)."""
    manager = context.services.manager
    plan = await manager.preview_withdrawal(update.effective_user.id, "all")
    keep = _keep_amount(plan, manager.rules.min_agent_balance)
    if keep is None:
        raise UserFacingError(t("There is not enough left to keep the minimum in your agents."))
    text, markup = await _ask(update, context, str(plan["total_available"] - keep), offer_keep=False)
    await edit(update, text, markup)


def receipt(result: dict[str, object]) -> str:
    """The receipt of a committed withdrawal (from the ledger's result, never from the request)."""
    parts = "\n".join(f"• <code>{esc(a)}</code>: {usdc(v, 6)}" for a, v in list(result["parts"].items())[:20])
    return t("✅ Withdrew <b>{amount}</b>.\n\n{parts}\n\nStill available: {available}.",
             amount=usdc_exact(result["amount"]), parts=parts, available=usdc_exact(result["total_available"]))


@button(callbacks.WITHDRAW_CONFIRM)
async def withdraw_confirm_button(update: Update, context: AppContext, nonce: str) -> None:
    uid = update.effective_user.id
    manager = context.services.manager
    key = f"withdraw:{nonce}"
    done = await manager.withdrawal_done(uid, key)
    if done is not None:  # a second press of the same confirmation
        await edit(update, t("This withdrawal was already done.") + "\n\n" + receipt(done))
        return
    pending = await context.services.shared.get(uid, PENDING)
    if not pending or pending.get("nonce") != nonce:
        raise UserFacingError(t(EXPIRED))
    result = await manager.withdraw(uid, pending["amount"], idempotency_key=key)
    await context.services.shared.take(uid, PENDING, expected=pending)
    await edit(update, receipt(result))


@button(callbacks.WITHDRAW_CANCEL)
async def withdraw_cancel_button(update: Update, context: AppContext, nonce: str) -> None:
    conversation = context.services.shared
    uid = update.effective_user.id
    pending = await conversation.get(uid, PENDING)
    if pending and pending.get("nonce") == nonce:
        await conversation.take(uid, PENDING, expected=pending)
    await edit(update, t("Withdrawal cancelled. Nothing was changed."))


def register(app: Application) -> None:
    app.add_handler(CommandHandler("withdraw", withdraw_cmd, filters=filters.ChatType.PRIVATE))
    app.add_handlers([withdraw_ask_button.handler(), withdraw_confirm_button.handler(),
                      withdraw_cancel_button.handler(), withdraw_keep_button.handler()])
