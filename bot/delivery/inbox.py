"""The durable inbox: updates are stored before Telegram's offset is confirmed, processed from there.

`receive` stores a batch (one transaction; an update id seen before is ignored) and schedules it;
the poller confirms the offset only after that. Processing is fair: every user has a FIFO queue,
a user's updates run one at a time (their order kept), and at most `concurrency` users are served
at once, in turn, so one user's flood cannot delay anybody else. A user beyond the flood limit
(`Throttle`) is told to slow down once and the excess updates are skipped. Finished updates are
marked in batches; after a crash the unfinished ones are processed again on start, and their
money effects are keyed by `update_id` (handlers pass `tg:<update_id>`), so they happen once.
Webhook mode (issue 15) hands its requests to the same `receive`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from bot.delivery.periodic import every
from bot.delivery.throttle import Throttle
from storage.inbox_repo import InboxRepo, StoredUpdate

log = logging.getLogger(__name__)
Process = Callable[[dict[str, Any]], Awaitable[None]]
Throttled = Callable[[StoredUpdate, dict[str, Any], bool], Awaitable[None]]
Abandoned = Callable[[StoredUpdate], Awaitable[None]]
FLUSH_SECONDS = 0.05
MAX_QUEUED_PER_USER = 50
MAX_RECOVERIES = 3  # an update still unfinished after this many restarts is given up (a crash loop)


def key_of(update: StoredUpdate) -> int:
    """The queue an update belongs to: its user, or the update alone when it has none."""
    return update.user_id if update.user_id is not None else -update.update_id


def user_of(update: dict[str, Any]) -> int | None:
    """The update's effective user id, else its chat id, else None (read from the raw JSON)."""
    for key, value in update.items():
        if key == "update_id" or not isinstance(value, dict):
            continue
        sender = value.get("from")
        if isinstance(sender, dict) and isinstance(sender.get("id"), int):
            return sender["id"]
        chat = value.get("chat") or (value.get("message") or {}).get("chat")
        if isinstance(chat, dict) and isinstance(chat.get("id"), int):
            return chat["id"]
    return None


class MemoryInboxRepo:
    """`InboxRepo`'s interface without a database, for an application that has none (the console
    channel's generic tests, the echo bot the load benchmark measures against): not durable."""

    def __init__(self) -> None:
        self._rows: dict[int, StoredUpdate] = {}
        self._last: int | None = None

    async def store(self, updates: list[StoredUpdate]) -> list[int]:
        fresh = [u for u in updates if u.update_id not in self._rows and (self._last or -1) < u.update_id]
        for update in fresh:
            self._rows[update.update_id] = update
            self._last = max(self._last or update.update_id, update.update_id)
        return [u.update_id for u in fresh]

    async def finish(self, done: list[int], throttled: list[int], now: float) -> None:
        for update_id in [*done, *throttled]:
            self._rows.pop(update_id, None)

    async def pending(self) -> list[StoredUpdate]:
        return sorted(self._rows.values(), key=lambda u: u.update_id)

    async def recover(self, max_recoveries: int) -> tuple[list[StoredUpdate], list[StoredUpdate]]:
        return await self.pending(), []

    async def last_update_id(self) -> int | None:
        return self._last


