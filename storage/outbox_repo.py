"""The durable outbox (`outbox_messages`): every reply, edit, photo and notification until it is sent.

A row's `dedupe_key` is unique, so an update processed again after a crash, or an event published
twice, queues its message once (`add` returns the existing row's id).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from storage.connection import SyncTx
from storage.db import Database
from storage.group_commit import GroupCommit
from storage.values import from_iso, to_iso


@dataclass
class OutboxRow:
    """One queued Bot API call. `outbox_id` is 0 until stored."""

    chat_id: int
    method: str
    params: dict[str, Any]
    priority: int
    dedupe_key: str | None = None
    file: bytes | None = None
    edit_of: int | None = None
    expires_at: float | None = None
    attempts: int = 0
    outbox_id: int = 0


@dataclass(frozen=True)
class Outcome:
    """What became of a row: its final state, Telegram's message id when sent, an error text."""

    outbox_id: int
    state: str
    sent_message_id: int | None = None
    error: str | None = None
    attempts: int = 1


_COLUMNS = "outbox_id, chat_id, method, params, file, priority, dedupe_key, edit_of, expires_at, attempts"


def _row(r: Any) -> OutboxRow:
    return OutboxRow(chat_id=r[1], method=r[2], params=json.loads(r[3]), file=r[4], priority=r[5],
                     dedupe_key=r[6], edit_of=r[7], expires_at=None if r[8] is None else from_iso(r[8]),
                     attempts=r[9], outbox_id=r[0])


def add(tx: SyncTx, rows: Sequence[OutboxRow], owner: str | None = None) -> list[tuple[int, bool]]:
    """Store rows (sent by the replica `owner`); returns (outbox_id, new) per row — an existing
    dedupe key gives its row back."""
    out: list[tuple[int, bool]] = []
    for row in rows:
        # one statement per new row; the existing row is looked up only when the key was known
        new_id = tx.value(
            "INSERT INTO outbox_messages(dedupe_key, chat_id, method, params, file, priority, edit_of, expires_at,"
            " owner) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(dedupe_key) DO NOTHING RETURNING outbox_id",
            (row.dedupe_key, row.chat_id, row.method, json.dumps(row.params, ensure_ascii=False), row.file,
             row.priority, row.edit_of, None if row.expires_at is None else to_iso(row.expires_at), owner))
        if new_id is not None:
            out.append((int(new_id), True))
        else:
            known = tx.value("SELECT outbox_id FROM outbox_messages WHERE dedupe_key = ?", (row.dedupe_key,))
            out.append((int(known), False))
    return out


def settle(tx: SyncTx, outcomes: Iterable[Outcome], now: float) -> None:
    """Record final states (one statement per batch)."""
    stamp = to_iso(now)
    tx.many("UPDATE outbox_messages SET state = ?, sent_message_id = ?, error = ?, attempts = attempts + ?,"
            " done_at = ? WHERE outbox_id = ?",
            [(o.state, o.sent_message_id, None if o.error is None else o.error[:300], o.attempts, stamp, o.outbox_id)
             for o in outcomes])


def pending(tx: SyncTx, owner: str | None = None) -> list[OutboxRow]:
    """Every row still to deliver, oldest first (loaded by the sender on start); with `owner`,
    only that replica's."""
    if owner is not None:
        return [_row(r) for r in tx.all(f"SELECT {_COLUMNS} FROM outbox_messages WHERE state = 'pending'"
                                        " AND owner = ? ORDER BY outbox_id", (owner,))]
    return [_row(r) for r in tx.all(f"SELECT {_COLUMNS} FROM outbox_messages WHERE state = 'pending'"
                                    " ORDER BY outbox_id")]


def pending_owners(tx: SyncTx, me: str) -> list[str | None]:
    """The other replicas (None: no owner) with messages still to deliver."""
    return [r[0] for r in tx.all("SELECT DISTINCT owner FROM outbox_messages WHERE state = 'pending'"
                                 " AND (owner IS NULL OR owner <> ?)", (me,))]


def adopt(tx: SyncTx, owner: str | None, me: str) -> list[OutboxRow]:
    """Make the pending rows of `owner` (a replica that is gone) `me`'s; returns those rows, oldest first."""
    if owner is None:
        taken = tx.all("UPDATE outbox_messages SET owner = ? WHERE state = 'pending' AND owner IS NULL"
                       " RETURNING outbox_id", (me,))
    else:
        taken = tx.all("UPDATE outbox_messages SET owner = ? WHERE state = 'pending' AND owner = ?"
                       " RETURNING outbox_id", (me, owner))
    ids = [int(r[0]) for r in taken]
    if not ids:
        return []
    return [_row(r) for r in tx.all(f"SELECT {_COLUMNS} FROM outbox_messages WHERE outbox_id IN"
                                    f" ({','.join('?' * len(ids))}) ORDER BY outbox_id", ids)]


def sent_message_ids(tx: SyncTx, outbox_ids: Sequence[int]) -> dict[int, int]:
    """Telegram message ids of sent rows (edits of a message sent before a restart need them)."""
    if not outbox_ids:
        return {}
    rows = tx.all(f"SELECT outbox_id, sent_message_id FROM outbox_messages WHERE outbox_id IN "
                  f"({','.join('?' * len(outbox_ids))}) AND sent_message_id IS NOT NULL", list(outbox_ids))
    return {r[0]: r[1] for r in rows}


def prune(tx: SyncTx, before: float) -> int:
    """Forget delivered and given-up rows older than `before` (an edit's target first kept while pending)."""
    return tx.run("DELETE FROM outbox_messages WHERE state <> 'pending' AND done_at < ? AND outbox_id NOT IN"
                  " (SELECT edit_of FROM outbox_messages WHERE state = 'pending' AND edit_of IS NOT NULL)",
                  (to_iso(before),))


class OutboxRepo:
    """Async access for the bot's outbox; each call is one transaction on the writer, except
    `add`: concurrent adds share one (`storage.group_commit`)."""

    def __init__(self, db: Database, owner: str | None = None) -> None:
        self.db = db
        self.owner = owner  # this replica's id when several share the database (None: the only process)
        self._adds: GroupCommit[OutboxRow, tuple[int, bool]] = GroupCommit(self._write)

    async def add(self, rows: Sequence[OutboxRow]) -> list[tuple[int, bool]]:
        return await self._adds.submit(rows)

    async def _write(self, rows: list[OutboxRow]) -> list[tuple[int, bool]]:
        return await self.db.run(add, rows, self.owner)

    async def settle(self, outcomes: Iterable[Outcome], now: float) -> None:
        await self.db.run(settle, list(outcomes), now)

    async def pending(self) -> list[OutboxRow]:
        return await self.db.run(pending, self.owner)

    async def pending_owners(self) -> list[str | None]:
        return await self.db.read(pending_owners, self.owner or "")

    async def adopt(self, owner: str | None) -> list[OutboxRow]:
        assert self.owner is not None
        return await self.db.run(adopt, owner, self.owner)

    async def sent_message_ids(self, outbox_ids: Sequence[int]) -> dict[int, int]:
        return await self.db.run(sent_message_ids, list(outbox_ids))

    async def prune(self, before: float) -> int:
        return await self.db.run(prune, before)
