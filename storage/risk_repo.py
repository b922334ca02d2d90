"""What the risk manager reads: equity of active agents, open exposure, realized returns."""

from __future__ import annotations

from typing import Any

from storage.connection import SyncTx


def active_equity(tx: SyncTx) -> list[Any]:
    """Every active agent joined with its open positions:
    (agent_id, user_id, isolated_balance, peak_balance, token_id, size, cost, entry_price)."""
    return tx.all("SELECT a.agent_id, a.user_id, a.isolated_balance, a.peak_balance,"
                  " p.token_id, p.size, p.cost, p.entry_price"
                  " FROM automaton_agents a LEFT JOIN positions p ON p.agent_id = a.agent_id AND p.status = 'open'"
                  " WHERE a.status = 'active'")


def open_exposure(tx: SyncTx, user_id: int) -> list[Any]:
    """(token_id, size, cost) of the user's open positions."""
    return tx.all("SELECT token_id, size, cost FROM positions WHERE user_id = ? AND status = 'open'", (user_id,))


def open_positions(tx: SyncTx, user_id: int) -> list[Any]:
    """The user's open positions with their levels, oldest first (the open-positions screen)."""
    return tx.all("SELECT position_id, agent_id, token_id, symbol, size, entry_price, cost, stop_loss, take_profit,"
                  " opened_at FROM positions WHERE user_id = ? AND status = 'open' ORDER BY position_id", (user_id,))


def realized_rows(tx: SyncTx, user_id: int) -> list[Any]:
    """(agent_id, amount, balance_after, day) of the user's P&L ledger rows, oldest first."""
    return tx.all("SELECT agent_id, amount, balance_after, substr(created_at, 1, 10) AS day FROM ledger_entries"
                  " WHERE user_id = ? AND kind IN ('profit', 'loss', 'sync_adjust') ORDER BY entry_id", (user_id,))
