"""In-process harness for the Telegram layer: the real application against the loopback Bot API fake.

`running_bot(tmp_path)` starts a `TelegramFake`, builds the real application with
`build_application(settings)` pointed at it, runs it with PTB's non-blocking lifecycle
(the same hooks `run_polling` calls: post_init opens the services) and tears it all down.

Waiting is deterministic rather than timed: after a user action the harness waits until
the fake has handed the update over (it is confirmed by the next getUpdates offset) and
PTB's update queue has finished processing it (`update_queue.join()`), so every reply,
edit, retry after a 429 and callback answer caused by that update has happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from telegram.ext import Application

from bot.app import build_application
from bot.delivery.runtime import Runtime
from bot.lifecycle import running
from bot.services import Services
from bot.settings import Settings, load_settings
from tests.fakes.ave_api import AveFake
from tests.fakes.telegram_api import AnsweredCallback, StoredMessage, TelegramFake

ADMIN_ID = 1_000
DEFAULT_TIMEOUT = 20.0
# Tables whose rows hold money, agents, strategy bots or simulations: a refused action
# must leave every one of them exactly as it was. Columns a background poll may touch are
# left out so the snapshot only compares what a user action could change.
SNAPSHOT_TABLES: dict[str, str] = {
    "automaton_agents": "agent_id, user_id, parent_agent_id, generation, status, isolated_balance,"
                        " locked_balance, strategy_bot_id, strategy_json",
    "ledger_entries": "*",
    "money_operations": "*",
    "positions": "*",
    "trades": "*",
    "spawn_decisions": "*",
    "bots": "*",
    "bot_conversations": "*",
    "simulations": "simulation_id, user_id, bot_id, status, strategy_json",
    "backtests": "backtest_id, user_id, bot_id, status",
}


@dataclass(frozen=True)
class PressResult:
    """What one button press produced: the callback answer, the pressed message now, new messages."""

    answer: AnsweredCallback
    message: StoredMessage | None
    new: list[StoredMessage]

    @property
    def last(self) -> StoredMessage | None:
        """The newest message the press sent, else the (possibly edited) pressed message."""
        return self.new[-1] if self.new else self.message


@dataclass
class BotHarness:
    """The running application plus the fake, with user-side helpers."""

    fake: TelegramFake
    app: Application
    settings: Settings
    pressed: list[str] = field(default_factory=list)
    unhandled: list[logging.LogRecord] = field(default_factory=list)

    @property
    def services(self) -> Services:
        """The object graph opened in post_init (manager, bots, db...)."""
        return self.app.bot_data["services"]

    # -- waiting ---------------------------------------------------------------------------------
    async def idle(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Wait until every queued update was fetched and fully processed by the application."""
        await self.fake.wait_for_async(lambda: self.fake.pending_updates == 0, timeout)
        await asyncio.wait_for(self.runtime.settle(), timeout)

    async def drain_notifications(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Wait until every published notification was delivered (or given up on)."""
        await asyncio.wait_for(self.runtime.settle(), timeout)

    @property
    def runtime(self) -> Runtime:
        """The running inbox, poller and outbox (bot.lifecycle.running)."""
        return self.app.bot_data["runtime"]

    def _last_bot_id(self, chat_id: int) -> int:
        messages = self.fake.messages(chat_id)
        return messages[-1].message_id if messages else 0

    def _new_since(self, chat_id: int, after: int) -> list[StoredMessage]:
        return [m for m in self.fake.messages(chat_id) if m.message_id > after]

    # -- user actions ----------------------------------------------------------------------------
    async def send_all(self, user_id: int, text: str, *, chat_type: str = "private",
                       timeout: float = DEFAULT_TIMEOUT, **kwargs: Any) -> list[StoredMessage]:
        """Send `text` as the user and return every message the bot sent in that chat in reply."""
        chat_id = _chat_id(user_id, chat_type)
        before = self._last_bot_id(chat_id)
        self.fake.user_sends(user_id, text, chat_type=chat_type, **kwargs)
        await self.idle(timeout)
        return self._new_since(chat_id, before)

    async def send(self, user_id: int, text: str, *, chat_type: str = "private",
                   timeout: float = DEFAULT_TIMEOUT, **kwargs: Any) -> StoredMessage:
        """Send `text` and return the bot's last reply (AssertionError when it sent none)."""
        replies = await self.send_all(user_id, text, chat_type=chat_type, timeout=timeout, **kwargs)
        assert replies, f"the bot did not reply to {text[:80]!r}"
        return replies[-1]

    async def press(self, user_id: int, message_id: int, data: str, *, chat_id: int | None = None,
                    timeout: float = DEFAULT_TIMEOUT) -> PressResult:
        """Press a button (any callback data, even forged) and wait until the bot answered it."""
        chat_id = user_id if chat_id is None else chat_id
        before = self._last_bot_id(chat_id)
        query_id = self.fake.user_presses(user_id, message_id, data, chat_id=chat_id)
        self.pressed.append(query_id)
        await self.idle(timeout)
        answer = await self.fake.wait_for_async(lambda: _answer(self.fake, query_id), timeout)
        return PressResult(answer, self.fake.message(chat_id, message_id), self._new_since(chat_id, before))

    async def press_button(self, user_id: int, message: StoredMessage, text_contains: str) -> PressResult:
        """Press the button whose label contains `text_contains` on `message`."""
        return await self.press(user_id, message.message_id, message.button(text_contains)["callback_data"])

    # -- assertions ------------------------------------------------------------------------------
    def assert_clean(self) -> None:
        """The bot never made a malformed call and answered every button press."""
        assert self.fake.malformed_calls == [], self.fake.malformed_calls
        assert self.fake.unanswered_callbacks == [], self.fake.unanswered_callbacks
        answered = {a.callback_query_id for a in self.fake.answered_callbacks}
        assert set(self.pressed) <= answered
        # Nothing reached the application's error handler: every bad input was a clear reply.
        assert [r.getMessage() for r in self.unhandled] == []

    async def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row that holds money, agents, bots or simulations (compare before/after)."""
        db = self.services.db
        result: dict[str, list[tuple[Any, ...]]] = {}
        for table, columns in SNAPSHOT_TABLES.items():
            rows = await db.fetchall(f"SELECT {columns} FROM {table} ORDER BY rowid")  # names are constants
            result[table] = [tuple(r) for r in rows]
        return result


class _Collector(logging.Handler):
    """Keeps the ERROR records of `bot.app` (its error handler logs every unhandled exception)."""

    def __init__(self, sink: list[logging.LogRecord]) -> None:
        super().__init__(logging.ERROR)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(record)


def _chat_id(user_id: int, chat_type: str) -> int:
    # Mirrors TelegramFake.user_sends' default chat ids.
    if chat_type == "private":
        return user_id
    return -user_id if chat_type == "group" else -(10**12 + user_id)


def _answer(fake: TelegramFake, query_id: str) -> AnsweredCallback | None:
    return next((a for a in fake.answered_callbacks if a.callback_query_id == query_id), None)


def bot_settings(fake: TelegramFake, tmp_path: Path, *, ave: AveFake | None = None,
                 **overrides: Any) -> Settings:
    """Settings for the app under test: the fake Bot API, a temp DB, quiet workers, one admin."""
    values: dict[str, Any] = {
        "telegram_bot_token": fake.token,
        "telegram_base_url": f"{fake.base_url}/bot",
        "database_url": f"sqlite:///{tmp_path / 'bot.db'}",
        "admin_user_ids": str(ADMIN_ID),
        "agent_tick_seconds": 3600,  # workers stay out of the way unless a test drives them
        "backtest_workers": 1,
        # Tests press and send fast on purpose; the flood limit has its own tests (test_delivery_faults).
        "user_burst": 10_000,
    }
    if ave is not None:
        values.update(ave_api_key="test-pro-key", ave_api_plan="pro", ave_base_url=ave.base_url)
    values.update(overrides)
    return load_settings(_env_file=None, **values)


@contextlib.asynccontextmanager
async def run_app(fake: TelegramFake, settings: Settings, *, workers: bool = False) -> AsyncIterator[BotHarness]:
    """Run the real application against an already started fake (the run_polling lifecycle).

    The background workers are scheduled as in production but paused unless `workers` is
    True: their first run comes ~1 s after start, whatever the tick, and a trade opened by
    the agent loop in the middle of a test would make its assertions timing-dependent.
    """
    app = build_application(settings)
    async with running(app, poll_timeout=1):
        if not workers and app.job_queue is not None:
            for job in app.job_queue.jobs():
                job.enabled = False
        harness = BotHarness(fake=fake, app=app, settings=settings)
        collector = _Collector(harness.unhandled)
        logging.getLogger("bot.app").addHandler(collector)
        try:
            yield harness
        finally:
            logging.getLogger("bot.app").removeHandler(collector)


@contextlib.asynccontextmanager
async def running_bot(tmp_path: Path, *, ave: AveFake | None = None, fake: TelegramFake | None = None,
                      workers: bool = False, **overrides: Any) -> AsyncIterator[BotHarness]:
    """Start a fake (unless given), build settings and run the app; everything stops on exit."""
    own = fake is None
    server = TelegramFake().start() if fake is None else fake
    try:
        settings = bot_settings(server, tmp_path, ave=ave, **overrides)
        async with run_app(server, settings, workers=workers) as harness:
            yield harness
    finally:
        if own:
            server.stop()
