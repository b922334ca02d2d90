"""The PTB `Application` factory: handlers, error handler, command menu, workers on the JobQueue.

Resources are opened in `post_init` and closed in `post_shutdown`, so the same factory
serves Telegram long polling, the console channel and the tests.
"""

from __future__ import annotations

import asyncio
import html
import logging
import time

from telegram import LinkPreviewOptions, Update
from telegram.constants import ParseMode
from telegram.error import Forbidden, NetworkError, TelegramError, TimedOut
from telegram.ext import Application, ChatMemberHandler, ContextTypes, Defaults, TypeHandler
from telegram.request import BaseRequest

from bot import i18n
from bot.context import AppContext
from bot.delivery import quiet_raw_calls
from bot.delivery.policy import backoff
from bot.delivery.runtime import prune_delivered
from bot.guards import SOMETHING_WRONG, register_user, reply
from bot.handlers import (
    admin,
    automaton,
    backtest,
    bots,
    language,
    portfolio,
    reports,
    settings,
    simulate,
    start,
    stopall,
    withdraw,
)
from bot.http_request import AiohttpRequest
from bot.i18n import N_, t
from bot.services import Services, open_services
from bot.settings import Settings
from engine.market.factory import start_streams

log = logging.getLogger(__name__)
CONSOLE_TOKEN = "0:CONSOLE"
# Connections to the Bot API for replies; bot_load measured 16 best for httpx (8 and 32 were worse)
# and it serves the aiohttp transport well too.
POOL_SIZE = 16
# Every reply is HTML (bot.render escapes what it did not write) and never unfurls a link.
INTERRUPTED_BACKTEST = N_("⚠️ Your backtest was interrupted by a restart of the bot. Send /backtest to run it again.")
DEFAULTS = Defaults(parse_mode=ParseMode.HTML, link_preview_options=LinkPreviewOptions(is_disabled=True))


def build_application(settings: Settings, *, request: BaseRequest | None = None,
                      get_updates_request: BaseRequest | None = None, console: bool = False,
                      services: Services | None = None) -> Application:
    """Build the application. Tests and the console inject `request` objects instead of HTTP."""
    token = CONSOLE_TOKEN if console else settings.telegram_bot_token.get_secret_value()
    builder = (
        Application.builder()
        .token(token)
        .context_types(ContextTypes(context=AppContext))
        .defaults(DEFAULTS)
        .post_init(_post_init)
        .post_shutdown(_post_shutdown)
    )
    if request is not None:
        builder = builder.request(request).get_updates_request(get_updates_request or request)
    else:
        # aiohttp instead of PTB's default httpx: httpcore probes every pooled socket on each
        # request, which was most of the bot's CPU under load (benchmarks/bot_load.py).
        builder = (builder.base_url(settings.telegram_base_url)
                   .base_file_url(settings.telegram_base_url.replace("/bot", "/file/bot", 1))
                   # read_timeout 60 s: far above the Bot API's normal latency, so a slow send
                   # completes instead of ending "unknown" (the outbox never repeats those)
                   .request(AiohttpRequest(connection_pool_size=POOL_SIZE, connect_timeout=10, read_timeout=60,
                                           write_timeout=20, pool_timeout=30))
                   .get_updates_request(AiohttpRequest(connection_pool_size=1, connect_timeout=5, read_timeout=35,
                                                       write_timeout=5, pool_timeout=1)))
    # No AIORateLimiter: every message goes through the outbox's sender, which owns the limits.
    app = builder.build()
    quiet_raw_calls()  # bot.delivery sends these through do_api_request on purpose
    app.bot_data["settings"] = settings
    if services is not None:
        app.bot_data["services"] = services
    register_handlers(app)
    app.add_error_handler(error_handler)
    return app


def register_handlers(app: Application) -> None:
    """User registration first (group -1), then every feature module's handlers; fallbacks go last."""
    language.register(app)
    start.register_edit_guard(app)
    app.add_handler(TypeHandler(Update, register_user), group=-1)
    for module in (start, automaton, portfolio, withdraw, reports, stopall, settings, admin, bots, backtest, simulate):
        module.register(app)
    app.add_handler(ChatMemberHandler(_my_chat_member, ChatMemberHandler.MY_CHAT_MEMBER))
    bots.register_text(app)
    start.register_fallbacks(app)


