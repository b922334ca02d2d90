"""Signals (backtests and simulations) and simulation paper trades."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from storage.db import Transaction
from storage.money import from_micro, to_micro
from storage.repo_base import Repo

# -- signals -------------------------------------------------------------------------------------

REASON_CHARS = 500  # a signal's stored reason is cut to this (its encoder stays below it)


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
                self.side, float(self.price), self.reason[:REASON_CHARS], self.bar_time)


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


class SignalRepo(Repo):
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


class TradeRepo(Repo):
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
