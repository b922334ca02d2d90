"""Bars live paths traded on (`market_bars`), agents' trading-core state (`agent_core_state`) and the
agent loop's reads."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from storage.connection import SyncTx
from storage.db import Database, Transaction

_BAR_COLUMNS = ("time", "open", "high", "low", "close", "volume")


class BarRepo:
    """Closed grid bars per (token, interval); written once, read for the parity replay."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def save(self, token_id: str, interval_minutes: int, bars: Any, *, tx: Transaction | None = None) -> None:
        """Store `bars` (a Candles-like mapping); bars already stored are kept as they are."""
        if tx is not None:
            await tx.run(save_bars, token_id, interval_minutes, bars)
        else:
            await self.db.run(save_bars, token_id, interval_minutes, bars)

    async def load(self, token_id: str, interval_minutes: int, from_time: int, to_time: int) -> dict[str, np.ndarray]:
        """Stored bars with from_time <= time <= to_time, ascending, as arrays."""
        rows = await self.db.fetchall(
            "SELECT time, open, high, low, close, volume FROM market_bars"
            " WHERE token_id = ? AND interval_minutes = ? AND time BETWEEN ? AND ? ORDER BY time",
            (token_id, int(interval_minutes), int(from_time), int(to_time)))
        if not rows:
            return {"time": np.zeros(0, dtype=np.int64), **{f: np.zeros(0) for f in _BAR_COLUMNS[1:]}}
        arr = np.asarray([tuple(r) for r in rows], dtype=np.float64)
        out = {"time": arr[:, 0].astype(np.int64)}
        for i, f in enumerate(_BAR_COLUMNS[1:], start=1):
            out[f] = arr[:, i].copy()
        return out


@dataclass(frozen=True, slots=True)
class AgentCoreRow:
    """One agent's trading-core state on its current strategy."""

    agent_id: str
    strategy_key: str
    token_id: str
    interval_minutes: int
    since_time: int
    state: dict[str, Any]


_LOOP_COLUMNS = (
    "a.agent_id, a.user_id, a.status, a.isolated_balance, a.locked_balance, a.strategy_json,"
    " p.position_id, p.token_id, p.symbol, p.size, p.entry_price, p.cost, p.stop_loss, p.take_profit,"
    " p.entry_bar_time")
_LOOP_CHANGES_SQL = (
    f"SELECT {_LOOP_COLUMNS} FROM automaton_agents a"
    " LEFT JOIN positions p ON p.agent_id = a.agent_id AND p.status = 'open'"
    " WHERE a.change_seq > ? ORDER BY a.agent_id, p.position_id")
_LOOP_CHANGES_SQL_PG = _LOOP_CHANGES_SQL.replace("a.change_seq > ?", "a.change_seq >= ?")
_LOOP_PAGE_SQL = (
    f"SELECT {_LOOP_COLUMNS} FROM (SELECT * FROM automaton_agents WHERE agent_id > ? AND change_seq <= ?"
    " ORDER BY agent_id LIMIT ?) a"
    " LEFT JOIN positions p ON p.agent_id = a.agent_id AND p.status = 'open' ORDER BY a.agent_id, p.position_id")
LOOP_PAGE = 5_000
_SAVE_BARS_SQL = ("INSERT INTO market_bars(token_id, interval_minutes, time, open, high, low, close, volume)"
                  " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(token_id, interval_minutes, time) DO NOTHING")
_SAVE_STATES_SQL = (
    "INSERT INTO agent_core_state(agent_id, strategy_key, token_id, interval_minutes, since_time,"
    " state_json) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(agent_id) DO UPDATE SET"
    " strategy_key = excluded.strategy_key, token_id = excluded.token_id,"
    " interval_minutes = excluded.interval_minutes, since_time = excluded.since_time,"
    " state_json = excluded.state_json")


