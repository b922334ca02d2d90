"""Trade reports over a user's agents (profit, latest trades): closed paper trades, simulations excluded."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from storage.connection import SyncTx
from storage.money import MICRO


@dataclass(frozen=True)
class AgentProfit:
    """Closed-trade figures of one agent, money in micro-USDC."""

    agent_id: str
    trades: int
    wins: int
    pnl: int
    gross_win: int
    gross_loss: int  # a positive number: the sum of the losing trades' losses
    best: int
    worst: int
    fees: int = 0  # fees paid on entry and exit (slippage is in the fill prices, not here)


# A trade's fees from what it stored: the entry fee is what the position locked beyond its units
# at the entry fill, the exit fee what the units at the exit fill brought beyond the proceeds
# (each at least 0, for trades booked with other proceeds than a fill's). Portable SQL: CASE, not
# SQLite's two-argument MAX (PostgreSQL's GREATEST).
_ENTRY = f"size * entry_price * {MICRO}"  # micro-USDC, as cost and proceeds
_EXIT = f"size * exit_price * {MICRO}"
_FEES = (f"CASE WHEN cost > {_ENTRY} THEN cost - {_ENTRY} ELSE 0 END"
         f" + CASE WHEN {_EXIT} > proceeds THEN {_EXIT} - proceeds ELSE 0 END")


def profit_by_agent(tx: SyncTx, user_id: int) -> list[AgentProfit]:
    """Per agent of `user_id` with closed trades: count, wins, P&L, gross win/loss, best and worst."""
    return _profit_by(tx, user_id, "agent_id")


def profit_by_token(tx: SyncTx, user_id: int) -> list[AgentProfit]:
    """The same figures per token symbol (`agent_id` holds the symbol), over all of the user's agents."""
    return _profit_by(tx, user_id, "symbol")


def _profit_by(tx: SyncTx, user_id: int, column: str) -> list[AgentProfit]:
    assert column in ("agent_id", "symbol")  # a fixed name, never user input
    rows = tx.all(
        f"SELECT {column}, COUNT(*), SUM(CASE WHEN pnl > 0 THEN 1 ELSE 0 END), SUM(pnl),"
        " SUM(CASE WHEN pnl > 0 THEN pnl ELSE 0 END), -SUM(CASE WHEN pnl < 0 THEN pnl ELSE 0 END),"
        " MAX(pnl), MIN(pnl), SUM(" + _FEES + ") FROM trades WHERE user_id = ? AND agent_id IS NOT NULL"
        f" GROUP BY {column} ORDER BY " + ("agent_id" if column == "agent_id" else "SUM(pnl) DESC, symbol"), (user_id,))
    return [AgentProfit(r[0], int(r[1]), int(r[2]), int(r[3]), int(r[4]), int(r[5]), int(r[6]), int(r[7]),
                        round(r[8] or 0)) for r in rows]


def latest_trades(tx: SyncTx, user_id: int, limit: int) -> list[Any]:
    """The user's newest closed agent trades, newest first."""
    return tx.all("SELECT agent_id, symbol, entry_price, exit_price, pnl, exit_reason, closed_at FROM trades"
                  " WHERE user_id = ? AND agent_id IS NOT NULL ORDER BY trade_id DESC LIMIT ?",
                  (user_id, max(0, int(limit))))


def closed_since(tx: SyncTx, user_id: int, since: str) -> list[tuple[str, int]]:
    """(closed_at, pnl) of the user's agent trades closed at or after `since` (ISO), oldest first."""
    return [(r[0], int(r[1])) for r in tx.all(
        "SELECT closed_at, pnl FROM trades WHERE user_id = ? AND agent_id IS NOT NULL AND closed_at >= ?"
        " ORDER BY closed_at", (user_id, since))]
