"""Spawn decisions (`spawn_decisions`): every yes and no the spawn policy gave, with its reason."""

from __future__ import annotations

from typing import Any

from storage.connection import SyncTx

SOURCES = ("llm", "rule", "remote", "user")


def record(tx: SyncTx, agent_id: str, user_id: int, spawn: bool, amount: int, reason: str, source: str,
           child_agent_id: str | None = None) -> None:
    """One decision; an unknown `source` is stored as 'rule'."""
    tx.run("INSERT INTO spawn_decisions(agent_id, user_id, spawn, amount, reason, source, child_agent_id)"
           " VALUES (?, ?, ?, ?, ?, ?, ?)",
           (agent_id, user_id, 1 if spawn else 0, amount, reason, source if source in SOURCES else "rule",
            child_agent_id))


def candidates(tx: SyncTx) -> list[Any]:
    """Active agents with a gain booked since their last spawn decision:
    (agent_id, generation, isolated_balance, peak_balance, last_entry)."""
    return tx.all(
        "SELECT a.agent_id, a.generation, a.isolated_balance, a.peak_balance, MAX(l.entry_id) AS last_entry"
        " FROM automaton_agents a"
        " JOIN ledger_entries l ON l.agent_id = a.agent_id AND l.kind IN ('profit', 'sync_adjust') AND l.amount > 0"
        " WHERE a.status = 'active'"
        " GROUP BY a.agent_id, a.generation, a.isolated_balance, a.peak_balance"
        " HAVING MAX(l.created_at) >= COALESCE("
        "   (SELECT MAX(d.created_at) FROM spawn_decisions d WHERE d.agent_id = a.agent_id), '')")


def trade_record(tx: SyncTx, agent_id: str) -> tuple[int, int]:
    """(closed trades, winning trades) of the agent."""
    row = tx.one("SELECT COUNT(*), COALESCE(SUM(CASE WHEN pnl > 0 THEN 1 ELSE 0 END), 0) FROM trades"
                 " WHERE agent_id = ?", (agent_id,))
    return (0, 0) if row is None else (int(row[0]), int(row[1]))
