"""Words for the ledger's error codes (agents/ledger, agents/errors): see `bot.messages`."""

from __future__ import annotations

from bot.i18n import N_

# What `what` names in the amount refusals.
AMOUNT_NAMES: dict[str, str] = {
    "amount": N_("Amount"), "deposit": N_("Deposit"), "initial_balance": N_("Initial balance"),
    "withdrawal": N_("Withdrawal"), "profit": N_("Profit"), "child_balance": N_("Child balance"),
    "position_cost": N_("Position cost"), "proceeds": N_("Proceeds"), "remote_balance": N_("Remote balance"),
    "capital": N_("Capital"),
}

TEXTS: dict[str, str] = {
    "amount.not_a_number": N_("{what} must be a number, like 25 or 12.5."),
    "amount.not_finite": N_("{what} must be a finite number."),
    "amount.too_large": N_("{what} is far too large."),
    "amount.too_precise": N_("{what} can have at most 6 decimal places (micro-USDC)."),
    "amount.zero": N_("{what} must not be zero."),
    "amount.negative": N_("{what} must be positive."),
    "amount.below_minimum": N_("{what} must be at least {minimum} USDC."),
    "amount.above_maximum": N_("{what} can be at most {maximum:,} USDC."),
    "user.invalid_id": N_("Invalid user id."),
    "ledger.unknown_kind": N_("Unknown ledger kind."),
    "remote.invalid_child_id": N_("Invalid remote child id."),
    "remote.child_above_available": N_("The remote child is larger than the parent's available balance."),
    "position.invalid_fill": N_("Position size and price must be positive."),
    "position.not_found": N_("No such position."),
    "agent.not_found": N_("Agent not found."),
    "agent.exists": N_("You already have an active automaton. Use /deposit to add funds."),
    "agent.wrong_status": N_("This agent is {status}; it can't be {target}."),
    "agent.cannot_trade": N_("This agent is {status}; it can't trade."),
    "agent.closed": N_("This agent is closed."),
    "idempotency.invalid_key": N_("Invalid idempotency key."),
    "idempotency.conflict": N_("This idempotency key was used for a different operation."),
    "funds.insufficient_balance": N_("Not enough balance."),
    "funds.nothing_to_withdraw": N_("Nothing is available to withdraw."),
    "funds.withdraw_above_available":
        N_("You can withdraw at most {available:,.2f} USDC (available across all your agents)."),
    "funds.loss_above_available": N_("A loss of {loss} USDC exceeds the agent's available {available} USDC."),
    "funds.position_above_available": N_("Not enough available balance for this position."),
    "spawn.parent_not_active": N_("Only an active agent can spawn (this one is {status})."),
    "spawn.too_many_children": N_("This agent already has {live} live children (max {maximum})."),
    "spawn.not_enough_earnings":
        N_("Not enough earnings to spawn: {spawnable} USDC spawnable, {needed} USDC needed."),
    "spawn.child_below_minimum": N_("A child needs at least {minimum} USDC."),
    "spawn.above_spawnable": N_("The parent can fund at most {spawnable} USDC from its earnings."),
}

# A status code in the refusals (`status`, `target`): an agent's (the words of `bot.render.STATUS_WORDS`) or a
# simulation's (``simulate.already_ended``; those of `bot.cards`); the two sets of codes do not overlap.
STATUS_NAMES: dict[str, str] = {
    "active": N_("active"), "paused": N_("paused"), "dead": N_("dead"), "closed": N_("closed"),
    "running": N_("running"), "stopped": N_("stopped"), "finished": N_("finished"), "failed": N_("failed"),
}

PARAM_WORDS: dict[str, dict[str, str]] = {"what": AMOUNT_NAMES, "status": STATUS_NAMES, "target": STATUS_NAMES}