async def _post_init(app: Application) -> None:
    settings: Settings = app.bot_data["settings"]
    if "services" not in app.bot_data:
        app.bot_data["services"] = await open_services(settings, app.bot)
    services: Services = app.bot_data["services"]
    if services.replica is not None:
        await services.replica.start()  # alive before it queues anything; adopts the dead's messages
    if services.leader is not None:
        await services.leader.start()  # the first replica up runs the background workers
    await services.sender.start()
    await _tell_interrupted(services)
    services.notifier.start()
    start_streams(services.market)
    services.background.spawn(_set_commands(app), name="set-my-commands")
    _schedule_workers(app, services)
    log.info("bot ready (market: %s, LLM: %s, automaton API: %s)",
             "demo" if services.market.is_demo else "AVE", "on" if settings.llm_enabled else "rule-based",
             "on" if settings.automaton_enabled else "off")


async def _tell_interrupted(services: Services) -> None:
    """A backtest the previous process was running when it stopped: its user is told, once (in their language)."""
    outbox = services.outbox
    interrupted = services.interrupted_backtests
    languages = await services.languages.of_users(u for _, u in interrupted) if interrupted else {}
    rows = []
    for backtest_id, user_id in interrupted:
        with i18n.using(languages.get(user_id, i18n.DEFAULT)):
            rows.append(outbox.message(user_id, t(INTERRUPTED_BACKTEST), key=f"bt-interrupted:{backtest_id}"))
    await outbox.add(rows)
    services.interrupted_backtests.clear()


async def _set_commands(app: Application) -> None:
    """The command menu, retried while the Bot API is unreachable (start-up does not wait for it)."""
    for attempt in range(1, 1_000_000):
        try:
            # One menu per language: Telegram shows each user the one of their app's language.
            for code in i18n.LANGUAGES:
                with i18n.using(code):
                    await app.bot.set_my_commands(start.bot_commands(),
                                                  language_code=None if code == i18n.DEFAULT else code)
            return
        except TelegramError as exc:
            delay = backoff(attempt + 1, base=1.0, cap=60.0)
            log.info("could not set the command menu (%s); retrying in %.0f s", type(exc).__name__, delay)
            await asyncio.sleep(delay)


async def _post_shutdown(app: Application) -> None:
    services: Services | None = app.bot_data.get("services")
    if services is not None:
        await services.close()


async def _run_worker(context: AppContext) -> None:
    name = context.job.data if context.job else None
    if isinstance(name, str) and context.services.runs_workers():
        try:
            await context.services.coordinator.run(name)
        except asyncio.CancelledError:
            # shutdown cancels a running job: every money effect is its own transaction, so the
            # interrupted iteration is simply redone by the next process; end the job quietly
            log.info("worker %s interrupted by shutdown", name)


def _schedule_workers(app: Application, services: Services) -> None:
    if app.job_queue is None:
        raise RuntimeError("python-telegram-bot[job-queue] is required")
    for name, interval, first in services.worker_schedule():
        # max_instances=1 + coalesce: a tick that overruns is never started twice concurrently.
        app.job_queue.run_repeating(_run_worker, interval=interval, first=first, name=f"worker:{name}", data=name,
                                    job_kwargs={"max_instances": 1, "coalesce": True, "misfire_grace_time": None})
    app.job_queue.run_repeating(_prune_delivery, interval=3600, first=300, name="delivery:prune",
                                job_kwargs={"max_instances": 1, "coalesce": True})


async def _prune_delivery(context: AppContext) -> None:
    updates, messages = await prune_delivered(context.services.db, time.time())
    prompts = await context.services.shared.prune()
    if updates or messages or prompts:
        log.info("pruned %d finished update(s), %d delivered message(s) and %d expired prompt(s)",
                 updates, messages, prompts)


async def _my_chat_member(update: Update, context: AppContext) -> None:
    """Track users blocking / unblocking the bot so notifications skip them."""
    change = update.my_chat_member
    if change is None or change.chat.type != "private":
        return
    blocked = change.new_chat_member.status in ("kicked", "left")
    await context.services.users.mark_blocked(change.chat.id, blocked)


async def error_handler(update: object, context: AppContext) -> None:
    """Log every unhandled error and tell the user something went wrong; never crash."""
    err = context.error
    if isinstance(err, NetworkError | TimedOut) and not isinstance(update, Update):
        log.warning("network problem talking to Telegram: %s", err)
        return
    log.error("unhandled error while processing an update", exc_info=err)
    if isinstance(update, Update) and update.effective_chat is not None and not isinstance(err, Forbidden):
        try:
            # A message for a pressed button too: buttons are answered before their work starts.
            await reply(update, t(SOMETHING_WRONG))
        except Exception as exc:  # the error reply itself failing must not loop
            log.debug("could not report error to user: %s", html.escape(str(exc)))
