"""The sender: delivers the outbox within Telegram's limits, fairly, and never loses a message.

One loop picks the next message: answers to users' own actions (`REPLY`) before notifications,
chats in turn (round robin), each chat one message at a time (its order kept) and at most
`chat_rate` per second after a small burst, everything together at most `global_rate` per
second (aiolimiter, the rate-limiter extra's library). Failures follow `bot.delivery.policy`.
Outcomes are written back in batches; the rows stay `pending` in the database until then, so
a crash re-sends at most the messages of the last batch (at-least-once after kill -9).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiolimiter import AsyncLimiter
from telegram import Bot, InputFile

from bot import i18n
from bot.delivery import digest, quiet_raw_calls
from bot.delivery.outbox import NOTIFY, REPLY
from bot.delivery.periodic import every
from bot.delivery.policy import Decision, Verdict, decide
from storage.outbox_repo import OutboxRepo, OutboxRow, Outcome

log = logging.getLogger(__name__)
SEND_METHODS = frozenset({"sendMessage", "sendPhoto"})
FLUSH_SECONDS = 0.05


@dataclass
class _Chat:
    """One chat's queue and limits."""

    chat_id: int
    rows: list[OutboxRow] = field(default_factory=list)  # sorted by (priority, outbox_id)
    busy: bool = False
    not_before: float = 0.0
    failures: int = 0
    tokens: float = 0.0
    refilled: float = 0.0

    def head_priority(self) -> int:
        return self.rows[0].priority if self.rows else NOTIFY + 1


def _order(row: OutboxRow) -> tuple[int, int]:
    return row.priority, row.outbox_id


