"""The bodies of the money operations: check-then-write on one `SyncTx` (SPEC §3).

Each function here is one whole transaction: `IsolatedAIManager` runs it with `Database.run`, so
its reads, checks and writes happen in one hop on the writer thread with nothing interleaved.
They raise the typed errors of `agents.errors` (which roll the transaction back) and return
plain values plus the events to publish after the commit. All SQL is in `storage/`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agents.errors import (
    AgentExistsError,
    AgentNotFoundError,
    AgentStateError,
    IdempotencyConflictError,
    InsufficientFundsError,
    InvalidAmountError,
    SpawnNotAllowedError,
)
from agents.events import AgentDied, ChildSpawned
from agents.ledger import reasons
from agents.ledger.amounts import withdrawal_amount
from agents.ledger.rules import MoneyRules, SpawnBounds, available, peak_after, status_after
from engine.events import Event
from storage import SyncTx
from storage import agents_repo as agents
from storage import ledger_repo as ledger
from storage import spawns_repo as spawns
from storage import users_repo as users
from storage.money import from_micro, largest_remainder


@dataclass
class Outcome:
    """What a money transaction returns: its result and the events to publish after the commit."""

    value: Any = None
    events: list[Event] = field(default_factory=list)


# -- the ledger's single write path -----------------------------------------------------------------

def moved(kind: str, balance: int, peak: int, amount: int) -> tuple[int, int]:
    """(balance, peak) after a ledger row of `kind` moving `amount` (`rules.peak_after`), refusing
    to go below zero."""
    after = peak_after(kind, balance, peak, amount)
    if after is None:
        raise InsufficientFundsError("funds.insufficient_balance")
    return after


def post(tx: SyncTx, agent: Any, kind: str, amount: int, ref: str, key: str | None, *, locked_delta: int = 0,
         balance: int | None = None, peak: int | None = None) -> tuple[int, int]:
    """Append a ledger row and move the agent's balance (and peak) with it in one UPDATE.

    `agent` is its row; `balance`/`peak` override the row's when an earlier write in the same
    transaction already moved them. Returns (new balance, new peak).
    """
    before = agent["isolated_balance"] if balance is None else balance
    after, new_peak = moved(kind, before, agent["peak_balance"] if peak is None else peak, amount)
    ledger.append(tx, agent["agent_id"], agent["user_id"], kind, amount, after, ref, key)
    agents.set_balance(tx, agent["agent_id"], after, new_peak, locked_delta)
    return after, new_peak


def row_key(user_id: int, key: str | None, agent_id: str) -> str | None:
    """The ledger row's idempotency key: the user's key made unique per agent."""
    return None if key is None else f"{user_id}:{key}:{agent_id}"


def replay(tx: SyncTx, user_id: int, key: str | None, kind: str) -> dict[str, Any] | None:
    """The stored result of an operation already done with this key, or None."""
    if key is None:
        return None
    if not isinstance(key, str) or not (0 < len(key) <= 128):
        raise InvalidAmountError("idempotency.invalid_key")
    row = ledger.find_operation(tx, user_id, key)
    if row is None:
        return None
    if row["kind"] != kind:
        raise IdempotencyConflictError()
    return json.loads(row["result_json"])


def remember(tx: SyncTx, user_id: int, key: str | None, kind: str, result: dict[str, Any]) -> None:
    if key is not None:
        ledger.record_operation(tx, user_id, key, kind, json.dumps(result))


# -- deposits and withdrawals -----------------------------------------------------------------------

def create_root(tx: SyncTx, rules: MoneyRules, new_id: Callable[[], str], user_id: int, micro: int,
                key: str | None) -> str:
    """The user's generation-1 agent funded with `micro`; returns its id."""
    users.ensure(tx, user_id)
    done = replay(tx, user_id, key, "create")
    if done is not None:
        return str(done["agent_id"])
    agent_id = new_id()
    if not agents.insert_root(tx, agent_id, user_id, micro):
        raise AgentExistsError()
    # The opening ledger row matches the balance the agent was inserted with.
    ledger.append(tx, agent_id, user_id, "deposit", micro, micro, "initial deposit", row_key(user_id, key, agent_id))
    remember(tx, user_id, key, "create", {"agent_id": agent_id})
    return agent_id


