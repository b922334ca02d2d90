"""The running delivery of one application: the inbox fed by the poller, processed through PTB."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from telegram import Update
from telegram.error import TelegramError
from telegram.ext import Application

from bot import i18n
from bot.delivery.cluster import ClusterInbox
from bot.delivery.inbox import Inbox, MemoryInboxRepo
from bot.delivery.scope import Scope, entered
from bot.delivery.throttle import Throttle
from bot.i18n import N_, t
from storage.db import Database
from storage.inbox_repo import InboxRepo, StoredUpdate
from storage.outbox_repo import OutboxRepo

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger(__name__)
# Answers to updates that are never handed to PTB (so no handler set their language): each is
# worded in its user's language when it is answered.
SLOW_DOWN = N_("🐢 You're sending messages faster than I can answer, so I skipped some of them. "
               "Wait a few seconds, then try again.")
SLOW_TOAST = N_("🐢 Slow down a little, please.")
GAVE_UP = N_("⚠️ I could not finish one of your last messages: it kept failing, so I stopped trying. "
             "A money operation it asked for happened once or not at all: check /ai_portfolio.")
INBOX_KEEP_SECONDS = 2 * 86_400  # finished updates: long enough to investigate a report
OUTBOX_KEEP_SECONDS = 7 * 86_400  # delivered messages: the edit targets of a week-old screen


@dataclass
class Runtime:
    """What `bot.lifecycle.running` started; `settle` is how tests and the console wait."""

    app: Application
    services: Services | None  # None: a plain PTB application without the product's services
    inbox: Inbox
    intake: asyncio.Task[None] | None = None  # the poller, or the webhook's watcher
    mode: str = "polling"  # or "webhook"
    web_port: int | None = None  # where /healthz (and the webhook) listen, when they do

    async def settle(self) -> None:
        """Until every received update, the work it started and every message it caused are done."""
        services = self.services
        while True:
            await self.inbox.join()
            if services is None:
                return
            await services.background.join()
            await services.notifier.flush()
            await services.sender.wait_idle()
            if self.inbox.idle and not services.background.running and services.sender.idle:
                return


async def prune_delivered(db: Database, now: float) -> tuple[int, int]:
    """Forget finished inbox and outbox rows past their retention; returns (updates, messages)."""
    updates = await InboxRepo(db).prune(now - INBOX_KEEP_SECONDS)
    messages = await OutboxRepo(db).prune(now - OUTBOX_KEEP_SECONDS)
    return updates, messages


def plain_inbox(app: Application) -> Inbox:
    """An in-memory inbox for a PTB application without the product's services."""

    async def process(payload: dict[str, Any]) -> None:
        await app.process_update(Update.de_json(payload, app.bot))

    async def ignore(update: StoredUpdate, payload: dict[str, Any], warn: bool) -> None:
        return None

    return Inbox(MemoryInboxRepo(), process, on_throttled=ignore, throttle=Throttle(burst=10**9))


def make_inbox(app: Application, services: Services) -> Inbox:
    """The inbox that hands each stored update to PTB inside its delivery scope."""
    settings = services.settings
    languages = services.languages  # flood answers use the cached language: no query per flooding update

    async def process(payload: dict[str, Any]) -> None:
        update = Update.de_json(payload, app.bot)
        with entered(Scope(services.outbox, update.update_id)):
            await app.process_update(update)

    def worded(text: str, language: str) -> str:
        with i18n.using(language):
            return t(text)

    async def throttled(update: StoredUpdate, payload: dict[str, Any], warn: bool) -> None:
        language = languages.cached(update.user_id or 0)
        query = payload.get("callback_query")
        if isinstance(query, dict) and isinstance(query.get("id"), str):
            try:  # stop the spinner; an answer is only useful now, so it is not queued
                await app.bot.answer_callback_query(query["id"], worded(SLOW_TOAST, language))
            except TelegramError:
                log.debug("could not answer a throttled callback query")
        if warn and update.user_id is not None and update.user_id > 0:
            outbox = services.outbox
            text = worded(SLOW_DOWN, language)
            await outbox.add([outbox.message(update.user_id, text, key=f"slow:{update.update_id}")])

    async def abandoned(update: StoredUpdate) -> None:
        if update.user_id is not None and update.user_id > 0:
            outbox = services.outbox
            # recovered at start-up, before any update of theirs filled the cache: read it
            language = (await languages.of_users([update.user_id]))[update.user_id]
            text = worded(GAVE_UP, language)
            await outbox.add([outbox.message(update.user_id, text, key=f"gave-up:{update.update_id}")])

    throttle = Throttle(burst=settings.user_burst, per_minute=settings.user_updates_per_minute)
    # webhook mode on PostgreSQL: replicas behind a balancer share the inbox; per-user order under
    # cluster-wide locks. Long polling has one consumer per token, so one process serves everyone.
    if services.locks is not None and settings.webhook_url:
        return ClusterInbox(InboxRepo(services.db), services.locks, process,
                            on_throttled=throttled, throttle=throttle, on_abandoned=abandoned)
    return Inbox(InboxRepo(services.db), process, on_throttled=throttled, throttle=throttle, on_abandoned=abandoned)
