"""Words for the ledger's error codes (agents/ledger, agents/errors): see `bot.messages`."""

from __future__ import annotations

# What `what` names in the amount refusals.
AMOUNT_NAMES: dict[str, str] = {
    "amount": "Amount", "deposit": "Deposit", "initial_balance": "Initial balance", "withdrawal": "Withdrawal",
    "profit": "Profit", "child_balance": "Child balance", "position_cost": "Position cost", "proceeds": "Proceeds",
    "remote_balance": "Remote balance",
}

TEXTS: dict[str, str] = {
    "amount.not_a_number": "{what} must be a number, like 25 or 12.5.",
    "amount.not_finite": "{what} must be a finite number.",
    "amount.too_large": "{what} is far too large.",
    "amount.too_precise": "{what} can have at most 6 decimal places (micro-USDC).",
    "amount.zero": "{what} must not be zero.",
    "amount.negative": "{what} must be positive.",
    "amount.below_minimum": "{what} must be at least {minimum} USDC.",
    "amount.above_maximum": "{what} can be at most {maximum:,} USDC.",
    "user.invalid_id": "Invalid user id.",
    "ledger.unknown_kind": "Unknown ledger kind.",
    "remote.invalid_child_id": "Invalid remote child id.",
    "remote.child_above_available": "The remote child is larger than the parent's available balance.",
    "position.invalid_fill": "Position size and price must be positive.",
    "position.not_found": "No such position.",
    "agent.not_found": "Agent not found.",
    "agent.exists": "You already have an active automaton. Use /deposit to add funds.",
    "agent.wrong_status": "This agent is {status}; it can't be {target}.",
    "agent.cannot_trade": "This agent is {status}; it can't trade.",
    "agent.closed": "This agent is closed.",
    "idempotency.invalid_key": "Invalid idempotency key.",
    "idempotency.conflict": "This idempotency key was used for a different operation.",
    "funds.insufficient_balance": "Not enough balance.",
    "funds.nothing_to_withdraw": "Nothing is available to withdraw.",
    "funds.withdraw_above_available":
        "You can withdraw at most {available:,.2f} USDC (available across all your agents).",
    "funds.loss_above_available": "A loss of {loss} USDC exceeds the agent's available {available} USDC.",
    "funds.position_above_available": "Not enough available balance for this position.",
    "spawn.parent_not_active": "Only an active agent can spawn (this one is {status}).",
    "spawn.too_many_children": "This agent already has {live} live children (max {maximum}).",
    "spawn.not_enough_earnings": "Not enough earnings to spawn: {spawnable} USDC spawnable, {needed} USDC needed.",
    "spawn.child_below_minimum": "A child needs at least {minimum} USDC.",
    "spawn.above_spawnable": "The parent can fund at most {spawnable} USDC from its earnings.",
}

PARAM_WORDS: dict[str, dict[str, str]] = {"what": AMOUNT_NAMES}
