"""The remote Conway Automaton's side of each agent: binding, synced balance, status.

Plain functions on a `SyncTx` (run them with `Database.read` / `Database.run`). These columns
do not matter to the agent loop, so these UPDATEs leave the change feed alone.
"""

from __future__ import annotations

from typing import Any

from storage.agents_repo import LIVE_SQL
from storage.connection import SyncTx


def unbound(tx: SyncTx) -> list[Any]:
    """(agent_id, user_id, isolated_balance) of live agents with no remote agent yet."""
    return tx.all("SELECT agent_id, user_id, isolated_balance FROM automaton_agents"
                  f" WHERE remote_agent_id IS NULL AND status IN {LIVE_SQL} ORDER BY created_at, agent_id")


def bound(tx: SyncTx) -> list[Any]:
    """(agent_id, remote_agent_id) of every agent bound to a remote one and not closed."""
    return tx.all("SELECT agent_id, remote_agent_id FROM automaton_agents"
                  " WHERE remote_agent_id IS NOT NULL AND status <> 'closed' ORDER BY created_at, agent_id")


def set_status(tx: SyncTx, agent_id: str, status: str, only_unbound: bool = False) -> None:
    tx.run("UPDATE automaton_agents SET remote_status = ? WHERE agent_id = ?"
           + (" AND remote_agent_id IS NULL" if only_unbound else ""), (status, agent_id))


def bind(tx: SyncTx, agent_id: str, remote_id: str, balance: int, synced_at: str, conflict_status: str
         ) -> str | None:
    """Bind `agent_id` to `remote_id`; when another agent is already bound to it, mark this one
    `conflict_status` instead and return that agent's id."""
    taken = tx.value("SELECT agent_id FROM automaton_agents WHERE remote_agent_id = ?", (remote_id,))
    if taken is not None and taken != agent_id:
        set_status(tx, agent_id, conflict_status)
        return str(taken)
    tx.run("UPDATE automaton_agents SET remote_agent_id = ?, remote_balance = ?, remote_status = 'running',"
           " remote_synced_at = ? WHERE agent_id = ? AND remote_agent_id IS NULL",
           (remote_id, balance, synced_at, agent_id))
    return None


def is_known(tx: SyncTx, remote_id: str) -> bool:
    return tx.one("SELECT 1 FROM automaton_agents WHERE remote_agent_id = ?", (remote_id,)) is not None


def synced_balance(tx: SyncTx, agent_id: str) -> Any:
    """(remote_balance, status) of the agent, or None."""
    return tx.one("SELECT remote_balance, status FROM automaton_agents WHERE agent_id = ?", (agent_id,))


def record_sync(tx: SyncTx, agent_id: str, balance: int, status: str, synced_at: str) -> None:
    tx.run("UPDATE automaton_agents SET remote_balance = ?, remote_status = ?, remote_synced_at = ?"
           " WHERE agent_id = ?", (balance, status, synced_at, agent_id))
