"""The isolated AI manager: every user's agents and their money (SPEC §3).

Every money operation is one `BEGIN IMMEDIATE` transaction that re-reads what it checks,
writes ledger rows and the denormalised balances together, and records its idempotency
key. Events are published only after the commit.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from agents.errors import (
    AgentExistsError,
    AgentNotFoundError,
    AgentStateError,
    IdempotencyConflictError,
    InsufficientFundsError,
    InvalidAmountError,
    PositionNotFoundError,
    SpawnNotAllowedError,
)
from agents.events import AgentDied, ChildSpawned, Event, EventSink, NullSink
from agents.money import from_micro, largest_remainder, to_micro
from agents.rules import MoneyRules
from storage import Database, Transaction

_AGENT_COLUMNS = (
    "agent_id, user_id, parent_agent_id, generation, isolated_balance, locked_balance, peak_balance,"
    " status, status_reason, spawn_reason, strategy_bot_id, strategy_json, remote_agent_id,"
    " remote_balance, remote_status, remote_synced_at, created_at"
)
# Per-agent ledger sums, used for earnings and the spawn rule.
_SUMS_SQL = (
    "SELECT agent_id,"
    " COALESCE(SUM(CASE WHEN kind IN ('profit','loss','sync_adjust') THEN amount END), 0) AS net,"
    " COALESCE(-SUM(CASE WHEN kind = 'spawn_out' THEN amount END), 0) AS spent"
    " FROM ledger_entries WHERE {where} GROUP BY agent_id"
)
MAX_REASON = 300


@dataclass(frozen=True)
class _Sums:
    net: int = 0
    spent: int = 0


def _new_agent_id() -> str:
    return "ag" + secrets.token_hex(5)


def _clean_text(text: str, limit: int = MAX_REASON) -> str:
    """Reasons and notes are stored as plain text, trimmed (the bot escapes on output)."""
    text = " ".join(str(text).split())
    return text[:limit]


def _check_user_id(user_id: object) -> int:
    if isinstance(user_id, bool) or not isinstance(user_id, int) or not (0 < user_id < 2**53):
        raise InvalidAmountError("Invalid user id.")
    return user_id


class IsolatedAIManager:
    """Public API used by the bot, the workers and the tests. Amounts are `Decimal` USDC."""

    def __init__(self, db: Database, rules: MoneyRules | None = None, events: EventSink | None = None,
                 *, id_factory: Callable[[], str] = _new_agent_id) -> None:
        self.db = db
        self.rules = rules or MoneyRules()
        self.events: EventSink = events or NullSink()
        self._new_id = id_factory

    # ------------------------------------------------------------------ users
    async def ensure_user(self, user_id: int, username: str | None = None, first_name: str | None = None) -> None:
        """Register a Telegram user on first use (names refreshed when given)."""
        _check_user_id(user_id)
        async with self.db.transaction() as tx:
            await self._ensure_user(tx, user_id, username, first_name)

    async def _ensure_user(self, tx: Transaction, user_id: int, username: str | None = None,
                           first_name: str | None = None) -> None:
        await tx.execute("INSERT OR IGNORE INTO users(user_id) VALUES (?)", (user_id,))
        if username is not None or first_name is not None:
            await tx.execute(
                "UPDATE users SET username = COALESCE(?, username), first_name = COALESCE(?, first_name)"
                " WHERE user_id = ?",
                (None if username is None else username[:64], None if first_name is None else first_name[:64],
                 user_id),
            )

    # ------------------------------------------------------------------ creation
    async def create_user_main_agent(self, user_id: int, initial_balance: object, *,
                                     idempotency_key: str | None = None) -> dict[str, Any]:
        """Create the user's generation-1 agent funded with `initial_balance` (a deposit)."""
        _check_user_id(user_id)
        micro = self._deposit_amount(initial_balance, "Initial balance")
        async with self.db.transaction() as tx:
            await self._ensure_user(tx, user_id)
            done = await self._replay(tx, user_id, idempotency_key, "create")
            if done is not None:
                agent_id = done["agent_id"]
            else:
                agent_id = self._new_id()
                # The unique index agents_one_live_root is the check (invariant 3): one round
                # trip fewer under the writer lock than a SELECT first, and race-free anyway.
                try:
                    await tx.execute(
                        "INSERT INTO automaton_agents(agent_id, user_id, generation, isolated_balance, peak_balance)"
                        " VALUES (?, ?, 1, ?, ?)", (agent_id, user_id, micro, micro))
                except sqlite3.IntegrityError as exc:
                    if "automaton_agents.user_id" not in str(exc):
                        raise
                    raise AgentExistsError("You already have an active automaton. Use /deposit to add funds.") from None
                # The opening ledger row matches the balance the agent was inserted with.
                await tx.execute(
                    "INSERT INTO ledger_entries(agent_id, user_id, kind, amount, balance_after, ref, idempotency_key)"
                    " VALUES (?, ?, 'deposit', ?, ?, 'initial deposit', ?)",
                    (agent_id, user_id, micro, micro, self._row_key(user_id, idempotency_key, agent_id)))
                await self._remember(tx, user_id, idempotency_key, "create", {"agent_id": agent_id})
        # Built from committed data after the writer lock is released: a burst of sign-ups
        # queues on that lock, so it is held only for the writes.
        return await self.get_agent_info(agent_id, user_id)

    # ------------------------------------------------------------------ deposit / withdraw
    async def deposit(self, user_id: int, amount: object, *, idempotency_key: str | None = None) -> dict[str, Any]:
        """Add paper capital to the user's generation-1 agent; returns that agent."""
        _check_user_id(user_id)
        micro = self._deposit_amount(amount, "Deposit")
        async with self.db.transaction() as tx:
            await self._ensure_user(tx, user_id)
            done = await self._replay(tx, user_id, idempotency_key, "deposit")
            if done is not None:
                return await self._agent_dict_tx(tx, done["agent_id"])
            root = await tx.fetchone(
                "SELECT agent_id, status, isolated_balance FROM automaton_agents"
                " WHERE user_id = ? AND generation = 1 AND status <> 'closed'",
                (user_id,),
            )
            if root is None:
                raise AgentNotFoundError()
            await self._post(tx, root["agent_id"], user_id, "deposit", micro, "deposit",
                             self._row_key(user_id, idempotency_key, root["agent_id"]))
            if root["status"] == "dead" and root["isolated_balance"] + micro >= self.rules.micro(
                    self.rules.min_agent_balance):
                await self._set_status(tx, root["agent_id"], "active", "revived by a deposit")
            await self._remember(tx, user_id, idempotency_key, "deposit", {"agent_id": root["agent_id"]})
            return await self._agent_dict_tx(tx, root["agent_id"])

    async def withdraw(self, user_id: int, amount: object, *, idempotency_key: str | None = None) -> dict[str, Any]:
        """Withdraw `amount` (or "all") from the whole tree, proportionally to available balances.

        Returns `{"amount": Decimal, "parts": {agent_id: Decimal}, "total_available": Decimal}`
        (the total available after the withdrawal).
        """
        _check_user_id(user_id)
        take_all = isinstance(amount, str) and amount.strip().lower() == "all"
        micro = 0 if take_all else to_micro(amount, what="Withdrawal")
        async with self.db.transaction() as tx:
            await self._ensure_user(tx, user_id)
            done = await self._replay(tx, user_id, idempotency_key, "withdraw")
            if done is not None:
                return self._withdraw_result(done)
            rows = await tx.fetchall(
                "SELECT agent_id, isolated_balance - locked_balance AS avail FROM automaton_agents"
                " WHERE user_id = ? AND status <> 'closed' AND isolated_balance > locked_balance"
                " ORDER BY generation, created_at, agent_id",
                (user_id,),
            )
            total = sum(r["avail"] for r in rows)
            if take_all:
                micro = total
            if total <= 0:
                raise InsufficientFundsError("Nothing is available to withdraw.")
            if micro > total:
                raise InsufficientFundsError(
                    f"You can withdraw at most {from_micro(total)} USDC (available across all your agents)."
                )
            parts = largest_remainder(micro, [r["avail"] for r in rows])
            result_parts: dict[str, int] = {}
            for row, part in zip(rows, parts, strict=True):
                if part == 0:
                    continue
                agent_id = row["agent_id"]
                after = await self._post(tx, agent_id, user_id, "withdraw", -part, "withdrawal",
                                         self._row_key(user_id, idempotency_key, agent_id))
                result_parts[agent_id] = part
                locked = (await tx.fetchone("SELECT locked_balance FROM automaton_agents WHERE agent_id = ?",
                                            (agent_id,)))["locked_balance"]
                if after == 0 and locked == 0:
                    await self._set_status(tx, agent_id, "closed", "emptied by withdrawal")
                elif after < self.rules.micro(self.rules.min_agent_balance):
                    await self._set_status(tx, agent_id, "dead", "balance below the minimum")
            payload = {"amount": micro, "parts": result_parts, "total_available": total - micro}
            await self._remember(tx, user_id, idempotency_key, "withdraw", payload)
            return self._withdraw_result(payload)

    @staticmethod
    def _withdraw_result(payload: dict[str, Any]) -> dict[str, Any]:
        return {
            "amount": from_micro(payload["amount"]),
            "parts": {k: from_micro(v) for k, v in payload["parts"].items()},
            "total_available": from_micro(payload["total_available"]),
        }

    # ------------------------------------------------------------------ P&L
    async def record_agent_profit(self, agent_id: str, amount: object, info: str = "",
                                  idempotency_key: str | None = None, *, kind: str | None = None) -> dict[str, Any]:
        """Record realized profit (positive) or loss (negative) on an agent.

        `kind="sync_adjust"` records a balance change reported by the remote Automaton.
        A loss cannot exceed the agent's available balance. The agent dies below the minimum.
        """
        micro = to_micro(amount, what="Profit", allow_negative=True)
        if kind not in (None, "sync_adjust"):
            raise InvalidAmountError("Unknown ledger kind.")
        ledger_kind = kind or ("profit" if micro > 0 else "loss")
        died: AgentDied | None = None
        async with self.db.transaction() as tx:
            agent = await self._agent_row(tx, agent_id)
            if agent is None:
                raise AgentNotFoundError(agent_id)
            user_id = agent["user_id"]
            done = await self._replay(tx, user_id, idempotency_key, "profit")
            if done is not None:
                return await self._agent_dict_tx(tx, agent_id)
            if agent["status"] == "closed":
                raise AgentStateError("This agent is closed.")
            available = agent["isolated_balance"] - agent["locked_balance"]
            if micro < 0 and -micro > available:
                raise InsufficientFundsError(
                    f"A loss of {from_micro(-micro)} USDC exceeds the agent's available {from_micro(available)} USDC."
                )
            after = await self._post(tx, agent_id, user_id, ledger_kind, micro, _clean_text(info) or ledger_kind,
                                     self._row_key(user_id, idempotency_key, agent_id))
            min_bal = self.rules.micro(self.rules.min_agent_balance)
            if after < min_bal and agent["status"] != "dead":
                await self._set_status(tx, agent_id, "dead", "balance below the minimum")
                died = AgentDied(user_id=user_id, agent_id=agent_id, balance=from_micro(after))
            elif after >= min_bal and agent["status"] == "dead":
                await self._set_status(tx, agent_id, "active", "balance restored")
            await self._remember(tx, user_id, idempotency_key, "profit", {"agent_id": agent_id})
            result = await self._agent_dict_tx(tx, agent_id)
        if died:
            await self._publish(died)
        return result

    # ------------------------------------------------------------------ spawning
    async def check_spawn_eligibility(self, agent_id: str) -> tuple[bool, Decimal]:
        """(eligible, suggested child balance) by the rule of SPEC §3."""
        bounds = await self.spawn_bounds(agent_id)
        return bounds["eligible"], bounds["suggested"]

    async def spawn_bounds(self, agent_id: str) -> dict[str, Any]:
        """The numbers behind the spawn rule (for the policy and the UI), Decimal amounts."""
        agent = await self.db.fetchone(f"SELECT {_AGENT_COLUMNS} FROM automaton_agents WHERE agent_id = ?",
                                       (agent_id,))
        if agent is None:
            raise AgentNotFoundError(agent_id)
        sums = await self._sums_for(self.db.fetchall, [agent_id])
        live = await self.db.fetchval(
            "SELECT COUNT(*) FROM automaton_agents WHERE parent_agent_id = ? AND status IN ('active','paused')",
            (agent_id,))
        b = self._spawn_bounds(agent, sums.get(agent_id, _Sums()), live)
        return {k: (from_micro(v) if k in ("spawnable", "suggested", "max_child", "net_earnings", "available")
                    else v) for k, v in b.items()}

    def _spawn_bounds(self, agent: Any, sums: _Sums, live_children: int) -> dict[str, Any]:
        r = self.rules
        available = agent["isolated_balance"] - agent["locked_balance"]
        spawnable = max(0, min(sums.net - sums.spent, available - r.micro(r.spawn_reserve)))
        min_child = r.micro(r.min_child_balance)
        max_child = min(spawnable, available // 2)
        suggested = min(max(int(spawnable * r.spawn_fraction), min_child), max_child)
        eligible = (
            agent["status"] == "active"
            and spawnable >= r.micro(r.spawn_min_earnings)
            and live_children < r.max_children
            and suggested >= min_child
        )
        return {"eligible": eligible, "spawnable": spawnable, "suggested": suggested if eligible else 0,
                "max_child": max_child if eligible else 0, "live_children": live_children,
                "net_earnings": sums.net, "available": available}

    async def spawn_child_agent(self, parent_agent_id: str, balance: object, reason: str, *,
                                idempotency_key: str | None = None, source: str = "rule") -> dict[str, Any]:
        """Fund a child from the parent's earnings. The child inherits the strategy.

        `balance` must be at least MIN_CHILD_BALANCE and at most what the parent can spawn
        (its unspent net earnings, keeping the reserve); the parent must be eligible.
        """
        micro = to_micro(balance, what="Child balance")
        reason = _clean_text(reason) or "spawned"
        async with self.db.transaction() as tx:
            parent = await self._agent_row(tx, parent_agent_id)
            if parent is None:
                raise AgentNotFoundError(parent_agent_id)
            user_id = parent["user_id"]
            done = await self._replay(tx, user_id, idempotency_key, "spawn")
            if done is not None:
                return await self._agent_dict_tx(tx, done["agent_id"])
            if parent["status"] != "active":
                raise AgentStateError(f"Only an active agent can spawn (this one is {parent['status']}).")
            sums = await self._sums_for(tx.fetchall, [parent_agent_id])
            live = (await tx.fetchone(
                "SELECT COUNT(*) AS n FROM automaton_agents"
                " WHERE parent_agent_id = ? AND status IN ('active','paused')",
                (parent_agent_id,)))["n"]
            b = self._spawn_bounds(parent, sums.get(parent_agent_id, _Sums()), live)
            if live >= self.rules.max_children:
                raise SpawnNotAllowedError(
                    f"This agent already has {live} live children (max {self.rules.max_children}).")
            if not b["eligible"]:
                raise SpawnNotAllowedError(
                    f"Not enough earnings to spawn: {from_micro(b['spawnable'])} USDC spawnable, "
                    f"{self.rules.spawn_min_earnings} USDC needed."
                )
            if micro < self.rules.micro(self.rules.min_child_balance):
                raise SpawnNotAllowedError(f"A child needs at least {self.rules.min_child_balance} USDC.")
            if micro > b["spawnable"]:
                raise InsufficientFundsError(
                    f"The parent can fund at most {from_micro(b['spawnable'])} USDC from its earnings."
                )
            child_id = self._new_id()
            await tx.execute(
                "INSERT INTO automaton_agents(agent_id, user_id, parent_agent_id, generation,"
                " spawn_reason, strategy_bot_id, strategy_json) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (child_id, user_id, parent_agent_id, parent["generation"] + 1, reason,
                 parent["strategy_bot_id"], parent["strategy_json"]),
            )
            await self._post(tx, parent_agent_id, user_id, "spawn_out", -micro, f"child {child_id}",
                             self._row_key(user_id, idempotency_key, parent_agent_id))
            await self._post(tx, child_id, user_id, "spawn_in", micro, f"from {parent_agent_id}",
                             self._row_key(user_id, idempotency_key, child_id))
            await tx.execute(
                "INSERT INTO spawn_decisions(agent_id, user_id, spawn, amount, reason, source, child_agent_id)"
                " VALUES (?, ?, 1, ?, ?, ?, ?)",
                (parent_agent_id, user_id, micro, reason, source if source in ("llm", "rule", "remote", "user")
                 else "rule", child_id),
            )
            await self._remember(tx, user_id, idempotency_key, "spawn", {"agent_id": child_id})
            child = await self._agent_dict_tx(tx, child_id)
        await self._publish(ChildSpawned(user_id=user_id, parent_agent_id=parent_agent_id, child_agent_id=child_id,
                                         amount=from_micro(micro), reason=reason, generation=child["generation"]))
        return child

    async def adopt_remote_child(self, parent_agent_id: str, remote_child_id: str, balance: object,
                                 reason: str) -> dict[str, Any] | None:
        """Mirror a child the remote Automaton spawned: moves `balance` from parent to a new
        local child bound to `remote_child_id`. Idempotent per remote child; returns None
        when that child is already known. Bounded by the parent's available balance only
        (the remote side already decided), so no money is created."""
        if not isinstance(remote_child_id, str) or not remote_child_id.strip() or len(remote_child_id) > 128:
            raise InvalidAmountError("Invalid remote child id.")
        micro = to_micro(balance, what="Child balance")
        reason = _clean_text(reason) or "spawned by the remote automaton"
        async with self.db.transaction() as tx:
            parent = await self._agent_row(tx, parent_agent_id)
            if parent is None:
                raise AgentNotFoundError(parent_agent_id)
            if await tx.fetchone("SELECT 1 FROM automaton_agents WHERE remote_agent_id = ?", (remote_child_id,)):
                return None
            user_id = parent["user_id"]
            available = parent["isolated_balance"] - parent["locked_balance"]
            if micro > available:
                raise InsufficientFundsError("The remote child is larger than the parent's available balance.")
            child_id = self._new_id()
            await tx.execute(
                "INSERT INTO automaton_agents(agent_id, user_id, parent_agent_id, generation,"
                " spawn_reason, strategy_bot_id, strategy_json, remote_agent_id, remote_balance)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (child_id, user_id, parent_agent_id, parent["generation"] + 1, reason,
                 parent["strategy_bot_id"], parent["strategy_json"], remote_child_id, micro),
            )
            key = f"remote-child:{remote_child_id}"
            await self._post(tx, parent_agent_id, user_id, "spawn_out", -micro, f"child {child_id}", f"{key}:out")
            await self._post(tx, child_id, user_id, "spawn_in", micro, f"from {parent_agent_id}", f"{key}:in")
            await tx.execute(
                "INSERT INTO spawn_decisions(agent_id, user_id, spawn, amount, reason, source, child_agent_id)"
                " VALUES (?, ?, 1, ?, ?, 'remote', ?)", (parent_agent_id, user_id, micro, reason, child_id))
            if parent["remote_balance"] is not None:
                # The parent's remote balance already reflects the transfer to the child.
                await tx.execute("UPDATE automaton_agents SET remote_balance = remote_balance - ? WHERE agent_id = ?",
                                 (micro, parent_agent_id))
            child = await self._agent_dict_tx(tx, child_id)
        await self._publish(ChildSpawned(user_id=user_id, parent_agent_id=parent_agent_id, child_agent_id=child_id,
                                         amount=from_micro(micro), reason=reason, generation=child["generation"]))
        return child

    async def record_spawn_decision(self, agent_id: str, spawn: bool, amount: Decimal, reason: str,
                                    source: str) -> None:
        """Store a decision that did not spawn (spawns store theirs in `spawn_child_agent`)."""
        agent = await self.db.fetchone("SELECT user_id FROM automaton_agents WHERE agent_id = ?", (agent_id,))
        if agent is None:
            raise AgentNotFoundError(agent_id)
        micro = int(amount * 1_000_000) if amount > 0 else 0
        await self.db.execute(
            "INSERT INTO spawn_decisions(agent_id, user_id, spawn, amount, reason, source) VALUES (?, ?, ?, ?, ?, ?)",
            (agent_id, agent["user_id"], int(spawn), micro, _clean_text(reason) or "-", source))

    # ------------------------------------------------------------------ reads
    async def get_user_ai_portfolio(self, user_id: int) -> dict[str, Any]:
        """All of the user's agents in tree order with totals (Decimal USDC)."""
        _check_user_id(user_id)
        rows = await self.db.fetchall(
            f"SELECT h.path, h.depth, {', '.join('a.' + c.strip() for c in _AGENT_COLUMNS.split(','))}"
            " FROM user_ai_hierarchy h JOIN automaton_agents a ON a.agent_id = h.agent_id"
            " WHERE h.user_id = ? ORDER BY h.path", (user_id,))
        ids = [r["agent_id"] for r in rows]
        sums = await self._sums_for(self.db.fetchall, ids, user_id=user_id)
        children = await self._child_counts(self.db.fetchall, user_id)
        agents = [self._agent_dict(r, sums.get(r["agent_id"], _Sums()), children.get(r["agent_id"], (0, 0)))
                  for r in rows]
        for a, r in zip(agents, rows, strict=True):
            a["depth"] = r["depth"]
        live = [a for a in agents if a["status"] != "closed"]
        return {
            "user_id": user_id,
            "total_balance": sum((a["isolated_balance"] for a in agents), Decimal("0.000000")),
            "total_available": sum((a["available_balance"] for a in agents), Decimal("0.000000")),
            "total_earnings": sum((a["total_earnings"] for a in agents), Decimal("0.000000")),
            "agent_count": len(live),
            "agents": agents,
        }

    async def get_agent_info(self, agent_id: str, user_id: int) -> dict[str, Any]:
        """One agent, owner-checked: a foreign id raises the same AgentNotFoundError as a missing one."""
        _check_user_id(user_id)
        if not isinstance(agent_id, str) or len(agent_id) > 64:
            raise AgentNotFoundError(agent_id)
        row = await self.db.fetchone(
            f"SELECT {_AGENT_COLUMNS} FROM automaton_agents WHERE agent_id = ? AND user_id = ?", (agent_id, user_id))
        if row is None:
            raise AgentNotFoundError(agent_id)
        sums = await self._sums_for(self.db.fetchall, [agent_id])
        children = await self._child_counts(self.db.fetchall, user_id)
        return self._agent_dict(row, sums.get(agent_id, _Sums()), children.get(agent_id, (0, 0)))

    async def get_main_agent(self, user_id: int) -> dict[str, Any] | None:
        """The user's live generation-1 agent, or None."""
        row = await self.db.fetchone(
            "SELECT agent_id FROM automaton_agents WHERE user_id = ? AND generation = 1 AND status <> 'closed'",
            (user_id,))
        return None if row is None else await self.get_agent_info(row["agent_id"], user_id)

    async def list_children(self, agent_id: str, user_id: int) -> list[str]:
        await self.get_agent_info(agent_id, user_id)
        rows = await self.db.fetchall(
            "SELECT agent_id FROM automaton_agents WHERE parent_agent_id = ? ORDER BY created_at, agent_id",
            (agent_id,))
        return [r["agent_id"] for r in rows]

    async def ledger(self, agent_id: str, user_id: int, limit: int = 20) -> list[dict[str, Any]]:
        """The agent's latest ledger rows (owner-checked)."""
        await self.get_agent_info(agent_id, user_id)
        rows = await self.db.fetchall(
            "SELECT kind, amount, balance_after, ref, created_at FROM ledger_entries WHERE agent_id = ?"
            " ORDER BY entry_id DESC LIMIT ?", (agent_id, limit))
        return [{"kind": r["kind"], "amount": from_micro(r["amount"]), "balance_after": from_micro(r["balance_after"]),
                 "ref": r["ref"], "created_at": r["created_at"]} for r in rows]

    # ------------------------------------------------------------------ states
    async def pause_agent(self, agent_id: str, user_id: int | None = None, *,
                          reason: str = "paused by you") -> dict[str, Any]:
        """Pause an active agent (owner-checked when `user_id` is given; None = system, e.g. risk)."""
        return await self._transition(agent_id, user_id, "active", "paused", reason)

    async def resume_agent(self, agent_id: str, user_id: int | None = None) -> dict[str, Any]:
        """Resume a paused agent."""
        return await self._transition(agent_id, user_id, "paused", "active", "resumed")

    async def _transition(self, agent_id: str, user_id: int | None, src: str, dst: str, reason: str) -> dict[str, Any]:
        async with self.db.transaction() as tx:
            row = await self._agent_row(tx, agent_id)
            if row is None or (user_id is not None and row["user_id"] != user_id):
                raise AgentNotFoundError(agent_id)
            if row["status"] != src:
                raise AgentStateError(f"This agent is {row['status']}; it can't be {dst}.")
            await self._set_status(tx, agent_id, dst, _clean_text(reason))
            return await self._agent_dict_tx(tx, agent_id)

    async def assign_strategy(self, agent_id: str, user_id: int, bot_id: int | None, strategy_json: str | None) -> None:
        """Give an agent (and not its existing children) a strategy snapshot from a strategy bot."""
        async with self.db.transaction() as tx:
            row = await self._agent_row(tx, agent_id)
            if row is None or row["user_id"] != user_id:
                raise AgentNotFoundError(agent_id)
            await tx.execute("UPDATE automaton_agents SET strategy_bot_id = ?, strategy_json = ?,"
                             " updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE agent_id = ?",
                             (bot_id, strategy_json, agent_id))

    # ------------------------------------------------------------------ positions
    async def open_position(self, agent_id: str, *, token_id: str, symbol: str, size: float, price: float,
                            cost: object, stop_loss: float | None = None, take_profit: float | None = None,
                            idempotency_key: str | None = None, entry_bar_time: int | None = None) -> int | None:
        """Lock `cost` (fees included) of the agent's available balance in a paper position.

        Returns the position id, or None when `idempotency_key` was already used (replayed tick).
        """
        micro = to_micro(cost, what="Position cost")
        if not (size > 0 and price > 0) or size != size or price != price:
            raise InvalidAmountError("Position size and price must be positive.")
        async with self.db.transaction() as tx:
            if idempotency_key and await tx.fetchone("SELECT 1 FROM positions WHERE open_key = ?", (idempotency_key,)):
                return None
            agent = await self._agent_row(tx, agent_id)
            if agent is None:
                raise AgentNotFoundError(agent_id)
            if agent["status"] != "active":
                raise AgentStateError(f"This agent is {agent['status']}; it can't trade.")
            if micro > agent["isolated_balance"] - agent["locked_balance"]:
                raise InsufficientFundsError("Not enough available balance for this position.")
            await tx.execute("UPDATE automaton_agents SET locked_balance = locked_balance + ? WHERE agent_id = ?",
                             (micro, agent_id))
            return await tx.insert(
                "INSERT INTO positions(agent_id, user_id, token_id, symbol, size, entry_price, cost, stop_loss,"
                " take_profit, open_key, entry_bar_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (agent_id, agent["user_id"], token_id, symbol, float(size), float(price), micro, stop_loss,
                 take_profit, idempotency_key, entry_bar_time))

    async def close_position(self, position_id: int, *, exit_price: float, proceeds: object, reason: str,
                             idempotency_key: str | None = None,
                             exit_bar_time: int | None = None) -> dict[str, Any] | None:
        """Close a position: unlock its cost and book `proceeds - cost` as profit or loss.

        Returns `{"pnl": Decimal, "agent_id", "trade_id"}`, or None when already closed.
        """
        proceeds_micro = to_micro(proceeds, what="Proceeds", allow_zero=True)
        died: AgentDied | None = None
        async with self.db.transaction() as tx:
            pos = await tx.fetchone("SELECT * FROM positions WHERE position_id = ?", (position_id,))
            if pos is None:
                raise PositionNotFoundError("No such position.")
            if pos["status"] != "open":
                return None
            agent = await self._agent_row(tx, pos["agent_id"])
            pnl = proceeds_micro - pos["cost"]
            await tx.execute("UPDATE automaton_agents SET locked_balance = locked_balance - ? WHERE agent_id = ?",
                             (pos["cost"], pos["agent_id"]))
            await tx.execute("UPDATE positions SET status = 'closed', closed_at = strftime('%Y-%m-%dT%H:%M:%fZ','now')"
                             " WHERE position_id = ?", (position_id,))
            key = idempotency_key or f"close:{position_id}"
            after = agent["isolated_balance"]
            if pnl != 0:
                after = await self._post(tx, pos["agent_id"], pos["user_id"], "profit" if pnl > 0 else "loss", pnl,
                                         f"{pos['symbol']} {reason}", key)
            trade_id = await tx.insert(
                "INSERT INTO trades(agent_id, user_id, position_id, token_id, symbol, size, entry_price, exit_price,"
                " cost, proceeds, pnl, exit_reason, opened_at, entry_bar_time, exit_bar_time)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (pos["agent_id"], pos["user_id"], position_id, pos["token_id"], pos["symbol"], pos["size"],
                 pos["entry_price"], float(exit_price), pos["cost"], proceeds_micro, pnl, _clean_text(reason, 40),
                 pos["opened_at"], pos["entry_bar_time"], exit_bar_time))
            if after < self.rules.micro(self.rules.min_agent_balance) and agent["status"] not in ("dead", "closed"):
                await self._set_status(tx, pos["agent_id"], "dead", "balance below the minimum")
                died = AgentDied(user_id=pos["user_id"], agent_id=pos["agent_id"], balance=from_micro(after))
        if died:
            await self._publish(died)
        return {"pnl": from_micro(pnl), "agent_id": pos["agent_id"], "trade_id": trade_id}

    async def open_positions(self, agent_id: str) -> list[dict[str, Any]]:
        rows = await self.db.fetchall("SELECT * FROM positions WHERE agent_id = ? AND status = 'open'"
                                      " ORDER BY position_id", (agent_id,))
        return [dict(r) | {"cost": from_micro(r["cost"])} for r in rows]

    async def recent_trades(self, agent_id: str, limit: int = 5) -> list[dict[str, Any]]:
        rows = await self.db.fetchall("SELECT * FROM trades WHERE agent_id = ? ORDER BY trade_id DESC LIMIT ?",
                                      (agent_id, limit))
        return [dict(r) | {"pnl": from_micro(r["pnl"]), "cost": from_micro(r["cost"])} for r in rows]

    # ------------------------------------------------------------------ internals
    def _deposit_amount(self, amount: object, what: str) -> int:
        micro = to_micro(amount, what=what)
        lo, hi = self.rules.micro(self.rules.min_deposit), self.rules.micro(self.rules.max_deposit)
        if micro < lo:
            raise InvalidAmountError(f"{what} must be at least {self.rules.min_deposit} USDC.")
        if micro > hi:
            raise InvalidAmountError(f"{what} can be at most {self.rules.max_deposit:,} USDC.")
        return micro

    async def _post(self, tx: Transaction, agent_id: str, user_id: int, kind: str, amount: int, ref: str,
                    key: str | None) -> int:
        """Append a ledger row and move the agent's balance with it; returns the new balance."""
        row = await tx.fetchone("SELECT isolated_balance, peak_balance FROM automaton_agents WHERE agent_id = ?",
                                (agent_id,))
        after = row["isolated_balance"] + amount
        if after < 0:
            raise InsufficientFundsError("Not enough balance.")
        peak = row["peak_balance"]
        if kind in ("deposit", "spawn_in"):
            peak = max(peak + amount, after)
        elif kind in ("withdraw", "spawn_out"):
            peak = max(peak + amount, after)  # amount is negative: money that left is not a drawdown
        else:
            peak = max(peak, after)
        await tx.execute(
            "INSERT INTO ledger_entries(agent_id, user_id, kind, amount, balance_after, ref, idempotency_key)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)", (agent_id, user_id, kind, amount, after, ref, key))
        await tx.execute(
            "UPDATE automaton_agents SET isolated_balance = ?, peak_balance = ?,"
            " updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE agent_id = ?", (after, peak, agent_id))
        return after

    @staticmethod
    def _row_key(user_id: int, key: str | None, agent_id: str) -> str | None:
        return None if key is None else f"{user_id}:{key}:{agent_id}"

    async def _replay(self, tx: Transaction, user_id: int, key: str | None, kind: str) -> dict[str, Any] | None:
        if key is None:
            return None
        if not isinstance(key, str) or not (0 < len(key) <= 128):
            raise InvalidAmountError("Invalid idempotency key.")
        row = await tx.fetchone("SELECT kind, result_json FROM money_operations WHERE user_id = ? AND"
                                " idempotency_key = ?", (user_id, key))
        if row is None:
            return None
        if row["kind"] != kind:
            raise IdempotencyConflictError("This idempotency key was used for a different operation.")
        return json.loads(row["result_json"])

    async def _remember(self, tx: Transaction, user_id: int, key: str | None, kind: str,
                        result: dict[str, Any]) -> None:
        if key is not None:
            await tx.execute("INSERT INTO money_operations(user_id, idempotency_key, kind, result_json)"
                             " VALUES (?, ?, ?, ?)", (user_id, key, kind, json.dumps(result)))

    async def _set_status(self, tx: Transaction, agent_id: str, status: str, reason: str) -> None:
        await tx.execute("UPDATE automaton_agents SET status = ?, status_reason = ?,"
                         " updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE agent_id = ?",
                         (status, reason, agent_id))

    @staticmethod
    async def _agent_row(tx: Transaction, agent_id: object) -> Any:
        if not isinstance(agent_id, str) or len(agent_id) > 64:
            return None
        return await tx.fetchone(f"SELECT {_AGENT_COLUMNS} FROM automaton_agents WHERE agent_id = ?", (agent_id,))

    async def _agent_dict_tx(self, tx: Transaction, agent_id: str) -> dict[str, Any]:
        row = await self._agent_row(tx, agent_id)
        sums = await self._sums_for(tx.fetchall, [agent_id])
        counts = await tx.fetchone(
            "SELECT COUNT(*) AS n, COALESCE(SUM(status IN ('active','paused')), 0) AS live"
            " FROM automaton_agents WHERE parent_agent_id = ?", (agent_id,))
        return self._agent_dict(row, sums.get(agent_id, _Sums()), (counts["n"], counts["live"]))

    @staticmethod
    async def _sums_for(fetchall: Any, ids: list[str], user_id: int | None = None) -> dict[str, _Sums]:
        if not ids:
            return {}
        if user_id is not None:
            rows = await fetchall(_SUMS_SQL.format(where="user_id = ?"), (user_id,))
        else:
            marks = ",".join("?" * len(ids))
            rows = await fetchall(_SUMS_SQL.format(where=f"agent_id IN ({marks})"), ids)
        return {r["agent_id"]: _Sums(r["net"], r["spent"]) for r in rows}

    @staticmethod
    async def _child_counts(fetchall: Any, user_id: int) -> dict[str, tuple[int, int]]:
        rows = await fetchall(
            "SELECT parent_agent_id AS p, COUNT(*) AS n, COALESCE(SUM(status IN ('active','paused')), 0) AS live"
            " FROM automaton_agents WHERE user_id = ? AND parent_agent_id IS NOT NULL GROUP BY parent_agent_id",
            (user_id,))
        return {r["p"]: (r["n"], r["live"]) for r in rows}

    @staticmethod
    def _agent_dict(row: Any, sums: _Sums, children: tuple[int, int]) -> dict[str, Any]:
        return {
            "agent_id": row["agent_id"],
            "user_id": row["user_id"],
            "parent_agent_id": row["parent_agent_id"],
            "generation": row["generation"],
            "isolated_balance": from_micro(row["isolated_balance"]),
            "available_balance": from_micro(row["isolated_balance"] - row["locked_balance"]),
            "locked_balance": from_micro(row["locked_balance"]),
            "total_earnings": from_micro(sums.net),
            "spent_on_children": from_micro(sums.spent),
            "peak_balance": from_micro(row["peak_balance"]),
            "child_count": children[0],
            "live_children": children[1],
            "status": row["status"],
            "status_reason": row["status_reason"],
            "spawn_reason": row["spawn_reason"],
            "strategy_bot_id": row["strategy_bot_id"],
            "strategy_json": row["strategy_json"],
            "remote_agent_id": row["remote_agent_id"],
            "remote_balance": None if row["remote_balance"] is None else from_micro(row["remote_balance"]),
            "remote_status": row["remote_status"],
            "remote_synced_at": row["remote_synced_at"],
            "created_at": row["created_at"],
        }

    async def _publish(self, event: Event) -> None:
        try:
            await self.events.publish(event)
        except Exception:  # a notification failure never undoes or breaks a committed operation
            import logging

            logging.getLogger(__name__).exception("event sink failed for %s", type(event).__name__)
