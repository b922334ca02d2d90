"""The user side of the console channel: typed lines become Bot API updates, served to getUpdates.

`/command` lines carry a `bot_command` entity, a bare number presses that button of the last
inline keyboard, a leading `'` sends the rest verbatim. Piped input is paced like a person
typing: a line is turned into an update only after the bot has finished handling the previous
one (`settle`, set to the runtime's `settle`), so `/start` followed by `1` presses a button of
the reply to `/start`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bot.console.render import number_buttons, utf16_len
from bot.console.store import MessageStore, now, private_chat
from bot.console.terminal import ConsoleOutput, is_quit

_COMMAND_RE = re.compile(r"^/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{1,64})?(?=\s|$)")


class ConsoleUpdates:
    """Lines in (`feed`), updates out (`get_updates`), with the Bot API's offset confirmation.

    `busy` counts updates handed to the bot whose handling has not finished: a message the bot
    sends while it is 0 was pushed (a notification), not an answer to the user.
    """

    def __init__(self, output: ConsoleOutput, store: MessageStore, user: dict[str, Any], *,
                 echo_input: bool = False, settle_timeout: float = 5.0) -> None:
        self.output = output
        self.store = store
        self.user = user
        self.echo_input = echo_input
        self.settle: Callable[[], Awaitable[object]] | None = None
        self.settle_timeout = settle_timeout
        self.finished = asyncio.Event()
        self.open_queries: set[str] = set()  # callback queries not answered yet
        self.busy = 0
        self._inbox: asyncio.Queue[str | None] = asyncio.Queue()
        self._pending: list[dict[str, Any]] = []  # delivered, not yet confirmed by an offset
        # Update ids go on from run to run (milliseconds since the epoch at start): the inbox keys
        # updates by id, so a second console session starting at 1 again would find its updates
        # "already received" in the same database and answer nothing.
        self._next_update_id = int(time.time() * 1000)
        self._next_query_id = 1
        self._trackers: set[asyncio.Task[None]] = set()

    def feed(self, line: str | None) -> None:
        """Queue one typed line; None means end of input. Call on the event loop thread."""
        self._inbox.put_nowait(line)

    async def _settle(self) -> None:
        if self.settle is None:
            return
        # A handler that runs for minutes (a long backtest) must not freeze the console.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.settle(), self.settle_timeout)

    async def _track(self, count: int) -> None:
        try:
            await self._settle()
        finally:
            self.busy -= count

    def _confirm(self, offset: int | None) -> None:
        """Drop updates below `offset`; the Updater has queued them, so start tracking their handling."""
        if offset is None:
            return
        confirmed = [u for u in self._pending if u["update_id"] < offset]
        if not confirmed:
            return
        self._pending = [u for u in self._pending if u["update_id"] >= offset]
        task = asyncio.get_running_loop().create_task(self._track(len(confirmed)))
        self._trackers.add(task)
        task.add_done_callback(self._trackers.discard)

    async def get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Answer getUpdates: unconfirmed updates, else wait up to `timeout` for the next line."""
        offset = params.get("offset")
        self._confirm(int(offset) if offset is not None else None)
        if self._pending:
            return self._pending[: int(params.get("limit") or 100)]
        timeout = float(params.get("timeout") or 0)
        if self.finished.is_set():
            await asyncio.sleep(min(timeout, 1.0))
            return []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            try:
                if remaining > 0:
                    line = await asyncio.wait_for(self._inbox.get(), remaining)
                else:
                    line = self._inbox.get_nowait()
            except (TimeoutError, asyncio.QueueEmpty):
                return []
            await self._settle()
            if is_quit(line):
                self.finished.set()
                return []
            update = self._update_from_line(str(line))
            if update is not None:
                self._pending.append(update)
                self.busy += 1
                return [update]

    def _update_from_line(self, line: str) -> dict[str, Any] | None:
        text = line.strip()
        if not text:
            return None
        if self.echo_input:
            self.output.show(f"» {text}")
        if text.isascii() and text.isdigit():
            return self._press(int(text))
        if text.startswith("'") and len(text) > 1:
            text = text[1:]
        message: dict[str, Any] = {"message_id": self.store.new_id(), "from": dict(self.user),
                                   "chat": private_chat(self.user), "date": now(), "text": text}
        command = _COMMAND_RE.match(text)
        if command:
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": utf16_len(command.group(0))}]
        self.store.add(message)
        return {"update_id": self._new_update_id(), "message": message}

    def _press(self, number: int) -> dict[str, Any] | None:
        message = self.store.last_keyboard(self.user["id"])
        if message is None:
            self.output.show(f"⚠ no button {number}: there is no keyboard to press")
            return None
        buttons = number_buttons(message.get("reply_markup"))
        if not 1 <= number <= len(buttons):
            self.output.show(f"⚠ no button {number}: the last keyboard has buttons 1-{len(buttons)}")
            return None
        button = buttons[number - 1]
        if button.url:
            self.output.show(f"🔗 {button.text}: opens {button.url}")
            return None
        if button.callback_data is None:
            self.output.show(f"⚠ button {number} is a {button.kind} button, which the console cannot press")
            return None
        query_id = str(self._next_query_id)
        self._next_query_id += 1
        self.open_queries.add(query_id)
        query = {"id": query_id, "from": dict(self.user), "message": json.loads(json.dumps(message)),
                 "chat_instance": f"console-{self.user['id']}", "data": button.callback_data}
        return {"update_id": self._new_update_id(), "callback_query": query}

    def _new_update_id(self) -> int:
        self._next_update_id += 1
        return self._next_update_id - 1

    async def close(self) -> None:
        """Cancel the handling trackers (run_console calls this after the application stopped)."""
        for task in list(self._trackers):
            task.cancel()
        for task in list(self._trackers):
            with contextlib.suppress(asyncio.CancelledError):
                await task
