"""The isolated AI manager: every money rule and every bad input (SPEC §3).

After every refused operation the money tables must be exactly as before, and the
invariants of tests/invariants.py must hold.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest

from agents import (
    AgentExistsError,
    AgentNotFoundError,
    AgentStateError,
    IdempotencyConflictError,
    InsufficientFundsError,
    InvalidAmountError,
    IsolatedAIManager,
    MoneyRules,
    SpawnNotAllowedError,
    get_isolated_ai_manager,
)
from agents.errors import AgentError, PositionNotFoundError
from agents.events import AgentDied, ChildSpawned
from bot.messages import describe
from bot.render import reason_text
from engine.events import CollectingSink
from storage import Database
from tests.invariants import check_invariants, money_snapshot

pytestmark = pytest.mark.both_backends  # the money rules on SQLite and on PostgreSQL

D = Decimal
ALICE, BOB = 1001, 2002

BAD_AMOUNTS: list[object] = [
    0, "0", D(0), -5, "-5", D("-0.01"), D("NaN"), "nan", float("nan"), float("inf"), float("-inf"),
    "Infinity", "-Infinity", D("Infinity"), "1e309", "10.0000001", D("10.1234567"), "abc", "", "12abc",
    None, True, False, [10],
]


async def refused(db: Database, error: type[Exception], op: Callable[[], Awaitable[Any]]) -> Exception:
    """Run `op`, expect `error`, and check that nothing in the money tables changed."""
    before = await money_snapshot(db)
    with pytest.raises(error) as info:
        await op()
    assert await money_snapshot(db) == before, "a refused operation changed the money tables"
    await check_invariants(db)
    return info.value


async def rich_root(manager: IsolatedAIManager, user: int = ALICE, deposit: str = "100",
                    profit: str = "100") -> str:
    """A root agent with `deposit` capital and `profit` realized earnings."""
    root = await manager.create_user_main_agent(user, D(deposit))
    await manager.record_agent_profit(root["agent_id"], D(profit), "test profit")
    return root["agent_id"]


async def ledger_count(db: Database) -> int:
    return int(await db.fetchval("SELECT COUNT(*) FROM ledger_entries"))


# -- creation and deposits --------------------------------------------------------------------


async def test_create_main_agent(manager: IsolatedAIManager, db: Database) -> None:
    agent = await manager.create_user_main_agent(ALICE, D("25.5"))
    assert agent["generation"] == 1 and agent["parent_agent_id"] is None
    assert agent["user_id"] == ALICE and agent["status"] == "active"
    assert agent["isolated_balance"] == D("25.5") == agent["available_balance"]
    assert isinstance(agent["isolated_balance"], Decimal)
    rows = await db.fetchall("SELECT kind, amount, balance_after FROM ledger_entries")
    assert [tuple(r) for r in rows] == [("deposit", 25_500_000, 25_500_000)]
    assert await db.fetchval("SELECT isolated_balance FROM automaton_agents") == 25_500_000
    await check_invariants(db)


async def test_second_live_root_refused_until_closed(manager: IsolatedAIManager, db: Database) -> None:
    root = await manager.create_user_main_agent(ALICE, D(50))
    await refused(db, AgentExistsError, lambda: manager.create_user_main_agent(ALICE, D(50)))
    # Another user is independent.
    other = await manager.create_user_main_agent(BOB, D(50))
    assert other["agent_id"] != root["agent_id"]
    # Emptying the root closes it; then a new root may be created.
    await manager.withdraw(ALICE, "all")
    assert (await manager.get_agent_info(root["agent_id"], ALICE))["status"] == "closed"
    new_root = await manager.create_user_main_agent(ALICE, D(10))
    assert new_root["agent_id"] != root["agent_id"] and new_root["generation"] == 1
    await check_invariants(db)


@pytest.mark.parametrize("amount", [*BAD_AMOUNTS, "9.999999", D("9.99"), "1000000.000001", D(2_000_000)])
async def test_create_bad_amounts(manager: IsolatedAIManager, db: Database, amount: object) -> None:
    await refused(db, InvalidAmountError, lambda: manager.create_user_main_agent(ALICE, amount))
    assert await db.fetchval("SELECT COUNT(*) FROM automaton_agents") == 0


async def test_deposit_limits_are_inclusive(manager: IsolatedAIManager, db: Database) -> None:
    await manager.create_user_main_agent(ALICE, D(10))
    agent = await manager.deposit(ALICE, "1000000")
    assert agent["isolated_balance"] == D(1_000_010)
    await check_invariants(db)


async def test_configured_deposit_limits(db: Database) -> None:
    manager = get_isolated_ai_manager(db, rules=MoneyRules(min_deposit=D(1), max_deposit=D(50)))
    await manager.create_user_main_agent(ALICE, D(1))
    await manager.deposit(ALICE, D(50))
    await refused(db, InvalidAmountError, lambda: manager.deposit(ALICE, D("50.000001")))
    await refused(db, InvalidAmountError, lambda: manager.deposit(ALICE, D("0.999999")))


@pytest.mark.parametrize("amount", [*BAD_AMOUNTS, "9.999999", "1000000.000001", "1e7"])
async def test_deposit_bad_amounts(manager: IsolatedAIManager, db: Database, amount: object) -> None:
    await manager.create_user_main_agent(ALICE, D(10))
    error = await refused(db, InvalidAmountError, lambda: manager.deposit(ALICE, amount))
    text = describe(error)
    assert "\n" not in text and text.startswith("Deposit ")


async def test_deposit_without_agent(manager: IsolatedAIManager, db: Database) -> None:
    await refused(db, AgentNotFoundError, lambda: manager.deposit(ALICE, D(20)))


@pytest.mark.parametrize("user", [0, -1, True, "1001", 1.5, None, 2**53])
async def test_bad_user_ids(manager: IsolatedAIManager, db: Database, user: object) -> None:
    await refused(db, InvalidAmountError, lambda: manager.create_user_main_agent(user, D(10)))  # type: ignore[arg-type]
    await refused(db, InvalidAmountError, lambda: manager.deposit(user, D(10)))  # type: ignore[arg-type]
    await refused(db, InvalidAmountError, lambda: manager.withdraw(user, D(10)))  # type: ignore[arg-type]


# -- ownership ------------------------------------------------------------------------------


async def test_unknown_and_foreign_ids_look_the_same(manager: IsolatedAIManager, db: Database) -> None:
    alice = await rich_root(manager, ALICE)
    await manager.create_user_main_agent(BOB, D(10))
    foreign = await refused(db, AgentNotFoundError, lambda: manager.get_agent_info(alice, BOB))
    missing = await refused(db, AgentNotFoundError, lambda: manager.get_agent_info("ag0000000000", BOB))
    assert type(foreign) is type(missing) and str(foreign) == str(missing)
    for bad_id in (None, 123, "x" * 65, "", "' OR 1=1 --"):
        await refused(db, AgentNotFoundError, lambda b=bad_id: manager.get_agent_info(b, ALICE))
    await refused(db, AgentNotFoundError, lambda: manager.ledger(alice, BOB))
    await refused(db, AgentNotFoundError, lambda: manager.list_children(alice, BOB))
    await refused(db, AgentNotFoundError, lambda: manager.pause_agent(alice, BOB))
    await refused(db, AgentNotFoundError, lambda: manager.resume_agent(alice, BOB))
    await refused(db, AgentNotFoundError, lambda: manager.assign_strategy(alice, BOB, None, "{}"))
    for unknown in ("nope", None, 7):
        await refused(db, AgentNotFoundError, lambda u=unknown: manager.record_agent_profit(u, D(5)))
        await refused(db, AgentNotFoundError, lambda u=unknown: manager.spawn_child_agent(u, D(10), "r"))
        await refused(db, AgentNotFoundError, lambda u=unknown: manager.pause_agent(u, ALICE))
    await refused(db, AgentNotFoundError, lambda: manager.check_spawn_eligibility("nope"))
    await refused(db, AgentNotFoundError, lambda: manager.open_position(
        "nope", token_id="t", symbol="T", size=1.0, price=1.0, cost=D(1)))
    await refused(db, AgentNotFoundError, lambda: manager.adopt_remote_child("nope", "r1", D(1), "r"))


async def test_users_are_isolated(manager: IsolatedAIManager, db: Database) -> None:
    await rich_root(manager, ALICE)
    await manager.create_user_main_agent(BOB, D(40))
    bob_before = await manager.get_user_ai_portfolio(BOB)
    await manager.withdraw(ALICE, "all")
    assert await manager.get_user_ai_portfolio(BOB) == bob_before
    alice = await manager.get_user_ai_portfolio(ALICE)
    assert all(a["user_id"] == ALICE for a in alice["agents"])
    assert await manager.get_user_ai_portfolio(3003) == {
        "user_id": 3003, "total_balance": D(0), "total_available": D(0), "total_earnings": D(0),
        "agent_count": 0, "agents": []}
    await check_invariants(db)


# -- profit and loss ------------------------------------------------------------------------


@pytest.mark.parametrize("amount", [a for a in BAD_AMOUNTS if a not in (-5, "-5") and a != D("-0.01")])
async def test_profit_bad_amounts(manager: IsolatedAIManager, db: Database, amount: object) -> None:
    root = await manager.create_user_main_agent(ALICE, D(10))
    await refused(db, InvalidAmountError, lambda: manager.record_agent_profit(root["agent_id"], amount))


async def test_profit_and_loss(manager: IsolatedAIManager, db: Database, events: CollectingSink) -> None:
    root = (await manager.create_user_main_agent(ALICE, D(20)))["agent_id"]
    agent = await manager.record_agent_profit(root, D("5.25"), "a win")
    assert agent["isolated_balance"] == D("25.25") and agent["total_earnings"] == D("5.25")
    agent = await manager.record_agent_profit(root, D("-3"), "a loss")
    assert agent["isolated_balance"] == D("22.25") and agent["total_earnings"] == D("2.25")
    kinds = [r["kind"] for r in await db.fetchall("SELECT kind FROM ledger_entries ORDER BY entry_id")]
    assert kinds == ["deposit", "profit", "loss"]
    # A loss larger than the available balance is refused.
    await refused(db, InsufficientFundsError, lambda: manager.record_agent_profit(root, D("-22.250001")))
    # An unknown ledger kind is refused.
    await refused(db, InvalidAmountError, lambda: manager.record_agent_profit(root, D(1), kind="deposit"))
    agent = await manager.record_agent_profit(root, D("-1.5"), kind="sync_adjust")
    assert agent["isolated_balance"] == D("20.75") and agent["total_earnings"] == D("0.75")
    assert events.events == []
    await check_invariants(db)


async def test_loss_below_minimum_kills_and_profit_revives(manager: IsolatedAIManager, db: Database,
                                                           events: CollectingSink) -> None:
    root = (await manager.create_user_main_agent(ALICE, D(20)))["agent_id"]
    agent = await manager.record_agent_profit(root, D("-19.5"))
    assert agent["status"] == "dead" and agent["isolated_balance"] == D("0.5")
    assert reason_text(agent["status_reason"]) == "balance below the minimum"
    assert events.events == [AgentDied(user_id=ALICE, agent_id=root, balance=D("0.5"))]
    # A dead agent cannot trade or spawn.
    await refused(db, AgentStateError, lambda: manager.open_position(
        root, token_id="t", symbol="T", size=1.0, price=1.0, cost=D("0.1")))
    await refused(db, AgentStateError, lambda: manager.spawn_child_agent(root, D(10), "r"))
    await refused(db, AgentStateError, lambda: manager.pause_agent(root, ALICE))
    agent = await manager.record_agent_profit(root, D("0.5"))
    assert agent["status"] == "active" and reason_text(agent["status_reason"]) == "balance restored"
    await check_invariants(db)


async def test_deposit_revives_dead_root(manager: IsolatedAIManager, db: Database) -> None:
    root = (await manager.create_user_main_agent(ALICE, D(20)))["agent_id"]
    await manager.record_agent_profit(root, D(-20))
    assert (await manager.get_agent_info(root, ALICE))["status"] == "dead"
    agent = await manager.deposit(ALICE, D(10))
    assert agent["agent_id"] == root and agent["status"] == "active" and agent["isolated_balance"] == D(10)
    assert reason_text(agent["status_reason"]) == "revived by a deposit"
    await check_invariants(db)


# -- withdrawals ----------------------------------------------------------------------------


@pytest.mark.parametrize("amount", [*BAD_AMOUNTS, "ALL!", "everything"])
async def test_withdraw_bad_amounts(manager: IsolatedAIManager, db: Database, amount: object) -> None:
    await manager.create_user_main_agent(ALICE, D(100))
    await refused(db, InvalidAmountError, lambda: manager.withdraw(ALICE, amount))


async def test_withdraw_is_proportional_and_exact(manager: IsolatedAIManager, db: Database) -> None:
    root = await rich_root(manager, ALICE, "100", "100")          # balance 200, spawnable 100
    child = (await manager.spawn_child_agent(root, D(50), "test"))["agent_id"]   # root 150, child 50
    result = await manager.withdraw(ALICE, D(100))
    assert result == {"amount": D(100), "parts": {root: D(75), child: D(25)}, "total_available": D(100)}
    # Odd micro amounts: the parts still sum exactly.
    result = await manager.withdraw(ALICE, D("0.000003"))
    assert sum(result["parts"].values()) == D("0.000003")
    portfolio = await manager.get_user_ai_portfolio(ALICE)
    assert portfolio["total_balance"] == D("99.999997") == portfolio["total_available"]
    await check_invariants(db)


async def test_withdraw_more_than_available(manager: IsolatedAIManager, db: Database) -> None:
    root = (await manager.create_user_main_agent(ALICE, D(100)))["agent_id"]
    await manager.open_position(root, token_id="t", symbol="T", size=2.0, price=20.0, cost=D(40))
    error = await refused(db, InsufficientFundsError, lambda: manager.withdraw(ALICE, D("60.000001")))
    assert "60" in describe(error)
    await refused(db, InsufficientFundsError, lambda: manager.withdraw(BOB, D(1)))
    result = await manager.withdraw(ALICE, "all")
    assert result["amount"] == D(60) and result["total_available"] == D(0)
    agent = await manager.get_agent_info(root, ALICE)
    # Money locked in a position stays; the agent is not closed while it holds a position.
    assert agent["isolated_balance"] == D(40) and agent["locked_balance"] == D(40) and agent["status"] != "closed"
    await refused(db, InsufficientFundsError, lambda: manager.withdraw(ALICE, "all"))
    await refused(db, InsufficientFundsError, lambda: manager.withdraw(ALICE, D("0.000001")))
    await check_invariants(db)


async def test_withdraw_all_closes_every_agent(manager: IsolatedAIManager, db: Database) -> None:
    root = await rich_root(manager, ALICE, "100", "100")
    child = (await manager.spawn_child_agent(root, D(30), "test"))["agent_id"]
    result = await manager.withdraw(ALICE, " All ")
    assert result["amount"] == D(200) and sum(result["parts"].values()) == D(200)
    for agent_id in (root, child):
        info = await manager.get_agent_info(agent_id, ALICE)
        assert info["status"] == "closed" and info["isolated_balance"] == 0
        assert reason_text(info["status_reason"]) == "emptied by withdrawal"
    assert (await manager.get_user_ai_portfolio(ALICE))["agent_count"] == 0
    await refused(db, AgentStateError, lambda: manager.record_agent_profit(root, D(1)))
    await refused(db, AgentStateError, lambda: manager.pause_agent(child, ALICE))
    await refused(db, AgentStateError, lambda: manager.resume_agent(child, ALICE))
    await refused(db, AgentNotFoundError, lambda: manager.deposit(ALICE, D(10)))
    await check_invariants(db)


async def test_withdraw_leaving_dust_kills(manager: IsolatedAIManager, db: Database) -> None:
    root = (await manager.create_user_main_agent(ALICE, D(10)))["agent_id"]
    await manager.withdraw(ALICE, D("9.5"))
    assert (await manager.get_agent_info(root, ALICE))["status"] == "dead"
    await check_invariants(db)


# -- spawning -------------------------------------------------------------------------------


async def test_spawn_eligibility_rule(manager: IsolatedAIManager, db: Database) -> None:
    root = (await manager.create_user_main_agent(ALICE, D(100)))["agent_id"]
    assert await manager.check_spawn_eligibility(root) == (False, D(0))
    await manager.record_agent_profit(root, D("9.999999"))
    assert await manager.check_spawn_eligibility(root) == (False, D(0))
    await manager.record_agent_profit(root, D("0.000001"))          # net earnings exactly 10
    assert await manager.check_spawn_eligibility(root) == (True, D(10))
    await manager.record_agent_profit(root, D(90))                 # net 100: suggest 50% of it
    assert await manager.check_spawn_eligibility(root) == (True, D(50))
    bounds = await manager.spawn_bounds(root)
    assert bounds["spawnable"] == D(100) and bounds["net_earnings"] == D(100) and bounds["available"] == D(200)


async def test_spawn_suggestion_capped_by_half_available(db: Database) -> None:
    manager = get_isolated_ai_manager(db, rules=MoneyRules(spawn_reserve=D(0)))
    root = (await manager.create_user_main_agent(ALICE, D(10)))["agent_id"]
    await manager.record_agent_profit(root, D(100))
    await manager.withdraw(ALICE, D(70))          # balance 40, net earnings 100: spawnable 40
    assert await manager.check_spawn_eligibility(root) == (True, D(20))


async def test_spawn_reserve_and_losses_count(manager: IsolatedAIManager, db: Database) -> None:
    root = (await manager.create_user_main_agent(ALICE, D(10)))["agent_id"]
    await manager.record_agent_profit(root, D(20))
    await manager.withdraw(ALICE, D(18))                      # balance 12: only 2 above the reserve
    assert await manager.check_spawn_eligibility(root) == (False, D(0))
    await refused(db, SpawnNotAllowedError, lambda: manager.spawn_child_agent(root, D(10), "r"))
    other = (await manager.create_user_main_agent(BOB, D(100)))["agent_id"]
    await manager.record_agent_profit(other, D(30))
    await manager.record_agent_profit(other, D(-25))          # net earnings 5
    await refused(db, SpawnNotAllowedError, lambda: manager.spawn_child_agent(other, D(10), "r"))


async def test_spawn_child(manager: IsolatedAIManager, db: Database, events: CollectingSink) -> None:
    root = await rich_root(manager, ALICE, "100", "100")
    await manager.assign_strategy(root, ALICE, None, '{"name": "s"}')
    eligible, suggested = await manager.check_spawn_eligibility(root)
    assert eligible and suggested == D(50)
    child = await manager.spawn_child_agent(root, suggested, "  good\n earnings  ", source="llm")
    assert child["generation"] == 2 and child["parent_agent_id"] == root and child["user_id"] == ALICE
    assert child["isolated_balance"] == D(50) and child["status"] == "active"
    assert child["strategy_json"] == '{"name": "s"}' and child["spawn_reason"] == "good earnings"
    parent = await manager.get_agent_info(root, ALICE)
    assert parent["isolated_balance"] == D(150) and parent["spent_on_children"] == D(50)
    assert parent["child_count"] == 1 and parent["live_children"] == 1
    assert events.events == [ChildSpawned(user_id=ALICE, parent_agent_id=root, child_agent_id=child["agent_id"],
                                          amount=D(50), reason="good earnings", generation=2)]
    decision = await db.fetchone("SELECT spawn, amount, source, child_agent_id FROM spawn_decisions")
    assert tuple(decision) == (1, 50_000_000, "llm", child["agent_id"])
    rows = await db.fetchall("SELECT agent_id, kind, amount FROM ledger_entries WHERE kind LIKE 'spawn%'"
                             " ORDER BY entry_id")
    assert [tuple(r) for r in rows] == [(root, "spawn_out", -50_000_000), (child["agent_id"], "spawn_in", 50_000_000)]
    # Earnings already spent on a child cannot fund another: 50 of 100 left.
    assert await manager.check_spawn_eligibility(root) == (True, D(25))
    await refused(db, InsufficientFundsError, lambda: manager.spawn_child_agent(root, D("50.000001"), "r"))
    # The child's own earnings fund a grandchild (no generation limit).
    await manager.record_agent_profit(child["agent_id"], D(40))
    grandchild = await manager.spawn_child_agent(child["agent_id"], D(20), "gen 3")
    assert grandchild["generation"] == 3 and grandchild["user_id"] == ALICE
    assert [a["depth"] for a in (await manager.get_user_ai_portfolio(ALICE))["agents"]] == [0, 1, 2]
    assert await manager.list_children(root, ALICE) == [child["agent_id"]]
    await check_invariants(db)


@pytest.mark.parametrize("amount", BAD_AMOUNTS)
async def test_spawn_bad_amounts(manager: IsolatedAIManager, db: Database, events: CollectingSink,
                                 amount: object) -> None:
    root = await rich_root(manager)
    await refused(db, InvalidAmountError, lambda: manager.spawn_child_agent(root, amount, "r"))
    assert events.events == []


async def test_spawn_refusals(manager: IsolatedAIManager, db: Database, events: CollectingSink) -> None:
    root = await rich_root(manager, ALICE, "100", "100")
    await refused(db, SpawnNotAllowedError, lambda: manager.spawn_child_agent(root, D("9.999999"), "r"))
    await refused(db, InsufficientFundsError, lambda: manager.spawn_child_agent(root, D("100.000001"), "r"))
    await refused(db, InsufficientFundsError, lambda: manager.spawn_child_agent(root, D(1000), "r"))
    fresh = (await manager.create_user_main_agent(BOB, D(1000)))["agent_id"]
    await refused(db, SpawnNotAllowedError, lambda: manager.spawn_child_agent(fresh, D(10), "no earnings"))
    await manager.pause_agent(root, ALICE)
    await refused(db, AgentStateError, lambda: manager.spawn_child_agent(root, D(10), "paused"))
    assert await manager.check_spawn_eligibility(root) == (False, D(0))
    await manager.resume_agent(root, ALICE)
    assert events.events == []
    # The whole spawnable amount is allowed.
    child = await manager.spawn_child_agent(root, D(100), "all earnings")
    assert child["isolated_balance"] == D(100)
    await check_invariants(db)


async def test_spawn_respects_open_positions(manager: IsolatedAIManager, db: Database) -> None:
    root = await rich_root(manager, ALICE, "10", "100")         # balance 110
    await manager.open_position(root, token_id="t", symbol="T", size=1.0, price=1.0, cost=D(80))
    # available 30, minus the 10 reserve: 20 spawnable although earnings are 100
    assert (await manager.spawn_bounds(root))["spawnable"] == D(20)
    await refused(db, InsufficientFundsError, lambda: manager.spawn_child_agent(root, D("20.000001"), "r"))
    await manager.spawn_child_agent(root, D(20), "r")
    await check_invariants(db)


async def test_max_children_and_dead_children(manager: IsolatedAIManager, db: Database,
                                              events: CollectingSink) -> None:
    root = await rich_root(manager, ALICE, "100", "1000")
    children = [(await manager.spawn_child_agent(root, D(10), f"child {i}"))["agent_id"] for i in range(3)]
    assert len(events.events) == 3 and all(isinstance(e, ChildSpawned) for e in events.events)
    assert await manager.check_spawn_eligibility(root) == (False, D(0))
    error = await refused(db, SpawnNotAllowedError, lambda: manager.spawn_child_agent(root, D(10), "4th"))
    assert "(max 3)" in describe(error)
    # A paused child still counts; a dead one does not.
    await manager.pause_agent(children[0], ALICE)
    await refused(db, SpawnNotAllowedError, lambda: manager.spawn_child_agent(root, D(10), "4th"))
    await manager.record_agent_profit(children[1], D("-9.5"))
    assert (await manager.get_agent_info(children[1], ALICE))["status"] == "dead"
    assert (await manager.get_agent_info(root, ALICE))["live_children"] == 2
    fourth = await manager.spawn_child_agent(root, D(10), "replacement")
    assert fourth["generation"] == 2
    await check_invariants(db)


async def test_configured_max_children_zero(db: Database) -> None:
    manager = get_isolated_ai_manager(db, rules=MoneyRules(max_children=0))
    root = await rich_root(manager)
    assert await manager.check_spawn_eligibility(root) == (False, D(0))
    await refused(db, SpawnNotAllowedError, lambda: manager.spawn_child_agent(root, D(10), "r"))


async def test_adopt_remote_child(manager: IsolatedAIManager, db: Database, events: CollectingSink) -> None:
    root = (await manager.create_user_main_agent(ALICE, D(50)))["agent_id"]
    child = await manager.adopt_remote_child(root, "remote-1", D(20), "remote decided")
    assert child is not None and child["generation"] == 2 and child["remote_agent_id"] == "remote-1"
    assert child["isolated_balance"] == D(20)
    assert await manager.adopt_remote_child(root, "remote-1", D(20), "again") is None
    assert len(events.events) == 1
    await refused(db, InsufficientFundsError, lambda: manager.adopt_remote_child(root, "remote-2", D("30.000001"), "r"))
    await refused(db, InvalidAmountError, lambda: manager.adopt_remote_child(root, "remote-2", D(0), "r"))
    assert (await manager.get_agent_info(root, ALICE))["isolated_balance"] == D(30)
    # without a reason from the remote side, the ledger stores its own (a code, worded by the bot)
    quiet = await manager.adopt_remote_child(root, "remote-3", D(1), "")
    assert quiet is not None and reason_text(quiet["spawn_reason"]) == "spawned by the remote automaton"
    assert reason_text((await manager.spawn_child_agent(await rich_root(manager, BOB, "100", "100"), D(10), " "))
                       ["spawn_reason"]) == "spawned"
    await check_invariants(db)


# -- states ---------------------------------------------------------------------------------


async def test_pause_resume(manager: IsolatedAIManager, db: Database) -> None:
    root = (await manager.create_user_main_agent(ALICE, D(50)))["agent_id"]
    await manager.create_user_main_agent(BOB, D(50))
    paused = await manager.pause_agent(root, ALICE)
    assert paused["status"] == "paused" and reason_text(paused["status_reason"]) == "paused by you"
    await refused(db, AgentStateError, lambda: manager.pause_agent(root, ALICE))
    await refused(db, AgentNotFoundError, lambda: manager.resume_agent(root, BOB))
    await refused(db, AgentStateError, lambda: manager.open_position(
        root, token_id="t", symbol="T", size=1.0, price=1.0, cost=D(1)))
    # Money still moves on a paused agent (closing trades, deposits, withdrawals).
    await manager.deposit(ALICE, D(10))
    await manager.record_agent_profit(root, D(1))
    agent = await manager.resume_agent(root, ALICE)
    assert agent["status"] == "active" and agent["isolated_balance"] == D(61)
    assert reason_text(agent["status_reason"]) == "resumed"
    await refused(db, AgentStateError, lambda: manager.resume_agent(root, ALICE))
    # The system (risk worker) may pause without a user id; free text is stored as it is.
    assert (await manager.pause_agent(root, None, reason="drawdown 60%"))["status_reason"] == "drawdown 60%"
    await check_invariants(db)


# -- positions ------------------------------------------------------------------------------


async def test_positions_lock_and_settle(manager: IsolatedAIManager, db: Database) -> None:
    root = (await manager.create_user_main_agent(ALICE, D(100)))["agent_id"]
    pos = await manager.open_position(root, token_id="t", symbol="T", size=2.0, price=30.0, cost=D(60))
    assert isinstance(pos, int)
    agent = await manager.get_agent_info(root, ALICE)
    assert agent["locked_balance"] == D(60) and agent["available_balance"] == D(40)
    await refused(db, InsufficientFundsError, lambda: manager.open_position(
        root, token_id="t", symbol="T", size=1.0, price=1.0, cost=D("40.000001")))
    await refused(db, InsufficientFundsError, lambda: manager.record_agent_profit(root, D("-40.000001")))
    result = await manager.close_position(pos, exit_price=35.0, proceeds=D(70), reason="take profit")
    assert result is not None and result["pnl"] == D(10) and result["agent_id"] == root
    assert await manager.close_position(pos, exit_price=35.0, proceeds=D(70), reason="again") is None
    agent = await manager.get_agent_info(root, ALICE)
    assert agent["locked_balance"] == 0 and agent["isolated_balance"] == D(110)
    assert (await manager.recent_trades(root))[0]["pnl"] == D(10)
    # A total loss: proceeds 0.
    pos = await manager.open_position(root, token_id="t", symbol="T", size=1.0, price=1.0, cost=D("109.5"))
    result = await manager.close_position(pos, exit_price=0.0001, proceeds=0, reason="stop loss")
    assert result is not None and result["pnl"] == D("-109.5")
    assert (await manager.get_agent_info(root, ALICE))["status"] == "dead"
    await refused(db, PositionNotFoundError, lambda: manager.close_position(
        999, exit_price=1.0, proceeds=D(1), reason="x"))
    await check_invariants(db)


@pytest.mark.parametrize(("size", "price", "cost"), [
    (0.0, 1.0, D(1)), (-1.0, 1.0, D(1)), (float("nan"), 1.0, D(1)), (1.0, 0.0, D(1)), (1.0, float("nan"), D(1)),
    (1.0, 1.0, D(0)), (1.0, 1.0, D(-1)), (1.0, 1.0, "nan"), (1.0, 1.0, D("0.0000001")),
])
async def test_open_position_bad_input(manager: IsolatedAIManager, db: Database, size: float, price: float,
                                       cost: object) -> None:
    root = (await manager.create_user_main_agent(ALICE, D(100)))["agent_id"]
    await refused(db, InvalidAmountError, lambda: manager.open_position(
        root, token_id="t", symbol="T", size=size, price=price, cost=cost))


@pytest.mark.parametrize("proceeds", [-1, "nan", float("inf"), "1e309", "1.0000001", "x", True])
async def test_close_position_bad_proceeds(manager: IsolatedAIManager, db: Database, proceeds: object) -> None:
    root = (await manager.create_user_main_agent(ALICE, D(100)))["agent_id"]
    pos = await manager.open_position(root, token_id="t", symbol="T", size=1.0, price=1.0, cost=D(5))
    assert pos is not None
    await refused(db, InvalidAmountError, lambda: manager.close_position(
        pos, exit_price=1.0, proceeds=proceeds, reason="x"))


# -- idempotency ----------------------------------------------------------------------------


async def replayed(db: Database, op: Callable[[], Awaitable[Any]]) -> tuple[Any, Any]:
    """Run `op` twice; the second run must change nothing and return the same result."""
    first = await op()
    before = await money_snapshot(db)
    second = await op()
    assert await money_snapshot(db) == before, "a replayed idempotency key changed the money tables"
    await check_invariants(db)
    return first, second


async def test_idempotent_create_deposit_withdraw(manager: IsolatedAIManager, db: Database) -> None:
    a, b = await replayed(db, lambda: manager.create_user_main_agent(ALICE, D(50), idempotency_key="c1"))
    assert a == b
    a, b = await replayed(db, lambda: manager.deposit(ALICE, D(20), idempotency_key="d1"))
    assert a == b and a["isolated_balance"] == D(70)
    a, b = await replayed(db, lambda: manager.withdraw(ALICE, D(15), idempotency_key="w1"))
    assert a == b and a["amount"] == D(15)
    a, b = await replayed(db, lambda: manager.withdraw(ALICE, "all", idempotency_key="w2"))
    assert a == b and a["amount"] == D(55)
    # The same key by another user is independent.
    await manager.create_user_main_agent(BOB, D(50), idempotency_key="c1")
    bob = await manager.deposit(BOB, D(20), idempotency_key="d1")
    assert bob["isolated_balance"] == D(70) and bob["user_id"] == BOB
    await check_invariants(db)


async def test_idempotent_profit_spawn_positions(manager: IsolatedAIManager, db: Database,
                                                 events: CollectingSink) -> None:
    root = (await manager.create_user_main_agent(ALICE, D(100)))["agent_id"]
    await replayed(db, lambda: manager.record_agent_profit(root, D(100), "tick 1", idempotency_key="p1"))
    assert (await manager.get_agent_info(root, ALICE))["isolated_balance"] == D(200)
    a, b = await replayed(db, lambda: manager.spawn_child_agent(root, D(30), "r", idempotency_key="s1"))
    assert a["agent_id"] == b["agent_id"]
    assert len(events.events) == 1
    first, second = await replayed(db, lambda: manager.open_position(
        root, token_id="t", symbol="T", size=1.0, price=1.0, cost=D(10), idempotency_key="o1"))
    assert isinstance(first, int) and second is None
    first, second = await replayed(db, lambda: manager.close_position(
        first, exit_price=1.1, proceeds=D(11), reason="tp", idempotency_key="x1"))
    assert first is not None and second is None
    assert await ledger_count(db) == 5   # deposit, profit, spawn_out, spawn_in, profit


async def test_idempotency_key_conflicts(manager: IsolatedAIManager, db: Database) -> None:
    root = (await manager.create_user_main_agent(ALICE, D(100), idempotency_key="k"))["agent_id"]
    await refused(db, IdempotencyConflictError, lambda: manager.deposit(ALICE, D(20), idempotency_key="k"))
    await refused(db, IdempotencyConflictError, lambda: manager.withdraw(ALICE, D(20), idempotency_key="k"))
    await refused(db, IdempotencyConflictError, lambda: manager.record_agent_profit(root, D(5), idempotency_key="k"))
    await manager.record_agent_profit(root, D(100), idempotency_key="p")
    await refused(db, IdempotencyConflictError, lambda: manager.spawn_child_agent(root, D(10), "r",
                                                                                   idempotency_key="p"))
    for bad_key in ("", "x" * 129):
        await refused(db, InvalidAmountError, lambda k=bad_key: manager.deposit(ALICE, D(20), idempotency_key=k))


async def test_failed_operation_does_not_burn_its_key(manager: IsolatedAIManager, db: Database) -> None:
    await manager.create_user_main_agent(ALICE, D(10))
    await refused(db, InsufficientFundsError, lambda: manager.withdraw(ALICE, D(20), idempotency_key="w"))
    await manager.deposit(ALICE, D(20))
    result = await manager.withdraw(ALICE, D(20), idempotency_key="w")
    assert result["amount"] == D(20)
    await check_invariants(db)


# -- events and errors ----------------------------------------------------------------------


class ExplodingSink:
    """An event sink that always fails (a notifier outage)."""

    async def publish(self, event: object) -> None:
        raise RuntimeError("telegram is down")


class CommitCheckingSink:
    """Records, for each ChildSpawned, whether the child was already committed when it arrived."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.seen: list[tuple[str, bool]] = []

    async def publish(self, event: object) -> None:
        if isinstance(event, ChildSpawned):
            # The reader connection sees committed rows only.
            found = await self.db.fetchval("SELECT COUNT(*) FROM ledger_entries WHERE agent_id = ?"
                                           " AND kind = 'spawn_in'", (event.child_agent_id,))
            self.seen.append((event.child_agent_id, found == 1))


