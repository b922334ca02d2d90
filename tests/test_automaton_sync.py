"""Tests of the Automaton sync: remote creation, balance adjustments, child adoption, failures."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal

import pytest

from agents.autonomy.automaton.client import AutomatonClient, RemoteStatus
from agents.autonomy.automaton.sync import AutomatonSync
from agents.events import ChildSpawned
from agents.ledger.manager import IsolatedAIManager
from agents.screens import remote_balance
from bot.render import remote_text
from engine.events import CollectingSink
from storage import Database, remote_repo
from tests.fakes.automaton_api import AutomatonFake
from tests.invariants import check_invariants, money_snapshot

pytestmark = pytest.mark.both_backends  # SQLite and PostgreSQL

KEY = "sync-key"


async def no_sleep(_: float) -> None:
    return None


@pytest.fixture
def fake() -> Iterator[AutomatonFake]:
    with AutomatonFake(api_key=KEY) as server:
        yield server


@pytest.fixture
async def client(fake: AutomatonFake) -> AsyncIterator[AutomatonClient]:
    async with AutomatonClient(fake.base_url, KEY, sleep=no_sleep, timeout=0.3, retries=1) as c:
        yield c


async def _synced_agent(db: Database, manager: IsolatedAIManager, sync: AutomatonSync,
                        user_id: int = 1, balance: str = "100") -> tuple[str, str]:
    agent_id = (await manager.create_user_main_agent(user_id, Decimal(balance)))["agent_id"]
    report = await sync.run_once()
    assert report.created == 1
    row = await db.fetchone("SELECT remote_agent_id FROM automaton_agents WHERE agent_id = ?", (agent_id,))
    return agent_id, row["remote_agent_id"]


async def _sync_rows(db: Database, agent_id: str) -> list[int]:
    rows = await db.fetchall("SELECT amount FROM ledger_entries WHERE agent_id = ? AND kind = 'sync_adjust'",
                             (agent_id,))
    return [r["amount"] for r in rows]


async def test_creates_each_remote_agent_once(db: Database, manager: IsolatedAIManager,
                                              client: AutomatonClient, fake: AutomatonFake) -> None:
    sync = AutomatonSync(db, manager, client)
    agent_id, remote_id = await _synced_agent(db, manager, sync)
    remote = fake.agents[remote_id]
    assert remote.name == agent_id and remote.owner == "1" and remote.balance == Decimal("100")
    info = await manager.get_agent_info(agent_id, 1)
    assert info["remote_balance"] == Decimal("100.000000") and info["remote_status"] == "running"
    assert remote_text(remote_balance(info)) == "100.00 USDC (running)"
    for _ in range(2):
        assert (await sync.run_once()).created == 0
    assert len(fake.agents) == 1
    assert len([r for r in fake.requests if r.method == "POST"]) == 1


async def test_local_only_mode_does_not_create(db: Database, manager: IsolatedAIManager,
                                               client: AutomatonClient, fake: AutomatonFake) -> None:
    agent_id = (await manager.create_user_main_agent(1, Decimal("100")))["agent_id"]
    await AutomatonSync(db, manager, client, create_missing=False).run_once()
    assert fake.agents == {}
    assert remote_balance(await manager.get_agent_info(agent_id, 1)) is None


async def test_balance_change_is_one_sync_adjust_across_identical_polls(
        db: Database, manager: IsolatedAIManager, client: AutomatonClient, fake: AutomatonFake) -> None:
    sync = AutomatonSync(db, manager, client)
    agent_id, remote_id = await _synced_agent(db, manager, sync)
    fake.set_balance(remote_id, "112.25")
    for _ in range(3):
        await sync.run_once()
    fake.set_repeat_last_answer(True)  # a stale cache repeats the same answer byte for byte
    for _ in range(3):
        await sync.run_once()
    assert await _sync_rows(db, agent_id) == [12_250_000]
    info = await manager.get_agent_info(agent_id, 1)
    assert info["isolated_balance"] == Decimal("112.250000") and info["remote_balance"] == Decimal("112.250000")
    fake.set_repeat_last_answer(False)
    fake.set_balance(remote_id, "100")
    await sync.run_once()
    await sync.run_once()
    assert await _sync_rows(db, agent_id) == [12_250_000, -12_250_000]
    await check_invariants(db)


async def _ledger_total(db: Database, agent_id: str) -> Decimal:
    """What the ledger says the agent holds (sum of its rows), checked against its balance."""
    total = await db.fetchval("SELECT COALESCE(SUM(amount), 0) FROM ledger_entries WHERE agent_id = ?", (agent_id,))
    balance = await db.fetchval("SELECT isolated_balance FROM automaton_agents WHERE agent_id = ?", (agent_id,))
    assert total == balance
    return Decimal(total) / 1_000_000


class Unstamped(AutomatonClient):
    """A server that sends no `updated_at` (the case the old `<old>><new>` key was for)."""

    async def get_status(self, remote_id: str) -> RemoteStatus:
        return dataclasses.replace(await super().get_status(remote_id), updated_at=None)


@pytest.mark.parametrize("stamped", [True, False], ids=["updated_at", "no-updated_at"])
async def test_balance_moving_back_and_forth_books_every_change(
        db: Database, manager: IsolatedAIManager, fake: AutomatonFake, stamped: bool) -> None:
    client_type = AutomatonClient if stamped else Unstamped
    async with client_type(fake.base_url, KEY, sleep=no_sleep, timeout=0.3, retries=1) as client:
        # a clock that never moves: the sync version must advance without it
        sync = AutomatonSync(db, manager, client, clock=lambda: 1_700_000_000.0)
        agent_id, remote_id = await _synced_agent(db, manager, sync, balance="1000")
        for balance in ["1025.5", "1000", "1025.5", "1000"]:
            fake.set_balance(remote_id, balance)
            report = await sync.run_once()
            assert report.adjusted == 1 and report.failed == 0, report.errors
            assert await _ledger_total(db, agent_id) == Decimal(balance)
            info = await manager.get_agent_info(agent_id, 1)
            assert info["remote_balance"] == Decimal(balance)
    assert await _sync_rows(db, agent_id) == [25_500_000, -25_500_000, 25_500_000, -25_500_000]
    await check_invariants(db)


async def test_polling_the_same_state_twice_books_once(db: Database, manager: IsolatedAIManager,
                                                       client: AutomatonClient, fake: AutomatonFake) -> None:
    sync = AutomatonSync(db, manager, client)
    agent_id, remote_id = await _synced_agent(db, manager, sync, balance="1000")
    fake.set_balance(remote_id, "1025.5")
    assert (await sync.run_once()).adjusted == 1
    ledger = (await money_snapshot(db))["ledger_entries"]
    report = await sync.run_once()
    assert report.polled == 1 and report.adjusted == 0 and report.failed == 0
    assert (await money_snapshot(db))["ledger_entries"] == ledger
    assert await _sync_rows(db, agent_id) == [25_500_000]
    assert await _ledger_total(db, agent_id) == Decimal("1025.5")


class Killed(Exception):
    """The process dying at that point (nothing after it runs)."""


@pytest.mark.parametrize("remote_after_crash", ["1025.5", "1000", "1040"])
async def test_replay_after_a_crash_between_booking_and_recording_books_once(
        db: Database, manager: IsolatedAIManager, client: AutomatonClient, fake: AutomatonFake,
        monkeypatch: pytest.MonkeyPatch, remote_after_crash: str) -> None:
    sync = AutomatonSync(db, manager, client)
    agent_id, remote_id = await _synced_agent(db, manager, sync, balance="1000")
    fake.set_balance(remote_id, "1025.5")
    finish = remote_repo.finish_sync

    def crash(*args: object) -> None:
        raise Killed("after the ledger row, before the remote state")

    monkeypatch.setattr(remote_repo, "finish_sync", crash)
    with pytest.raises(Killed):
        await sync.run_once()
    monkeypatch.setattr(remote_repo, "finish_sync", finish)
    assert await _sync_rows(db, agent_id) == [25_500_000]  # booked, but the remote state is stale
    row = await db.fetchone("SELECT remote_balance, remote_synced_at FROM automaton_agents WHERE agent_id = ?",
                            (agent_id,))
    assert row["remote_balance"] == 1_000_000_000
    # the restarted process measures from the same stored version, hence the same key
    key = await db.fetchval("SELECT idempotency_key FROM ledger_entries WHERE agent_id = ? AND kind = 'sync_adjust'",
                            (agent_id,))
    assert key == f"1:sync:{agent_id}:{row['remote_synced_at']}:{agent_id}"
    fake.set_balance(remote_id, remote_after_crash)  # the same observation again, or the remote moved on
    for _ in range(2):
        report = await sync.run_once()
        assert report.failed == 0, report.errors
        assert await _ledger_total(db, agent_id) == Decimal(remote_after_crash)
    rest = int((Decimal(remote_after_crash) - Decimal("1025.5")) * 1_000_000)
    assert await _sync_rows(db, agent_id) == [25_500_000] + ([rest] if rest else [])
    info = await manager.get_agent_info(agent_id, 1)
    assert info["remote_balance"] == Decimal(remote_after_crash) and info["remote_status"] == "running"
    await check_invariants(db)


async def test_two_syncs_racing_on_one_agent_book_once(db: Database, manager: IsolatedAIManager,
                                                       client: AutomatonClient, fake: AutomatonFake) -> None:
    first, second = AutomatonSync(db, manager, client), AutomatonSync(db, manager, client, create_missing=False)
    agent_id, remote_id = await _synced_agent(db, manager, first, balance="1000")
    fake.set_balance(remote_id, "1025.5")
    await asyncio.gather(first.run_once(), second.run_once())
    await first.run_once()
    assert await _sync_rows(db, agent_id) == [25_500_000]
    assert await _ledger_total(db, agent_id) == Decimal("1025.5")


async def test_remote_child_is_adopted_once(db: Database, manager: IsolatedAIManager, client: AutomatonClient,
                                            fake: AutomatonFake, events: CollectingSink) -> None:
    sync = AutomatonSync(db, manager, client)
    agent_id, remote_id = await _synced_agent(db, manager, sync)
    fake.spawn_remote_child(remote_id, "remote-kid", "30", "earned enough", debit_parent=True)
    for _ in range(3):
        await sync.run_once()
    portfolio = await manager.get_user_ai_portfolio(1)
    kids = [a for a in portfolio["agents"] if a["parent_agent_id"] == agent_id]
    assert len(kids) == 1
    kid = kids[0]
    assert kid["remote_agent_id"] == "remote-kid" and kid["isolated_balance"] == Decimal("30.000000")
    assert kid["generation"] == 2 and kid["spawn_reason"] == "earned enough"
    parent = await manager.get_agent_info(agent_id, 1)
    # the debit is the transfer to the child, not a loss
    assert parent["isolated_balance"] == Decimal("70.000000") and await _sync_rows(db, agent_id) == []
    assert len([e for e in events.events if isinstance(e, ChildSpawned)]) == 1
    decision = await db.fetchone("SELECT source FROM spawn_decisions WHERE child_agent_id = ?", (kid["agent_id"],))
    assert decision["source"] == "remote"
    await check_invariants(db)


@pytest.mark.parametrize("fault", ["5xx", "timeout", "401"])
async def test_failures_show_unknown_and_change_no_money(db: Database, manager: IsolatedAIManager,
                                                         client: AutomatonClient, fake: AutomatonFake,
                                                         fault: str) -> None:
    sync = AutomatonSync(db, manager, client)
    agent_id, remote_id = await _synced_agent(db, manager, sync)
    fake.set_balance(remote_id, "0")
    before = await db.fetchone("SELECT isolated_balance, remote_balance FROM automaton_agents WHERE agent_id = ?",
                               (agent_id,))
    ledger = (await money_snapshot(db))["ledger_entries"]
    if fault == "5xx":
        fake.fail_next(2, 500)
    elif fault == "timeout":
        fake.delay_next(2, 0.6)
    else:
        fake.set_auth_failure(True)
    report = await sync.run_once()
    assert report.failed == 1 and report.adjusted == 0 and KEY not in " ".join(report.errors)
    info = await manager.get_agent_info(agent_id, 1)
    assert info["remote_status"] == "unknown" and remote_text(remote_balance(info)) == "unknown"
    after = await db.fetchone("SELECT isolated_balance, remote_balance FROM automaton_agents WHERE agent_id = ?",
                              (agent_id,))
    assert tuple(after) == tuple(before)
    assert (await money_snapshot(db))["ledger_entries"] == ledger


async def test_create_failure_leaves_no_remote_id(db: Database, manager: IsolatedAIManager,
                                                  client: AutomatonClient, fake: AutomatonFake) -> None:
    agent_id = (await manager.create_user_main_agent(1, Decimal("100")))["agent_id"]
    fake.fail_next(2, 503)
    report = await AutomatonSync(db, manager, client).run_once()
    assert report.created == 0 and report.failed == 1
    info = await manager.get_agent_info(agent_id, 1)
    assert info["remote_agent_id"] is None and info["remote_status"] == "unknown"
    assert (await AutomatonSync(db, manager, client).run_once()).created == 1
