"""Whole-database counts for the operator's stats screen (never on a per-user path)."""

from __future__ import annotations

from dataclasses import dataclass

from storage.connection import SyncTx


@dataclass(frozen=True)
class StatusCount:
    status: str
    agents: int
    balance: int  # micro-USDC


@dataclass(frozen=True)
class Overview:
    users: int
    by_status: tuple[StatusCount, ...]
    bots: int
    running_simulations: int

    @property
    def agents(self) -> int:
        return sum(s.agents for s in self.by_status)

    @property
    def balance(self) -> int:
        return sum(s.balance for s in self.by_status)


def overview(tx: SyncTx) -> Overview:
    """User, agent, bot and simulation counts from one snapshot."""
    rows = tx.all("SELECT status, COUNT(*), COALESCE(SUM(isolated_balance), 0) FROM automaton_agents"
                  " GROUP BY status ORDER BY status")
    return Overview(
        users=int(tx.value("SELECT COUNT(*) FROM users") or 0),
        by_status=tuple(StatusCount(r[0], int(r[1]), int(r[2])) for r in rows),
        bots=int(tx.value("SELECT COUNT(*) FROM bots") or 0),
        running_simulations=int(tx.value("SELECT COUNT(*) FROM simulations WHERE status = 'running'") or 0))
