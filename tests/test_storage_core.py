"""The storage primitives issue 10 added: one-hop transactions, read snapshots, the change feed,
and the batched booking of a tick's fills (equal to booking the same orders one by one)."""

from __future__ import annotations

import asyncio
import tempfile
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.errors import AgentStateError, InsufficientFundsError, PositionNotFoundError
from agents.ledger.fills import CloseOrder, OpenOrder
from agents.ledger.manager import IsolatedAIManager
from storage import Database, SyncTx, agents_repo, open_database
from storage.bars_repo import clock, loop_changes
from tests.invariants import check_invariants

pytestmark = pytest.mark.both_backends  # SQLite and PostgreSQL

D = Decimal


def _insert_user(tx: SyncTx, user_id: int) -> None:
    tx.run("INSERT INTO users(user_id) VALUES (?)", (user_id,))


def _fail_after_insert(tx: SyncTx, user_id: int) -> None:
    _insert_user(tx, user_id)
    raise RuntimeError("boom")


async def test_run_commits_on_return_and_rolls_back_on_error(db: Database) -> None:
    await db.run(_insert_user, 1)
    with pytest.raises(RuntimeError):
        await db.run(_fail_after_insert, 2)
    assert [r[0] for r in await db.fetchall("SELECT user_id FROM users ORDER BY 1")] == [1]
    await db.run(_insert_user, 3)  # the writer is usable after a failed transaction
    assert await db.fetchval("SELECT COUNT(*) FROM users") == 2


async def test_a_cancelled_caller_never_leaves_half_a_transaction(db: Database) -> None:
    started, release = threading.Event(), threading.Event()

    def slow(tx: SyncTx) -> None:
        _insert_user(tx, 10)
        started.set()
        release.wait(5)
        _insert_user(tx, 11)

    task = asyncio.create_task(db.run(slow))
    await asyncio.get_running_loop().run_in_executor(None, started.wait, 5)
    task.cancel()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    await db.run(_insert_user, 12)  # queued behind the cancelled one, which still committed whole
    assert [r[0] for r in await db.fetchall("SELECT user_id FROM users ORDER BY 1")] == [10, 11, 12]


async def test_read_sees_one_committed_snapshot(db: Database, manager: IsolatedAIManager) -> None:
    await manager.create_user_main_agent(5, D(100))

    def counts(tx: SyncTx) -> tuple[int, int]:
        return tx.value("SELECT COUNT(*) FROM automaton_agents"), tx.value("SELECT COUNT(*) FROM ledger_entries")

    assert await db.read(counts) == (1, 1)


async def test_every_agent_change_is_in_the_feed(db: Database, manager: IsolatedAIManager) -> None:
    a = (await manager.create_user_main_agent(1, D(100)))["agent_id"]
    b = (await manager.create_user_main_agent(2, D(100)))["agent_id"]
    seen = await db.read(clock)
    rows, _ = await db.read(loop_changes, seen)
    assert rows == []
    await manager.deposit(1, D(10))
    rows, newer = await db.read(loop_changes, seen)
    assert {r[0] for r in rows} == {a} and newer > seen
    # An UPDATE that does not stamp itself is stamped by the trigger (the safety net).
    await db.execute("UPDATE automaton_agents SET status_reason = 'x' WHERE agent_id = ?", (b,))
    rows, last = await db.read(loop_changes, newer)
    assert {r[0] for r in rows} == {b} and last > newer
    assert (await db.read(loop_changes, last))[0] == []


async def _funded(manager: IsolatedAIManager, users: int) -> list[str]:
    return [(await manager.create_user_main_agent(u, D(100)))["agent_id"] for u in range(1, users + 1)]


async def test_a_refused_order_changes_nothing_and_the_rest_are_booked(db: Database,
                                                                      manager: IsolatedAIManager) -> None:
    a, b = await _funded(manager, 2)
    await manager.pause_agent(b, 2)
    opens = [
        OpenOrder(manager.open_order(a, token_id="t", symbol="T", size=1.0, price=10.0, cost=D(30),
                                     idempotency_key="k1")),
        OpenOrder(manager.open_order(a, token_id="t", symbol="T", size=1.0, price=10.0, cost=D(80),
                                     idempotency_key="k2")),  # only 70 left: refused
        OpenOrder(manager.open_order(b, token_id="t", symbol="T", size=1.0, price=10.0, cost=D(10),
                                     idempotency_key="k3")),  # paused: refused
        OpenOrder(manager.open_order(a, token_id="t", symbol="T", size=1.0, price=10.0, cost=D(30),
                                     idempotency_key="k1")),  # the same key again: already booked
        CloseOrder(exit_price=12.0, proceeds=36_000_000, reason="take_profit", key=None, exit_bar_time=None,
                   opened_by=0),
        CloseOrder(exit_price=12.0, proceeds=1, reason="signal", key=None, exit_bar_time=None, opened_by=1),
    ]
    booked = await manager.book_fills(opens)
    assert isinstance(booked[0].value, int) and booked[0].error is None
    assert isinstance(booked[1].error, InsufficientFundsError) and booked[1].value is None
    assert isinstance(booked[2].error, AgentStateError)
    assert booked[3].value is None and booked[3].error is None
    assert booked[4].value["pnl"] == D(6)
    assert booked[5].value is None and booked[5].error is None  # its open was refused: nothing to close
    info = await manager.get_agent_info(a, 1)
    assert (info["isolated_balance"], info["locked_balance"]) == (D(106), D(0))
    await check_invariants(db)