class Sender:
    """Delivers queued rows; `add` is called by `Outbox` after they are stored."""

    def __init__(self, bot: Bot, repo: OutboxRepo, *, on_blocked: Callable[[int], Awaitable[None]],
                 language_of: Callable[[int], str] = lambda _chat: "en", global_rate: float = 30.0,
                 chat_rate: float = 1.0, chat_burst: int = 5, concurrency: int = 8,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        self._bot = bot
        quiet_raw_calls()
        self._repo = repo
        self._on_blocked = on_blocked
        self._language_of = language_of  # the digest's header is in its reader's language
        self._limiter = AsyncLimiter(global_rate, 1.0)
        self._chat_rate = chat_rate
        self._chat_burst = float(chat_burst)
        self._slots = asyncio.Semaphore(concurrency)
        self._clock = clock
        self._wall = wall
        self._chats: dict[int, _Chat] = {}  # insertion order = round-robin order
        self._wake = asyncio.Event()
        self._outcomes: list[Outcome] = []
        self._flush_lock = asyncio.Lock()  # a caller of _flush waits for a write already under way
        self._sent_ids: dict[int, int] = {}  # outbox_id -> Telegram message_id (edits of queued messages)
        self._pause_until = 0.0
        self._global_failures = 0
        self._inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._flush_task: asyncio.Task[None] | None = None
        self.counts: dict[str, int] = {"sent": 0, "failed": 0, "expired": 0, "unknown": 0, "digested": 0,
                                       "retries": 0, "waits": 0}

    # -- queueing ----------------------------------------------------------------------------------
    def add(self, rows: list[OutboxRow]) -> None:
        """Queue stored rows in memory (their order in the chat follows priority, then id)."""
        for row in rows:
            chat = self._chats.get(row.chat_id)
            if chat is None:
                chat = self._chats[row.chat_id] = _Chat(row.chat_id, tokens=self._chat_burst, refilled=self._clock())
            if row.edit_of is not None:  # an edit never overtakes the message it edits
                target = next((r for r in chat.rows if r.outbox_id == row.edit_of), None)
                if target is not None:
                    row.priority = max(row.priority, target.priority)
            bisect.insort(chat.rows, row, key=_order)
        if rows:
            self._idle.clear()
            self._wake.set()

    def queued(self) -> int:
        """Rows waiting in memory (not yet sent or settled)."""
        return sum(len(c.rows) for c in self._chats.values())

    # -- lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        """Load what a previous process left pending, then start delivering."""
        self.add(await self._repo.pending())
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self._run(), name="outbox-sender")
            flush = every(FLUSH_SECONDS, self._flush, log, "could not record outbox outcomes")
            self._flush_task = asyncio.create_task(flush, name="outbox-flush")

    async def wait_idle(self) -> None:
        """Until nothing is queued or in flight and every outcome is written (bound it with `asyncio.timeout`)."""
        while True:
            await self._idle.wait()
            await self._flush()
            if self._idle.is_set() and not self._outcomes:
                return

    @property
    def idle(self) -> bool:
        return self._idle.is_set() and not self._outcomes

    async def stop(self, drain_seconds: float = 5.0) -> None:
        """Deliver what can be delivered within `drain_seconds`, then stop; the rest stays pending."""
        if self._loop_task is None:
            return
        deadline = self._clock() + drain_seconds
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(drain_seconds):
                await self.wait_idle()
        self._loop_task.cancel()  # no new sends; the ones in flight get the rest of the drain time
        with contextlib.suppress(asyncio.CancelledError):
            await self._loop_task
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=max(0.1, deadline - self._clock()))
        for task in list(self._tasks):  # cancelled mid-send: settled 'unknown' by _deliver_head
            task.cancel()
        if self._flush_task is not None:
            self._flush_task.cancel()
        for task in (*list(self._tasks), self._flush_task):
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._loop_task = self._flush_task = None
        await self._flush()

    # -- the loop ----------------------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            now = self._clock()
            if self._pause_until > now:
                await self._sleep(self._pause_until - now)
                continue
            chat, wait = self._pick(now)
            if chat is None:
                self._update_idle()
                await self._sleep(wait)
                continue
            chat.busy = True
            chat.tokens -= 1.0
            await self._slots.acquire()
            await self._limiter.acquire()
            self._inflight += 1
            task = asyncio.create_task(self._deliver(chat))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _pick(self, now: float) -> tuple[_Chat | None, float | None]:
        """The next chat to serve (REPLY heads first, chats in turn) or the time until one is ready."""
        best: _Chat | None = None
        wait: float | None = None
        for chat in list(self._chats.values()):
            if not chat.rows:
                if not chat.busy:
                    del self._chats[chat.chat_id]
                continue
            if chat.busy:
                continue
            chat.tokens = min(self._chat_burst, chat.tokens + (now - chat.refilled) * self._chat_rate)
            chat.refilled = now
            ready_in = max(chat.not_before - now, (1.0 - chat.tokens) / self._chat_rate, 0.0)
            if ready_in > 0:
                wait = ready_in if wait is None else min(wait, ready_in)
                continue
            if best is None or chat.head_priority() < best.head_priority():
                best = chat
                if best.head_priority() == REPLY:
                    break
        if best is not None:  # served: to the back of the round robin
            self._chats[best.chat_id] = self._chats.pop(best.chat_id)
        return best, wait

    async def _sleep(self, seconds: float | None) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()

    def _update_idle(self) -> None:
        if self._inflight == 0 and not any(c.rows for c in self._chats.values()):
            self._idle.set()

    # -- one delivery ------------------------------------------------------------------------------
    async def _deliver(self, chat: _Chat) -> None:
        try:
            await self._deliver_head(chat)
        except Exception:  # a bug here must not stop the sender; the row is retried
            log.exception("outbox delivery failed unexpectedly for chat %s", chat.chat_id)
            chat.not_before = self._clock() + 5.0
        finally:
            chat.busy = False
            self._inflight -= 1
            self._slots.release()
            self._wake.set()

    async def _deliver_head(self, chat: _Chat) -> None:
        now = self._wall()
        expired = [r for r in chat.rows if r.expires_at is not None and now > r.expires_at]
        if expired:  # all of them, so a digest never carries a stale one
            self._finish(chat, expired, *(Outcome(r.outbox_id, "expired", attempts=0) for r in expired))
            if not chat.rows:
                return
        row = chat.rows[0]
        if self._superseded(chat, row):
            self._finish(chat, [row], Outcome(row.outbox_id, "digested", attempts=0))
            return
        rows, method, kwargs = await self._call(chat, row)
        if kwargs is None:
            self._finish(chat, [row], Outcome(row.outbox_id, "failed", error="the message to edit was never sent"))
            return
        try:
            result = await self._bot.do_api_request(method, api_kwargs=kwargs)
        except asyncio.CancelledError:  # shutdown mid-send: Telegram may have it, so never repeat it
            if method in SEND_METHODS:
                self._finish(chat, rows, *(Outcome(r.outbox_id, "unknown", error="interrupted by shutdown")
                                           for r in rows))
            raise
        except Exception as exc:  # classified by the policy; nothing else escapes
            decision = decide(exc, chat.failures + 1)
            if decision.verdict is not Verdict.WAIT:  # a 429 is not a failure of the connection
                chat.failures += 1
            await self._failed(chat, rows, method, decision, exc)
            return
        chat.failures = 0
        self._global_failures = 0
        message_id = result.get("message_id") if isinstance(result, dict) else None
        state = "sent" if len(rows) == 1 else "digested"
        self._finish(chat, rows, *(Outcome(r.outbox_id, state, message_id, attempts=r.attempts + 1) for r in rows))

    async def _call(self, chat: _Chat, row: OutboxRow) -> tuple[list[OutboxRow], str, dict[str, Any] | None]:
        """The rows one call delivers, its method and its parameters (None: an edit without a target)."""
        if row.priority == NOTIFY and row.method == "sendMessage":
            notes = [r for r in chat.rows if r.priority == NOTIFY and r.method == "sendMessage"]
            if len(notes) >= digest.DIGEST_AT:
                with i18n.using(self._language_of(chat.chat_id)):
                    text, taken = digest.combine(notes)
                params = dict(taken[0].params, text=text)
                params.pop("reply_markup", None)
                if not all(r.params.get("disable_notification") for r in taken):
                    params.pop("disable_notification", None)
                return taken, "sendMessage", params
        params = dict(row.params)
        if row.file is not None:
            params["photo"] = InputFile(row.file, filename="chart.png", attach=True)
        if row.edit_of is not None:
            target = self._sent_ids.get(row.edit_of)
            if target is None:
                target = (await self._repo.sent_message_ids([row.edit_of])).get(row.edit_of)
            if target is None:
                return [row], row.method, None
            params["message_id"] = target
        return [row], row.method, params

    @staticmethod
    def _superseded(chat: _Chat, row: OutboxRow) -> bool:
        """An edit with a newer edit of the same message queued behind it is skipped (only the last counts)."""
        if not row.method.startswith("edit"):
            return False
        target = (row.edit_of, row.params.get("message_id"), row.params.get("inline_message_id"))
        return any(r.method == row.method and (r.edit_of, r.params.get("message_id"),
                                               r.params.get("inline_message_id")) == target
                   for r in chat.rows[1:])

    async def _failed(self, chat: _Chat, rows: list[OutboxRow], method: str, decision: Decision,
                      exc: BaseException) -> None:
        verdict, now = decision.verdict, self._clock()
        for row in rows:
            row.attempts += 1
        if verdict is Verdict.SENT:
            self._finish(chat, rows, *(Outcome(r.outbox_id, "sent", attempts=r.attempts) for r in rows))
        elif verdict is Verdict.WAIT:
            self.counts["waits"] += 1
            self._pause_until = max(self._pause_until, now + decision.delay)
            log.info("Telegram asks to slow down: pausing sends for %.0f s", decision.delay)
        elif verdict is Verdict.BLOCKED:
            log.info("user %s blocked the bot; dropping what was queued for them", chat.chat_id)
            dropped = list(chat.rows)
            self._finish(chat, dropped, *(Outcome(r.outbox_id, "failed", error="blocked") for r in dropped))
            await self._on_blocked(chat.chat_id)
        elif verdict is Verdict.FAILED:
            log.warning("Telegram refused %s for chat %s: %s", method, chat.chat_id, exc)
            self._finish(chat, rows, *(Outcome(r.outbox_id, "failed", error=str(exc), attempts=r.attempts)
                                       for r in rows))
        elif verdict is Verdict.UNKNOWN and method in SEND_METHODS:
            log.warning("%s to chat %s may have been delivered (%s); not repeating it", method, chat.chat_id, exc)
            self._finish(chat, rows, *(Outcome(r.outbox_id, "unknown", error=str(exc), attempts=r.attempts)
                                       for r in rows))
        else:  # RETRY, or an UNKNOWN edit (repeating an edit changes nothing)
            self.counts["retries"] += 1
            self._global_failures += 1
            chat.not_before = now + decision.delay
            if self._global_failures >= 3:  # the API itself is down: one pause for every chat
                self._pause_until = max(self._pause_until, now + decision.delay)
            log.info("could not reach Telegram (%s: %s); retrying chat %s in %.1f s",
                     type(exc).__name__, exc, chat.chat_id, decision.delay)

    def _finish(self, chat: _Chat, rows: list[OutboxRow], *outcomes: Outcome) -> None:
        gone = {r.outbox_id for r in rows}
        chat.rows = [r for r in chat.rows if r.outbox_id not in gone]
        for outcome in outcomes:
            self.counts[outcome.state] = self.counts.get(outcome.state, 0) + 1
            if outcome.sent_message_id is not None:
                self._sent_ids[outcome.outbox_id] = outcome.sent_message_id
        self._outcomes.extend(outcomes)
        if len(self._sent_ids) > 50_000:  # only recent messages get edited; older ones are read back
            for key in list(self._sent_ids)[:25_000]:
                del self._sent_ids[key]

    # -- writing outcomes --------------------------------------------------------------------------
    async def _flush(self) -> None:
        async with self._flush_lock:
            if self._outcomes:
                batch, self._outcomes = self._outcomes, []
                try:
                    await self._repo.settle(batch, self._wall())
                except BaseException:
                    self._outcomes[:0] = batch
                    raise
