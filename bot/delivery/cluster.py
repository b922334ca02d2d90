"""The inbox when several replicas share one PostgreSQL database (webhook mode behind a balancer).

Any replica may receive any update; each stores it first (as alone), then a user's updates are
processed by whichever replica holds that user's lock (`storage.pg_locks`), one at a time, oldest
first, from the database — so the order holds cluster-wide. A replica that receives an update of
a user another replica is serving only stores it: the holder reads it from the database before
letting the user go, and reads once more after unlocking, so nothing is stranded between the two.
A replica that dies frees its locks with its connection; every replica sweeps for users with
updates waiting (`SWEEP_SECONDS`) and takes over the ones nobody holds, counting a recovery on
each (the crash-loop limit of the single-process inbox applies: one recovered more than
`MAX_RECOVERIES` times is abandoned and its user told). Updates are marked done in the database
before a user is released, so the next holder never processes one again.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import Any

from bot.delivery.inbox import MAX_RECOVERIES, Inbox
from bot.delivery.periodic import every, stop_task
from storage.inbox_repo import InboxRepo, StoredUpdate
from storage.pg_locks import AdvisoryLocks

log = logging.getLogger(__name__)
SWEEP_SECONDS = 2.0
SWEEP_AGE_SECONDS = 2.0  # younger updates are their receiver's to claim first


def lock_name(key: int) -> str:
    return f"inbox:{key}"


class ClusterInbox(Inbox):
    """`Inbox` whose per-user queues are fed from the shared database under cluster-wide locks."""

    def __init__(self, repo: InboxRepo, locks: AdvisoryLocks, *args: Any, **kwargs: Any) -> None:
        super().__init__(repo, *args, **kwargs)
        self._cluster_repo = repo
        self._locks = locks
        # one gate per user being synced or released; dropped by itself once nobody waits on it
        self._gates: weakref.WeakValueDictionary[int, asyncio.Lock] = weakref.WeakValueDictionary()
        self._sweeper: asyncio.Task[None] | None = None
        self.adopted = 0

    async def _admitted(self, key: int, update: StoredUpdate) -> None:
        await self._sync(key)

    async def _sync(self, key: int, *, adopting: bool = False) -> None:
        """Serve `key` if its lock can be had: queue what the database holds for it, in order."""
        async with self._gate(key):
            if not await self._locks.try_lock(lock_name(key)):
                return  # another replica serves this user; it reads this update from the database
            if adopting:
                left, abandoned = await self._cluster_repo.adopt(key, MAX_RECOVERIES)
                await self._report_abandoned(abandoned)
                self.adopted += len(left)
            else:
                left = await self._cluster_repo.pending_of(key)
            fresh = [u for u in left if u.update_id not in self._scheduled and u.update_id not in self._unflushed]
            for update in fresh:
                self._enqueue(key, update)
            unmarked = any(u.update_id in self._unflushed for u in left)  # done here, not yet in the database
            if not fresh and not unmarked and key not in self._queues and key not in self._active:
                await self._locks.unlock(lock_name(key))  # nothing to do after all

    def _drained(self, key: int) -> None:
        super()._drained(key)
        task = asyncio.create_task(self._release(key), name=f"release-{key}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _release(self, key: int) -> None:
        """Mark `key`'s work done, take what else arrived for it, or let the user go."""
        try:
            async with self._gate(key):
                if key in self._queues or key in self._active:
                    return  # more came in meanwhile; its own drain releases
                await self._flush()  # done in the database before another replica may look
                more = [u for u in await self._cluster_repo.pending_of(key)
                        if u.update_id not in self._scheduled and u.update_id not in self._unflushed]
                if more:
                    for update in more:
                        self._enqueue(key, update)
                    return
                await self._locks.unlock(lock_name(key))
            # stored by another replica while this one held the lock, after the read above
            if await self._cluster_repo.pending_of(key):
                await self._sync(key)
        except asyncio.CancelledError:
            raise
        except Exception:  # the lock stays held (nothing runs twice); the next update of theirs retries
            log.warning("could not release user %s in the inbox", key, exc_info=True)

    def _gate(self, key: int) -> asyncio.Lock:
        gate = self._gates.get(key)
        if gate is None:
            gate = self._gates[key] = asyncio.Lock()
        return gate

    async def _left_over(self) -> tuple[list[StoredUpdate], list[StoredUpdate]]:
        return [], []  # what others left is adopted by the sweep, user by user, under their locks

    async def start(self) -> None:
        await super().start()
        if self._sweeper is None:
            await self.sweep(min_age=0.0)
            self._sweeper = asyncio.create_task(every(SWEEP_SECONDS, self.sweep, log, "could not sweep the inbox"),
                                                name="inbox-sweep")

    async def sweep(self, min_age: float = SWEEP_AGE_SECONDS) -> None:
        """Take over the users whose updates wait and whom no replica holds; and serve again the
        ones this replica holds but has nothing queued for (a release that failed half-way)."""
        for key in await self._cluster_repo.waiting_keys(self._clock() - min_age):
            if lock_name(key) not in self._locks.held:
                await self._sync(key, adopting=True)
            elif key not in self._queues and key not in self._active:
                await self._sync(key)

    async def stop(self, drain_seconds: float = 10.0) -> None:
        await stop_task(self._sweeper)
        self._sweeper = None
        await super().stop(drain_seconds)
        for name in [n for n in self._locks.held if n.startswith("inbox:")]:
            await self._locks.unlock(name)  # the users this replica served are free for the others
