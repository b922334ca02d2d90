"""The `automaton_agents` table: agent rows, balances, states and the family tree.

Plain functions on a `SyncTx`, so a money operation composes them inside one transaction on the
writer thread (`Database.run`). Money is INTEGER micro-USDC. Rows come back as `sqlite3.Row`
(columns by name). Per-user reads go through the `agents_user` index and per-parent reads
through `agents_parent`: their cost is the user's rows, whatever the total.
"""

from __future__ import annotations

from typing import Any

from storage.connection import SyncTx
from storage.dialect import NOW, in_chunks

AGENT_COLUMNS = (
    "agent_id, user_id, parent_agent_id, generation, isolated_balance, locked_balance, peak_balance,"
    " status, status_reason, spawn_reason, strategy_bot_id, strategy_json, remote_agent_id,"
    " remote_balance, remote_status, remote_synced_at, created_at"
)
_SELECT = f"SELECT {AGENT_COLUMNS} FROM automaton_agents"
LIVE = ("active", "paused")  # statuses of a living agent (the others: dead, closed)
LIVE_SQL = "(" + ", ".join(f"'{status}'" for status in LIVE) + ")"


def stamp(tx: SyncTx) -> int:
    """The next change stamp (migration 004's feed). Every UPDATE here that the agent loop must
    see sets `change_seq` to a fresh stamp itself: far cheaper than the trigger, which stays
    only as the safety net for an UPDATE that does not. On PostgreSQL the stamp is the writing
    transaction's id (migration 009: no shared counter row for concurrent writers to fight over)."""
    if not isinstance(tx, SyncTx):
        return int(tx.value("SELECT pg_current_xact_id()::text::bigint"))
    return int(tx.value("UPDATE change_clock SET seq = seq + 1 WHERE id = 1 RETURNING seq"))


def get(tx: SyncTx, agent_id: str) -> Any:
    """The agent's row, or None."""
    return tx.one(f"{_SELECT} WHERE agent_id = ?", (agent_id,))


def get_owned(tx: SyncTx, agent_id: str, user_id: int) -> Any:
    """The agent's row if `user_id` owns it, else None (a foreign id looks missing)."""
    return tx.one(f"{_SELECT} WHERE agent_id = ? AND user_id = ?", (agent_id, user_id))


def live_root(tx: SyncTx, user_id: int) -> Any:
    """The user's generation-1 agent that is not closed, or None."""
    return tx.one(f"{_SELECT} WHERE user_id = ? AND generation = 1 AND status <> 'closed'", (user_id,))


def has_closed_root(tx: SyncTx, user_id: int) -> bool:
    """Whether the user once had a generation-1 agent that is now closed (withdrawn in full)."""
    return tx.value("SELECT 1 FROM automaton_agents WHERE user_id = ? AND generation = 1 AND status = 'closed'"
                    " LIMIT 1", (user_id,)) is not None


def for_user(tx: SyncTx, user_id: int) -> list[Any]:
    """Every agent of the user (any status), oldest first."""
    return tx.all(f"{_SELECT} WHERE user_id = ? ORDER BY created_at, agent_id", (user_id,))


def insert_root(tx: SyncTx, agent_id: str, user_id: int, balance: int) -> bool:
    """Insert a generation-1 agent; False when the user already has a live one (the unique index
    `agents_one_live_root` is the check, race-free and one statement fewer than a SELECT; DO
    NOTHING rather than a caught error, which would abort a PostgreSQL transaction)."""
    return tx.run("INSERT INTO automaton_agents(agent_id, user_id, generation, isolated_balance, peak_balance)"
                  " VALUES (?, ?, 1, ?, ?) ON CONFLICT (user_id) WHERE generation = 1 AND status <> 'closed'"
                  " DO NOTHING", (agent_id, user_id, balance, balance)) == 1


def insert_child(tx: SyncTx, child_id: str, parent: Any, reason: str, *, remote_agent_id: str | None = None,
                 remote_balance: int | None = None) -> None:
    """A child of `parent` (its row) with no balance yet; it inherits the parent's strategy."""
    tx.run("INSERT INTO automaton_agents(agent_id, user_id, parent_agent_id, generation, spawn_reason,"
           " strategy_bot_id, strategy_json, remote_agent_id, remote_balance) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
           (child_id, parent["user_id"], parent["agent_id"], parent["generation"] + 1, reason,
            parent["strategy_bot_id"], parent["strategy_json"], remote_agent_id, remote_balance))