def loop_changes(tx: SyncTx, since: int) -> tuple[list[Any], int]:
    """Every agent stamped after `since` (any status) joined with its open positions, as in
    (agent_id, user_id, status, balance, locked, strategy_json, position_id, token_id, symbol, size,
    entry_price, cost, stop_loss, take_profit, entry_bar_time) per row, and the newest stamp; one
    snapshot, so nothing falls between."""
    seq = clock(tx)
    if not isinstance(tx, SyncTx):  # PostgreSQL: from the last xmin on (a transaction running then may commit later)
        newest = tx.value("SELECT MAX(change_seq) FROM automaton_agents")  # the index's last entry: one probe
        if newest is None or int(newest) < since:
            return [], seq  # a quiet tick: nothing stamped since (and no range query to plan)
        return tx.all(_LOOP_CHANGES_SQL_PG, (since,)), seq
    if seq <= since:
        return [], seq
    return tx.all(_LOOP_CHANGES_SQL, (since,)), seq


def loop_page(tx: SyncTx, after_agent: str, upto: int, limit: int = LOOP_PAGE) -> list[Any]:
    """The first full read, page by page (a bounded batch of rows in memory at a time): up to
    `limit` agents with id > `after_agent` stamped at most `upto`, with their open positions.
    Rows stamped later are the next `loop_changes(upto)`'s."""
    return tx.all(_LOOP_PAGE_SQL, (after_agent, upto, limit))


def clock(tx: SyncTx) -> int:
    """The newest change stamp; on PostgreSQL the snapshot's xmin: every transaction with a lower
    id (a stamp) has ended, so everything stamped below it is in this snapshot (migration 009)."""
    if not isinstance(tx, SyncTx):
        return int(tx.value("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint"))
    return int(tx.value("SELECT seq FROM change_clock WHERE id = 1") or 0)


def save_bars(tx: SyncTx, token_id: str, interval_minutes: int, bars: Any) -> None:
    """Store `bars` (a Candles-like mapping); bars already stored are kept as they are."""
    n = len(bars["time"])
    if n:
        tx.many(_SAVE_BARS_SQL, zip([token_id] * n, [int(interval_minutes)] * n, (int(t) for t in bars["time"]),
                                    *(map(float, bars[f]) for f in _BAR_COLUMNS[1:]), strict=True))


def save_states(tx: SyncTx, rows: Iterable[AgentCoreRow]) -> None:
    """Upsert trading-core states in one statement batch."""
    texts: dict[int, str] = {}  # agents deciding alike share one state dict: encode it once

    def text(state: dict[str, Any]) -> str:
        found = texts.get(id(state))
        if found is None:
            found = texts[id(state)] = json.dumps(state, separators=(",", ":"))
        return found

    rows = list(rows)  # keeps every state alive while its id() is a cache key
    tx.many(_SAVE_STATES_SQL, ((r.agent_id, r.strategy_key, r.token_id, r.interval_minutes, r.since_time,
                                text(r.state)) for r in rows))

_CORE_SELECT = ("SELECT agent_id, strategy_key, token_id, interval_minutes, since_time, state_json"
                " FROM agent_core_state")


class AgentCoreRepo:
    """The agent loop's per-agent trading-core state."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def load_all(self) -> dict[str, AgentCoreRow]:
        """Every stored state (the agent loop reads them once, then keeps them in memory)."""
        return self._rows(await self.db.fetchall(_CORE_SELECT))

    async def strategy_json(self, agent_id: str) -> str | None:
        """The agent's assigned strategy JSON (None: the default strategy, or no such agent)."""
        return await self.db.fetchval("SELECT strategy_json FROM automaton_agents WHERE agent_id = ?", (agent_id,))

    async def get(self, agent_id: str) -> AgentCoreRow | None:
        return self._rows(await self.db.fetchall(_CORE_SELECT + " WHERE agent_id = ?", (agent_id,))).get(agent_id)

    @staticmethod
    def _rows(rows: Sequence[Any]) -> dict[str, AgentCoreRow]:
        out: dict[str, AgentCoreRow] = {}
        for r in rows:
            try:
                state = json.loads(r[5] or "{}")
            except ValueError:
                state = {}
            out[r[0]] = AgentCoreRow(r[0], r[1], r[2], int(r[3]), int(r[4]), state if isinstance(state, dict) else {})
        return out
