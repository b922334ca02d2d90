"""The remote Conway Automaton's side of each agent: binding, synced balance, status.

Plain functions on a `SyncTx` (run them with `Database.read` / `Database.run`). These columns
do not matter to the agent loop, so these UPDATEs leave the change feed alone.
"""

from __future__ import annotations

from typing import Any

from storage.agents_repo import LIVE_SQL
from storage.connection import SyncTx
from storage.values import from_iso, to_iso


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


def sync_state(tx: SyncTx, agent_id: str) -> Any:
    """(user_id, status, remote_balance, remote_synced_at) of the agent, or None."""
    return tx.one("SELECT user_id, status, remote_balance, remote_synced_at FROM automaton_agents"
                  " WHERE agent_id = ?", (agent_id,))


def booked_sync(tx: SyncTx, agent_id: str, ledger_key: str) -> int | None:
    """Amount of the agent's `sync_adjust` ledger row with this idempotency key, or None."""
    value = tx.value("SELECT amount FROM ledger_entries WHERE idempotency_key = ? AND agent_id = ?"
                     " AND kind = 'sync_adjust'", (ledger_key, agent_id))
    return None if value is None else int(value)


def finish_sync(tx: SyncTx, agent_id: str, version: str | None, ledger_key: str, status: str, now: str,
                absolute: int | None = None) -> int | None:
    """Close one sync step begun at `version` (the agent's `remote_synced_at` when it was read).

    Unless another sync advanced the agent meanwhile (then None, nothing written), the booking
    made under `ledger_key` (if any) is added to `remote_balance` (or the balance is set to
    `absolute`, a value taken without booking), `remote_status` is stored, and
    `remote_synced_at` becomes `now`, or 1 ms past the old stamp when `now` is not later, so
    that every finished step gets a new version. Returns the amount added (0 for none).
    """
    row = tx.one("SELECT remote_balance, remote_synced_at FROM automaton_agents WHERE agent_id = ?", (agent_id,))
    if row is None or row["remote_synced_at"] != version:
        return None
    booked = booked_sync(tx, agent_id, ledger_key) or 0
    balance = row["remote_balance"]
    balance = absolute if absolute is not None else None if balance is None else balance + booked
    stamp = now if version is None or now > version else to_iso(from_iso(version) + 0.0015)
    tx.run("UPDATE automaton_agents SET remote_balance = ?, remote_status = ?, remote_synced_at = ? WHERE agent_id = ?",
           (balance, status, stamp, agent_id))
    return booked
