"""How updates come in: long polling (the default), or the webhook when WEBHOOK_URL is set.

Webhook mode, per replica: the secret token is agreed through the database (the first replica
makes a random one; every replica then registers the same URL and secret, so they never undo
each other), the HTTP server starts, then `setWebhook` (retried while the Bot API is
unreachable). A watcher checks `getWebhookInfo` every few minutes: a webhook that someone removed
or pointed elsewhere is set again, and Telegram's last delivery error is logged. Long polling
removes a webhook left from an earlier deployment first (Telegram then hands out the updates it
kept), so switching modes loses nothing.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import TYPE_CHECKING, Any

from telegram import Update
from telegram.error import BadRequest, NetworkError, RetryAfter, TelegramError, TimedOut

from bot.delivery.policy import backoff
from bot.delivery.poller import Poller, RejectionClock, describe_network
from bot.delivery.web import WebhookRoute, WebServer
from storage.db import ping

if TYPE_CHECKING:
    from bot.delivery.runtime import Runtime
    from bot.settings import Settings

log = logging.getLogger(__name__)
SECRET_NAME = "webhook_secret"
WATCH_SECONDS = 300.0


class WebhookRefused(Exception):
    """Telegram refused WEBHOOK_URL (e.g. a host it cannot resolve, a port it does not allow)."""


async def start_intake(runtime: Runtime, settings: Settings | None, rejection: RejectionClock, *,
                       poll_timeout: int, poll_interval: float) -> WebServer | None:
    """Start the poller or the webhook (and /healthz when a port is configured) for `runtime`;
    returns the HTTP server to stop, if one was started."""
    app, services = runtime.app, runtime.services
    port = settings.listen_port if settings is not None else None
    route = None
    if settings is not None and settings.webhook_url:
        if services is None:
            raise RuntimeError("webhook mode needs the product's services (the shared secret)")
        secret = await services.shared.agreed(SECRET_NAME, secrets.token_urlsafe(32))
        route = WebhookRoute(settings.webhook_path, secret, runtime.inbox.receive)
    web = None
    if port is not None:
        web = WebServer(port, lambda: health(runtime), route)
        await web.start()
        runtime.web_port = web.port
    try:
        if route is None:
            poller = Poller(app.bot, runtime.inbox, rejection=rejection, timeout=poll_timeout,
                            allowed_updates=Update.ALL_TYPES, poll_interval=poll_interval)
            runtime.intake = asyncio.create_task(poller.run(), name="poller")
            return web
        assert settings is not None
        runtime.mode = "webhook"
        await register(app.bot, settings.webhook_url, route.secret, settings.webhook_max_connections)
        runtime.intake = asyncio.create_task(
            watch(app.bot, settings.webhook_url, route.secret, settings.webhook_max_connections), name="webhook")
        return web
    except BaseException:
        if web is not None:
            await web.stop()
        raise


async def register(bot: Any, url: str, secret: str, max_connections: int) -> None:
    """`setWebhook` until Telegram accepts it; a refusal (a bad URL) raises `WebhookRefused`."""
    failures = 0
    while True:
        try:
            await bot.set_webhook(url=url, secret_token=secret, allowed_updates=Update.ALL_TYPES,
                                  max_connections=max_connections, drop_pending_updates=False)
            log.info("webhook set: Telegram posts updates to %s", url)
            return
        except BadRequest as exc:
            raise WebhookRefused(f"Telegram refused WEBHOOK_URL {url}: {exc.message}") from None
        except RetryAfter as exc:
            delay = float(exc.retry_after if isinstance(exc.retry_after, int | float)
                          else exc.retry_after.total_seconds())
        except (NetworkError, TimedOut) as exc:
            failures += 1
            delay = backoff(failures + 1, base=1.0)
            log.info("could not set the webhook (%s); retrying in %.0f s", describe_network(exc), delay)
        await asyncio.sleep(delay)


async def watch(bot: Any, url: str, secret: str, max_connections: int, every: float = WATCH_SECONDS) -> None:
    """Keep the webhook ours: set it again when it changed; log Telegram's delivery errors."""
    last_error = None
    while True:
        await asyncio.sleep(every)
        try:
            info = await bot.get_webhook_info()
        except TelegramError as exc:
            log.info("could not read the webhook's state: %s", exc)
            continue
        if info.url != url:
            log.warning("the webhook was changed to %r outside this bot; setting it back", info.url)
            await register(bot, url, secret, max_connections)
        if info.last_error_message and info.last_error_date != last_error:
            last_error = info.last_error_date
            log.warning("Telegram could not deliver to the webhook: %s (%d update(s) waiting)",
                        info.last_error_message, info.pending_update_count)


async def health(runtime: Runtime) -> tuple[bool, dict[str, Any]]:
    """Healthy when updates are coming in (the intake runs) and the database answers."""
    intake = runtime.intake
    details: dict[str, Any] = {"mode": runtime.mode, "processed": runtime.inbox.processed,
                               "intake": "running" if intake is not None and not intake.done() else "stopped"}
    ok = details["intake"] == "running"
    if runtime.services is not None:
        try:
            await ping(runtime.services.db)
            details["database"] = "ok"
        except Exception as exc:  # the reason, not a stack: this is what the platform shows
            details["database"] = f"unreachable: {type(exc).__name__}"
            ok = False
    return ok, details