# -- the batch equals booking the same orders one at a time ---------------------------------------------

ORDER = st.one_of(
    st.tuples(st.just("open"), st.integers(0, 2), st.integers(1, 60), st.integers(0, 5)),
    st.tuples(st.just("close"), st.integers(0, 20), st.integers(0, 200), st.just(0)),
)


def _orders(manager: IsolatedAIManager, agents: list[str], plan: list[tuple[str, int, int, int]]) -> list[Any]:
    out: list[Any] = []
    opened: list[int] = []
    for kind, who, amount, key in plan:
        if kind == "open":
            opened.append(len(out))
            out.append(OpenOrder(manager.open_order(agents[who], token_id="t", symbol="T", size=1.0, price=10.0,
                                                    cost=D(amount), idempotency_key=f"k{who}:{key}")))
        elif opened:
            out.append(CloseOrder(exit_price=10.0, proceeds=amount * 1_000_000, reason="signal", key=None,
                                  exit_bar_time=None, opened_by=opened[who % len(opened)]))
    return out


async def _book_one_by_one(manager: IsolatedAIManager, orders: list[Any]) -> list[Any]:
    ids: list[Any] = []
    for order in orders:
        if isinstance(order, OpenOrder):
            p = order.position
            try:
                ids.append(await manager.open_position(p.agent_id, token_id=p.token_id, symbol=p.symbol,
                                                       size=p.size, price=p.entry_price, cost=D(p.cost) / 1_000_000,
                                                       idempotency_key=p.open_key))
            except Exception:
                ids.append(None)
        else:
            pid = ids[order.opened_by]
            ids.append(None if pid is None else await manager.close_position(
                pid, exit_price=order.exit_price, proceeds=D(order.proceeds) / 1_000_000, reason=order.reason))
    return ids


async def _money_state(db: Database) -> list[tuple[Any, ...]]:
    agents = [tuple(r) for r in await db.fetchall(
        "SELECT agent_id, isolated_balance, locked_balance, peak_balance, status FROM automaton_agents ORDER BY 1")]
    ledger = [tuple(r) for r in await db.fetchall(
        "SELECT agent_id, kind, amount, balance_after FROM ledger_entries ORDER BY entry_id")]
    trades = [tuple(r) for r in await db.fetchall("SELECT agent_id, cost, proceeds, pnl FROM trades ORDER BY 1, 2")]
    return [*agents, *ledger, *trades]


@settings(max_examples=int(__import__("os").environ.get("BATCH_EXAMPLES", "40")), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=st.lists(ORDER, max_size=12))
def test_a_batch_books_exactly_what_one_by_one_booking_does(tmp_path: Path, plan: list[Any]) -> None:
    async def scenario() -> None:
        folder = Path(tempfile.mkdtemp(dir=tmp_path))  # one per example: tmp_path is shared by all of them
        dbs = [await open_database(f"sqlite:///{folder / f'{name}.db'}") for name in ("a", "b")]
        try:
            managers = []
            for db in dbs:  # the same agent ids in both databases
                names = iter([f"ag{i}" for i in range(3)])
                managers.append(IsolatedAIManager(db, id_factory=lambda names=names: next(names)))
            agents = await _funded(managers[0], 3)
            assert await _funded(managers[1], 3) == agents
            await managers[0].book_fills(_orders(managers[0], agents, plan))
            await _book_one_by_one(managers[1], _orders(managers[1], agents, plan))
            assert await _money_state(dbs[0]) == await _money_state(dbs[1])
            for db in dbs:
                await check_invariants(db)
        finally:
            for db in dbs:
                await db.close()

    asyncio.run(scenario())


def test_stamp_increases(tmp_path: Path) -> None:
    async def scenario() -> None:
        db = await open_database(f"sqlite:///{tmp_path / 's.db'}")
        try:
            first, second = await db.run(agents_repo.stamp), await db.run(agents_repo.stamp)
            assert second == first + 1
        finally:
            await db.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("position_id", [0, -1, 2**70, True, 1.5, "1", None])
async def test_closing_a_position_that_cannot_exist_is_refused(db: Database, manager: IsolatedAIManager,
                                                               position_id: object) -> None:
    (a,) = await _funded(manager, 1)
    await manager.open_position(a, token_id="t", symbol="T", size=1.0, price=10.0, cost=D(10))
    before = await _money_state(db)
    with pytest.raises(PositionNotFoundError):
        await manager.close_position(position_id, exit_price=10.0, proceeds=D(10), reason="x")  # type: ignore[arg-type]
    assert await _money_state(db) == before
