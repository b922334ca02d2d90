"""PostgreSQL behind the same `Database` interface as SQLite (`storage.db`): nothing above
`storage/` knows which one runs.

The shape is SQLite's: each connection on its own thread, a whole transaction one hop. What
PostgreSQL adds is writers at once, so every `run` (every money operation) is SERIALIZABLE and is
run again from the start when PostgreSQL reports a serialization failure or a deadlock: a
check-then-write that raced another's is retried on the new state instead of both passing the
check. That makes several writer connections per process safe too (`WRITERS`): a commit waits for
its WAL flush (~0.4 ms here, where SQLite's WAL commit is ~0.02 ms), and with one writer every
update of every user queued behind those waits; several let PostgreSQL group the commits. `read`
sees one REPEATABLE READ snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from importlib.resources.abc import Traversable
from typing import Any, TypeVar

import psycopg
from psycopg import errors

from storage.connection import Params, ThreadConnection
from storage.migrate import MIGRATIONS_DIR
from storage.pg_connection import PgSyncTx, connect, pg_sql
from storage.pg_migrate import apply_pg_migrations

log = logging.getLogger(__name__)
T = TypeVar("T")
READERS = 3
WRITERS = 4
# Serialization failures in a row before giving up (each waits a little longer). Before migration
# 009 every agent write stamped one counter row and 4 replicas x 4 writers on 2 cores once lost a
# transaction 30 times in a row; the margin stays for SSI's page-level conflicts on small tables.
RETRIES = 80
UNIQUE_RETRIES = 3
_RETRYABLE = (errors.SerializationFailure, errors.DeadlockDetected)


class NotStarted(Exception):
    """The connection failed at BEGIN: the transaction never started, so it can run again."""


def in_serializable(conn: psycopg.Connection, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
    """`fn(PgSyncTx, *args)` in one SERIALIZABLE transaction, retried from the start on a
    serialization failure or deadlock (its effects were rolled back, so running again is safe).

    A unique violation is retried a few times too: two processes that both checked "this
    idempotency key is new" and both inserted it get one of those instead of a serialization
    failure; run again, the loser finds the winner's committed journal entry and answers with it.
    A real duplicate fails the same way every time and is raised after `UNIQUE_RETRIES`.
    """
    unique_failures = 0
    for attempt in range(RETRIES):
        try:
            with contextlib.ExitStack() as stack:
                try:  # BEGIN ISOLATION LEVEL SERIALIZABLE (the writer's setting)
                    stack.enter_context(conn.transaction())
                except psycopg.OperationalError as exc:
                    raise NotStarted() from exc  # nothing was sent: safe to run on a new connection
                return fn(PgSyncTx(conn), *args)
        except errors.UniqueViolation:
            unique_failures += 1
            if unique_failures > UNIQUE_RETRIES:
                raise
        except _RETRYABLE:
            if attempt == RETRIES - 1:
                raise
        time.sleep(min(0.25, 0.002 * 2 ** attempt) * random.random())  # jitter: racers spread out
    raise errors.SerializationFailure("gave up after repeated serialization failures")


def in_snapshot(conn: psycopg.Connection, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
    """`fn(PgSyncTx, *args)` on one REPEATABLE READ, read-only snapshot (the readers' setting)."""
    with conn.transaction():
        return fn(PgSyncTx(conn), *args)


def _fetchall(conn: psycopg.Connection, sql: str, params: Params) -> list[Any]:
    return conn.execute(pg_sql(sql), tuple(params)).fetchall()


def _execute(conn: psycopg.Connection, sql: str, params: Params) -> psycopg.Cursor[Any]:
    return conn.execute(pg_sql(sql), tuple(params))


def _executemany(conn: psycopg.Connection, sql: str, rows: Iterable[Params]) -> None:
    with conn.cursor() as cur:
        cur.executemany(pg_sql(sql), [tuple(r) for r in rows])


def _sync(conn: psycopg.Connection, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
    return fn(PgSyncTx(conn), *args)


def _begin(conn: psycopg.Connection) -> None:
    conn.execute("BEGIN")


def _commit(conn: psycopg.Connection) -> None:
    conn.execute("COMMIT")


def _rollback(conn: psycopg.Connection) -> None:
    conn.execute("ROLLBACK")


class PgTransaction:
    """Statements inside one transaction on the writer, one hop each (`storage.db.Transaction`)."""

    def __init__(self, writer: ThreadConnection) -> None:
        self._writer = writer

    async def execute(self, sql: str, params: Params = ()) -> Any:
        return await self._writer.call(_execute, sql, params)

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        await self._writer.call(_executemany, sql, rows)

    async def fetchone(self, sql: str, params: Params = ()) -> Any:
        rows = await self._writer.call(_fetchall, sql, params)
        return rows[0] if rows else None

    async def fetchall(self, sql: str, params: Params = ()) -> list[Any]:
        return await self._writer.call(_fetchall, sql, params)

    async def insert(self, sql: str, params: Params = ()) -> int:
        return await self._writer.call(lambda conn: PgSyncTx(conn).insert(sql, params))

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._writer.call(_sync, fn, args)


class PgDatabase:
    """The application's database handle on PostgreSQL (build it with `open_pg_database`)."""

    dialect = "postgresql"

    def __init__(self, uri: str, writers: list[ThreadConnection], readers: list[ThreadConnection],
                 schema_version: int) -> None:
        self.path = uri.split("@", 1)[-1]  # for log lines: never the password
        self._all_writers = writers
        self._writers: asyncio.Queue[ThreadConnection] = asyncio.Queue()
        for writer in writers:
            self._writers.put_nowait(writer)
        self._readers = readers
        self._next_reader = itertools.cycle(readers)
        self.schema_version = schema_version

    @asynccontextmanager
    async def _writer(self) -> AsyncIterator[ThreadConnection]:
        """A free writer connection for the block (its thread runs one job at a time anyway)."""
        writer = await self._writers.get()
        try:
            yield writer
        finally:
            self._writers.put_nowait(writer)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(SyncTx, *args)` as one SERIALIZABLE transaction (retried on conflicts), one hop."""
        async with self._writer() as writer:
            # shield: once queued the transaction completes on its thread even if the caller is
            # cancelled; the connection's thread runs the next job only after it
            return await asyncio.shield(writer.submit(in_serializable, fn, args))

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(SyncTx, *args)` on one consistent snapshot of committed data, in one round trip."""
        return await next(self._next_reader).call(in_snapshot, fn, args)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PgTransaction]:
        """A READ COMMITTED transaction on a writer, statement by statement (non-money writes)."""
        async with self._writer() as writer:
            await writer.call(_begin)
            try:
                yield PgTransaction(writer)
            except BaseException:
                await asyncio.shield(writer.submit(_rollback))
                raise
            else:
                await writer.call(_commit)

    async def fetchone(self, sql: str, params: Params = ()) -> Any:
        rows = await next(self._next_reader).call(_fetchall, sql, params)
        return rows[0] if rows else None

    async def fetchall(self, sql: str, params: Params = ()) -> list[Any]:
        return await next(self._next_reader).call(_fetchall, sql, params)

    async def fetchval(self, sql: str, params: Params = ()) -> Any:
        row = await self.fetchone(sql, params)
        return None if row is None else row[0]

    async def execute(self, sql: str, params: Params = ()) -> int:
        """A single write statement (autocommit); returns 0 (no rowid)."""
        async with self._writer() as writer:
            await writer.call(_execute, sql, params)
            return 0

    async def close(self) -> None:
        for conn in [*self._readers, *self._all_writers]:
            await conn.close()


class PgThread(ThreadConnection):
    """A psycopg connection on its own thread that reconnects when the server dropped it (a
    restart, a failover, an idle timeout). A reader runs the read again on the new connection, and
    so does a write that failed at its BEGIN (nothing was sent); a write that failed later fails
    (its commit may have reached the server: the callers' idempotency keys and the inbox redo it),
    and the next one runs on a fresh connection."""

    def __init__(self, conn: psycopg.Connection, pool: ThreadPoolExecutor, uri: str, *, reads: bool) -> None:
        super().__init__(conn, pool)
        self.uri = uri
        self.reads = reads

    def submit(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        return super().submit(self._live, fn, args)

    def _live(self, _stale: psycopg.Connection, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        if self.conn.closed or self.conn.broken:
            self._reconnect()
        try:
            return fn(self.conn, *args)
        except NotStarted:  # a write that found the connection gone before anything was sent
            self._reconnect()
            return fn(self.conn, *args)
        except psycopg.OperationalError:
            if not (self.reads and self.conn.broken):
                raise
            self._reconnect()
            return fn(self.conn, *args)

    def _reconnect(self) -> None:
        log.warning("PostgreSQL connection lost; reconnecting")
        self.conn = _connect_as(self.uri, self.reads)


def _connect_as(uri: str, reads: bool) -> psycopg.Connection:
    """A reader (REPEATABLE READ, READ ONLY snapshots) or the writer (SERIALIZABLE transactions)."""
    if reads:
        return connect(uri, isolation=psycopg.IsolationLevel.REPEATABLE_READ, read_only=True)
    return connect(uri, isolation=psycopg.IsolationLevel.SERIALIZABLE)


async def _open(uri: str, name: str, *, reads: bool = False) -> ThreadConnection:
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
    try:
        conn = await asyncio.get_running_loop().run_in_executor(pool, _connect_as, uri, reads)
    except BaseException:
        pool.shutdown(wait=False)
        raise
    return PgThread(conn, pool, uri, reads=reads)


async def open_pg_database(url: str, *, migrations_dir: Traversable = MIGRATIONS_DIR) -> PgDatabase:
    """Connect to the PostgreSQL server at `url` and migrate its database."""
    uri = url.strip()  # libpq reads both spellings itself
    writers = [await _open(uri, "pg-writer-0")]
    readers: list[ThreadConnection] = []
    try:
        version = await writers[0].call(apply_pg_migrations, migrations_dir)
        for i in range(1, WRITERS):
            writers.append(await _open(uri, f"pg-writer-{i}"))
        for i in range(READERS):
            readers.append(await _open(uri, f"pg-reader-{i}", reads=True))
    except BaseException:
        for conn in [*readers, *writers]:
            await conn.close()
        raise
    database = PgDatabase(uri, writers, readers, version)
    log.info("database ready at PostgreSQL %s (schema version %d)", database.path, version)
    return database
