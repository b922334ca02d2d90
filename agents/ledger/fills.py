"""Opens and closes booked as one batch: the only code path that moves money into and out of positions.

The agent loop collects every open and close its trading cores decided in a tick and the
manager books them with one `Database.run` (one hop on the writer thread, one commit); a single
`open_position` / `close_position` is a batch of one. The batch reads every agent and position
it touches in a few `IN (…)` queries, applies the rules in order on in-memory copies (an order
that fails a check is refused alone and changes nothing), and writes the result with one
`executemany` per table. A close may refer to a position opened earlier in the same batch
(`opened_by`, its index).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from agents.errors import (
    AgentError,
    AgentNotFoundError,
    AgentStateError,
    InsufficientFundsError,
    PositionNotFoundError,
)
from agents.events import AgentDied
from agents.ledger.money_tx import moved
from agents.ledger.rules import MoneyRules, available, status_after
from engine.events import Event
from storage import SyncTx
from storage import agents_repo as agents
from storage import ledger_repo as ledger
from storage import positions_repo as positions
from storage.money import from_micro
from storage.positions_repo import NewPosition
from storage.values import to_iso


@dataclass(frozen=True)
class OpenOrder:
    """Open `position` (validated by `IsolatedAIManager.open_order`)."""

    position: NewPosition


@dataclass(frozen=True)
class CloseOrder:
    """Close `position_id`, or the position opened by order `opened_by` of the same batch."""

    exit_price: float
    proceeds: int  # micro-USDC
    reason: str
    key: str | None
    exit_bar_time: int | None
    position_id: int | None = None
    opened_by: int | None = None


FillOrder = OpenOrder | CloseOrder


@dataclass
class BookedFill:
    """The outcome of one order: `value` is the new position id (open), the close result dict
    (close), or None when it was already booked or its open was refused; `error` when refused."""

    value: Any = None
    error: AgentError | None = None
    events: list[Event] = field(default_factory=list)


@dataclass
class _Money:
    """An agent's money as the batch moves it."""

    user_id: int
    balance: int
    locked: int
    peak: int
    status: str
    reason: str | None
    touched: bool = False
    was: str = ""

    def __post_init__(self) -> None:
        self.was = self.status


class _Batch:
    def __init__(self, tx: SyncTx, rules: MoneyRules, orders: list[FillOrder]) -> None:
        self.rules = rules
        self.now = to_iso(time.time())
        opens = [o.position for o in orders if isinstance(o, OpenOrder)]
        self.used = positions.open_keys_used(tx, [p.open_key for p in opens if p.open_key])
        self.positions = positions.get_many(
            tx, [o.position_id for o in orders if isinstance(o, CloseOrder) and o.position_id is not None])
        ids = {p.agent_id for p in opens} | {p["agent_id"] for p in self.positions.values()}
        self.money = {a: _Money(r["user_id"], r["isolated_balance"], r["locked_balance"], r["peak_balance"],
                                r["status"], r["status_reason"]) for a, r in agents.get_many(tx, ids).items()}
        closes = sum(1 for o in orders if isinstance(o, CloseOrder))
        self.next_position, self.next_trade = positions.first_free_ids(tx, len(opens), closes)
        self.new_positions: list[dict[str, Any]] = []
        self.closed: list[int] = []
        self.ledger: list[tuple[Any, ...]] = []
        self.trades: list[tuple[Any, ...]] = []

    def open(self, p: NewPosition) -> int | None:
        if p.open_key and p.open_key in self.used:
            return None  # this entry was already booked (a replayed tick)
        m = self.money.get(p.agent_id)
        if m is None:
            raise AgentNotFoundError(p.agent_id)
        if m.status != "active":
            raise AgentStateError("agent.cannot_trade", status=m.status)
        if p.cost > available(m.balance, m.locked):
            raise InsufficientFundsError("funds.position_above_available")
        m.locked += p.cost
        m.touched = True
        if p.open_key:
            self.used.add(p.open_key)
        pid, self.next_position = self.next_position, self.next_position + 1
        row = {**p.__dict__, "position_id": pid, "user_id": m.user_id, "opened_at": self.now, "status": "open"}
        self.new_positions.append(row)
        self.positions[pid] = row
        return pid

    def close(self, pid: int, o: CloseOrder, result: BookedFill) -> None:
        pos = self.positions.get(pid)
        if pos is None:
            raise PositionNotFoundError()
        if pos["status"] != "open":
            return  # already closed (a replayed tick)
        m = self.money[pos["agent_id"]]
        pnl = o.proceeds - pos["cost"]
        if pnl != 0:
            kind = "profit" if pnl > 0 else "loss"
            m.balance, m.peak = moved(kind, m.balance, m.peak, pnl)
            self.ledger.append((pos["agent_id"], pos["user_id"], kind, pnl, m.balance, f"{pos['symbol']} {o.reason}",
                                o.key or f"close:{pid}"))
        m.locked -= pos["cost"]
        m.touched = True
        pos["status"] = "closed"
        self.closed.append(pid)
        tid, self.next_trade = self.next_trade, self.next_trade + 1
        self.trades.append((tid, pos, float(o.exit_price), o.proceeds, pnl, o.reason, o.exit_bar_time, self.now))
        result.value = {"pnl": from_micro(pnl), "agent_id": pos["agent_id"], "trade_id": tid}
        change = status_after(self.rules, m.status, m.balance, may_revive=False)
        if change is not None:
            m.status, m.reason = change
            if change[0] == "dead":
                result.events.append(AgentDied(user_id=pos["user_id"], agent_id=pos["agent_id"],
                                               balance=from_micro(m.balance)))

    def write(self, tx: SyncTx) -> None:
        # Positions first (trades refer to them); the agents' final balances last.
        positions.insert_many(tx, self.new_positions)
        positions.close_many(tx, self.closed, self.now)
        ledger.append_many(tx, self.ledger)
        positions.insert_trades(tx, self.trades)
        touched = [(a, m) for a, m in self.money.items() if m.touched]
        agents.write_money_many(tx, [(m.balance, m.locked, m.peak, a) for a, m in touched],
                                [(m.status, m.reason, a) for a, m in touched if m.status != m.was], self.now)


def book_fills(tx: SyncTx, rules: MoneyRules, orders: list[FillOrder]) -> list[BookedFill]:
    """Book `orders` in order on one transaction (see the module docstring)."""
    batch = _Batch(tx, rules, orders)
    booked: list[BookedFill] = []
    for order in orders:
        result = BookedFill()
        try:
            if isinstance(order, OpenOrder):
                result.value = batch.open(order.position)
            else:
                pid = order.position_id if order.opened_by is None else booked[order.opened_by].value
                if pid is not None:
                    batch.close(pid, order, result)
        except AgentError as exc:
            result.error = exc
        booked.append(result)
    batch.write(tx)
    return booked


def open_one(tx: SyncTx, rules: MoneyRules, p: NewPosition) -> int | None:
    """`open_position` as a batch of one: the position id, None when `p.open_key` was already used."""
    result = book_fills(tx, rules, [OpenOrder(p)])[0]
    if result.error is not None:
        raise result.error
    return result.value


def close_one(tx: SyncTx, rules: MoneyRules, order: CloseOrder) -> BookedFill:
    """`close_position` as a batch of one (value None when already closed)."""
    result = book_fills(tx, rules, [order])[0]
    if result.error is not None:
        raise result.error
    return result
