"""The ledger (`ledger_entries`) and the idempotent-operation journal (`money_operations`).

Plain functions on a `SyncTx` (see `storage.agents_repo`). Money is INTEGER micro-USDC.
"""

from __future__ import annotations

from typing import Any

from storage.connection import SyncTx

# Per-agent sums behind earnings and the spawn rule: net trading result and money spent on children.
_SUMS = ("SELECT agent_id,"
         " COALESCE(SUM(CASE WHEN kind IN ('profit', 'loss', 'sync_adjust') THEN amount END), 0),"
         " COALESCE(-SUM(CASE WHEN kind = 'spawn_out' THEN amount END), 0)"
         " FROM ledger_entries WHERE {where} GROUP BY agent_id")


def append(tx: SyncTx, agent_id: str, user_id: int, kind: str, amount: int, balance_after: int, ref: str,
           key: str | None) -> None:
    """One ledger row (the agent's balance is written beside it by the caller)."""
    tx.run("INSERT INTO ledger_entries(agent_id, user_id, kind, amount, balance_after, ref, idempotency_key)"
           " VALUES (?, ?, ?, ?, ?, ?, ?)", (agent_id, user_id, kind, amount, balance_after, ref, key))


def append_many(tx: SyncTx, rows: list[tuple[str, int, str, int, int, str, str | None]]) -> None:
    """(agent_id, user_id, kind, amount, balance_after, ref, key) rows in one batch."""
    tx.many("INSERT INTO ledger_entries(agent_id, user_id, kind, amount, balance_after, ref, idempotency_key)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)", rows)


def sums_for_agent(tx: SyncTx, agent_id: str) -> tuple[int, int]:
    """(net earnings, spent on children) of one agent."""
    row = tx.one(_SUMS.format(where="agent_id = ?"), (agent_id,))
    return (0, 0) if row is None else (int(row[1]), int(row[2]))


def sums_for_user(tx: SyncTx, user_id: int) -> dict[str, tuple[int, int]]:
    """(net earnings, spent on children) of each of the user's agents that has ledger rows."""
    return {r[0]: (int(r[1]), int(r[2])) for r in tx.all(_SUMS.format(where="user_id = ?"), (user_id,))}


def latest(tx: SyncTx, agent_id: str, limit: int) -> list[Any]:
    """The agent's newest ledger rows first."""
    return tx.all("SELECT kind, amount, balance_after, ref, created_at FROM ledger_entries WHERE agent_id = ?"
                  " ORDER BY entry_id DESC LIMIT ?", (agent_id, max(0, int(limit))))


def find_operation(tx: SyncTx, user_id: int, key: str) -> Any:
    """(kind, result_json) of the user's operation with this idempotency key, or None."""
    return tx.one("SELECT kind, result_json FROM money_operations WHERE user_id = ? AND idempotency_key = ?",
                  (user_id, key))


def record_operation(tx: SyncTx, user_id: int, key: str, kind: str, result_json: str) -> None:
    tx.run("INSERT INTO money_operations(user_id, idempotency_key, kind, result_json) VALUES (?, ?, ?, ?)",
           (user_id, key, kind, result_json))
