"""The durable inbox (`inbox_updates`): Telegram updates stored before their offset is confirmed.

Plain functions on a `SyncTx` plus `InboxRepo`, the class the bot's inbox uses. An update id is
the primary key, so an update Telegram hands out twice (the offset was not confirmed before a
crash) is stored once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from storage.connection import SyncTx
from storage.db import Database
from storage.group_commit import GroupCommit
from storage.values import to_iso


@dataclass(frozen=True)
class StoredUpdate:
    """One update as stored: its id, the effective user (None when the update has none) and JSON."""

    update_id: int
    user_id: int | None
    payload: str


def store(tx: SyncTx, updates: Sequence[StoredUpdate]) -> list[int]:
    """Insert new updates; returns the ids that were new (a re-delivered id is ignored)."""
    if not updates:
        return []
    ids = list(dict.fromkeys(u.update_id for u in updates))
    known = {r[0] for r in tx.all(f"SELECT update_id FROM inbox_updates WHERE update_id IN "
                                  f"({','.join('?' * len(ids))})", ids)}
    fresh = []
    for update in updates:  # one update delivered twice in one batch is stored (and processed) once
        if update.update_id not in known:
            known.add(update.update_id)
            fresh.append(update)
    tx.many("INSERT INTO inbox_updates(update_id, user_id, payload) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
            [(u.update_id, u.user_id, u.payload) for u in fresh])
    return [u.update_id for u in fresh]


def finish(tx: SyncTx, done: Iterable[int], throttled: Iterable[int], now: float) -> None:
    """Mark processed (`done`) and skipped-by-throttling (`throttled`) updates."""
    stamp = to_iso(now)
    tx.many("UPDATE inbox_updates SET state = 'done', done_at = ? WHERE update_id = ?", [(stamp, i) for i in done])
    tx.many("UPDATE inbox_updates SET state = 'throttled', done_at = ? WHERE update_id = ?",
            [(stamp, i) for i in throttled])


def recover(tx: SyncTx, max_recoveries: int) -> tuple[list[StoredUpdate], list[StoredUpdate]]:
    """On start: the updates a previous process left unfinished, counted; one found unfinished by more
    than `max_recoveries` starts (it may be what crashes the process) is abandoned instead.
    Returns (updates to process again, abandoned updates)."""
    tx.run("UPDATE inbox_updates SET recoveries = recoveries + 1 WHERE state = 'pending'")
    abandoned = [StoredUpdate(r[0], r[1], r[2]) for r in tx.all(
        "SELECT update_id, user_id, payload FROM inbox_updates WHERE state = 'pending' AND recoveries > ?",
        (max_recoveries,))]
    tx.many("UPDATE inbox_updates SET state = 'abandoned' WHERE update_id = ?", [(u.update_id,) for u in abandoned])
    return pending(tx), abandoned


def pending(tx: SyncTx) -> list[StoredUpdate]:
    """Every update not processed yet, oldest first (what a restart must process again)."""
    rows = tx.all("SELECT update_id, user_id, payload FROM inbox_updates WHERE state = 'pending' ORDER BY update_id")
    return [StoredUpdate(r[0], r[1], r[2]) for r in rows]


def _rows(rows: list) -> list[StoredUpdate]:
    return [StoredUpdate(r[0], r[1], r[2]) for r in rows]


def pending_of(tx: SyncTx, key: int) -> list[StoredUpdate]:
    """The unprocessed updates of one queue, oldest first: a user's (key > 0), or the single update
    `-key` that has no user."""
    if key < 0:
        return _rows(tx.all("SELECT update_id, user_id, payload FROM inbox_updates WHERE update_id = ?"
                            " AND state = 'pending'", (-key,)))
    return _rows(tx.all("SELECT update_id, user_id, payload FROM inbox_updates WHERE state = 'pending'"
                        " AND user_id = ? ORDER BY update_id", (key,)))


def waiting_keys(tx: SyncTx, received_before: float) -> list[int]:
    """Queues with updates still pending that were stored before `received_before`: the work of a
    replica that died, or of one still busy with them (the caller's lock tells which)."""
    return [int(r[0]) for r in tx.all(
        "SELECT DISTINCT COALESCE(user_id, -update_id) FROM inbox_updates WHERE state = 'pending'"
        " AND received_at < ?", (to_iso(received_before),))]


def adopt(tx: SyncTx, key: int, max_recoveries: int) -> tuple[list[StoredUpdate], list[StoredUpdate]]:
    """A queue taken over from a replica that died: its pending updates counted as recovered once
    more; one recovered more than `max_recoveries` times is abandoned (it may be what kills the
    replicas). Returns (updates to process, abandoned updates)."""
    left = pending_of(tx, key)
    tx.many("UPDATE inbox_updates SET recoveries = recoveries + 1 WHERE update_id = ?",
            [(u.update_id,) for u in left])
    over = {int(r[0]) for r in tx.all(
        f"SELECT update_id FROM inbox_updates WHERE recoveries > ? AND update_id IN ({','.join('?' * len(left))})",
        (max_recoveries, *(u.update_id for u in left)))} if left else set()
    tx.many("UPDATE inbox_updates SET state = 'abandoned' WHERE update_id = ?", [(i,) for i in over])
    return [u for u in left if u.update_id not in over], [u for u in left if u.update_id in over]


def last_update_id(tx: SyncTx) -> int | None:
    """The highest stored update id (the next getUpdates offset is one above it)."""
    return tx.value("SELECT MAX(update_id) FROM inbox_updates")


def prune(tx: SyncTx, before: float) -> int:
    """Forget finished updates older than `before`; the newest row is kept for the offset."""
    return tx.run("DELETE FROM inbox_updates WHERE state <> 'pending' AND done_at < ?"
                  " AND update_id < (SELECT MAX(update_id) FROM inbox_updates)", (to_iso(before),))


class InboxRepo:
    """Async access for the bot's inbox; each call is one transaction on the writer, except `store`:
    concurrent stores (webhook requests arrive one update each, up to 40 at once) share one."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._stores: GroupCommit[StoredUpdate, bool] = GroupCommit(self._store_rows)

    async def store(self, updates: Sequence[StoredUpdate]) -> list[int]:
        """Store a batch (concurrent callers, e.g. webhook requests, share one transaction)."""
        fresh = await self._stores.submit(updates)
        return [u.update_id for u, new in zip(updates, fresh, strict=True) if new]

    async def _store_rows(self, rows: list[StoredUpdate]) -> list[bool]:
        fresh = await self.db.run(store, rows)
        first: dict[int, int] = {}
        for at, row in enumerate(rows):
            first.setdefault(row.update_id, at)
        new = set(fresh)
        return [row.update_id in new and first[row.update_id] == at for at, row in enumerate(rows)]

    async def finish(self, done: Iterable[int], throttled: Iterable[int], now: float) -> None:
        await self.db.run(finish, list(done), list(throttled), now)

    async def pending(self) -> list[StoredUpdate]:
        return await self.db.run(pending)

    async def recover(self, max_recoveries: int) -> tuple[list[StoredUpdate], list[StoredUpdate]]:
        return await self.db.run(recover, max_recoveries)

    async def last_update_id(self) -> int | None:
        return await self.db.run(last_update_id)

    async def pending_of(self, key: int) -> list[StoredUpdate]:
        return await self.db.read(pending_of, key)

    async def waiting_keys(self, received_before: float) -> list[int]:
        return await self.db.read(waiting_keys, received_before)

    async def adopt(self, key: int, max_recoveries: int) -> tuple[list[StoredUpdate], list[StoredUpdate]]:
        return await self.db.run(adopt, key, max_recoveries)

    async def prune(self, before: float) -> int:
        return await self.db.run(prune, before)