def withdrawable(tx: SyncTx, user_id: int) -> list[Any]:
    """(agent_id, avail, locked, status) of the user's agents with an available balance, in tree order."""
    return tx.all("SELECT agent_id, isolated_balance - locked_balance AS avail, locked_balance AS locked, status"
                  " FROM automaton_agents WHERE user_id = ? AND status <> 'closed'"
                  " AND isolated_balance > locked_balance ORDER BY generation, created_at, agent_id", (user_id,))


def set_balance(tx: SyncTx, agent_id: str, balance: int, peak: int, locked_delta: int = 0) -> None:
    """Write the agent's balance and peak (and move its locked amount by `locked_delta`)."""
    tx.run(f"UPDATE automaton_agents SET isolated_balance = ?, peak_balance = ?,"
           f" locked_balance = locked_balance + ?, updated_at = {NOW}, change_seq = ? WHERE agent_id = ?",
           (balance, peak, locked_delta, stamp(tx), agent_id))


def set_status(tx: SyncTx, agent_id: str, status: str, reason: str) -> None:
    tx.run(f"UPDATE automaton_agents SET status = ?, status_reason = ?, updated_at = {NOW}, change_seq = ?"
           " WHERE agent_id = ?", (status, reason, stamp(tx), agent_id))


def set_strategy(tx: SyncTx, agent_id: str, bot_id: int | None, strategy_json: str | None) -> None:
    tx.run(f"UPDATE automaton_agents SET strategy_bot_id = ?, strategy_json = ?, updated_at = {NOW},"
           " change_seq = ? WHERE agent_id = ?", (bot_id, strategy_json, stamp(tx), agent_id))


def live_children(tx: SyncTx, agent_id: str) -> int:
    """How many of the agent's children are active or paused."""
    return int(tx.value("SELECT COUNT(*) FROM automaton_agents WHERE parent_agent_id = ?"
                        f" AND status IN {LIVE_SQL}", (agent_id,)))


def child_counts_of(tx: SyncTx, agent_id: str) -> tuple[int, int]:
    """(children, live children) of one agent."""
    row = tx.one(f"SELECT COUNT(*), COALESCE(SUM(CASE WHEN status IN {LIVE_SQL} THEN 1 ELSE 0 END), 0)"
                 " FROM automaton_agents WHERE parent_agent_id = ?", (agent_id,))
    return int(row[0]), int(row[1])


def child_ids(tx: SyncTx, agent_id: str) -> list[str]:
    return [r[0] for r in tx.all("SELECT agent_id FROM automaton_agents WHERE parent_agent_id = ?"
                                 " ORDER BY created_at, agent_id", (agent_id,))]


def remote_known(tx: SyncTx, remote_agent_id: str) -> bool:
    return tx.one("SELECT 1 FROM automaton_agents WHERE remote_agent_id = ?", (remote_agent_id,)) is not None


def reduce_remote_balance(tx: SyncTx, agent_id: str, amount: int) -> None:
    tx.run("UPDATE automaton_agents SET remote_balance = remote_balance - ? WHERE agent_id = ?", (amount, agent_id))


def owner_of(tx: SyncTx, agent_id: str) -> int | None:
    value = tx.value("SELECT user_id FROM automaton_agents WHERE agent_id = ?", (agent_id,))
    return None if value is None else int(value)


def get_many(tx: SyncTx, agent_ids: set[str]) -> dict[str, Any]:
    """Rows of the given agents by id (missing ids are left out)."""
    out: dict[str, Any] = {}
    for marks, chunk in in_chunks(sorted(agent_ids)):
        for r in tx.all(f"{_SELECT} WHERE agent_id IN ({marks})", chunk):
            out[r["agent_id"]] = r
    return out


def write_money_many(tx: SyncTx, rows: list[tuple[int, int, int, str]],
                     statuses: list[tuple[str, str | None, str]], now: str) -> None:
    """(balance, locked, peak, agent_id) per agent and (status, reason, agent_id) for those whose
    status changed: one stamped batch of UPDATEs (status has its own index, so only the few that
    changed pay for it). `now` is the batch's ISO time (one value, not a clock call per row)."""
    if not rows and not statuses:
        return
    seq = stamp(tx)
    tx.many("UPDATE automaton_agents SET isolated_balance = ?, locked_balance = ?, peak_balance = ?,"
            " updated_at = ?, change_seq = ? WHERE agent_id = ?", [(*r[:3], now, seq, r[3]) for r in rows])
    tx.many("UPDATE automaton_agents SET status = ?, status_reason = ?, change_seq = ? WHERE agent_id = ?",
            [(*r[:2], seq, r[2]) for r in statuses])
