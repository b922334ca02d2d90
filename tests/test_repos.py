"""Repositories: CRUD round trips and user isolation on a real migrated database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from storage import Database, open_database
from storage.bots_repo import BotRepo, ConversationRepo
from storage.money import from_micro, nearest_usdc, to_micro
from storage.notify import NotifyPrefs
from storage.runs_repo import BacktestRepo, SimulationRepo
from storage.signals_repo import NewSignal, NewTrade, SignalRepo, TradeRepo
from storage.users_repo import UserRepo
from storage.values import from_iso, json_safe, to_iso, valid_id

pytestmark = pytest.mark.both_backends  # SQLite and PostgreSQL

ALICE, BOB = 1001, 2002


@pytest.fixture
async def repo_db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await open_database(f"sqlite:///{tmp_path / 'repos.db'}")
    try:
        users = UserRepo(database)
        await users.ensure(ALICE, "alice", "Alice")
        await users.ensure(BOB)
        yield database
    finally:
        await database.close()


def test_helpers_round_trip() -> None:
    ts = 1_700_000_123.456
    assert to_iso(ts) == "2023-11-14T22:15:23.456Z"
    assert from_iso(to_iso(ts)) == pytest.approx(ts, abs=1e-3)
    assert from_iso("2023-11-14 22:15:23") == pytest.approx(1_700_000_123)
    with pytest.raises(ValueError):  # storage never rounds silently: callers round by a named rule first
        to_micro(Decimal("1.2345675"))
    assert to_micro(nearest_usdc(Decimal("1.2345675"))) == 1_234_568
    assert from_micro(1_500_000) == Decimal("1.500000")
    assert json_safe({"a": float("nan"), "b": [1.0, float("inf")]}) == {"a": None, "b": [1.0, None]}


@pytest.mark.parametrize("raw, expected", [
    (5, 5), ("17", 17), (0, None), (-3, None), (True, None), (1.0, None), ("1.0", None), (" 7", None),
    ("+7", None), ("٣", None), ("9" * 30, None), (2**63, None), (None, None), ("", None),
])
def test_valid_id_accepts_only_positive_ints(raw: object, expected: int | None) -> None:
    assert valid_id(raw) == expected


async def test_user_prefs_blocked_and_selection(repo_db: Database) -> None:
    users = UserRepo(repo_db)
    assert await users.get_prefs(ALICE) == NotifyPrefs()
    assert await users.get_prefs(999_999) == NotifyPrefs()  # unknown user: defaults
    prefs = await users.set_pref(ALICE, "trades", "silent")
    assert prefs.level("trades") == "silent" and prefs.level("signals") == "on"
    assert prefs.level("trades") == "silent"
    await users.set_pref(ALICE, "risk", "off")
    assert (await users.get_prefs(ALICE)).level("risk") == "off"
    assert (await users.get_prefs(BOB)).level("risk") == "on"  # isolation
    with pytest.raises(ValueError):
        await users.set_pref(ALICE, "notify_trades; DROP TABLE users", "on")
    with pytest.raises(ValueError):
        await users.set_pref(ALICE, "trades", "loud")

    assert not await users.is_blocked(ALICE)
    await users.mark_blocked(ALICE)
    assert await users.is_blocked(ALICE) and not await users.is_blocked(BOB)
    await users.mark_blocked(ALICE, False)
    assert not await users.is_blocked(ALICE)

    assert await users.selected_bot_id(ALICE) is None
    await users.select_bot(ALICE, 42)
    assert await users.selected_bot_id(ALICE) == 42
    await users.select_bot(ALICE, None)
    assert await users.selected_bot_id(ALICE) is None
    assert await users.count_users() == 2
    await users.ensure(ALICE, first_name="Alicia")  # idempotent; refreshes names
    assert await users.count_users() == 2
    row = await repo_db.fetchone("SELECT username, first_name FROM users WHERE user_id = ?", (ALICE,))
    assert tuple(row) == ("alice", "Alicia")


async def test_bots_are_scoped_to_their_owner(repo_db: Database) -> None:
    bots = BotRepo(repo_db)
    mine = await bots.create(ALICE, "Dip buyer")
    theirs = await bots.create(BOB, "Other")
    assert mine.name == "Dip buyer" and mine.strategy_json is None and mine.user_id == ALICE
    assert await bots.get(ALICE, mine.bot_id) == mine
    assert await bots.get(BOB, mine.bot_id) is None  # foreign id looks missing
    assert [b.bot_id for b in await bots.list_for_user(ALICE)] == [mine.bot_id]

    assert not await bots.rename(BOB, mine.bot_id, "stolen")
    assert not await bots.set_strategy(BOB, mine.bot_id, "{}")
    assert not await bots.delete(BOB, mine.bot_id)
    assert (await bots.get(ALICE, mine.bot_id)).name == "Dip buyer"  # type: ignore[union-attr]

    assert await bots.rename(ALICE, mine.bot_id, "Renamed")
    assert await bots.set_strategy(ALICE, mine.bot_id, '{"x":1}')
    updated = await bots.get(ALICE, mine.bot_id)
    assert updated is not None and updated.name == "Renamed" and updated.strategy_json == '{"x":1}'
    assert await bots.delete(ALICE, mine.bot_id)
    assert await bots.get(ALICE, mine.bot_id) is None
    assert await bots.get(BOB, theirs.bot_id) is not None


async def test_conversation_recent_prune_and_cascade(repo_db: Database) -> None:
    bots, conv = BotRepo(repo_db), ConversationRepo(repo_db)
    bot = await bots.create(ALICE, "b")
    for i in range(6):
        await conv.append(bot.bot_id, ALICE, "user" if i % 2 == 0 else "assistant", f"m{i}")
    assert await conv.recent(bot.bot_id, ALICE, 3) == [("assistant", "m3"), ("user", "m4"), ("assistant", "m5")]
    assert await conv.recent(bot.bot_id, BOB, 10) == []  # isolation
    with pytest.raises(ValueError):
        await conv.append(bot.bot_id, ALICE, "system", "nope")
    assert await conv.prune(bot.bot_id, ALICE, keep=2) == 4
    assert [c for _, c in await conv.recent(bot.bot_id, ALICE, 10)] == ["m4", "m5"]
    await bots.delete(ALICE, bot.bot_id)
    assert await repo_db.fetchval("SELECT COUNT(*) FROM bot_conversations") == 0


async def test_backtests_and_their_signals(repo_db: Database) -> None:
    repo, signals = BacktestRepo(repo_db), SignalRepo(repo_db)
    bot = await BotRepo(repo_db).create(ALICE, "b")
    bt = await repo.create(ALICE, bot.bot_id, "PEPE", "PEPE", "1h", 30, "{}", demo=True)
    record = await repo.get(ALICE, bt)
    assert record is not None and record.status == "running" and record.demo and record.metrics is None
    assert await repo.get(BOB, bt) is None
    await repo.set_token(bt, "0xabc-bsc", "PEPE")
    await signals.add_many([NewSignal(user_id=ALICE, token_id="0xabc-bsc", side="buy", price=1.5, reason="dip",
                                      bar_time=100, bot_id=bot.bot_id, backtest_id=bt)])
    await repo.complete(bt, {"total_return_pct": 1.5, "sharpe": float("nan")}, [{"pnl": 2.0}], to_iso(0))
    done = await repo.get(ALICE, bt)
    assert done is not None and done.status == "completed" and done.token_id == "0xabc-bsc"
    assert done.metrics == {"total_return_pct": 1.5, "sharpe": None} and done.trades == [{"pnl": 2.0}]
    stored = await signals.for_backtest(ALICE, bt)
    assert [(s.side, s.price, s.reason, s.bar_time) for s in stored] == [("buy", 1.5, "dip", 100)]
    assert await signals.for_backtest(BOB, bt) == []
    # fail() only touches running rows; fail_interrupted() catches leftovers
    await repo.fail(bt, "late error", to_iso(1))
    assert (await repo.get(ALICE, bt)).status == "completed"  # type: ignore[union-attr]
    other = await repo.create(ALICE, None, "X", "X", "1h", 30, "{}", demo=False)
    assert await repo.fail_interrupted(to_iso(2)) == [(other, ALICE)]
    failed = await repo.get(ALICE, other)
    assert failed is not None and failed.status == "failed" and failed.error == "interrupted by a restart"
    assert [r.backtest_id for r in await repo.recent(ALICE)] == [other, bt]
    with pytest.raises(ValueError):
        await signals.add(NewSignal(user_id=ALICE, token_id="t", side="hold", price=1, reason="r"))


async def test_simulations_one_running_per_bot_and_trades(repo_db: Database) -> None:
    sims, trades, signals = SimulationRepo(repo_db), TradeRepo(repo_db), SignalRepo(repo_db)
    bot = await BotRepo(repo_db).create(ALICE, "b")
    rec = await sims.create(ALICE, bot.bot_id, "tok-bsc", "TOK", "1h", "{}", {"version": 0}, to_iso(0), to_iso(3600))
    assert rec.running and rec.state == {"version": 0}
    with pytest.raises(Exception, match="UNIQUE"):
        await sims.create(ALICE, bot.bot_id, "tok-bsc", "TOK", "1h", "{}", {}, to_iso(0), to_iso(3600))
    assert (await sims.running_for_bot(ALICE, bot.bot_id)) == rec
    assert await sims.running_for_bot(BOB, bot.bot_id) is None
    assert await sims.get(BOB, rec.simulation_id) is None
    assert await sims.count_running_for_user(ALICE) == 1
    assert await sims.save_state(rec.simulation_id, {"version": 1}, to_iso(10))
    assert (await sims.get(ALICE, rec.simulation_id)).state == {"version": 1}  # type: ignore[union-attr]

    trade = NewTrade(user_id=ALICE, simulation_id=rec.simulation_id, token_id="tok-bsc", symbol="TOK", size=2.0,
                     entry_price=10.0, exit_price=11.0, cost=Decimal("20.06"), proceeds=Decimal("21.9"),
                     exit_reason="take_profit", opened_at=to_iso(0), closed_at=to_iso(60))
    assert trade.pnl == Decimal("1.84")
    await trades.add_simulation_trade(trade)
    stored = await trades.for_simulation(ALICE, rec.simulation_id)
    assert len(stored) == 1 and stored[0].pnl == Decimal("1.840000") and stored[0].agent_id is None
    assert await trades.for_simulation(BOB, rec.simulation_id) == []
    assert await trades.count_for_simulation(rec.simulation_id) == 1
    await signals.add(NewSignal(user_id=ALICE, token_id="tok-bsc", side="buy", price=1, reason="r", bar_time=5,
                                simulation_id=rec.simulation_id))
    assert await signals.exists_for_simulation_bar(rec.simulation_id, 5, "buy")
    assert not await signals.exists_for_simulation_bar(rec.simulation_id, 5, "sell")
    assert await signals.count_for_simulation(rec.simulation_id) == 1
    assert len(await signals.for_simulation(ALICE, rec.simulation_id)) == 1
    assert await signals.for_simulation(BOB, rec.simulation_id) == []

    assert await sims.stop_for_bot(BOB, bot.bot_id, to_iso(20)) == 0
    assert await sims.end(rec.simulation_id, "finished", to_iso(30))
    assert not await sims.end(rec.simulation_id, "stopped", to_iso(40))  # already ended
    assert not await sims.save_state(rec.simulation_id, {"version": 9}, None)
    assert await sims.list_running() == []
    ended = await sims.list_for_user(ALICE, ("finished",))
    assert [s.status for s in ended] == ["finished"]
    # a new run of the same bot is allowed once the old one ended
    again = await sims.create(ALICE, bot.bot_id, "tok-bsc", "TOK", "1h", "{}", {}, to_iso(50), to_iso(99))
    assert await sims.stop_for_bot(ALICE, bot.bot_id, to_iso(60)) == 1
    assert (await sims.get(ALICE, again.simulation_id)).status == "stopped"  # type: ignore[union-attr]
    with pytest.raises(ValueError):
        await sims.end(again.simulation_id, "running", to_iso(70))