def deposit(tx: SyncTx, rules: MoneyRules, user_id: int, micro: int, key: str | None) -> str:
    """Add `micro` to the user's live root (reviving it when that lifts it over the minimum)."""
    users.ensure(tx, user_id)
    done = replay(tx, user_id, key, "deposit")
    if done is not None:
        return str(done["agent_id"])
    root = agents.live_root(tx, user_id)
    if root is None:
        raise AgentNotFoundError()
    after, _ = post(tx, root, "deposit", micro, "deposit", row_key(user_id, key, root["agent_id"]))
    change = status_after(rules, root["status"], after, may_revive=True)
    if change is not None and change[0] == "active":  # a deposit only ever revives
        agents.set_status(tx, root["agent_id"], "active", reasons.reason("status.revived_by_deposit"))
    remember(tx, user_id, key, "deposit", {"agent_id": root["agent_id"]})
    return str(root["agent_id"])


def withdraw(tx: SyncTx, rules: MoneyRules, user_id: int, micro: int | None, key: str | None) -> dict[str, Any]:
    """Take `micro` (None = everything available) from the tree, split by available balances."""
    users.ensure(tx, user_id)
    done = replay(tx, user_id, key, "withdraw")
    if done is not None:
        return done
    rows = agents.withdrawable(tx, user_id)
    total = sum(r["avail"] for r in rows)
    micro = withdrawal_amount(total, micro)
    result_parts: dict[str, int] = {}
    for part in plan_withdrawal(rules, rows, micro):
        agent = agents.get(tx, part.agent_id)
        post(tx, agent, "withdraw", -part.amount, "withdrawal", row_key(user_id, key, part.agent_id))
        result_parts[part.agent_id] = part.amount
        if part.status is not None:
            agents.set_status(tx, part.agent_id, *part.status)
    payload = {"amount": micro, "parts": result_parts, "total_available": total - micro}
    remember(tx, user_id, key, "withdraw", payload)
    return payload


@dataclass(frozen=True)
class WithdrawalPart:
    """What a withdrawal takes from one agent, and the (status, reason) it leaves it in (None: as is)."""

    agent_id: str
    amount: int
    status: tuple[str, str] | None


def plan_withdrawal(rules: MoneyRules, rows: list[Any], micro: int) -> list[WithdrawalPart]:
    """Split `micro` over the withdrawable `rows` by their available balances (largest remainder):
    the one rule behind both the withdrawal and its confirmation screen. An agent emptied with
    nothing locked is closed; one left below the minimum dies."""
    out = []
    for row, part in zip(rows, largest_remainder(micro, [r["avail"] for r in rows]), strict=True):
        if part == 0:
            continue
        after = row["avail"] + row["locked"] - part
        if after == 0 and row["locked"] == 0:
            status: tuple[str, str] | None = ("closed", reasons.reason("status.emptied_by_withdrawal"))
        else:
            status = status_after(rules, row["status"], after, may_revive=False)
        out.append(WithdrawalPart(row["agent_id"], part, status))
    return out


def withdrawal_preview(tx: SyncTx, rules: MoneyRules, user_id: int, micro: int | None) -> dict[str, Any]:
    """What `withdraw` would do now, without doing it (the confirmation screen)."""
    rows = agents.withdrawable(tx, user_id)
    total = sum(r["avail"] for r in rows)
    micro = withdrawal_amount(total, micro)
    return {"amount": micro, "total_available": total, "parts": plan_withdrawal(rules, rows, micro)}


# -- profit and loss --------------------------------------------------------------------------------

def record_profit(tx: SyncTx, rules: MoneyRules, agent_id: str, micro: int, kind: str, info: str,
                  key: str | None) -> Outcome:
    """Book realized P&L (or a remote sync adjustment); the agent dies below the minimum."""
    agent = agents.get(tx, agent_id)
    if agent is None:
        raise AgentNotFoundError(agent_id)
    user_id = agent["user_id"]
    if replay(tx, user_id, key, "profit") is not None:
        return Outcome(agent_id)
    if agent["status"] == "closed":
        raise AgentStateError("agent.closed")
    free = available(agent["isolated_balance"], agent["locked_balance"])
    if micro < 0 and -micro > free:
        raise InsufficientFundsError("funds.loss_above_available", loss=from_micro(-micro), available=from_micro(free))
    after, _ = post(tx, agent, kind, micro, info or kind, row_key(user_id, key, agent_id))
    out = Outcome(agent_id)
    change = status_after(rules, agent["status"], after, may_revive=True)
    if change is not None:
        agents.set_status(tx, agent_id, *change)
        if change[0] == "dead":
            out.events.append(AgentDied(user_id=user_id, agent_id=agent_id, balance=from_micro(after)))
    remember(tx, user_id, key, "profit", {"agent_id": agent_id})
    return out


