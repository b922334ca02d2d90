"""/withdraw <amount|all>: proportional withdrawal from the whole tree, after a confirmation button.

The pending request lives in `user_data` under a random nonce that the buttons carry, so
a forged or stale confirmation (wrong nonce) cannot withdraw anything.
"""

from __future__ import annotations

import secrets

from telegram import Update
from telegram.ext import Application, CommandHandler, filters

from agents.ledger.amounts import parse_amount, withdrawal_amount
from bot import callbacks, keyboards
from bot.commands import usage
from bot.context import AppContext
from bot.guards import UserFacingError, button, command, edit, reply
from bot.render import esc, usdc
from storage.money import from_micro, to_micro

PENDING = "pending_withdrawal"
EXPIRED = "This withdrawal request expired. Send /withdraw again."


async def _ask(update: Update, context: AppContext, raw: str) -> tuple[str, object]:
    uid = update.effective_user.id
    portfolio = await context.services.manager.get_user_ai_portfolio(uid)
    available = portfolio["total_available"]
    take_all = raw.lower() == "all"
    micro = withdrawal_amount(to_micro(available), None if take_all else parse_amount(raw, what="withdrawal"))
    amount_text, amount = ("all" if take_all else str(from_micro(micro))), from_micro(micro)
    nonce = secrets.token_hex(4)
    context.user_data[PENDING] = {"nonce": nonce, "amount": amount_text}
    text = (f"💸 Withdraw <b>{usdc(amount)}</b> from your agents, proportionally to each agent's available "
            f"balance?\n\nAvailable now: {usdc(available)}.")
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


@button(callbacks.WITHDRAW_CONFIRM)
async def withdraw_confirm_button(update: Update, context: AppContext, nonce: str) -> None:
    pending = context.user_data.get(PENDING)
    if not pending or pending.get("nonce") != nonce:
        raise UserFacingError(EXPIRED)
    del context.user_data[PENDING]
    result = await context.services.manager.withdraw(update.effective_user.id, pending["amount"],
                                                     idempotency_key=f"withdraw:{nonce}")
    parts = "\n".join(f"• <code>{esc(a)}</code>: {usdc(v, 6)}" for a, v in list(result["parts"].items())[:20])
    await edit(update, f"✅ Withdrew <b>{usdc(result['amount'])}</b>.\n\n{parts}\n\n"
                       f"Still available: {usdc(result['total_available'])}.")


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
