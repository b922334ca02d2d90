"""Run an Application: start-up with retries, the durable inbox fed by the poller or the
webhook, a clean stop.

One sequence for Telegram (`serve`, with signal handlers and an exit code), the console, the test
harness and the load benchmark (`running`): initialize (retried while the Bot API is unreachable;
a rejected token is retried for `token_grace` seconds, then `TokenRejected`) → post_init (opens
the services) → start (the JobQueue) → inbox + intake (long polling, or with WEBHOOK_URL the
HTTP server and setWebhook; /healthz on PORT either way) … stop the intake → let running updates
finish → stop → post_stop → shutdown → post_shutdown (closes the services, draining the outbox).
PTB's own Updater is not used: it confirms getUpdates offsets before the updates are processed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator

from telegram.error import InvalidToken, NetworkError, TimedOut
from telegram.ext import Application

from bot.delivery.policy import backoff
from bot.delivery.poller import RejectionClock, TokenRejected, describe_network
from bot.delivery.runtime import Runtime, make_inbox, plain_inbox
from bot.delivery.web import WebServer
from bot.delivery.webhook import WebhookRefused, start_intake

log = logging.getLogger(__name__)
EXIT_TOKEN_REJECTED = 3
EXIT_POLLING_FAILED = 4


async def _initialize(app: Application, rejection: RejectionClock) -> None:
    """`app.initialize()` (getMe) until it works; logs one line per retry, never the token."""
    failures = 0
    while True:
        try:
            await app.initialize()
            rejection.accepted()
            if failures:
                log.info("Telegram Bot API reachable again")
            return
        except InvalidToken:
            left = rejection.rejected()  # raises TokenRejected once the grace is used up
            failures += 1
            delay = min(backoff(failures + 1, base=1.0), max(left, 0.5))
            log.warning("Telegram rejected the bot token (401); retrying in %.0f s, giving up in %.0f s", delay, left)
        except (NetworkError, TimedOut) as exc:
            failures += 1
            delay = backoff(failures + 1, base=1.0)
            log.info("Telegram Bot API unreachable at start (%s); retrying in %.0f s", describe_network(exc), delay)
        await asyncio.sleep(delay)


@contextlib.asynccontextmanager
async def running(app: Application, *, poll_timeout: int = 30, poll_interval: float = 0.0,
                  token_grace: float | None = None) -> AsyncIterator[Runtime]:
    """Start `app` (long polling into the inbox, `poll_timeout` seconds per poll) and stop it after."""
    settings = app.bot_data.get("settings")
    if token_grace is None:
        token_grace = settings.token_rejected_grace_seconds if settings is not None else 30.0
    rejection = RejectionClock(token_grace)
    try:
        await _initialize(app, rejection)
    except BaseException:
        await app.bot.shutdown()  # the HTTP sessions opened before getMe failed
        raise
    try:
        if app.post_init is not None:
            await app.post_init(app)
        await app.start()
        services = app.bot_data.get("services")
        inbox = make_inbox(app, services) if services is not None else plain_inbox(app)
        await inbox.start()
        runtime = Runtime(app, services, inbox)
        web: WebServer | None = None
        try:
            web = await start_intake(runtime, settings, rejection, poll_timeout=poll_timeout,
                                     poll_interval=poll_interval)
            app.bot_data["runtime"] = runtime
            yield runtime
        finally:
            if runtime.intake is not None:
                runtime.intake.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await runtime.intake
            if web is not None:
                await web.stop()
            await inbox.stop(drain_seconds=settings.shutdown_drain_seconds / 3 if settings is not None else 10.0)
            if app.running:
                await app.stop()
                if app.post_stop is not None:
                    await app.post_stop(app)
    finally:
        await app.shutdown()
        if app.post_shutdown is not None:
            await app.post_shutdown(app)
        await app.bot.shutdown()  # idempotent; covers a post_init that failed half-way


async def serve(app: Application) -> int:
    """Run until SIGINT/SIGTERM; the exit code says why it stopped (0: asked to)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    started = False

    def on_signal() -> None:
        stop.set()
        if not started and main is not None:  # still retrying the start-up: give it up
            main.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    try:
        async with running(app) as runtime:
            started = True
            waiter = asyncio.create_task(stop.wait())
            intake = runtime.intake
            assert intake is not None
            await asyncio.wait({waiter, intake}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            if intake.done() and not intake.cancelled():
                exc = intake.exception()
                if isinstance(exc, TokenRejected):
                    raise exc
                log.error("receiving updates stopped: %s", exc)
                return EXIT_POLLING_FAILED
        log.info("stopped")
        return 0
    except TokenRejected as exc:
        log.error("%s", exc)
        return EXIT_TOKEN_REJECTED
    except WebhookRefused as exc:  # a configuration to fix, not a crash to restart into
        log.error("%s", exc)
        return EXIT_POLLING_FAILED
    except asyncio.CancelledError:
        if not stop.is_set():
            raise
        log.info("stopped before the start-up finished")
        return 0