# -- spawning ---------------------------------------------------------------------------------------

def spawn_bounds(rules: MoneyRules, agent: Any, sums: tuple[int, int], live_children: int) -> SpawnBounds:
    """`SpawnBounds` of a stored agent row."""
    return SpawnBounds.of(rules, agent["status"], agent["isolated_balance"], agent["locked_balance"], *sums,
                          live_children)


def spawn_child(tx: SyncTx, rules: MoneyRules, new_id: Callable[[], str], parent_id: str, micro: int,
                reason: str, source: str, key: str | None) -> Outcome:
    """Fund a child from the parent's earnings; the value is the child's id (also on a replay,
    which announces nothing)."""
    parent = agents.get(tx, parent_id)
    if parent is None:
        raise AgentNotFoundError(parent_id)
    user_id = parent["user_id"]
    done = replay(tx, user_id, key, "spawn")
    if done is not None:
        return Outcome(str(done["agent_id"]))
    if parent["status"] != "active":
        raise AgentStateError("spawn.parent_not_active", status=parent["status"])
    live = agents.live_children(tx, parent_id)
    b = spawn_bounds(rules, parent, ledger.sums_for_agent(tx, parent_id), live)
    if live >= rules.max_children:
        raise SpawnNotAllowedError("spawn.too_many_children", live=live, maximum=rules.max_children)
    if not b.eligible:
        raise SpawnNotAllowedError("spawn.not_enough_earnings", spawnable=from_micro(b.spawnable),
                                   needed=rules.spawn_min_earnings)
    if micro < b.min_child:
        raise SpawnNotAllowedError("spawn.child_below_minimum", minimum=rules.min_child_balance)
    if micro > b.spawnable:
        raise InsufficientFundsError("spawn.above_spawnable", spawnable=from_micro(b.spawnable))
    child_id = new_id()
    _fund_child(tx, parent, child_id, micro, reason, source, row_key(user_id, key, parent_id),
                row_key(user_id, key, child_id))
    remember(tx, user_id, key, "spawn", {"agent_id": child_id})
    return _spawned(parent, child_id, micro, reason)


def adopt_remote_child(tx: SyncTx, new_id: Callable[[], str], parent_id: str, remote_child_id: str, micro: int,
                       reason: str) -> Outcome:
    """Mirror a child the remote Automaton spawned; the value is None when it is already known."""
    parent = agents.get(tx, parent_id)
    if parent is None:
        raise AgentNotFoundError(parent_id)
    if agents.remote_known(tx, remote_child_id):
        return Outcome(None)
    if micro > available(parent["isolated_balance"], parent["locked_balance"]):
        raise InsufficientFundsError("remote.child_above_available")
    child_id = new_id()
    key = f"remote-child:{remote_child_id}"
    _fund_child(tx, parent, child_id, micro, reason, "remote", f"{key}:out", f"{key}:in",
                remote_child_id=remote_child_id)
    if parent["remote_balance"] is not None:
        # The parent's remote balance already reflects the transfer to the child.
        agents.reduce_remote_balance(tx, parent_id, micro)
    return _spawned(parent, child_id, micro, reason)


def _spawned(parent: Any, child_id: str, micro: int, reason: str) -> Outcome:
    return Outcome(child_id, [ChildSpawned(user_id=parent["user_id"], parent_agent_id=parent["agent_id"],
                                           child_agent_id=child_id, amount=from_micro(micro), reason=reason,
                                           generation=parent["generation"] + 1)])


def _fund_child(tx: SyncTx, parent: Any, child_id: str, micro: int, reason: str, source: str, out_key: str | None,
                in_key: str | None, *, remote_child_id: str | None = None) -> None:
    agents.insert_child(tx, child_id, parent, reason, remote_agent_id=remote_child_id,
                        remote_balance=None if remote_child_id is None else micro)
    post(tx, parent, "spawn_out", -micro, f"child {child_id}", out_key)
    post(tx, {"agent_id": child_id, "user_id": parent["user_id"], "isolated_balance": 0, "peak_balance": 0},
         "spawn_in", micro, f"from {parent['agent_id']}", in_key)
    spawns.record(tx, parent["agent_id"], parent["user_id"], True, micro, reason, source, child_id)