async def test_spawn_event_is_published_after_commit(db: Database) -> None:
    sink = CommitCheckingSink(db)
    manager = get_isolated_ai_manager(db, events=sink)
    root = await rich_root(manager)
    child = await manager.spawn_child_agent(root, D(20), "r")
    adopted = await manager.adopt_remote_child(root, "remote-9", D(5), "remote")
    assert adopted is not None
    assert sink.seen == [(child["agent_id"], True), (adopted["agent_id"], True)]


async def test_failing_sink_does_not_undo_a_spawn(db: Database) -> None:
    manager = get_isolated_ai_manager(db, events=ExplodingSink())  # type: ignore[arg-type]
    root = await rich_root(manager)
    child = await manager.spawn_child_agent(root, D(20), "r")
    assert (await manager.get_agent_info(child["agent_id"], ALICE))["isolated_balance"] == D(20)
    await check_invariants(db)


def test_errors_share_a_base() -> None:
    for error in (AgentExistsError, AgentNotFoundError, AgentStateError, IdempotencyConflictError,
                  InsufficientFundsError, InvalidAmountError, SpawnNotAllowedError, PositionNotFoundError):
        assert issubclass(error, AgentError)
    assert describe(AgentNotFoundError("ag1")) == describe(AgentNotFoundError()) == "Agent not found."


