"""Per-user locks across processes: PostgreSQL session advisory locks on one dedicated connection.

A replica holds a user's lock while it processes that user's updates, so a user's updates run
one at a time cluster-wide whichever replica received them. Session locks need no table and
write no WAL (a lock or unlock is one round trip), and the server releases every lock of a
connection that closes: a replica killed with SIGKILL frees its users as soon as the server sees
its socket close, and another replica takes them over.

A lock is named ('inbox:<user>', 'replica:<id>') and hashed to 64 bits (`hashtextextended`), so
it cannot meet the other advisory locks of the schema (migrations, id reservations). Locks are
re-entrant per session; `held` keeps each name taken once.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

import psycopg

from storage.pg_connection import connect

log = logging.getLogger(__name__)


class AdvisoryLocks:
    """`try_lock(name)` / `unlock(name)` on one connection of this process (on its own thread)."""

    def __init__(self, uri: str) -> None:
        self._uri = uri
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pg-locks")
        self._conn: psycopg.Connection | None = None
        self.held: set[str] = set()
        self.lost = 0  # times the connection (and so every lock) was lost

    async def try_lock(self, name: str) -> bool:
        """Take `name` unless another process holds it; True when this process holds it now."""
        if name in self.held:
            return True
        got = await self._call("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", name)
        if got:
            self.held.add(name)
        return bool(got)

    async def unlock(self, name: str) -> None:
        if name in self.held:
            self.held.discard(name)
            await self._call("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", name)

    async def close(self) -> None:
        """Release everything (closing the session does) and stop the thread."""
        self.held.clear()
        if self._conn is not None:
            await asyncio.get_running_loop().run_in_executor(self._pool, self._conn.close)
        self._pool.shutdown(wait=False)

    async def verify(self) -> None:
        """Ping the connection: a lost one (and every lock with it) shows in `held` afterwards."""
        await asyncio.get_running_loop().run_in_executor(self._pool, self._run, "SELECT %s::text", "ping")

    async def _call(self, sql: str, name: str) -> object:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._run, sql, name)

    def _run(self, sql: str, name: str) -> object:
        for attempt in (1, 2):
            if self._conn is None or self._conn.closed or self._conn.broken:
                if self._conn is not None:
                    self._lose()
                self._conn = connect(self._uri)
            try:
                row = self._conn.execute(sql, (name,)).fetchone()
                return None if row is None else row[0]
            except psycopg.OperationalError:
                if attempt == 2:
                    raise
                self._lose()  # then once more on a new session
        return None

    def _lose(self) -> None:
        """The session is gone, and the server released its locks with it."""
        self.lost += 1
        if self.held:
            log.error("the lock connection was lost; its %d lock(s) went with it", len(self.held))
        self.held.clear()
        if self._conn is not None:
            self._conn.close()
            self._conn = None
