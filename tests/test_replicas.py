"""Several replicas on one PostgreSQL database: a user's updates run one at a time, in order, once,
whichever replica received them; a replica that dies leaves its users and its unsent messages to
the others."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import psycopg
import pytest

from bot.delivery import cluster
from bot.delivery.cluster import ClusterInbox
from bot.delivery.inbox import MAX_RECOVERIES
from bot.delivery.replica import Replica as OutboxReplica
from bot.delivery.throttle import Throttle
from bot.leader import Leadership
from storage import open_database
from storage.inbox_repo import InboxRepo, StoredUpdate
from storage.outbox_repo import OutboxRepo, OutboxRow
from storage.pg_locks import AdvisoryLocks
from tests import pg_server

pytestmark = pytest.mark.skipif(not pg_server.available(), reason="PostgreSQL tests are off")


class Recorder:
    """What every replica processed: per user the update ids in order, and any overlap."""

    def __init__(self) -> None:
        self.seen: dict[int, list[int]] = {}
        self.running: set[int] = set()
        self.overlaps = 0

    def process(self, slow: float = 0.002):
        async def run(payload: dict[str, Any]) -> None:
            user = payload["message"]["from"]["id"]
            if user in self.running:
                self.overlaps += 1
            self.running.add(user)
            try:
                await asyncio.sleep(random.random() * slow)
                self.seen.setdefault(user, []).append(payload["update_id"])
            finally:
                self.running.discard(user)
        return run


def update(update_id: int, user: int) -> dict[str, Any]:
    return {"update_id": update_id, "message": {"message_id": update_id, "date": 0, "text": "hi",
                                                "chat": {"id": user, "type": "private"},
                                                "from": {"id": user, "is_bot": False, "first_name": "U"}}}


async def ignore(update: StoredUpdate, payload: dict[str, Any], warn: bool) -> None:
    return None


class Replica:
    """One process's database, locks and inbox."""

    def __init__(self, db: Any, locks: AdvisoryLocks, inbox: ClusterInbox) -> None:
        self.db, self.locks, self.inbox = db, locks, inbox

    async def stop(self) -> None:
        await self.inbox.stop()
        await self.locks.close()
        await self.db.close()


async def replica(url: str, recorder: Recorder) -> Replica:
    db = await open_database(url)
    locks = AdvisoryLocks(url)
    inbox = ClusterInbox(InboxRepo(db), locks, recorder.process(), on_throttled=ignore, throttle=Throttle(burst=10**6))
    await inbox.start()
    return Replica(db, locks, inbox)


async def test_a_users_updates_run_in_order_once_whichever_replica_got_them() -> None:
    url = pg_server.fresh_database_url()
    recorder = Recorder()
    first, second = await replica(url, recorder), await replica(url, recorder)
    a, b, db_a = first.inbox, second.inbox, first.db
    try:
        users = [11, 12, 13, 14, 15]
        next_id = 1000
        for _ in range(12):  # Telegram: per chat one at a time, so each round is stored in order
            batch = []
            for user in users:
                next_id += 1
                batch.append(update(next_id, user))
            random.shuffle(batch)
            for item in batch:  # a balancer spreads the requests over both replicas
                await random.choice((a, b)).receive([item])
        for _ in range(600):
            if sum(len(v) for v in recorder.seen.values()) >= 60:
                break
            await asyncio.sleep(0.05)
        await a.join()
        await b.join()
        assert recorder.overlaps == 0 and a.processed > 5 and b.processed > 5  # both served, never together
        for user in users:
            assert recorder.seen[user] == sorted(recorder.seen[user]) and len(recorder.seen[user]) == 12
        assert await db_a.fetchval("SELECT COUNT(*) FROM inbox_updates WHERE state = 'pending'") == 0
    finally:
        await first.stop()
        await second.stop()


