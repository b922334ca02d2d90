"""This process among others on one PostgreSQL database: its id, the lock that says it is alive,
and the sweep that adopts the unsent messages of a replica that died.

Every replica sends the messages it queued (its outbox rows carry its id; the sender gets them in
memory right after they commit). A replica holds the session lock 'replica:<id>' for its whole
life; when it dies the server frees the lock with its connection, so a live replica that can
take that lock knows the owner is gone and adopts its pending rows (rows without an owner, from
a single process before, likewise). Each row is then sent by one replica: the adoption is one
UPDATE that moves the rows to the adopter, under the dead replica's lock.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable

from bot.delivery.periodic import every, stop_task
from storage.outbox_repo import OutboxRepo, OutboxRow
from storage.pg_locks import AdvisoryLocks

log = logging.getLogger(__name__)
SWEEP_SECONDS = 2.0


def new_replica_id() -> str:
    return secrets.token_hex(6)


class Replica:
    """`start()` takes this replica's liveness lock and starts the sweep; `stop()` ends the sweep
    (the lock goes when the locks' connection closes, after the sender has drained)."""

    def __init__(self, replica_id: str, locks: AdvisoryLocks, outbox: OutboxRepo,
                 hand_over: Callable[[list[OutboxRow]], None], *, every_seconds: float = SWEEP_SECONDS) -> None:
        self.id = replica_id
        self._locks = locks
        self._outbox = outbox
        self._hand_over = hand_over
        self._every = every_seconds
        self._task: asyncio.Task[None] | None = None
        self.adopted = 0

    async def start(self) -> None:
        if not await self._locks.try_lock(f"replica:{self.id}"):
            raise RuntimeError(f"replica id {self.id} is in use")  # 48 random bits: never in practice
        if self._task is None:
            self._task = asyncio.create_task(every(self._every, self.sweep, log, "could not sweep the outbox"),
                                             name="replica-sweep")

    async def sweep(self) -> int:
        """Adopt the pending messages of every replica that is gone; returns how many."""
        count = 0
        for owner in await self._outbox.pending_owners():
            name = f"replica:{owner if owner is not None else '-'}"
            if not await self._locks.try_lock(name):
                continue  # alive: it sends its own
            try:
                rows = await self._outbox.adopt(owner)
            finally:
                await self._locks.unlock(name)
            if rows:
                log.info("adopted %d unsent message(s) of replica %s", len(rows), owner or "(none)")
                self._hand_over(rows)
                count += len(rows)
        self.adopted += count
        return count

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None
