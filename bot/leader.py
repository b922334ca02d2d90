"""Which replica runs the background workers: the one holding the 'workers:leader' lock.

The workers (the market warm-up, the agent loop and its spawner, risk, simulations, the automaton
sync) keep state between runs — the agent loop holds the trading cores, positions and stored bars
of up to 100k agents in memory — so they run on one replica, where that state is warm, instead of
wherever a queue hands each run out. Every replica schedules them on its JobQueue as before; only
the leader's runs do anything, so each period runs once cluster-wide. The leader is whoever holds
the session lock (`storage.pg_locks`): the first replica to start, then, when a leader dies and
the server frees its lock with its connection, the first replica to try (every CHECK_SECONDS). A
replica that becomes leader drops what it remembered (`on_gain`), so it starts from the database
as a fresh process would; the period a dying leader missed is the new leader's first run (every
money effect of an interrupted run is its own transaction, so nothing is doubled or lost).
On SQLite there is one process, which is the leader.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from bot.delivery.periodic import every, stop_task
from storage.pg_locks import AdvisoryLocks

log = logging.getLogger(__name__)
LOCK = "workers:leader"
CHECK_SECONDS = 2.0


class Leadership:
    """`is_leader` for this replica, kept current by `check()` (run every CHECK_SECONDS)."""

    def __init__(self, locks: AdvisoryLocks, on_gain: Callable[[], Awaitable[None]], *,
                 every_seconds: float = CHECK_SECONDS) -> None:
        self._locks = locks
        self._on_gain = on_gain
        self._every = every_seconds
        self._task: asyncio.Task[None] | None = None
        self.is_leader = False
        self.terms = 0  # times this replica became leader

    async def start(self) -> None:
        await self.check()
        if self._task is None:
            self._task = asyncio.create_task(every(self._every, self.check, log, "could not check leadership"),
                                             name="leadership")

    async def check(self) -> None:
        if self.is_leader:
            await self._locks.verify()
        if self.is_leader and LOCK not in self._locks.held:  # the lock went with a lost connection
            self.is_leader = False
            log.warning("this replica lost the workers' leadership")
        if not self.is_leader and await self._locks.try_lock(LOCK):
            await self._on_gain()
            self.is_leader = True
            self.terms += 1
            log.info("this replica runs the background workers now")

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None
        if self.is_leader:
            self.is_leader = False
            await self._locks.unlock(LOCK)  # another replica takes over at its next check
