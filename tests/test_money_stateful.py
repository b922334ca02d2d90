"""Stateful property test of the money core (SPEC §3) against a small Python model.

Hypothesis drives random sequences of every money operation (valid and invalid) over
several users. After every step: the raw-SQL invariants hold, and each user's totals
equal the model's (deposits - withdrawals + P&L, with open positions' cost locked).
An independent oracle, computed from raw SQL, says whether each operation must succeed;
a refused operation must leave the money tables unchanged.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from agents import (
    AgentNotFoundError,
    AgentStateError,
    IdempotencyConflictError,
    MoneyRules,
    get_isolated_ai_manager,
)
from agents.errors import AgentError
from agents.events import ChildSpawned
from engine.events import CollectingSink
from storage import open_database
from tests.invariants import check_invariants, money_snapshot

pytestmark = pytest.mark.both_backends  # SQLite and PostgreSQL

T = TypeVar("T")
D = Decimal
MICRO = 1_000_000
USERS = (11, 22, 33)
RULES = MoneyRules()

BAD = st.sampled_from([0, D(0), -1, D("-0.5"), "nan", D("NaN"), float("inf"), "-Infinity", "1e309",
                       "1.0000001", D("2.1234567"), "abc", "", True, None])
SMALL = st.decimals(min_value=D("0.000001"), max_value=D(300), places=6)
ROUND = st.decimals(min_value=D(1), max_value=D(400), places=2)
GOOD_DEPOSIT = st.decimals(min_value=D(10), max_value=D(2000), places=2)
# Valid values dominate so that sequences get deep; the edges and bad inputs still appear.
DEPOSIT = st.one_of(GOOD_DEPOSIT, GOOD_DEPOSIT, GOOD_DEPOSIT, st.sampled_from(
    [D(10), D(1_000_000), D("9.999999"), D("1000000.000001")]), BAD)
AMOUNT = st.one_of(ROUND, ROUND, ROUND, SMALL, BAD)
# "foreign": a key another user already used, which must act as a fresh key for this user.
KEY_USE = st.sampled_from(["none", "none", "new", "foreign"])


def micro_of(value: object) -> int | None:
    """The exact micro amount of a well-formed positive Decimal, else None (invalid input)."""
    if not isinstance(value, Decimal) or not value.is_finite() or value <= 0:
        return None
    if value != value.quantize(D("0.000001")) or value.adjusted() > 15:
        return None
    return int(value * MICRO)


class MoneyMachine(RuleBasedStateMachine):
    """Model: per user, expected realized total and expected locked cost (micro-USDC)."""

    def __init__(self) -> None:
        super().__init__()
        # Hypothesis stateful is synchronous: each run gets its own event loop and database.
        self.loop = asyncio.new_event_loop()
        self.tmp = tempfile.mkdtemp(prefix="money-sm-")
        self.db = self.run(open_database(f"sqlite:///{self.tmp}/m.db"))
        self.events = CollectingSink()
        self.manager = get_isolated_ai_manager(self.db, rules=RULES, events=self.events)
        self.balance = dict.fromkeys(USERS, 0)
        self.locked = dict.fromkeys(USERS, 0)
        self.spawns = 0
        self.keys = 0
        self.keyed: list[tuple[int, str, str, Callable[[], Awaitable[Any]]]] = []

    def teardown(self) -> None:
        try:
            self.run(self.db.close())
        finally:
            self.loop.close()
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- helpers ----------------------------------------------------------------------------
    def run(self, coro: Awaitable[T]) -> T:
        return self.loop.run_until_complete(coro)  # type: ignore[arg-type]

    def attempt(self, op: Callable[[], Awaitable[Any]], must: bool) -> Any:
        """Run `op`; it must succeed iff `must`. A refusal must change nothing."""
        before = self.run(money_snapshot(self.db))
        try:
            result = self.run(op())
        except AgentError as exc:
            assert not must, f"refused although valid: {type(exc).__name__}: {exc}"
            assert self.run(money_snapshot(self.db)) == before, "a refused operation changed money tables"
            return None
        assert must, "accepted although the oracle says it must be refused"
        return result

    def new_key(self, use: str, user: int | None = None) -> str | None:
        if use == "none":
            return None
        if use == "foreign" and user is not None:
            mine = {k for u, k, _, _ in self.keyed if u == user}
            theirs = [k for u, k, kind, _ in self.keyed if u != user and kind != "open" and k not in mine]
            if theirs:
                return theirs[self.keys % len(theirs)]
        self.keys += 1
        return f"k{self.keys}"

    def remember(self, user: int, key: str | None, kind: str, op: Callable[[], Awaitable[Any]]) -> None:
        if key is not None:
            self.keyed.append((user, key, kind, op))

    def agents(self) -> list[Any]:
        return self.run(self.db.fetchall(
            "SELECT agent_id, user_id, status, isolated_balance - locked_balance AS avail FROM automaton_agents"
            " ORDER BY rowid"))  # insertion order: created_at ties would reorder by random ids

    def live_root(self, user: int) -> bool:
        return bool(self.run(self.db.fetchval(
            "SELECT COUNT(*) FROM automaton_agents WHERE user_id = ? AND generation = 1 AND status <> 'closed'",
            (user,))))

    def total_available(self, user: int) -> int:
        return int(self.run(self.db.fetchval(
            "SELECT COALESCE(SUM(isolated_balance - locked_balance), 0) FROM automaton_agents"
            " WHERE user_id = ? AND status <> 'closed'", (user,))))

    def spawn_oracle(self, agent_id: str) -> tuple[bool, int, int]:
        """(eligible, suggested, spawnable) by SPEC §3, from raw SQL."""
        row = self.run(self.db.fetchone(
            "SELECT status, isolated_balance - locked_balance AS avail FROM automaton_agents WHERE agent_id = ?",
            (agent_id,)))
        net = self.run(self.db.fetchval(
            "SELECT COALESCE(SUM(amount), 0) FROM ledger_entries WHERE agent_id = ?"
            " AND kind IN ('profit', 'loss', 'sync_adjust')", (agent_id,)))
        spent = -self.run(self.db.fetchval(
            "SELECT COALESCE(SUM(amount), 0) FROM ledger_entries WHERE agent_id = ? AND kind = 'spawn_out'",
            (agent_id,)))
        live = self.run(self.db.fetchval(
            "SELECT COUNT(*) FROM automaton_agents WHERE parent_agent_id = ? AND status IN ('active', 'paused')",
            (agent_id,)))
        min_child = RULES.micro(RULES.min_child_balance)
        spawnable = max(0, min(net - spent, row["avail"] - RULES.micro(RULES.spawn_reserve)))
        suggested = min(max(spawnable // 2, min_child), min(spawnable, row["avail"] // 2))
        eligible = (row["status"] == "active" and spawnable >= RULES.micro(RULES.spawn_min_earnings)
                    and live < RULES.max_children and suggested >= min_child)
        return eligible, suggested if eligible else 0, spawnable

    # -- rules ------------------------------------------------------------------------------
    @initialize(deposits=st.lists(GOOD_DEPOSIT, min_size=len(USERS), max_size=len(USERS)),
                profits=st.lists(st.decimals(min_value=D(0), max_value=D(500), places=2), min_size=len(USERS),
                                 max_size=len(USERS)))
    def start(self, deposits: list[Decimal], profits: list[Decimal]) -> None:
        """Every user starts with a root; some have earnings, so spawns happen early."""
        for user, deposit, profit in zip(USERS, deposits, profits, strict=True):
            root = self.run(self.manager.create_user_main_agent(user, deposit))
            self.balance[user] += int(deposit * MICRO)
            if profit > 0:
                self.run(self.manager.record_agent_profit(root["agent_id"], profit))
                self.balance[user] += int(profit * MICRO)

    @rule(user=st.sampled_from(USERS), amount=DEPOSIT, key_use=KEY_USE)
    def create(self, user: int, amount: object, key_use: str) -> None:
        micro = micro_of(amount)
        valid = micro is not None and 10 * MICRO <= micro <= 1_000_000 * MICRO
        key = self.new_key(key_use, user)

        def op() -> Awaitable[Any]:
            return self.manager.create_user_main_agent(user, amount, idempotency_key=key)

        if self.attempt(op, valid and not self.live_root(user)) is not None:
            self.balance[user] += micro or 0
            self.remember(user, key, "create", op)

    @rule(user=st.sampled_from(USERS), amount=DEPOSIT, key_use=KEY_USE)
    def deposit(self, user: int, amount: object, key_use: str) -> None:
        micro = micro_of(amount)
        valid = micro is not None and 10 * MICRO <= micro <= 1_000_000 * MICRO
        key = self.new_key(key_use, user)

        def op() -> Awaitable[Any]:
            return self.manager.deposit(user, amount, idempotency_key=key)

        if self.attempt(op, valid and self.live_root(user)) is not None:
            self.balance[user] += micro or 0
            self.remember(user, key, "deposit", op)

    @rule(data=st.data(), amount=AMOUNT, loss=st.booleans(), sync=st.booleans(), key_use=KEY_USE)
    def profit(self, data: st.DataObject, amount: object, loss: bool, sync: bool, key_use: str) -> None:
        agents = self.agents()
        if not agents:
            return
        agent = data.draw(st.sampled_from(agents))
        micro = micro_of(amount)
        signed: object = -amount if loss and micro is not None else amount
        delta: int | None = None if micro is None else (-micro if loss else micro)
        if micro is None and isinstance(amount, int | Decimal) and not isinstance(amount, bool):
            negative = micro_of(-Decimal(amount))  # a negative amount is a loss
            delta = None if negative is None else -negative
        must = delta is not None and agent["status"] != "closed" and -delta <= agent["avail"]
        key = self.new_key(key_use, agent["user_id"])

        def op() -> Awaitable[Any]:
            return self.manager.record_agent_profit(agent["agent_id"], signed, "sm", key,
                                                    kind="sync_adjust" if sync else None)

        if self.attempt(op, must) is not None:
            self.balance[agent["user_id"]] += delta or 0
            self.remember(agent["user_id"], key, "profit", op)

    @rule(data=st.data(), key_use=KEY_USE)
    def spawn_suggested(self, data: st.DataObject, key_use: str) -> None:
        agents = self.agents()
        if not agents:
            return
        agent = data.draw(st.sampled_from(agents))
        eligible, suggested, _ = self.spawn_oracle(agent["agent_id"])
        got = self.run(self.manager.check_spawn_eligibility(agent["agent_id"]))
        assert got == (eligible, D(suggested) / MICRO)
        if eligible:
            self.spawn(agent, D(suggested) / MICRO, key_use)

    @rule(data=st.data(), amount=st.one_of(ROUND, SMALL, st.decimals(min_value=D(9), max_value=D(60), places=1),
                                           BAD), key_use=KEY_USE)
    def spawn_random(self, data: st.DataObject, amount: object, key_use: str) -> None:
        agents = self.agents()
        if agents:
            self.spawn(data.draw(st.sampled_from(agents)), amount, key_use)

    @rule(data=st.data(), edge=st.sampled_from(["spawnable", "min_child", "suggested"]),
          offset=st.sampled_from([-1, 0, 1]), key_use=KEY_USE)
    def spawn_edge(self, data: st.DataObject, edge: str, offset: int, key_use: str) -> None:
        """Amounts one micro-USDC around the rule's bounds."""
        agents = self.agents()
        if not agents:
            return
        agent = data.draw(st.sampled_from(agents))
        _, suggested, spawnable = self.spawn_oracle(agent["agent_id"])
        base = {"spawnable": spawnable, "suggested": suggested,
                "min_child": RULES.micro(RULES.min_child_balance)}[edge]
        if base + offset > 0:
            self.spawn(agent, D(base + offset) / MICRO, key_use)

    def spawn(self, agent: Any, amount: object, key_use: str) -> None:
        eligible, _, spawnable = self.spawn_oracle(agent["agent_id"])
        micro = micro_of(amount)
        must = eligible and micro is not None and RULES.micro(RULES.min_child_balance) <= micro <= spawnable
        key = self.new_key(key_use, agent["user_id"])

        def op() -> Awaitable[Any]:
            return self.manager.spawn_child_agent(agent["agent_id"], amount, "sm spawn", idempotency_key=key)

        child = self.attempt(op, must)
        if child is not None:
            self.spawns += 1
            assert child["generation"] >= 2 and child["user_id"] == agent["user_id"]
            assert child["isolated_balance"] == D(micro or 0) / MICRO
            self.remember(agent["user_id"], key, "spawn", op)
        assert sum(isinstance(e, ChildSpawned) for e in self.events.events) == self.spawns

    @rule(user=st.sampled_from(USERS), amount=st.one_of(AMOUNT, st.just("all"), st.just("ALL")), key_use=KEY_USE)
    def withdraw(self, user: int, amount: object, key_use: str) -> None:
        total = self.total_available(user)
        take_all = isinstance(amount, str) and amount.lower() == "all"
        micro = total if take_all else micro_of(amount)
        must = total > 0 and micro is not None and micro <= total
        key = self.new_key(key_use, user)

        def op() -> Awaitable[Any]:
            return self.manager.withdraw(user, amount, idempotency_key=key)

        result = self.attempt(op, must)
        if result is not None:
            assert result["amount"] == D(micro or 0) / MICRO
            assert sum(result["parts"].values()) == result["amount"]
            self.balance[user] -= micro or 0
            self.remember(user, key, "withdraw", op)

    @rule(data=st.data(), pause=st.booleans(), foreign=st.booleans())
    def pause_resume(self, data: st.DataObject, pause: bool, foreign: bool) -> None:
        agents = self.agents()
        if not agents:
            return
        agent = data.draw(st.sampled_from(agents))
        user = next(u for u in USERS if u != agent["user_id"]) if foreign else agent["user_id"]
        before = self.run(money_snapshot(self.db))
        op = self.manager.pause_agent if pause else self.manager.resume_agent
        try:
            result = self.run(op(agent["agent_id"], user))
        except AgentNotFoundError:
            assert foreign
        except AgentStateError:
            assert not foreign and agent["status"] != ("active" if pause else "paused")
        else:
            assert not foreign and result["status"] == ("paused" if pause else "active")
            return
        assert self.run(money_snapshot(self.db)) == before

    @rule(data=st.data(), cost=AMOUNT, key_use=KEY_USE)
    def open_position(self, data: st.DataObject, cost: object, key_use: str) -> None:
        agents = self.agents()
        if not agents:
            return
        agent = data.draw(st.sampled_from(agents))
        micro = micro_of(cost)
        must = micro is not None and agent["status"] == "active" and micro <= agent["avail"]
        key = self.new_key(key_use)

        def op() -> Awaitable[Any]:
            return self.manager.open_position(agent["agent_id"], token_id="tok", symbol="TOK", size=1.5,
                                              price=2.0, cost=cost, idempotency_key=key)

        if self.attempt(op, must) is not None:
            self.locked[agent["user_id"]] += micro or 0
            if key is not None:
                self.keyed.append((agent["user_id"], key, "open", op))

    @rule(data=st.data(), ratio=st.sampled_from([D(0), D("0.5"), D("0.999999"), D(1), D("1.3"), D(3)]))
    def close_position(self, data: st.DataObject, ratio: Decimal) -> None:
        rows = self.run(self.db.fetchall("SELECT position_id, user_id, cost FROM positions WHERE status = 'open'"))
        if not rows:
            return
        pos = data.draw(st.sampled_from(rows))
        proceeds = int(pos["cost"] * ratio)
        result = self.run(self.manager.close_position(pos["position_id"], exit_price=1.0,
                                                      proceeds=D(proceeds) / MICRO, reason="sm"))
        assert result is not None and result["pnl"] == D(proceeds - pos["cost"]) / MICRO
        self.locked[pos["user_id"]] -= pos["cost"]
        self.balance[pos["user_id"]] += proceeds - pos["cost"]

    @rule(data=st.data())
    def replay(self, data: st.DataObject) -> None:
        if not self.keyed:
            return
        _, _, _, op = data.draw(st.sampled_from(self.keyed))
        before = self.run(money_snapshot(self.db))
        self.run(op())
        assert self.run(money_snapshot(self.db)) == before, "a replayed idempotency key changed money tables"

    @rule(data=st.data())
    def conflicting_key(self, data: st.DataObject) -> None:
        money_ops = [k for k in self.keyed if k[2] != "open"]
        if not money_ops:
            return
        user, key, kind, _ = data.draw(st.sampled_from(money_ops))
        before = self.run(money_snapshot(self.db))
        other = (self.manager.withdraw(user, D(1), idempotency_key=key) if kind == "deposit"
                 else self.manager.deposit(user, D(10), idempotency_key=key))
        try:
            self.run(other)
        except IdempotencyConflictError:
            pass
        else:
            raise AssertionError("an idempotency key was reused for another operation kind")
        assert self.run(money_snapshot(self.db)) == before

    # -- invariants -------------------------------------------------------------------------
    @invariant()
    def money_is_consistent(self) -> None:
        self.run(check_invariants(self.db))
        for user in USERS:
            portfolio = self.run(self.manager.get_user_ai_portfolio(user))
            assert portfolio["total_balance"] == D(self.balance[user]) / MICRO, f"user {user} total drifted"
            assert portfolio["total_available"] == D(self.balance[user] - self.locked[user]) / MICRO
            locked = self.run(self.db.fetchval(
                "SELECT COALESCE(SUM(locked_balance), 0) FROM automaton_agents WHERE user_id = ?", (user,)))
            assert locked == self.locked[user]


MoneyMachine.TestCase.settings = settings(
    max_examples=50, stateful_step_count=30, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestMoneyMachine = MoneyMachine.TestCase
