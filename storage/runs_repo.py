"""Backtest and simulation runs."""

from __future__ import annotations

import builtins
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from storage.db import Transaction
from storage.repo_base import Repo
from storage.values import dumps

SIMULATION_STATUSES: tuple[str, ...] = ("running", "stopped", "finished", "failed")


# -- backtests -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class BacktestRecord:
    """One stored backtest; `metrics` / `trades` are decoded from their JSON columns."""

    backtest_id: int
    user_id: int
    bot_id: int | None
    token_id: str
    symbol: str
    timeframe: str
    days: int
    strategy_json: str
    status: str
    metrics: dict[str, Any] | None
    trades: builtins.list[dict[str, Any]]
    error: str | None
    demo: bool
    created_at: str
    finished_at: str | None


_BACKTEST_COLUMNS = ("backtest_id, user_id, bot_id, token_id, symbol, timeframe, days, strategy_json, status,"
                     " metrics_json, trades_json, error, demo, created_at, finished_at")


def _backtest(row: Any) -> BacktestRecord:
    return BacktestRecord(
        backtest_id=int(row["backtest_id"]), user_id=int(row["user_id"]),
        bot_id=None if row["bot_id"] is None else int(row["bot_id"]), token_id=row["token_id"],
        symbol=row["symbol"], timeframe=row["timeframe"], days=int(row["days"]),
        strategy_json=row["strategy_json"], status=row["status"],
        metrics=json.loads(row["metrics_json"]) if row["metrics_json"] else None,
        trades=json.loads(row["trades_json"]) if row["trades_json"] else [],
        error=row["error"], demo=bool(row["demo"]), created_at=row["created_at"], finished_at=row["finished_at"])


