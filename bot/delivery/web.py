"""The bot's HTTP face: Telegram's webhook (`WEBHOOK_URL`) and `/healthz` for the platform.

Webhook mode: Telegram POSTs each update to the URL's path with the secret token in the
`X-Telegram-Bot-Api-Secret-Token` header; the update is stored in the durable inbox before
Telegram gets its 200, so a replica that dies right after answering loses nothing (the stored
update is processed by this or another replica). A wrong or missing secret gets 403 and
changes nothing; a body that is not an update gets 400 (Telegram would resend it forever after a
5xx); a database that cannot store it gets 503, and Telegram retries.

Served with aiohttp.web: aiohttp is already the Bot API transport's library (no new
dependency) and runs on the bot's own event loop. PTB's webhook server (tornado) was not used:
it puts each update on the Updater's in-memory queue and answers 200 before anything is stored.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MAX_UPDATE_BYTES = 1 << 20  # an update is a few KB; anything near this is not from Telegram
HEALTH_PATH = "/healthz"

Receive = Callable[[list[dict[str, Any]]], Awaitable[None]]
Health = Callable[[], Awaitable[tuple[bool, dict[str, Any]]]]


@dataclass(frozen=True)
class WebhookRoute:
    """Where Telegram posts (`path`), the secret it must send, and what stores an update."""

    path: str
    secret: str
    receive: Receive


class WebServer:
    """`/healthz` always; the webhook route when given. `start()` binds, `stop()` closes."""

    def __init__(self, port: int, health: Health, webhook: WebhookRoute | None = None, *,
                 host: str = "0.0.0.0") -> None:  # a container port: every interface
        self.port = port
        self.host = host
        self._health = health
        self._webhook = webhook
        self._runner: web.AppRunner | None = None
        self.received = 0
        self.refused = 0

    async def start(self) -> None:
        app = web.Application(client_max_size=MAX_UPDATE_BYTES)
        app.router.add_get(HEALTH_PATH, self._healthz)
        if self._webhook is not None:
            app.router.add_post(self._webhook.path, self._update)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        if self.port == 0:  # an ephemeral port (tests): report the one bound
            server = site._server  # aiohttp exposes the bound socket only here
            if server is not None and server.sockets:
                self.port = server.sockets[0].getsockname()[1]
        log.info("HTTP on port %d: %s%s", self.port, HEALTH_PATH,
                 f" and the webhook at {self._webhook.path}" if self._webhook else "")

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _update(self, request: web.Request) -> web.Response:
        route = self._webhook
        assert route is not None
        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), route.secret.encode()):
            self.refused += 1
            log.warning("webhook request without the right secret token from %s: refused", request.remote)
            return web.Response(status=403)
        try:
            update = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError):
            return web.Response(status=400, text="not JSON")
        if not isinstance(update, dict) or not isinstance(update.get("update_id"), int):
            return web.Response(status=400, text="not an update")
        try:
            await route.receive([update])
        except asyncio.CancelledError:
            raise
        except Exception:  # not stored: Telegram must send it again
            log.warning("could not store webhook update %s; Telegram will retry", update["update_id"],
                        exc_info=True)
            return web.Response(status=503)
        self.received += 1
        return web.Response(status=200)

    async def _healthz(self, request: web.Request) -> web.Response:
        try:
            ok, details = await asyncio.wait_for(self._health(), timeout=5.0)
        except TimeoutError:
            ok, details = False, {"error": "health check timed out"}
        return web.json_response({"status": "ok" if ok else "unhealthy", **details}, status=200 if ok else 503)
