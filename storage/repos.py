"""Repositories: SQL next to the methods that run it, rows returned as frozen dataclasses.

Conventions:

* Every user-facing read filters by `user_id`, so a foreign id looks exactly like a missing one.
* Writes that must compose with others take an optional `tx` (a `storage.db.Transaction`);
  without it they run in their own `BEGIN IMMEDIATE` transaction. Reads without `tx` see
  committed data through the reader connection.
* Money is INTEGER micro-USDC in the database and `Decimal` USDC in these dataclasses.
* Times are ISO-8601 UTC text (`to_iso` / `from_iso`), the same shape SQLite's defaults write.
"""

from __future__ import annotations

import builtins
import json
import math
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from storage import users_repo
from storage.db import Database, Transaction
from storage.dialect import NOW

MICRO = 1_000_000
_Q6 = Decimal("0.000001")

NOTIFY_KINDS: tuple[str, ...] = ("signals", "trades", "spawns", "risk")
NOTIFY_LEVELS: tuple[str, ...] = ("on", "silent", "off")
SIMULATION_STATUSES: tuple[str, ...] = ("running", "stopped", "finished", "failed")
_MAX_ID = 2**63 - 1


# -- small helpers -----------------------------------------------------------------------------

def to_iso(ts: float) -> str:
    """Unix seconds -> '2024-05-01T12:00:00.000Z' (millisecond precision, like SQLite's default)."""
    moment = datetime.fromtimestamp(float(ts), tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def from_iso(text: str) -> float:
    """Inverse of `to_iso`; also accepts SQLite's 'YYYY-MM-DD HH:MM:SS' and a missing 'Z'."""
    value = text.strip().replace(" ", "T")
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def to_micro(amount: Decimal | int) -> int:
    """USDC (Decimal) -> integer micro-USDC, rounding half-even below one micro-USDC."""
    if isinstance(amount, bool) or not isinstance(amount, Decimal | int):
        raise TypeError("money must be a Decimal or an int")
    value = Decimal(amount)
    if not value.is_finite():
        raise ValueError("money must be finite")
    return int((value * MICRO).to_integral_value(rounding=ROUND_HALF_EVEN))


def from_micro(micro: int) -> Decimal:
    """Integer micro-USDC -> Decimal USDC with six decimal places."""
    return (Decimal(int(micro)) / MICRO).quantize(_Q6)


def json_safe(value: Any) -> Any:
    """A copy of `value` that `json.dumps(allow_nan=False)` accepts: NaN/inf become None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return json_safe(value.item())
    return value


def dumps(value: Any) -> str:
    """Compact, strict JSON (no NaN) for the *_json columns."""
    return json.dumps(json_safe(value), separators=(",", ":"), allow_nan=False, ensure_ascii=False)


def valid_id(value: object) -> int | None:
    """`value` as a positive row id if it is one (an int, or a string of ASCII digits), else None.

    Ids often come from untrusted callback data: bools, floats, signs, spaces, non-ASCII digits
    and out-of-range numbers are all refused.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        if not (0 < len(value) <= 19 and value.isascii() and value.isdigit()):
            return None
        value = int(value)
    if isinstance(value, int) and 0 < value <= _MAX_ID:
        return value
    return None


class _Repo:
    """Shared plumbing: optional caller transaction, reads on the reader connection."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @asynccontextmanager
    async def _write(self, tx: Transaction | None) -> AsyncIterator[Transaction]:
        if tx is not None:
            yield tx
        else:
            async with self.db.transaction() as own:
                yield own

    async def _one(self, sql: str, params: Sequence[Any], tx: Transaction | None) -> Any:
        return await (tx.fetchone(sql, params) if tx is not None else self.db.fetchone(sql, params))

    async def _all(self, sql: str, params: Sequence[Any], tx: Transaction | None) -> builtins.list[Any]:
        return await (tx.fetchall(sql, params) if tx is not None else self.db.fetchall(sql, params))


# -- users ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class NotifyPrefs:
    """Per-kind notification level: 'on', 'silent' (no sound) or 'off'."""

    signals: str = "on"
    trades: str = "on"
    spawns: str = "on"
    risk: str = "on"

    def level(self, kind: str) -> str:
        """The level of `kind` ('signals', 'trades', 'spawns', 'risk')."""
        if kind not in NOTIFY_KINDS:
            raise ValueError(f"unknown notification kind {kind!r}")
        return str(getattr(self, kind))


class UserRepo(_Repo):
    """The `users` table: registration, notification preferences, blocked flag, selected bot."""

    async def ensure(self, user_id: int, username: str | None = None, first_name: str | None = None,
                     *, tx: Transaction | None = None) -> None:
        """Register `user_id` if new; refresh the names when given."""
        if tx is None:  # the hot path (first message of every user): one upsert, one round trip
            await self.db.run(users_repo.ensure, user_id, username, first_name)
        else:
            await tx.run(users_repo.ensure, user_id, username, first_name)

    async def exists(self, user_id: int) -> bool:
        return await self.db.fetchval("SELECT 1 FROM users WHERE user_id = ?", (user_id,)) is not None

    async def get_prefs(self, user_id: int) -> NotifyPrefs:
        """The user's preferences (all 'on' for an unknown user)."""
        row = await self.db.fetchone(
            "SELECT notify_signals, notify_trades, notify_spawns, notify_risk FROM users WHERE user_id = ?",
            (user_id,))
        if row is None:
            return NotifyPrefs()
        return NotifyPrefs(signals=row[0], trades=row[1], spawns=row[2], risk=row[3])

    async def set_pref(self, user_id: int, kind: str, value: str) -> NotifyPrefs:
        """Set one preference; `kind` and `value` are checked against fixed lists (ValueError)."""
        if kind not in NOTIFY_KINDS:
            raise ValueError(f"Unknown notification kind: use one of {', '.join(NOTIFY_KINDS)}.")
        if value not in NOTIFY_LEVELS:
            raise ValueError(f"Unknown notification level: use one of {', '.join(NOTIFY_LEVELS)}.")
        column = f"notify_{kind}"  # safe: `kind` is one of the fixed names above
        async with self.db.transaction() as tx:
            await tx.run(users_repo.ensure, user_id)
            await tx.execute(f"UPDATE users SET {column} = ? WHERE user_id = ?", (value, user_id))
        return await self.get_prefs(user_id)

    async def mark_blocked(self, user_id: int, blocked: bool = True) -> None:
        """Record that the user blocked (or unblocked) the bot."""
        await self.db.execute("UPDATE users SET blocked = ? WHERE user_id = ?", (1 if blocked else 0, user_id))

    async def is_blocked(self, user_id: int) -> bool:
        return bool(await self.db.fetchval("SELECT blocked FROM users WHERE user_id = ?", (user_id,)))

    async def selected_bot_id(self, user_id: int, *, tx: Transaction | None = None) -> int | None:
        row = await self._one("SELECT selected_bot_id FROM users WHERE user_id = ?", (user_id,), tx)
        return None if row is None or row[0] is None else int(row[0])

    async def select_bot(self, user_id: int, bot_id: int | None, *, tx: Transaction | None = None) -> None:
        """Set (or clear with None) the user's selected strategy bot. Ownership is the caller's job."""
        async with self._write(tx) as t:
            await t.run(users_repo.ensure, user_id)
            await t.execute("UPDATE users SET selected_bot_id = ? WHERE user_id = ?", (bot_id, user_id))

    async def count_users(self) -> int:
        return int(await self.db.fetchval("SELECT COUNT(*) FROM users") or 0)


# -- strategy bots -------------------------------------------------------------------------------

@dataclass(frozen=True)
class BotRecord:
    """One strategy bot row; `strategy_json` is None until a strategy is designed."""

    bot_id: int
    user_id: int
    name: str
    strategy_json: str | None
    created_at: str
    updated_at: str


_BOT_COLUMNS = "bot_id, user_id, name, strategy_json, created_at, updated_at"
_NOW_SQL = NOW


def _bot(row: Any) -> BotRecord:
    return BotRecord(bot_id=int(row["bot_id"]), user_id=int(row["user_id"]), name=row["name"],
                     strategy_json=row["strategy_json"], created_at=row["created_at"],
                     updated_at=row["updated_at"])


class BotRepo(_Repo):
    """The `bots` table. Every read and write is scoped to the owner."""

    async def create(self, user_id: int, name: str, *, strategy_json: str | None = None,
                     tx: Transaction | None = None) -> BotRecord:
        async with self._write(tx) as t:
            bot_id = await t.insert("INSERT INTO bots(user_id, name, strategy_json) VALUES (?, ?, ?)",
                                    (user_id, name, strategy_json))
            row = await t.fetchone(f"SELECT {_BOT_COLUMNS} FROM bots WHERE bot_id = ?", (bot_id,))
        return _bot(row)

    async def get(self, user_id: int, bot_id: int, *, tx: Transaction | None = None) -> BotRecord | None:
        row = await self._one(f"SELECT {_BOT_COLUMNS} FROM bots WHERE bot_id = ? AND user_id = ?",
                              (bot_id, user_id), tx)
        return None if row is None else _bot(row)

    async def list_for_user(self, user_id: int, *, tx: Transaction | None = None) -> builtins.list[BotRecord]:
        rows = await self._all(f"SELECT {_BOT_COLUMNS} FROM bots WHERE user_id = ? ORDER BY bot_id",
                               (user_id,), tx)
        return [_bot(r) for r in rows]

    async def count_for_user(self, user_id: int, *, tx: Transaction | None = None) -> int:
        row = await self._one("SELECT COUNT(*) FROM bots WHERE user_id = ?", (user_id,), tx)
        return int(row[0])

    async def rename(self, user_id: int, bot_id: int, name: str, *, tx: Transaction | None = None) -> bool:
        async with self._write(tx) as t:
            cur = await t.execute(f"UPDATE bots SET name = ?, updated_at = {_NOW_SQL}"
                                  " WHERE bot_id = ? AND user_id = ?", (name, bot_id, user_id))
            return cur.rowcount > 0

    async def set_strategy(self, user_id: int, bot_id: int, strategy_json: str | None, *,
                           tx: Transaction | None = None) -> bool:
        async with self._write(tx) as t:
            cur = await t.execute(f"UPDATE bots SET strategy_json = ?, updated_at = {_NOW_SQL}"
                                  " WHERE bot_id = ? AND user_id = ?", (strategy_json, bot_id, user_id))
            return cur.rowcount > 0

    async def delete(self, user_id: int, bot_id: int, *, tx: Transaction | None = None) -> bool:
        """Delete the bot; foreign keys cascade its conversation and detach its backtests/simulations."""
        async with self._write(tx) as t:
            cur = await t.execute("DELETE FROM bots WHERE bot_id = ? AND user_id = ?", (bot_id, user_id))
            return cur.rowcount > 0


class ConversationRepo(_Repo):
    """The designer conversation of each bot (`bot_conversations`)."""

    async def append(self, bot_id: int, user_id: int, role: str, content: str, *,
                     tx: Transaction | None = None) -> int:
        if role not in ("user", "assistant"):
            raise ValueError("role must be 'user' or 'assistant'")
        async with self._write(tx) as t:
            return await t.insert("INSERT INTO bot_conversations(bot_id, user_id, role, content) VALUES (?, ?, ?, ?)",
                                  (bot_id, user_id, role, content))

    async def recent(self, bot_id: int, user_id: int, limit: int = 10) -> builtins.list[tuple[str, str]]:
        """The last `limit` (role, content) pairs, oldest first."""
        rows = await self.db.fetchall(
            "SELECT role, content FROM bot_conversations WHERE bot_id = ? AND user_id = ?"
            " ORDER BY id DESC LIMIT ?", (bot_id, user_id, max(0, int(limit))))
        return [(r[0], r[1]) for r in reversed(rows)]

    async def prune(self, bot_id: int, user_id: int, keep: int, *, tx: Transaction | None = None) -> int:
        """Delete all but the newest `keep` messages of the bot; returns how many were deleted."""
        async with self._write(tx) as t:
            cur = await t.execute(
                "DELETE FROM bot_conversations WHERE bot_id = ? AND user_id = ? AND id NOT IN"
                " (SELECT id FROM bot_conversations WHERE bot_id = ? AND user_id = ? ORDER BY id DESC LIMIT ?)",
                (bot_id, user_id, bot_id, user_id, max(0, int(keep))))
            return cur.rowcount


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


class BacktestRepo(_Repo):
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

    async def fail_interrupted(self, finished_at: str, error: str = "interrupted by a restart") -> int:
        """Mark rows left 'running' by a previous process as failed; returns how many."""
        async with self.db.transaction() as t:
            cur = await t.execute("UPDATE backtests SET status = 'failed', error = ?, finished_at = ?"
                                  " WHERE status = 'running'", (error, finished_at))
            return cur.rowcount

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


class SimulationRepo(_Repo):
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


# -- signals -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SignalRecord:
    signal_id: int
    user_id: int
    bot_id: int | None
    backtest_id: int | None
    simulation_id: int | None
    agent_id: str | None
    token_id: str
    side: str
    price: float
    reason: str
    bar_time: int | None
    created_at: str


@dataclass(frozen=True)
class NewSignal:
    """A signal to insert (one of backtest_id / simulation_id / agent_id is normally set)."""

    user_id: int
    token_id: str
    side: str
    price: float
    reason: str
    bar_time: int | None = None
    bot_id: int | None = None
    backtest_id: int | None = None
    simulation_id: int | None = None
    agent_id: str | None = None

    def params(self) -> tuple[Any, ...]:
        if self.side not in ("buy", "sell"):
            raise ValueError("side must be 'buy' or 'sell'")
        return (self.user_id, self.bot_id, self.backtest_id, self.simulation_id, self.agent_id, self.token_id,
                self.side, float(self.price), self.reason[:500], self.bar_time)


_SIGNAL_COLUMNS = ("signal_id, user_id, bot_id, backtest_id, simulation_id, agent_id, token_id, side, price,"
                   " reason, bar_time, created_at")
_SIGNAL_INSERT = ("INSERT INTO signals(user_id, bot_id, backtest_id, simulation_id, agent_id, token_id, side,"
                  " price, reason, bar_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")


def _signal(row: Any) -> SignalRecord:
    return SignalRecord(
        signal_id=int(row["signal_id"]), user_id=int(row["user_id"]),
        bot_id=None if row["bot_id"] is None else int(row["bot_id"]),
        backtest_id=None if row["backtest_id"] is None else int(row["backtest_id"]),
        simulation_id=None if row["simulation_id"] is None else int(row["simulation_id"]),
        agent_id=row["agent_id"], token_id=row["token_id"], side=row["side"], price=float(row["price"]),
        reason=row["reason"], bar_time=None if row["bar_time"] is None else int(row["bar_time"]),
        created_at=row["created_at"])


class SignalRepo(_Repo):
    """The `signals` table: strategy signals of backtests, simulations and agents."""

    async def add(self, signal: NewSignal, *, tx: Transaction | None = None) -> int:
        async with self._write(tx) as t:
            return await t.insert(_SIGNAL_INSERT, signal.params())

    async def add_many(self, signals: Sequence[NewSignal], *, tx: Transaction | None = None) -> int:
        rows = [s.params() for s in signals]
        if rows:
            async with self._write(tx) as t:
                await t.executemany(_SIGNAL_INSERT, rows)
        return len(rows)

    async def exists_for_simulation_bar(self, simulation_id: int, bar_time: int, side: str, *,
                                        tx: Transaction | None = None) -> bool:
        row = await self._one("SELECT 1 FROM signals WHERE simulation_id = ? AND bar_time = ? AND side = ?",
                              (simulation_id, bar_time, side), tx)
        return row is not None

    async def for_backtest(self, user_id: int, backtest_id: int, limit: int = 500) -> builtins.list[SignalRecord]:
        rows = await self.db.fetchall(f"SELECT {_SIGNAL_COLUMNS} FROM signals WHERE backtest_id = ? AND user_id = ?"
                                      " ORDER BY signal_id LIMIT ?", (backtest_id, user_id, max(0, int(limit))))
        return [_signal(r) for r in rows]

    async def for_simulation(self, user_id: int, simulation_id: int, limit: int = 100
                             ) -> builtins.list[SignalRecord]:
        """The newest `limit` signals of a simulation, oldest first."""
        rows = await self.db.fetchall(
            f"SELECT {_SIGNAL_COLUMNS} FROM signals WHERE simulation_id = ? AND user_id = ?"
            " ORDER BY signal_id DESC LIMIT ?", (simulation_id, user_id, max(0, int(limit))))
        return [_signal(r) for r in reversed(rows)]

    async def count_for_simulation(self, simulation_id: int) -> int:
        return int(await self.db.fetchval("SELECT COUNT(*) FROM signals WHERE simulation_id = ?",
                                          (simulation_id,)) or 0)


# -- trades (simulation paper trades) ----------------------------------------------------------------

@dataclass(frozen=True)
class TradeRecord:
    """A closed round trip; money in Decimal USDC."""

    trade_id: int
    user_id: int
    agent_id: str | None
    simulation_id: int | None
    token_id: str
    symbol: str
    size: float
    entry_price: float
    exit_price: float
    cost: Decimal
    proceeds: Decimal
    pnl: Decimal
    exit_reason: str
    opened_at: str
    closed_at: str
    entry_bar_time: int | None = None
    exit_bar_time: int | None = None


@dataclass(frozen=True)
class NewTrade:
    """A closed simulation trade to record (`agent_id` stays NULL)."""

    user_id: int
    simulation_id: int
    token_id: str
    symbol: str
    size: float
    entry_price: float
    exit_price: float
    cost: Decimal
    proceeds: Decimal
    exit_reason: str
    opened_at: str
    closed_at: str
    entry_bar_time: int | None = None
    exit_bar_time: int | None = None
    pnl: Decimal = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pnl", from_micro(to_micro(self.proceeds) - to_micro(self.cost)))


_TRADE_COLUMNS = ("trade_id, user_id, agent_id, simulation_id, token_id, symbol, size, entry_price, exit_price,"
                  " cost, proceeds, pnl, exit_reason, opened_at, closed_at, entry_bar_time, exit_bar_time")


def _trade(row: Any) -> TradeRecord:
    return TradeRecord(
        trade_id=int(row["trade_id"]), user_id=int(row["user_id"]), agent_id=row["agent_id"],
        simulation_id=None if row["simulation_id"] is None else int(row["simulation_id"]),
        token_id=row["token_id"], symbol=row["symbol"], size=float(row["size"]),
        entry_price=float(row["entry_price"]), exit_price=float(row["exit_price"]),
        cost=from_micro(row["cost"]), proceeds=from_micro(row["proceeds"]), pnl=from_micro(row["pnl"]),
        exit_reason=row["exit_reason"], opened_at=row["opened_at"], closed_at=row["closed_at"],
        entry_bar_time=row["entry_bar_time"], exit_bar_time=row["exit_bar_time"])


class TradeRepo(_Repo):
    """The `trades` table, simulation side (agent trades are written by the agent loop)."""

    async def add_simulation_trade(self, trade: NewTrade, *, tx: Transaction | None = None) -> int:
        cost, proceeds = to_micro(trade.cost), to_micro(trade.proceeds)
        async with self._write(tx) as t:
            return await t.insert(
                "INSERT INTO trades(agent_id, simulation_id, user_id, token_id, symbol, size, entry_price,"
                " exit_price, cost, proceeds, pnl, exit_reason, opened_at, closed_at, entry_bar_time, exit_bar_time)"
                " VALUES (NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (trade.simulation_id, trade.user_id, trade.token_id, trade.symbol, float(trade.size),
                 float(trade.entry_price), float(trade.exit_price), cost, proceeds, proceeds - cost,
                 trade.exit_reason, trade.opened_at, trade.closed_at, trade.entry_bar_time, trade.exit_bar_time))

    async def for_simulation(self, user_id: int, simulation_id: int, limit: int = 50) -> builtins.list[TradeRecord]:
        """The newest `limit` trades of a simulation, oldest first."""
        rows = await self.db.fetchall(
            f"SELECT {_TRADE_COLUMNS} FROM trades WHERE user_id = ? AND simulation_id = ?"
            " ORDER BY trade_id DESC LIMIT ?", (user_id, simulation_id, max(0, int(limit))))
        return [_trade(r) for r in reversed(rows)]

    async def for_agent_since(self, agent_id: str, since_time: int, limit: int = 500) -> builtins.list[TradeRecord]:
        """The agent's trades entered at or after bar `since_time`, oldest first (parity replay)."""
        rows = await self.db.fetchall(
            f"SELECT {_TRADE_COLUMNS} FROM trades WHERE agent_id = ? AND entry_bar_time >= ?"
            " ORDER BY trade_id DESC LIMIT ?", (agent_id, int(since_time), max(0, int(limit))))
        return [_trade(r) for r in reversed(rows)]

    async def count_for_simulation(self, simulation_id: int) -> int:
        return int(await self.db.fetchval("SELECT COUNT(*) FROM trades WHERE simulation_id = ?",
                                          (simulation_id,)) or 0)


# -- LLM usage -----------------------------------------------------------------------------------

class LlmUsageRepo:
    """Per-user daily LLM call counts (the designer's daily limit), persisted across restarts."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def take(self, user_id: int, day: str, limit: int) -> bool:
        """Count one call for `user_id` on `day` if fewer than `limit` were made; False otherwise."""
        async with self.db.transaction() as tx:
            row = await tx.fetchone("SELECT calls FROM llm_usage WHERE user_id = ? AND day = ?", (user_id, day))
            used = 0 if row is None else int(row["calls"])
            if used >= limit:
                return False
            await tx.run(users_repo.ensure, user_id)
            await tx.execute(
                "INSERT INTO llm_usage(user_id, day, calls) VALUES (?, ?, 1)"
                " ON CONFLICT(user_id, day) DO UPDATE SET calls = llm_usage.calls + 1", (user_id, day))
            # Older days are no longer needed by the limit.
            await tx.execute("DELETE FROM llm_usage WHERE user_id = ? AND day < ?", (user_id, day))
            return True

    async def used(self, user_id: int, day: str) -> int:
        return int(await self.db.fetchval("SELECT calls FROM llm_usage WHERE user_id = ? AND day = ?",
                                          (user_id, day)) or 0)
