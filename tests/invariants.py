"""The money invariants of SPEC §3, checked from raw SQL (independent of the manager's code).

`check_invariants(db)` asserts, over the committed state:
  1. each agent's `isolated_balance` = sum of its ledger rows, never negative, and the
     `balance_after` column is the running sum of that agent's rows in entry order;
  2. per user, sum of balances = deposits - withdrawals + profit - loss + sync_adjust, and
     spawn rows net to zero per user (and per parent: what it sent = what its children got);
  3. a child has generation = parent + 1 and its parent's user; generation 1 iff no parent;
     at most one live (status <> 'closed') generation-1 agent per user;
  5. ledger rows, positions and agents never cross users;
  and locked <= balance, with locked = the cost of the agent's open positions.
Invariant 4 (idempotency) is a property of operations, tested where they are replayed.

`money_snapshot(db)` returns every row of the money tables, for "a refused operation
changed nothing" assertions.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from storage import Database

MONEY_TABLES = ("automaton_agents", "ledger_entries", "positions", "money_operations", "spawn_decisions",
                "trades")
_SIGNS = {"deposit": 1, "withdraw": -1, "profit": 1, "loss": -1, "spawn_out": -1, "spawn_in": 1}


async def money_snapshot(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row (all columns) of the money tables, in a stable order."""
    snap: dict[str, list[tuple[Any, ...]]] = {}
    for table in MONEY_TABLES:
        rows = await db.fetchall(f"SELECT * FROM {table} ORDER BY 1")
        snap[table] = [tuple(r) for r in rows]
    return snap


async def check_invariants(db: Database) -> None:
    """Assert every money invariant on the database's committed state."""
    agents = {r["agent_id"]: r for r in await db.fetchall(
        "SELECT agent_id, user_id, parent_agent_id, generation, isolated_balance, locked_balance, status"
        " FROM automaton_agents")}
    ledger = await db.fetchall(
        "SELECT entry_id, agent_id, user_id, kind, amount, balance_after FROM ledger_entries ORDER BY entry_id")
    positions = await db.fetchall("SELECT agent_id, user_id, cost, status FROM positions")

    # 1. balance = sum(ledger) >= 0, balance_after is the running sum.
    running: dict[str, int] = defaultdict(int)
    per_user_kind: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in ledger:
        agent = agents.get(row["agent_id"])
        assert agent is not None, f"ledger row {row['entry_id']} names a missing agent"
        assert row["user_id"] == agent["user_id"], f"ledger row {row['entry_id']} crosses users"
        sign = _SIGNS.get(row["kind"])
        assert row["amount"] != 0, f"ledger row {row['entry_id']} moves nothing"
        if sign is not None:
            assert (row["amount"] > 0) == (sign > 0), f"ledger row {row['entry_id']}: {row['kind']} has wrong sign"
        running[row["agent_id"]] += row["amount"]
        assert row["balance_after"] == running[row["agent_id"]], (
            f"ledger row {row['entry_id']}: balance_after {row['balance_after']} != running sum"
            f" {running[row['agent_id']]}")
        assert row["balance_after"] >= 0
        per_user_kind[row["user_id"]][row["kind"]] += row["amount"]
    for agent_id, agent in agents.items():
        assert agent["isolated_balance"] == running.get(agent_id, 0), (
            f"{agent_id}: balance {agent['isolated_balance']} != ledger sum {running.get(agent_id, 0)}")
        assert agent["isolated_balance"] >= 0
        assert 0 <= agent["locked_balance"] <= agent["isolated_balance"], f"{agent_id}: locked > balance"
        if agent["status"] == "closed":
            assert agent["isolated_balance"] == 0, f"{agent_id}: closed with money in it"

    # 2. per user: money comes in and out only through deposits, withdrawals, P&L and sync.
    balances: dict[int, int] = defaultdict(int)
    for agent in agents.values():
        balances[agent["user_id"]] += agent["isolated_balance"]
    for user_id in set(balances) | set(per_user_kind):
        kinds = per_user_kind[user_id]
        external = (kinds["deposit"] + kinds["withdraw"] + kinds["profit"] + kinds["loss"]
                    + kinds["sync_adjust"])
        assert balances[user_id] == external, f"user {user_id}: balances {balances[user_id]} != flows {external}"
        assert kinds["spawn_out"] + kinds["spawn_in"] == 0, f"user {user_id}: spawn rows create money"
    sent: dict[str, int] = defaultdict(int)
    received: dict[str, int] = defaultdict(int)
    spawn_in_rows: dict[str, int] = defaultdict(int)
    for row in ledger:
        if row["kind"] == "spawn_out":
            sent[row["agent_id"]] -= row["amount"]
        elif row["kind"] == "spawn_in":
            parent = agents[row["agent_id"]]["parent_agent_id"]
            assert parent is not None, f"root {row['agent_id']} has a spawn_in row"
            received[parent] += row["amount"]
            spawn_in_rows[row["agent_id"]] += 1
    assert dict(sent) == dict(received), "a spawn is half-written: parents' spawn_out != children's spawn_in"
    first_kind = {}
    for row in ledger:
        first_kind.setdefault(row["agent_id"], row["kind"])
    for agent_id, agent in agents.items():
        if agent["parent_agent_id"] is not None:
            assert spawn_in_rows[agent_id] == 1, f"child {agent_id} has {spawn_in_rows[agent_id]} spawn_in rows"
            assert first_kind.get(agent_id) == "spawn_in", f"child {agent_id} was not funded first"

    # 3. tree shape and one live root per user.
    live_roots: dict[int, int] = defaultdict(int)
    for agent_id, agent in agents.items():
        parent_id = agent["parent_agent_id"]
        if parent_id is None:
            assert agent["generation"] == 1, f"root {agent_id} has generation {agent['generation']}"
            if agent["status"] != "closed":
                live_roots[agent["user_id"]] += 1
        else:
            parent = agents.get(parent_id)
            assert parent is not None, f"{agent_id}: missing parent"
            assert agent["generation"] == parent["generation"] + 1, f"{agent_id}: generation skips"
            assert agent["user_id"] == parent["user_id"], f"{agent_id}: child of another user's agent"
    assert all(n <= 1 for n in live_roots.values()), f"more than one live root: {dict(live_roots)}"

    # locked = cost of open positions; positions stay inside their user.
    open_cost: dict[str, int] = defaultdict(int)
    for pos in positions:
        agent = agents.get(pos["agent_id"])
        assert agent is not None and pos["user_id"] == agent["user_id"], "position crosses users"
        if pos["status"] == "open":
            open_cost[pos["agent_id"]] += pos["cost"]
    for agent_id, agent in agents.items():
        assert agent["locked_balance"] == open_cost.get(agent_id, 0), (
            f"{agent_id}: locked {agent['locked_balance']} != open positions' cost {open_cost.get(agent_id, 0)}")