async def test_a_dead_replicas_users_are_taken_over_and_a_crash_loop_gives_up(monkeypatch) -> None:
    monkeypatch.setattr(cluster, "SWEEP_SECONDS", 0.1)
    monkeypatch.setattr(cluster, "SWEEP_AGE_SECONDS", 0.0)
    url = pg_server.fresh_database_url()
    recorder = Recorder()
    db = await open_database(url)
    repo = InboxRepo(db)
    # a replica stored these and died before processing them (its locks went with its connection)
    await repo.store([StoredUpdate(i, 21, json.dumps(update(i, 21))) for i in (5001, 5002)])
    await repo.store([StoredUpdate(5003, 22, json.dumps(update(5003, 22)))])
    await db.execute("UPDATE inbox_updates SET recoveries = ? WHERE update_id = 5003", (MAX_RECOVERIES,))
    busy = AdvisoryLocks(url)  # a live replica serving user 23: not taken from it
    assert await busy.try_lock("inbox:23")
    await repo.store([StoredUpdate(5004, 23, json.dumps(update(5004, 23)))])
    other = await replica(url, recorder)
    b = other.inbox
    try:
        for _ in range(600):
            if recorder.seen.get(21) == [5001, 5002]:
                break
            await asyncio.sleep(0.05)
        await b.join()
        assert recorder.seen == {21: [5001, 5002]} and b.adopted == 2
        states = dict(await db.fetchall("SELECT update_id, state FROM inbox_updates ORDER BY update_id"))
        assert states == {5001: "done", 5002: "done", 5003: "abandoned", 5004: "pending"}
        await busy.close()  # that replica dies too: its user is taken over within a sweep or two
        for _ in range(600):
            if recorder.seen.get(23):
                break
            await asyncio.sleep(0.05)
        assert recorder.seen.get(23) == [5004]
    finally:
        await other.stop()
        await db.close()


async def test_a_dead_replicas_unsent_messages_are_adopted_once_a_live_ones_are_not() -> None:
    url = pg_server.fresh_database_url()
    db = await open_database(url)
    dead_locks, live_locks, my_locks = AdvisoryLocks(url), AdvisoryLocks(url), AdvisoryLocks(url)
    dead = OutboxSide(db, "dead0001", dead_locks)
    live = OutboxSide(db, "live0001", live_locks)
    me = OutboxSide(db, "mine0001", my_locks)
    try:
        for r in (dead, live, me):
            await r.replica.start()
        await dead.repo.add([OutboxRow(chat_id=1, method="sendMessage", params={"text": "a"}, priority=0)])
        await dead.repo.add([OutboxRow(chat_id=1, method="sendMessage", params={"text": "b"}, priority=0)])
        await live.repo.add([OutboxRow(chat_id=2, method="sendMessage", params={"text": "c"}, priority=0)])
        await OutboxRepo(db).add([OutboxRow(chat_id=3, method="sendMessage", params={"text": "d"}, priority=0)])
        await dead.replica.stop()
        await dead_locks.close()  # that process is gone
        assert await me.replica.sweep() == 3  # a, b and the row nobody owned; not the live one's
        assert [r.params["text"] for r in me.handed] == ["a", "b", "d"]
        assert await me.replica.sweep() == 0 and await live.replica.sweep() == 0  # adopted once
        owners = dict(await db.fetchall("SELECT params, owner FROM outbox_messages ORDER BY outbox_id"))
        assert list(owners.values()) == ["mine0001", "mine0001", "live0001", "mine0001"]
    finally:
        for r in (live, me):
            await r.replica.stop()
        await live_locks.close()
        await my_locks.close()
        await db.close()


class OutboxSide:
    """The outbox side of one replica: its repo (rows carry its id) and its sweep."""

    def __init__(self, db: Any, replica_id: str, locks: AdvisoryLocks) -> None:
        self.handed: list[OutboxRow] = []
        self.repo = OutboxRepo(db, owner=replica_id)
        self.replica = OutboxReplica(replica_id, locks, self.repo, self.handed.extend, every_seconds=3600)


async def test_one_replica_leads_the_workers_and_another_takes_over_when_it_dies() -> None:
    url = pg_server.fresh_database_url()
    gained: list[str] = []

    def on_gain(name: str):
        async def gain() -> None:
            gained.append(name)
        return gain

    first_locks, second_locks = AdvisoryLocks(url), AdvisoryLocks(url)
    first = Leadership(first_locks, on_gain("first"), every_seconds=3600)
    second = Leadership(second_locks, on_gain("second"), every_seconds=3600)
    try:
        await first.start()
        await second.start()
        assert first.is_leader and not second.is_leader and gained == ["first"]
        await second.check()
        assert not second.is_leader  # the leader is alive
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as admin:
            # the leader's lock connection is cut (a network blip, a killed process): the lock is freed
            await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'")
            for _ in range(100):  # the signal is asynchronous: the lock goes when that backend has exited
                if not (await (await admin.execute("SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory'"))
                        .fetchone())[0]:
                    break
                await asyncio.sleep(0.05)
        await second.check()
        assert second.is_leader and gained == ["first", "second"] and second.terms == 1
        await first.check()
        assert not first.is_leader and first_locks.lost == 1  # it noticed, and did not take it back
    finally:
        await first.stop()
        await second.stop()
        await second_locks.close()
