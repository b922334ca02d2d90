"""Agents' paper positions (`positions`) and closed round trips (`trades`).

Plain functions on a `SyncTx` (see `storage.agents_repo`). Money is INTEGER micro-USDC.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from storage.connection import SyncTx
from storage.dialect import in_chunks, reserve_ids


@dataclass(frozen=True)
class NewPosition:
    """A position to insert; `cost` is the locked micro-USDC, fees included."""

    agent_id: str
    user_id: int
    token_id: str
    symbol: str
    size: float
    entry_price: float
    cost: int
    stop_loss: float | None
    take_profit: float | None
    open_key: str | None
    entry_bar_time: int | None


def open_for_agent(tx: SyncTx, agent_id: str, user_id: int | None = None) -> list[Any]:
    """The agent's open positions (only if `user_id` owns them, when given)."""
    if user_id is None:
        return tx.all("SELECT * FROM positions WHERE agent_id = ? AND status = 'open' ORDER BY position_id",
                      (agent_id,))
    return tx.all("SELECT * FROM positions WHERE agent_id = ? AND user_id = ? AND status = 'open' "
                  "ORDER BY position_id", (agent_id, user_id))


def recent_trades(tx: SyncTx, agent_id: str, limit: int, user_id: int | None = None) -> list[Any]:
    """The agent's latest closed trades (only if `user_id` owns them, when given)."""
    if user_id is None:
        return tx.all("SELECT * FROM trades WHERE agent_id = ? ORDER BY trade_id DESC LIMIT ?",
                      (agent_id, max(0, int(limit))))
    return tx.all("SELECT * FROM trades WHERE agent_id = ? AND user_id = ? ORDER BY trade_id DESC LIMIT ?",
                  (agent_id, user_id, max(0, int(limit))))


# -- batches (a tick's fills: `agents.ledger.fills.book_fills`) ---------------------------------------------

POSITION_FIELDS = ("position_id", "agent_id", "user_id", "token_id", "symbol", "size", "entry_price", "cost",
                   "stop_loss", "take_profit", "open_key", "entry_bar_time", "opened_at", "status")


def open_keys_used(tx: SyncTx, keys: list[str]) -> set[str]:
    """Which of `keys` already opened a position."""
    used: set[str] = set()
    for marks, chunk in in_chunks(keys):
        used.update(r[0] for r in tx.all(f"SELECT open_key FROM positions WHERE open_key IN ({marks})", chunk))
    return used


def get_many(tx: SyncTx, position_ids: list[int]) -> dict[int, dict[str, Any]]:
    """Positions by id, as mutable dicts (missing ids are left out)."""
    cols = ", ".join(POSITION_FIELDS)
    out: dict[int, dict[str, Any]] = {}
    for marks, chunk in in_chunks(sorted(set(position_ids))):
        for r in tx.all(f"SELECT {cols} FROM positions WHERE position_id IN ({marks})", chunk):
            out[int(r[0])] = dict(zip(POSITION_FIELDS, r, strict=True))
    return out


def first_free_ids(tx: SyncTx, positions: int, trades: int) -> tuple[int, int]:
    """The first fresh position id and trade id for a batch of explicit inserts."""
    return (reserve_ids(tx, "positions", "position_id", positions), reserve_ids(tx, "trades", "trade_id", trades))


def insert_many(tx: SyncTx, rows: list[dict[str, Any]]) -> None:
    """New positions with their ids and opening times given (see `first_free_ids`)."""
    tx.many("INSERT INTO positions(position_id, agent_id, user_id, token_id, symbol, size, entry_price, cost,"
            " stop_loss, take_profit, open_key, entry_bar_time, opened_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(p["position_id"], p["agent_id"], p["user_id"], p["token_id"], p["symbol"], p["size"], p["entry_price"],
              p["cost"], p["stop_loss"], p["take_profit"], p["open_key"], p["entry_bar_time"], p["opened_at"])
             for p in rows])


def close_many(tx: SyncTx, position_ids: list[int], closed_at: str) -> None:
    tx.many("UPDATE positions SET status = 'closed', closed_at = ? WHERE position_id = ?",
            [(closed_at, pid) for pid in position_ids])


def insert_trades(tx: SyncTx, rows: list[tuple[Any, ...]]) -> None:
    """(trade_id, position dict, exit_price, proceeds, pnl, reason, exit_bar_time, closed_at) per trade."""
    tx.many("INSERT INTO trades(trade_id, agent_id, user_id, position_id, token_id, symbol, size, entry_price,"
            " exit_price, cost, proceeds, pnl, exit_reason, opened_at, entry_bar_time, exit_bar_time, closed_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(tid, p["agent_id"], p["user_id"], p["position_id"], p["token_id"], p["symbol"], p["size"],
              p["entry_price"], exit_price, p["cost"], proceeds, pnl, reason, p["opened_at"], p["entry_bar_time"],
              exit_bar_time, closed_at)
             for tid, p, exit_price, proceeds, pnl, reason, exit_bar_time, closed_at in rows])
