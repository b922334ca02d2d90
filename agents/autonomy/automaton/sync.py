"""Keeps local agents and their Automaton (Conway) counterparts in step (SPEC §9, §7 step 6).

One `run_once()`:

1. **Create** (when `create_missing`): every live local agent without `remote_agent_id` gets a
   remote agent named after its local id, with its current balance. The agent is first marked
   `remote_status = 'creating'`; the id is stored right after the create answers. If the process
   dies in between, the next run creates again with the same name and the same `Idempotency-Key`
   header (`create:<local id>`), so a server that honours the key (or an operator, by name) maps
   it back to the same agent: we never knowingly create twice.
2. **Poll** every agent with a `remote_agent_id`:
   * a remote child not yet known locally becomes a local child (`adopt_remote_child`,
     idempotent per remote child id). It runs first, because adoption already lowers the
     parent's recorded remote balance by the child's amount;
   * a balance different from the last synced `remote_balance` becomes ONE `sync_adjust` ledger
     row keyed `sync:<agent>:<remote_synced_at>` (the version of the synced state, see
     `_apply_balance`), so every change is booked — a value seen before too — while identical
     answers polled again, or a step replayed after a crash, count once;
   * `remote_balance` (moved by what was booked), `remote_status` and `remote_synced_at` are
     stored.
3. **Failures** (5xx, timeouts, 401, malformed answers): `remote_status = 'unknown'` and nothing
   else changes — never a false zero balance; the agent's screen (`agents.screens.remote_balance`)
   shows the balance as unknown then.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agents.autonomy.automaton.client import AutomatonClient, AutomatonError, RemoteStatus
from agents.errors import AgentError
from agents.ledger.amounts import parse_amount
from agents.ledger.manager import IsolatedAIManager
from agents.ledger.money_tx import row_key
from agents.ledger.reasons import free_text
from storage import Database
from storage import remote_repo as remote
from storage.connection import SyncTx
from storage.money import from_micro
from storage.values import to_iso

__all__ = ["AutomatonSync", "SyncReport"]

logger = logging.getLogger(__name__)

UNKNOWN = "unknown"
CREATING = "creating"


@dataclass
class SyncReport:
    """What one sync run did."""

    created: int = 0
    polled: int = 0
    adjusted: int = 0
    adopted: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


class AutomatonSync:
    """Creates remote agents and mirrors remote balances and children into the local ledger."""

    def __init__(self, db: Database, manager: IsolatedAIManager, client: AutomatonClient, *,
                 create_missing: bool = True, concurrency: int = 4,
                 clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.manager = manager
        self.client = client
        self.create_missing = create_missing
        self._concurrency = max(1, concurrency)
        self._clock = clock

    async def run_once(self) -> SyncReport:
        """One create + poll pass over every live agent (see the module docstring)."""
        report = SyncReport()
        if self.create_missing:
            rows = await self.db.read(remote.unbound)
            for row in rows:
                await self._create(row, report)
        rows = await self.db.read(remote.bound)
        gate = asyncio.Semaphore(self._concurrency)

        async def poll(row: Any) -> None:
            async with gate:
                await self._poll(row["agent_id"], row["remote_agent_id"], report)

        await asyncio.gather(*(poll(r) for r in rows))
        return report

    # --- create -------------------------------------------------------------------------------

    async def _create(self, row: Any, report: SyncReport) -> None:
        agent_id = row["agent_id"]
        await self.db.run(remote.set_status, agent_id, CREATING, True)  # only while still unbound
        try:
            remote_id = await self.client.create_agent(agent_id, str(row["user_id"]),
                                                       from_micro(row["isolated_balance"]))
        except AutomatonError as exc:
            report.failed += 1
            report.errors.append(f"create {agent_id}: {exc}")
            await self._mark_unknown(agent_id)
            return
        taken = await self.db.run(remote.bind, agent_id, remote_id, row["isolated_balance"], to_iso(self._clock()),
                                  UNKNOWN)
        if taken is not None:
            report.failed += 1
            report.errors.append(f"create {agent_id}: remote {remote_id} is {taken}'s")
            return
        report.created += 1

    # --- poll ---------------------------------------------------------------------------------

    async def _poll(self, agent_id: str, remote_id: str, report: SyncReport) -> None:
        try:
            status = await self.client.get_status(remote_id)
        except AutomatonError as exc:
            report.failed += 1
            report.errors.append(f"status {agent_id}: {exc}")
            await self._mark_unknown(agent_id)
            return
        report.polled += 1
        try:
            if status.child_info is not None:
                if not await self.db.read(remote.is_known, status.child_info.agent_id):
                    info = status.child_info
                    child = await self.manager.adopt_remote_child(agent_id, info.agent_id, info.balance,
                                                                  free_text(info.reason) if info.reason else "")
                    if child is not None:
                        report.adopted += 1
            if await self._apply_balance(agent_id, status):
                report.adjusted += 1
        except AgentError as exc:
            # e.g. a remote loss larger than what is not locked in positions: retried next run
            report.failed += 1
            report.errors.append(f"sync {agent_id}: {exc}")
            await self._mark_unknown(agent_id)

    async def _apply_balance(self, agent_id: str, status: RemoteStatus) -> bool:
        """Book the change since the last synced remote balance; returns whether a booking was
        applied to it.

        Booking a change takes two transactions: the ledger row (through the manager, with its
        rules and events) and then the agent's remote state (`remote.finish_sync`). The row's
        key is `sync:<agent>:<remote_synced_at>`, the stored version of the state the change is
        measured from (old code: `<old>><new>`, which a value seen before reuses, so a
        1000 -> 1025.5 -> 1000 -> 1025.5 walk booked the third change never). That version moves
        with every finished step (`finish_sync` keeps it strictly increasing) and nothing else,
        so each change gets a key of its own while a replay of a step gets the same one: polling
        the same state again books nothing (no difference is left), and a crash between the
        booking and `finish_sync` leaves a row under the current key, which the next run finds
        and folds into the remote balance before it measures anything (so it is never booked
        twice, even if the remote moved on meanwhile; the rest is booked in the same run). Two
        syncs racing on one agent share the key: one row is written, one `finish_sync` wins.
        The remote `updated_at` is not used as the key: it names the observation, not the base
        the difference is taken from, so after such a crash a newer stamp would book the first
        change again, and a server need not send or bump it.
        """
        applied = False
        for _ in range(2):  # pass 1 may only fold what an interrupted run booked; pass 2 books the rest
            state = await self.db.read(_state, agent_id)
            if state is None:
                return applied
            user_id, agent_status, old, version, pending = state
            new = parse_amount(status.balance, what="remote_balance", allow_zero=True)
            key = f"sync:{agent_id}:{version}"
            # first balance seen, or a closed agent: the remote value is taken, never booked
            absolute = new if old is None or agent_status == "closed" else None
            if old is not None and absolute is None and pending is None and new != old:
                await self.manager.record_agent_profit(agent_id, from_micro(new - old), "remote balance sync",
                                                       idempotency_key=key, kind="sync_adjust")
            folded = await self.db.run(remote.finish_sync, agent_id, version, row_key(user_id, key, agent_id),
                                       status.status, to_iso(self._clock()), absolute)
            applied = applied or bool(folded)
            if folded is None or pending is None or old is None or absolute is not None or old + pending == new:
                return applied
        return applied

    async def _mark_unknown(self, agent_id: str) -> None:
        await self.db.run(remote.set_status, agent_id, UNKNOWN)


def _state(tx: SyncTx, agent_id: str) -> tuple[int, str, int | None, str | None, int | None] | None:
    """(user, status, remote balance, sync version, amount already booked under this version's
    key but not yet folded into the remote balance) of the agent, on one snapshot."""
    row = remote.sync_state(tx, agent_id)
    if row is None:
        return None
    user_id, version = row["user_id"], row["remote_synced_at"]
    pending = remote.booked_sync(tx, agent_id, row_key(user_id, f"sync:{agent_id}:{version}", agent_id))
    return user_id, row["status"], row["remote_balance"], version, pending