async def test_manager_factory_builds_new_objects(db: Database) -> None:
    first, second = get_isolated_ai_manager(db), get_isolated_ai_manager(db)
    assert first is not second and first.rules == MoneyRules()


async def test_only_money_from_outside_revives_a_dead_agent(db: Database) -> None:
    """One dead/revive rule (agents.ledger.rules.status_after): a loss below the minimum kills; a
    later profitable close or a withdrawal does not bring the agent back, a deposit does."""
    manager = IsolatedAIManager(db, MoneyRules(min_deposit=D(1), min_agent_balance=D(5)))
    root = (await manager.create_user_main_agent(ALICE, D(10)))["agent_id"]
    first = await manager.open_position(root, token_id="t", symbol="T", size=1.0, price=6.0, cost=D(6))
    second = await manager.open_position(root, token_id="t", symbol="T", size=1.0, price=3.0, cost=D(3))
    assert first is not None and second is not None
    await manager.close_position(first, exit_price=0.0001, proceeds=D(0), reason="stop_loss")
    assert (await manager.get_agent_info(root, ALICE))["status"] == "dead"  # 4 USDC < 5
    await manager.close_position(second, exit_price=7.0, proceeds=D(7), reason="take_profit")
    after_close = await manager.get_agent_info(root, ALICE)
    assert after_close["isolated_balance"] == D(8) and after_close["status"] == "dead"
    await manager.withdraw(ALICE, D(1))
    assert (await manager.get_agent_info(root, ALICE))["status"] == "dead"
    await manager.deposit(ALICE, D(1))
    assert (await manager.get_agent_info(root, ALICE))["status"] == "active"
