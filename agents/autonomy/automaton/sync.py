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
     row keyed `sync:<agent>:<remote updated_at>` (or old>new balance when the server sends no
     stamp), so identical answers polled again — or a poll replayed after a crash — count once;
   * `remote_balance`, `remote_status` and `remote_synced_at` are stored.
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
from agents.ledger.reasons import free_text
from storage import Database
from storage import remote_repo as remote
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
        """Book the change since the last synced remote balance; returns whether a row was written."""
        row = await self.db.read(remote.synced_balance, agent_id)
        if row is None:
            return False
        new = parse_amount(status.balance, what="remote_balance", allow_zero=True)
        old = row["remote_balance"]
        booked = False
        if old is not None and new != old and row["status"] != "closed":
            stamp = str(status.updated_at) if status.updated_at is not None else f"{old}>{new}"
            await self.manager.record_agent_profit(
                agent_id, from_micro(new - old), "remote balance sync",
                idempotency_key=f"sync:{agent_id}:{stamp}", kind="sync_adjust")
            booked = True
        await self.db.run(remote.record_sync, agent_id, new, status.status, to_iso(self._clock()))
        return booked

    async def _mark_unknown(self, agent_id: str) -> None:
        await self.db.run(remote.set_status, agent_id, UNKNOWN)