class Inbox:
    """Stores, schedules and processes updates; see the module docstring."""

    def __init__(self, repo: InboxRepo | MemoryInboxRepo, process: Process, *, on_throttled: Throttled,
                 throttle: Throttle, on_abandoned: Abandoned | None = None, concurrency: int = 64,
                 clock: Callable[[], float] = time.time) -> None:
        self._repo = repo
        self._process = process
        self._on_throttled = on_throttled
        self._on_abandoned = on_abandoned
        self._throttle = throttle
        self._slots = asyncio.Semaphore(concurrency)
        self._clock = clock
        self._queues: dict[int, deque[StoredUpdate]] = {}
        self._ready: deque[int] = deque()
        self._active: set[int] = set()
        self._scheduled: set[int] = set()  # update ids queued or being processed (a re-delivery is ignored)
        self._done: list[int] = []
        self._unflushed: set[int] = set()  # processed, not marked done in the database yet
        self._throttled: list[int] = []
        self._flush_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._flush_task: asyncio.Task[None] | None = None
        self.processed = 0
        self.skipped = 0

    # -- intake ------------------------------------------------------------------------------------
    async def receive(self, updates: list[dict[str, Any]]) -> None:
        """Store `updates` durably, then schedule the new ones. Raises when the store fails
        (the caller must then not confirm them to Telegram)."""
        stored = [StoredUpdate(int(u["update_id"]), user_of(u), json.dumps(u, ensure_ascii=False))
                  for u in updates if isinstance(u, dict) and isinstance(u.get("update_id"), int)]
        fresh = set(await self._repo.store(stored))
        for update in stored:
            if update.update_id in fresh:
                await self._schedule(update)

    async def last_update_id(self) -> int | None:
        return await self._repo.last_update_id()

    async def _schedule(self, update: StoredUpdate, *, recovered: bool = False) -> None:
        """Queue one update for its user; `recovered` ones (left by a crash) skip the flood limit."""
        if update.update_id in self._scheduled:
            return
        key = key_of(update)
        queue = self._queues.get(key)
        flooding = not self._throttle.admit(key) or (queue is not None and len(queue) >= MAX_QUEUED_PER_USER)
        if flooding and not recovered:
            self.skipped += 1
            self._throttled.append(update.update_id)
            payload = json.loads(update.payload)
            try:
                await self._on_throttled(update, payload, self._throttle.should_warn(key))
            except Exception:  # the warning is a courtesy; the skip stands
                log.warning("could not tell user %s to slow down", key, exc_info=True)
            return
        await self._admitted(key, update)

    async def _admitted(self, key: int, update: StoredUpdate) -> None:
        """An update past the flood limit: into its user's queue (one process serves everyone)."""
        self._enqueue(key, update)

    def _enqueue(self, key: int, update: StoredUpdate) -> None:
        if update.update_id in self._scheduled:
            return
        self._scheduled.add(update.update_id)
        self._idle.clear()
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = deque()
        queue.append(update)
        if key not in self._active and len(queue) == 1:
            self._ready.append(key)
            self._wake.set()

    # -- lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        """Process what a previous process left unfinished, then whatever arrives."""
        left, abandoned = await self._left_over()
        await self._report_abandoned(abandoned)
        if left:
            log.info("processing %d update(s) left unfinished by the previous run", len(left))
        for update in left:
            await self._schedule(update, recovered=True)
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self._run(), name="inbox-dispatch")
            flush = every(FLUSH_SECONDS, self._flush, log, "could not mark processed updates")
            self._flush_task = asyncio.create_task(flush, name="inbox-flush")

    async def _report_abandoned(self, abandoned: list[StoredUpdate]) -> None:
        """Log the updates given up (a crash loop) and tell their users."""
        if abandoned:
            log.error("gave up %d update(s) unfinished after %d recoveries (ids %s): they may be what stops "
                      "the process", len(abandoned), MAX_RECOVERIES, [u.update_id for u in abandoned[:10]])
        for update in abandoned if self._on_abandoned is not None else ():
            try:
                await self._on_abandoned(update)
            except Exception:  # telling the user is a courtesy
                log.warning("could not report abandoned update %s", update.update_id, exc_info=True)

    async def _left_over(self) -> tuple[list[StoredUpdate], list[StoredUpdate]]:
        """(updates to process again, updates given up) that a previous process left."""
        return await self._repo.recover(MAX_RECOVERIES)

    async def join(self) -> None:
        """Until every scheduled update was processed and marked (bound it with `asyncio.timeout`)."""
        await self._idle.wait()
        await self._flush()

    @property
    def idle(self) -> bool:
        return self._idle.is_set()

    async def stop(self, drain_seconds: float = 10.0) -> None:
        """Stop taking new work; let running updates finish (bounded), mark them; the rest stays pending."""
        if self._loop_task is None:
            return
        self._loop_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._loop_task
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=drain_seconds)
        for task in list(self._tasks):
            task.cancel()
        if self._flush_task is not None:
            self._flush_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flush_task
        self._loop_task = self._flush_task = None
        await self._flush()

    # -- dispatch ----------------------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            while not self._ready:
                self._wake.clear()
                await self._wake.wait()
            await self._slots.acquire()
            key = self._ready.popleft()
            update = self._queues[key].popleft()
            self._active.add(key)
            task = asyncio.create_task(self._one(key, update), name=f"update-{update.update_id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _one(self, key: int, update: StoredUpdate) -> None:
        finished = True
        try:
            await self._process(json.loads(update.payload))
            self.processed += 1
        except asyncio.CancelledError:  # shutdown: the update stays pending for the next run
            finished = False
            raise
        except Exception:  # PTB reports handler errors itself; this is a bug in the plumbing
            log.exception("update %s could not be processed", update.update_id)
        finally:
            if finished:
                self._done.append(update.update_id)
                self._unflushed.add(update.update_id)
            self._scheduled.discard(update.update_id)
            self._active.discard(key)
            self._slots.release()
            queue = self._queues.get(key)
            if queue:
                self._ready.append(key)
                self._wake.set()
            else:
                self._drained(key)

    def _drained(self, key: int) -> None:
        """`key`'s queue ran empty (nothing of theirs is running)."""
        self._queues.pop(key, None)
        if not self._active and not self._ready:
            self._idle.set()

    async def _flush(self) -> None:
        async with self._flush_lock:  # a second caller waits for the write already under way
            if self._done or self._throttled:
                done, self._done = self._done, []
                skipped, self._throttled = self._throttled, []
                try:
                    await self._repo.finish(done, skipped, self._clock())
                except BaseException:
                    self._done[:0], self._throttled[:0] = done, skipped
                    raise
                self._unflushed.difference_update(done)
