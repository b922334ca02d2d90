"""The isolated AI manager: every user's agents and their money (SPEC §3).

Every money operation is one `BEGIN IMMEDIATE` transaction that re-reads what it checks, writes
ledger rows and the denormalised balances together, and records its idempotency key. The
transaction bodies live in `agents.ledger.money_tx` and run in one hop on the database's writer thread
(`Database.run`); reads are one snapshot each (`agents.ledger.views`). Events are published only
after the commit.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from agents.errors import (
    AgentError,
    AgentNotFoundError,
    AgentStateError,
    InvalidAmountError,
    PositionNotFoundError,
)
from agents.ledger import money_tx, reasons, views
from agents.ledger.amounts import parse_amount
from agents.ledger.fills import BookedFill, CloseOrder, FillOrder, book_fills, close_one, open_one
from agents.ledger.rules import MoneyRules
from engine.events import Event, EventSink, NullSink
from storage import Database, SyncTx
from storage import agents_repo as agents
from storage import spawns_repo as spawns
from storage.money import from_micro, to_micro
from storage.positions_repo import NewPosition
from storage.values import valid_id

MAX_REASON = 300
_MONEY_BOUNDS = ("spawnable", "suggested", "min_child", "max_child", "net_earnings", "available")
logger = logging.getLogger(__name__)


def _new_agent_id() -> str:
    return "ag" + secrets.token_hex(5)


def _check_user_id(user_id: object) -> int:
    if isinstance(user_id, bool) or not isinstance(user_id, int) or not (0 < user_id < 2**53):
        raise InvalidAmountError("user.invalid_id")
    return user_id


def valid_agent_id(agent_id: object) -> bool:
    """Whether `agent_id` could be an agent id at all (a str of sane length)."""
    return isinstance(agent_id, str) and len(agent_id) <= 64


class IsolatedAIManager:
    """Public API used by the bot, the workers and the tests. Amounts are `Decimal` USDC."""

    def __init__(self, db: Database, rules: MoneyRules | None = None, events: EventSink | None = None,
                 *, id_factory: Callable[[], str] = _new_agent_id) -> None:
        self.db = db
        self.rules = rules or MoneyRules()
        self.events: EventSink = events or NullSink()
        self._new_id = id_factory

    # ------------------------------------------------------------------ creation
    async def create_user_main_agent(self, user_id: int, initial_balance: object, *,
                                     idempotency_key: str | None = None) -> dict[str, Any]:
        """Create the user's generation-1 agent funded with `initial_balance` (a deposit)."""
        _check_user_id(user_id)
        micro = self._deposit_amount(initial_balance, "initial_balance")
        return await self.db.run(self._with_view, money_tx.create_root, self.rules, self._new_id, user_id, micro,
                                 idempotency_key)

    # ------------------------------------------------------------------ deposit / withdraw
    async def deposit(self, user_id: int, amount: object, *, idempotency_key: str | None = None) -> dict[str, Any]:
        """Add paper capital to the user's generation-1 agent; returns that agent."""
        _check_user_id(user_id)
        micro = self._deposit_amount(amount, "deposit")
        return await self.db.run(self._with_view, money_tx.deposit, self.rules, user_id, micro, idempotency_key)

    async def withdraw(self, user_id: int, amount: object, *, idempotency_key: str | None = None) -> dict[str, Any]:
        """Withdraw `amount` (or "all") from the whole tree, proportionally to available balances.

        Returns `{"amount": Decimal, "parts": {agent_id: Decimal}, "total_available": Decimal}`
        (the total available after the withdrawal).
        """
        _check_user_id(user_id)
        take_all = isinstance(amount, str) and amount.strip().lower() == "all"
        micro = None if take_all else parse_amount(amount, what="withdrawal")
        payload = await self.db.run(money_tx.withdraw, self.rules, user_id, micro, idempotency_key)
        return _withdrawal_result(payload)

    async def withdrawal_done(self, user_id: int, idempotency_key: str) -> dict[str, Any] | None:
        """The result of the withdrawal made with this key (as `withdraw` returned it), or None."""
        _check_user_id(user_id)
        payload = await self.db.read(money_tx.replay, user_id, idempotency_key, "withdraw")
        return None if payload is None else _withdrawal_result(payload)

    async def preview_withdrawal(self, user_id: int, amount: object) -> dict[str, Any]:
        """What `withdraw(user_id, amount)` would take now, without taking it: `{"amount",
        "total_available", "parts": {agent_id: Decimal}, "dies": [agent ids left below the minimum],
        "closes": [agent ids emptied]}` (Decimal USDC). Refuses exactly as `withdraw` would."""
        _check_user_id(user_id)
        take_all = isinstance(amount, str) and amount.strip().lower() == "all"
        micro = None if take_all else parse_amount(amount, what="withdrawal")
        plan = await self.db.read(money_tx.withdrawal_preview, self.rules, user_id, micro)
        parts = plan["parts"]
        return {
            "amount": from_micro(plan["amount"]),
            "total_available": from_micro(plan["total_available"]),
            "parts": {p.agent_id: from_micro(p.amount) for p in parts},
            "dies": [p.agent_id for p in parts if p.status is not None and p.status[0] == "dead"],
            "closes": [p.agent_id for p in parts if p.status is not None and p.status[0] == "closed"],
        }

    # ------------------------------------------------------------------ P&L
    async def record_agent_profit(self, agent_id: str, amount: object, info: str = "",
                                  idempotency_key: str | None = None, *, kind: str | None = None) -> dict[str, Any]:
        """Record realized profit (positive) or loss (negative) on an agent.

        `kind="sync_adjust"` records a balance change reported by the remote Automaton.
        A loss cannot exceed the agent's available balance. The agent dies below the minimum.
        """
        micro = parse_amount(amount, what="profit", allow_negative=True)
        if kind not in (None, "sync_adjust"):
            raise InvalidAmountError("ledger.unknown_kind")
        if not valid_agent_id(agent_id):
            raise AgentNotFoundError(str(agent_id)[:64])
        ledger_kind = kind or ("profit" if micro > 0 else "loss")
        out, result = await self.db.run(self._outcome_with_view, money_tx.record_profit, self.rules, agent_id, micro,
                                        ledger_kind, reasons.clip_text(info, MAX_REASON), idempotency_key)
        await self._publish_all(out.events)
        return result

    # ------------------------------------------------------------------ spawning
    async def check_spawn_eligibility(self, agent_id: str) -> tuple[bool, Decimal]:
        """(eligible, suggested child balance) by the rule of SPEC §3."""
        bounds = await self.spawn_bounds(agent_id)
        return bounds["eligible"], bounds["suggested"]

    async def spawn_bounds(self, agent_id: str) -> dict[str, Any]:
        """The numbers behind the spawn rule (for the policy and the UI), Decimal amounts."""
        found = await self.db.read(views.spawn_inputs, agent_id) if valid_agent_id(agent_id) else None
        if found is None:
            raise AgentNotFoundError(str(agent_id)[:64])
        b = money_tx.spawn_bounds(self.rules, *found)
        return {k: (from_micro(v) if k in _MONEY_BOUNDS else v) for k, v in dataclasses.asdict(b).items()}

    async def spawn_child_agent(self, parent_agent_id: str, balance: object, reason: str, *,
                                idempotency_key: str | None = None, source: str = "rule") -> dict[str, Any]:
        """Fund a child from the parent's earnings. The child inherits the strategy.

        `balance` must be at least MIN_CHILD_BALANCE and at most what the parent can spawn
        (its unspent net earnings, keeping the reserve); the parent must be eligible.
        """
        micro = parse_amount(balance, what="child_balance")
        reason = reasons.clip_reason(reason, MAX_REASON) or reasons.reason("child.spawned")
        if not valid_agent_id(parent_agent_id):
            raise AgentNotFoundError(str(parent_agent_id)[:64])
        out, child = await self.db.run(self._outcome_with_view, money_tx.spawn_child, self.rules, self._new_id,
                                       parent_agent_id, micro, reason, source, idempotency_key)
        await self._publish_all(out.events)
        return child

    async def adopt_remote_child(self, parent_agent_id: str, remote_child_id: str, balance: object,
                                 reason: str) -> dict[str, Any] | None:
        """Mirror a child the remote Automaton spawned: moves `balance` from parent to a new
        local child bound to `remote_child_id`. Idempotent per remote child; returns None
        when that child is already known. Bounded by the parent's available balance only
        (the remote side already decided), so no money is created."""
        if not isinstance(remote_child_id, str) or not remote_child_id.strip() or len(remote_child_id) > 128:
            raise InvalidAmountError("remote.invalid_child_id")
        micro = parse_amount(balance, what="child_balance")
        reason = reasons.clip_reason(reason, MAX_REASON) or reasons.reason("child.spawned_remotely")
        if not valid_agent_id(parent_agent_id):
            raise AgentNotFoundError(str(parent_agent_id)[:64])
        out, child = await self.db.run(self._outcome_with_view, money_tx.adopt_remote_child, self._new_id,
                                       parent_agent_id, remote_child_id, micro, reason)
        await self._publish_all(out.events)
        return child

    async def record_spawn_decision(self, agent_id: str, spawn: bool, amount: Decimal, reason: str,
                                    source: str) -> None:
        """Store a decision that did not spawn (spawns store theirs in `spawn_child_agent`)."""
        micro = to_micro(amount) if amount > 0 else 0
        if not valid_agent_id(agent_id):
            raise AgentNotFoundError(str(agent_id)[:64])
        await self.db.run(_record_decision, agent_id, spawn, micro,
                          reasons.clip_reason(reason, MAX_REASON) or reasons.reason("decision.unexplained"), source)

    # ------------------------------------------------------------------ reads
    async def get_user_ai_portfolio(self, user_id: int) -> dict[str, Any]:
        """All of the user's agents in tree order with totals (Decimal USDC)."""
        _check_user_id(user_id)
        return await self.db.read(views.portfolio, user_id)

    async def get_agent_info(self, agent_id: str, user_id: int) -> dict[str, Any]:
        """One agent, owner-checked: a foreign id raises the same AgentNotFoundError as a missing one."""
        _check_user_id(user_id)
        found = await self.db.read(views.agent, agent_id, user_id) if valid_agent_id(agent_id) else None
        if found is None:
            raise AgentNotFoundError(str(agent_id)[:64])
        return found

    async def get_main_agent(self, user_id: int) -> dict[str, Any] | None:
        """The user's live generation-1 agent, or None."""
        _check_user_id(user_id)
        return await self.db.read(views.main_agent, user_id)

    async def had_closed_main_agent(self, user_id: int) -> bool:
        """Whether the user's generation-1 agent was closed (a new one can be created; history is kept)."""
        _check_user_id(user_id)
        return await self.db.read(agents.has_closed_root, user_id)

    async def list_children(self, agent_id: str, user_id: int) -> list[str]:
        """The agent's children (owner-checked), oldest first."""
        _check_user_id(user_id)
        found = await self.db.read(views.children_of, agent_id, user_id) if valid_agent_id(agent_id) else None
        if found is None:
            raise AgentNotFoundError(str(agent_id)[:64])
        return found

    async def ledger(self, agent_id: str, user_id: int, limit: int = 20) -> list[dict[str, Any]]:
        """The agent's latest ledger rows (owner-checked)."""
        _check_user_id(user_id)
        found = await self.db.read(views.ledger_rows, agent_id, user_id, limit) if valid_agent_id(agent_id) else None
        if found is None:
            raise AgentNotFoundError(str(agent_id)[:64])
        return found

    # ------------------------------------------------------------------ states
    async def pause_agent(self, agent_id: str, user_id: int | None = None, *,
                          reason: str | None = None) -> dict[str, Any]:
        """Pause an active agent (owner-checked when `user_id` is given; None = system, e.g. risk).

        `reason` is an encoded reason (`agents.ledger.reasons`); by default, paused by the user."""
        return await self._transition(agent_id, user_id, "active", "paused",
                                      reason or reasons.reason("status.paused_by_you"))

    async def resume_agent(self, agent_id: str, user_id: int | None = None) -> dict[str, Any]:
        """Resume a paused agent."""
        return await self._transition(agent_id, user_id, "paused", "active", reasons.reason("status.resumed"))

    async def _transition(self, agent_id: str, user_id: int | None, src: str, dst: str, reason: str) -> dict[str, Any]:
        if not valid_agent_id(agent_id):
            raise AgentNotFoundError(str(agent_id)[:64])
        return await self.db.run(_transition, agent_id, user_id, src, dst, reasons.clip_reason(reason, MAX_REASON))

    async def assign_strategy(self, agent_id: str, user_id: int, bot_id: int | None, strategy_json: str | None) -> None:
        """Give an agent (and not its existing children) a strategy snapshot from a strategy bot."""
        if not valid_agent_id(agent_id):
            raise AgentNotFoundError(str(agent_id)[:64])
        await self.db.run(_assign_strategy, agent_id, user_id, bot_id, strategy_json)

    # ------------------------------------------------------------------ positions
    async def open_position(self, agent_id: str, *, token_id: str, symbol: str, size: float, price: float,
                            cost: object, stop_loss: float | None = None, take_profit: float | None = None,
                            idempotency_key: str | None = None, entry_bar_time: int | None = None) -> int | None:
        """Lock `cost` (fees included) of the agent's available balance in a paper position.

        Returns the position id, or None when `idempotency_key` was already used (replayed tick).
        """
        order = self.open_order(agent_id, token_id=token_id, symbol=symbol, size=size, price=price, cost=cost,
                                stop_loss=stop_loss, take_profit=take_profit, idempotency_key=idempotency_key,
                                entry_bar_time=entry_bar_time)
        return await self.db.run(open_one, self.rules, order)

    def open_order(self, agent_id: str, *, token_id: str, symbol: str, size: float, price: float, cost: object,
                   stop_loss: float | None = None, take_profit: float | None = None,
                   idempotency_key: str | None = None, entry_bar_time: int | None = None) -> NewPosition:
        """A validated position to open (`open_position`, or in a batch with `book_fills`)."""
        micro = parse_amount(cost, what="position_cost")
        if not (size > 0 and price > 0) or size != size or price != price:
            raise InvalidAmountError("position.invalid_fill")
        if not valid_agent_id(agent_id):
            raise AgentNotFoundError(str(agent_id)[:64])
        return NewPosition(agent_id, 0, token_id, symbol, float(size), float(price), micro, stop_loss, take_profit,
                           idempotency_key, entry_bar_time)

    async def close_position(self, position_id: int, *, exit_price: float, proceeds: object, reason: str,
                             idempotency_key: str | None = None,
                             exit_bar_time: int | None = None) -> dict[str, Any] | None:
        """Close a position: unlock its cost and book `proceeds - cost` as profit or loss.

        Returns `{"pnl": Decimal, "agent_id", "trade_id"}`, or None when already closed.
        """
        proceeds_micro = parse_amount(proceeds, what="proceeds", allow_zero=True)
        if not isinstance(position_id, int) or valid_id(position_id) is None:  # bool, str, float, huge: none
            raise PositionNotFoundError()
        order = CloseOrder(float(exit_price), proceeds_micro, reasons.clip_text(reason, 40), idempotency_key,
                           exit_bar_time, position_id=position_id)
        out = await self.db.run(close_one, self.rules, order)
        await self._publish_all(out.events)
        return out.value

    async def book_fills(self, orders: Sequence[FillOrder], *,
                         also: Callable[[SyncTx], None] | None = None) -> list[BookedFill]:
        """Book a tick's opens and closes in ONE transaction, in order; each order succeeds or is
        refused on its own (a refusal rolls back only that order). `also(tx)` adds the caller's
        own writes to the same transaction. See `agents.ledger.fills`."""
        if not orders and also is None:
            return []
        booked = await self.db.run(_book_and_write, self.rules, list(orders), also)
        await self._publish_all([e for b in booked for e in b.events])
        return booked

    async def open_positions(self, agent_id: str, user_id: int | None = None) -> list[dict[str, Any]]:
        """The agent's open positions; owner-checked when `user_id` is given (None = system)."""
        return await self.db.read(views.open_positions, agent_id, user_id)

    async def recent_trades(self, agent_id: str, limit: int = 5, *, user_id: int | None = None) -> list[dict[str, Any]]:
        """The agent's latest trades; owner-checked when `user_id` is given (None = system)."""
        return await self.db.read(views.recent_trades, agent_id, user_id, limit)

    # ------------------------------------------------------------------ internals
    def _deposit_amount(self, amount: object, what: str) -> int:
        micro = parse_amount(amount, what=what)
        if micro < to_micro(self.rules.min_deposit):
            raise InvalidAmountError("amount.below_minimum", what=what, minimum=self.rules.min_deposit)
        if micro > to_micro(self.rules.max_deposit):
            raise InvalidAmountError("amount.above_maximum", what=what, maximum=self.rules.max_deposit)
        return micro

    @staticmethod
    def _with_view(tx: SyncTx, op: Callable[..., Any], *args: Any) -> Any:
        """Run money op `op` (which returns an agent id or None) and read that agent back in the
        same transaction."""
        agent_id = op(tx, *args)
        return None if agent_id is None else views.agent(tx, agent_id)

    @staticmethod
    def _outcome_with_view(tx: SyncTx, op: Callable[..., money_tx.Outcome], *args: Any
                           ) -> tuple[money_tx.Outcome, dict[str, Any] | None]:
        out = op(tx, *args)
        return out, None if out.value is None else views.agent(tx, out.value)

    async def _publish_all(self, events: list[Event]) -> None:
        for event in events:
            await self._publish(event)

    async def _publish(self, event: Event) -> None:
        try:
            await self.events.publish(event)
        except Exception:  # a notification failure never undoes or breaks a committed operation
            logger.exception("event sink failed for %s", type(event).__name__)