class BacktestRepo(Repo):
    """The `backtests` table: a row per run, 'running' until completed or failed."""

    async def create(self, user_id: int, bot_id: int | None, token_id: str, symbol: str, timeframe: str,
                     days: int, strategy_json: str, *, demo: bool, tx: Transaction | None = None) -> int:
        async with self._write(tx) as t:
            return await t.insert(
                "INSERT INTO backtests(user_id, bot_id, token_id, symbol, timeframe, days, strategy_json, demo)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (user_id, bot_id, token_id, symbol, timeframe, days, strategy_json, 1 if demo else 0))

    async def set_token(self, backtest_id: int, token_id: str, symbol: str, strategy_json: str | None = None,
                        *, tx: Transaction | None = None) -> None:
        """Record the resolved token (and the strategy as run on it)."""
        async with self._write(tx) as t:
            await t.execute("UPDATE backtests SET token_id = ?, symbol = ?,"
                            " strategy_json = COALESCE(?, strategy_json) WHERE backtest_id = ?",
                            (token_id, symbol, strategy_json, backtest_id))

    async def complete(self, backtest_id: int, metrics: Mapping[str, Any], trades: Sequence[Mapping[str, Any]],
                       finished_at: str, *, tx: Transaction | None = None) -> None:
        async with self._write(tx) as t:
            await t.execute("UPDATE backtests SET status = 'completed', metrics_json = ?, trades_json = ?,"
                            " error = NULL, finished_at = ? WHERE backtest_id = ?",
                            (dumps(dict(metrics)), dumps(builtins.list(trades)), finished_at, backtest_id))

    async def fail(self, backtest_id: int, error: str, finished_at: str, *, tx: Transaction | None = None) -> None:
        async with self._write(tx) as t:
            await t.execute("UPDATE backtests SET status = 'failed', error = ?, finished_at = ?"
                            " WHERE backtest_id = ? AND status = 'running'", (error[:500], finished_at, backtest_id))

    async def fail_interrupted(self, finished_at: str, error: str = "interrupted by a restart", *,
                               created_before: str | None = None) -> builtins.list[tuple[int, int]]:
        """Mark rows left 'running' by a previous process as failed (with `created_before`, only
        those started before it: younger ones may belong to a live replica); returns their
        (backtest_id, user_id)."""
        sql = "UPDATE backtests SET status = 'failed', error = ?, finished_at = ? WHERE status = 'running'"
        params: tuple[str, ...] = (error, finished_at)
        if created_before is not None:
            sql, params = sql + " AND created_at < ?", (*params, created_before)
        async with self.db.transaction() as t:
            rows = await t.fetchall(sql + " RETURNING backtest_id, user_id", params)
            return [(int(r[0]), int(r[1])) for r in rows]

    async def get(self, user_id: int, backtest_id: int) -> BacktestRecord | None:
        row = await self.db.fetchone(f"SELECT {_BACKTEST_COLUMNS} FROM backtests"
                                     " WHERE backtest_id = ? AND user_id = ?", (backtest_id, user_id))
        return None if row is None else _backtest(row)

    async def recent(self, user_id: int, limit: int = 10) -> builtins.list[BacktestRecord]:
        rows = await self.db.fetchall(f"SELECT {_BACKTEST_COLUMNS} FROM backtests WHERE user_id = ?"
                                      " ORDER BY backtest_id DESC LIMIT ?", (user_id, max(0, int(limit))))
        return [_backtest(r) for r in rows]




# -- simulations ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class SimulationRecord:
    """One simulation row; `state` is the decoded `state_json`."""

    simulation_id: int
    user_id: int
    bot_id: int | None
    token_id: str
    symbol: str
    timeframe: str
    strategy_json: str
    status: str
    state: dict[str, Any]
    started_at: str
    ends_at: str
    stopped_at: str | None
    last_poll_at: str | None

    @property
    def running(self) -> bool:
        return self.status == "running"


_SIM_COLUMNS = ("simulation_id, user_id, bot_id, token_id, symbol, timeframe, strategy_json, status, state_json,"
                " started_at, ends_at, stopped_at, last_poll_at")


def _decode_state(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _simulation(row: Any) -> SimulationRecord:
    return SimulationRecord(
        simulation_id=int(row["simulation_id"]), user_id=int(row["user_id"]),
        bot_id=None if row["bot_id"] is None else int(row["bot_id"]), token_id=row["token_id"],
        symbol=row["symbol"], timeframe=row["timeframe"], strategy_json=row["strategy_json"],
        status=row["status"], state=_decode_state(row["state_json"]), started_at=row["started_at"],
        ends_at=row["ends_at"], stopped_at=row["stopped_at"], last_poll_at=row["last_poll_at"])


class SimulationRepo(Repo):
    """The `simulations` table (one running simulation per bot is enforced by a unique index)."""

    async def create(self, user_id: int, bot_id: int | None, token_id: str, symbol: str, timeframe: str,
                     strategy_json: str, state: Mapping[str, Any], started_at: str, ends_at: str, *,
                     tx: Transaction | None = None) -> SimulationRecord:
        async with self._write(tx) as t:
            sim_id = await t.insert(
                "INSERT INTO simulations(user_id, bot_id, token_id, symbol, timeframe, strategy_json, state_json,"
                " started_at, ends_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (user_id, bot_id, token_id, symbol, timeframe, strategy_json, dumps(dict(state)),
                 started_at, ends_at))
            row = await t.fetchone(f"SELECT {_SIM_COLUMNS} FROM simulations WHERE simulation_id = ?", (sim_id,))
        return _simulation(row)

    async def get(self, user_id: int, simulation_id: int, *, tx: Transaction | None = None
                  ) -> SimulationRecord | None:
        row = await self._one(f"SELECT {_SIM_COLUMNS} FROM simulations WHERE simulation_id = ? AND user_id = ?",
                              (simulation_id, user_id), tx)
        return None if row is None else _simulation(row)

    async def get_by_id(self, simulation_id: int, *, tx: Transaction | None = None) -> SimulationRecord | None:
        """Unscoped read for the background poller."""
        row = await self._one(f"SELECT {_SIM_COLUMNS} FROM simulations WHERE simulation_id = ?",
                              (simulation_id,), tx)
        return None if row is None else _simulation(row)

    async def running_for_bot(self, user_id: int, bot_id: int, *, tx: Transaction | None = None
                              ) -> SimulationRecord | None:
        row = await self._one(f"SELECT {_SIM_COLUMNS} FROM simulations"
                              " WHERE bot_id = ? AND user_id = ? AND status = 'running'", (bot_id, user_id), tx)
        return None if row is None else _simulation(row)

    async def count_running_for_user(self, user_id: int, *, tx: Transaction | None = None) -> int:
        row = await self._one("SELECT COUNT(*) FROM simulations WHERE user_id = ? AND status = 'running'",
                              (user_id,), tx)
        return int(row[0])

    async def list_for_user(self, user_id: int, statuses: Sequence[str] = ("running",), limit: int = 20
                            ) -> builtins.list[SimulationRecord]:
        wanted = [s for s in statuses if s in SIMULATION_STATUSES] or ["running"]
        marks = ", ".join("?" for _ in wanted)
        rows = await self.db.fetchall(
            f"SELECT {_SIM_COLUMNS} FROM simulations WHERE user_id = ? AND status IN ({marks})"
            " ORDER BY simulation_id DESC LIMIT ?", (user_id, *wanted, max(0, int(limit))))
        return [_simulation(r) for r in rows]

    async def list_running(self) -> builtins.list[SimulationRecord]:
        """Every running simulation of every user (the poller's work list)."""
        rows = await self.db.fetchall(f"SELECT {_SIM_COLUMNS} FROM simulations WHERE status = 'running'"
                                      " ORDER BY simulation_id")
        return [_simulation(r) for r in rows]

    async def save_state(self, simulation_id: int, state: Mapping[str, Any], last_poll_at: str | None, *,
                         tx: Transaction | None = None) -> bool:
        """Write a running simulation's state; False when it is no longer running."""
        async with self._write(tx) as t:
            cur = await t.execute("UPDATE simulations SET state_json = ?, last_poll_at = COALESCE(?, last_poll_at)"
                                  " WHERE simulation_id = ? AND status = 'running'",
                                  (dumps(dict(state)), last_poll_at, simulation_id))
            return cur.rowcount > 0

    async def end(self, simulation_id: int, status: str, stopped_at: str, state: Mapping[str, Any] | None = None,
                  *, tx: Transaction | None = None) -> bool:
        """Move a running simulation to `status` (stopped / finished / failed); False if not running."""
        if status not in SIMULATION_STATUSES or status == "running":
            raise ValueError(f"invalid end status {status!r}")
        async with self._write(tx) as t:
            cur = await t.execute(
                "UPDATE simulations SET status = ?, stopped_at = ?, state_json = COALESCE(?, state_json)"
                " WHERE simulation_id = ? AND status = 'running'",
                (status, stopped_at, None if state is None else dumps(dict(state)), simulation_id))
            return cur.rowcount > 0

    async def stop_for_bot(self, user_id: int, bot_id: int, stopped_at: str, *,
                           tx: Transaction | None = None) -> int:
        """Stop the bot's running simulations (used when the bot is deleted); returns how many."""
        async with self._write(tx) as t:
            cur = await t.execute("UPDATE simulations SET status = 'stopped', stopped_at = ?"
                                  " WHERE bot_id = ? AND user_id = ? AND status = 'running'",
                                  (stopped_at, bot_id, user_id))
            return cur.rowcount
