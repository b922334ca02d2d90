"""Read side of the manager: an agent or a user's whole tree as result dicts, from one snapshot.

Each function runs on one `SyncTx` (`Database.read` for committed data, or inside a money
transaction for the row it just wrote), so a screen is one round trip and its numbers agree
with each other. Every query is scoped to one agent or one user (indexed): a screen costs that
user's rows, flat in the total number of users.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from agents.ledger.rules import available
from storage import SyncTx
from storage import agents_repo as agents
from storage import ledger_repo as ledger
from storage import positions_repo as positions
from storage.money import from_micro

ZERO = Decimal("0.000000")


def agent_dict(row: Any, sums: tuple[int, int], children: tuple[int, int]) -> dict[str, Any]:
    """The public shape of one agent (Decimal USDC), the manager's result keys."""
    return {
        "agent_id": row["agent_id"],
        "user_id": row["user_id"],
        "parent_agent_id": row["parent_agent_id"],
        "generation": row["generation"],
        "isolated_balance": from_micro(row["isolated_balance"]),
        "available_balance": from_micro(available(row["isolated_balance"], row["locked_balance"])),
        "locked_balance": from_micro(row["locked_balance"]),
        "total_earnings": from_micro(sums[0]),
        "spent_on_children": from_micro(sums[1]),
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


def agent(tx: SyncTx, agent_id: str, user_id: int | None = None) -> dict[str, Any] | None:
    """One agent (owner-checked when `user_id` is given), or None."""
    row = agents.get(tx, agent_id) if user_id is None else agents.get_owned(tx, agent_id, user_id)
    if row is None:
        return None
    return agent_dict(row, ledger.sums_for_agent(tx, agent_id), agents.child_counts_of(tx, agent_id))


def main_agent(tx: SyncTx, user_id: int) -> dict[str, Any] | None:
    row = agents.live_root(tx, user_id)
    if row is None:
        return None
    return agent_dict(row, ledger.sums_for_agent(tx, row["agent_id"]), agents.child_counts_of(tx, row["agent_id"]))


def portfolio(tx: SyncTx, user_id: int) -> dict[str, Any]:
    """All of the user's agents in tree order (depth-first by path) with totals."""
    rows = agents.for_user(tx, user_id)
    sums = ledger.sums_for_user(tx, user_id)
    by_parent: dict[str | None, list[Any]] = {}
    for r in rows:
        by_parent.setdefault(r["parent_agent_id"], []).append(r)
    known = {r["agent_id"] for r in rows}
    children = {p: (len(kids), sum(1 for k in kids if k["status"] in agents.LIVE)) for p, kids in by_parent.items()}
    ordered: list[tuple[str, int, Any]] = []

    def walk(row: Any, path: str, depth: int) -> None:
        ordered.append((path, depth, row))
        for kid in by_parent.get(row["agent_id"], []):
            walk(kid, f"{path}/{kid['agent_id']}", depth + 1)

    for root in (r for r in rows if r["parent_agent_id"] is None or r["parent_agent_id"] not in known):
        walk(root, root["agent_id"], 0)
    ordered.sort(key=lambda item: item[0])
    out = []
    for _, depth, row in ordered:
        d = agent_dict(row, sums.get(row["agent_id"], (0, 0)), children.get(row["agent_id"], (0, 0)))
        d["depth"] = depth
        out.append(d)
    return {
        "user_id": user_id,
        "total_balance": sum((a["isolated_balance"] for a in out), ZERO),
        "total_available": sum((a["available_balance"] for a in out), ZERO),
        "total_earnings": sum((a["total_earnings"] for a in out), ZERO),
        "agent_count": sum(1 for a in out if a["status"] != "closed"),
        "agents": out,
    }


def ledger_rows(tx: SyncTx, agent_id: str, user_id: int, limit: int) -> list[dict[str, Any]] | None:
    """The agent's latest ledger rows, or None when `user_id` does not own it."""
    if agents.get_owned(tx, agent_id, user_id) is None:
        return None
    return [{"kind": r["kind"], "amount": from_micro(r["amount"]), "balance_after": from_micro(r["balance_after"]),
             "ref": r["ref"], "created_at": r["created_at"]} for r in ledger.latest(tx, agent_id, limit)]


def children_of(tx: SyncTx, agent_id: str, user_id: int) -> list[str] | None:
    if agents.get_owned(tx, agent_id, user_id) is None:
        return None
    return agents.child_ids(tx, agent_id)


def open_positions(tx: SyncTx, agent_id: str, user_id: int | None = None) -> list[dict[str, Any]]:
    """The agent's open positions; only `user_id`'s when given (a foreign agent has none)."""
    return [dict(r) | {"cost": from_micro(r["cost"])} for r in positions.open_for_agent(tx, agent_id, user_id)]


def recent_trades(tx: SyncTx, agent_id: str, user_id: int | None, limit: int) -> list[dict[str, Any]]:
    """The agent's latest trades; only `user_id`'s when given."""
    return [dict(r) | {"pnl": from_micro(r["pnl"]), "cost": from_micro(r["cost"])}
            for r in positions.recent_trades(tx, agent_id, limit, user_id)]


def spawn_inputs(tx: SyncTx, agent_id: str) -> tuple[Any, tuple[int, int], int] | None:
    """(agent row, ledger sums, live children) behind the spawn rule, or None."""
    row = agents.get(tx, agent_id)
    if row is None:
        return None
    return row, ledger.sums_for_agent(tx, agent_id), agents.live_children(tx, agent_id)