def _book_and_write(tx: SyncTx, rules: MoneyRules, orders: list[FillOrder],
                    also: Callable[[SyncTx], None] | None) -> list[BookedFill]:
    booked = book_fills(tx, rules, orders)
    if also is not None:
        also(tx)
    return booked


def _record_decision(tx: SyncTx, agent_id: str, spawn: bool, micro: int, reason: str, source: str) -> None:
    user_id = agents.owner_of(tx, agent_id)
    if user_id is None:
        raise AgentNotFoundError(agent_id)
    spawns.record(tx, agent_id, user_id, spawn, micro, reason, source)


def _transition(tx: SyncTx, agent_id: str, user_id: int | None, src: str, dst: str, reason: str) -> dict[str, Any]:
    row = agents.get(tx, agent_id)
    if row is None or (user_id is not None and row["user_id"] != user_id):
        raise AgentNotFoundError(agent_id)
    if row["status"] != src:
        raise AgentStateError("agent.wrong_status", status=row["status"], target=dst)
    agents.set_status(tx, agent_id, dst, reason)
    found = views.agent(tx, agent_id)
    assert found is not None
    return found


def _assign_strategy(tx: SyncTx, agent_id: str, user_id: int, bot_id: int | None, strategy_json: str | None) -> None:
    if agents.get_owned(tx, agent_id, user_id) is None:
        raise AgentNotFoundError(agent_id)
    agents.set_strategy(tx, agent_id, bot_id, strategy_json)


__all__ = ["AgentError", "IsolatedAIManager"]


def _withdrawal_result(payload: dict[str, Any]) -> dict[str, Any]:
    """A withdrawal's stored payload (micro-USDC) in the dict API's Decimal USDC."""
    return {
        "amount": from_micro(payload["amount"]),
        "parts": {k: from_micro(v) for k, v in payload["parts"].items()},
        "total_available": from_micro(payload["total_available"]),
    }
