"""/withdraw <amount|all>: proportional withdrawal from the whole tree, after a confirmation button.

The pending request lives in `user_data` under a random nonce that the buttons carry, so
a forged or stale confirmation (wrong nonce) cannot withdraw anything. The withdrawal is keyed
by the nonce: a second press, or the same press processed again after a restart, finds the
committed result in the ledger's journal and shows that receipt instead of withdrawing again.
"""

from __future__ import annotations

import secrets

from telegram import Update
from telegram.ext import Application, CommandHandler, filters

from bot import callbacks, keyboards
from bot.commands import usage
from bot.context import AppContext
from bot.guards import UserFacingError, button, command, edit, reply
from bot.render import esc, usdc, usdc_exact
from bot.wording import count

PENDING = "pending_withdrawal"
EXPIRED = "This withdrawal request expired. Send /withdraw again."


async def _ask(update: Update, context: AppContext, raw: str) -> tuple[str, object]:
    """The confirmation: the exact amount the button will withdraw (fixed now, never "all at press
    time"), the split, and a warning for agents the withdrawal would leave below the minimum."""
    uid = update.effective_user.id
    manager = context.services.manager
    plan = await manager.preview_withdrawal(uid, raw)
    nonce = secrets.token_hex(4)
    context.user_data[PENDING] = {"nonce": nonce, "amount": str(plan["amount"])}
    text = (f"💸 Withdraw <b>{usdc_exact(plan['amount'])}</b> from your agents, proportionally to each agent's "
            f"available balance?\n\nAvailable now: {usdc_exact(plan['total_available'])}.")
    if plan["dies"]:
        minimum = manager.rules.min_agent_balance
        text += (f"\n\n⚠️ This leaves {count(len(plan['dies']), 'agent', 'agents')} below the {usdc_exact(minimum)} "
                 "minimum, so they "
                 "stop trading: " + ", ".join(f"<code>{esc(a)}</code>" for a in plan["dies"][:10]) + ".")
    if plan["closes"]:
        text += (f"\n\nℹ️ {count(len(plan['closes']), 'agent', 'agents')} will be emptied and closed for good; "
                 "you can start a new automaton afterwards (your history stays in /ai_portfolio).")
    return text, keyboards.withdraw_confirm(nonce)


@command
async def withdraw_cmd(update: Update, context: AppContext) -> None:
    """/withdraw <amount|all>: asks for confirmation first."""
    args = context.args or []
    if len(args) != 1:
        raise UserFacingError(usage("withdraw", "/withdraw 25 or /withdraw all"))
    text, markup = await _ask(update, context, args[0].strip())
    await reply(update, text, markup)


@button(callbacks.WITHDRAW_ASK)
async def withdraw_ask_button(update: Update, context: AppContext) -> None:
    """The Withdraw button on the portfolio: offer 'all' with a confirmation."""
    text, markup = await _ask(update, context, "all")
    await reply(update, text + "\n\nFor part of it, send <code>/withdraw 25</code>.", markup)


def receipt(result: dict[str, object]) -> str:
    """The receipt of a committed withdrawal (from the ledger's result, never from the request)."""
    parts = "\n".join(f"• <code>{esc(a)}</code>: {usdc(v, 6)}" for a, v in list(result["parts"].items())[:20])
    return (f"✅ Withdrew <b>{usdc_exact(result['amount'])}</b>.\n\n{parts}\n\n"
            f"Still available: {usdc_exact(result['total_available'])}.")


@button(callbacks.WITHDRAW_CONFIRM)
async def withdraw_confirm_button(update: Update, context: AppContext, nonce: str) -> None:
    uid = update.effective_user.id
    manager = context.services.manager
    key = f"withdraw:{nonce}"
    done = await manager.withdrawal_done(uid, key)
    if done is not None:  # a second press of the same confirmation
        await edit(update, "This withdrawal was already done.\n\n" + receipt(done))
        return
    pending = context.user_data.get(PENDING)
    if not pending or pending.get("nonce") != nonce:
        raise UserFacingError(EXPIRED)
    result = await manager.withdraw(uid, pending["amount"], idempotency_key=key)
    context.user_data.pop(PENDING, None)
    await edit(update, receipt(result))


@button(callbacks.WITHDRAW_CANCEL)
async def withdraw_cancel_button(update: Update, context: AppContext, nonce: str) -> None:
    pending = context.user_data.get(PENDING)
    if pending and pending.get("nonce") == nonce:
        del context.user_data[PENDING]
    await edit(update, "Withdrawal cancelled. Nothing was changed.")


def register(app: Application) -> None:
    app.add_handler(CommandHandler("withdraw", withdraw_cmd, filters=filters.ChatType.PRIVATE))
    app.add_handlers([withdraw_ask_button.handler(), withdraw_confirm_button.handler(),
                      withdraw_cancel_button.handler()])
