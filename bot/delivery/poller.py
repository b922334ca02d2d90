"""Long polling into the durable inbox: an offset is confirmed only after its updates are stored.

Telegram confirms every update below the `offset` of a getUpdates call, so the next call is made
only once `Inbox.receive` has committed the previous batch. Faults: an unreachable Bot API is
retried for ever with backoff (logged at INFO, one line each, no traceback); a rejected token
(401/404) is retried for `token_grace` seconds, then `TokenRejected` ends the process so the
platform's restart policy sees it (never alive but deaf).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from telegram import Bot
from telegram.error import Conflict, InvalidToken, NetworkError, RetryAfter, TelegramError, TimedOut

from bot.delivery import quiet_raw_calls
from bot.delivery.inbox import Inbox
from bot.delivery.policy import backoff

log = logging.getLogger(__name__)
MAX_BACKOFF = 30.0


class TokenRejected(Exception):
    """Telegram kept rejecting the bot token: the process should exit non-zero."""


class RejectionClock:
    """Tracks how long Telegram has been rejecting the token without a success in between."""

    def __init__(self, grace: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.grace = grace
        self._clock = clock
        self._since: float | None = None

    def rejected(self) -> float:
        """Record a rejection; raises `TokenRejected` after `grace` seconds of them; returns seconds left."""
        now = self._clock()
        if self._since is None:
            self._since = now
        left = self.grace - (now - self._since)
        if left <= 0:
            raise TokenRejected("Telegram rejected the bot token (401 Unauthorized) for "
                                f"{self.grace:.0f} s: check TELEGRAM_BOT_TOKEN")
        return left

    def accepted(self) -> None:
        self._since = None


def describe_network(exc: BaseException) -> str:
    """A one-line description of a network failure (no URL: it would contain the token)."""
    text = str(exc).split("\n", 1)[0][:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Poller:
    """`run()` polls until cancelled; raises `TokenRejected` when the token is gone for good."""

    def __init__(self, bot: Bot, inbox: Inbox, *, rejection: RejectionClock, timeout: int = 30,
                 allowed_updates: Sequence[str] | None = None, poll_interval: float = 0.0) -> None:
        self._bot = bot
        quiet_raw_calls()
        self._inbox = inbox
        self._rejection = rejection
        self._timeout = timeout
        self._allowed = list(allowed_updates) if allowed_updates is not None else None
        self._interval = poll_interval
        self.polls = 0

    async def run(self) -> None:
        last = await self._inbox.last_update_id()
        offset = None if last is None else last + 1
        failures = 0
        while True:
            try:
                updates = await self._get(offset)
            except InvalidToken:
                left = self._rejection.rejected()
                failures += 1
                delay = min(_backoff(failures), max(left, 0.5))
                log.warning("Telegram rejected the bot token (401); retrying in %.0f s, giving up in %.0f s",
                            delay, left)
                await asyncio.sleep(delay)
                continue
            except RetryAfter as exc:
                await asyncio.sleep(_seconds(exc.retry_after))
                continue
            except Conflict as exc:
                if "webhook" in str(exc).lower():  # left by webhook mode: remove it, Telegram keeps the updates
                    log.info("a webhook is set for this bot; removing it to poll (its waiting updates come here)")
                    await self._drop_webhook()
                    continue
                failures += 1
                log.warning("another process is polling this bot token (409 Conflict); retrying in %.0f s",
                            _backoff(failures))
                await asyncio.sleep(_backoff(failures))
                continue
            except (NetworkError, TimedOut) as exc:
                failures += 1
                delay = _backoff(failures)
                log.info("Telegram Bot API unreachable (%s); retrying in %.0f s", describe_network(exc), delay)
                await asyncio.sleep(delay)
                continue
            if failures:
                log.info("Telegram Bot API reachable again")
                failures = 0
            self._rejection.accepted()
            self.polls += 1
            if updates:
                await self._store(updates)
                offset = max(int(u["update_id"]) for u in updates) + 1
            elif self._interval:
                await asyncio.sleep(self._interval)

    async def _drop_webhook(self) -> None:
        try:
            await self._bot.delete_webhook(drop_pending_updates=False)
        except TelegramError as exc:
            log.info("could not remove the webhook (%s); retrying", exc)
            await asyncio.sleep(1.0)

    async def _get(self, offset: int | None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"timeout": self._timeout}
        if offset is not None:
            params["offset"] = offset
        if self._allowed is not None:
            params["allowed_updates"] = self._allowed
        result = await self._bot.do_api_request("getUpdates", api_kwargs=params)
        return [u for u in result if isinstance(u, dict)] if isinstance(result, list) else []

    async def _store(self, updates: list[dict[str, Any]]) -> None:
        """Store a batch, retrying while the database is busy: the offset must not move before."""
        for attempt in range(1, 1_000_000):
            try:
                await self._inbox.receive(updates)
                return
            except Exception:
                log.warning("could not store %d update(s); retrying", len(updates), exc_info=attempt == 1)
                await asyncio.sleep(_backoff(attempt))


def _backoff(failures: int) -> float:
    return backoff(failures, base=1.0, cap=MAX_BACKOFF)


def _seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)
