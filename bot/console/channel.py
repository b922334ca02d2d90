"""The console channel's wiring: PTB's request seam answered by `ConsoleBotApi`, and the run loop."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from telegram.ext import Application
from telegram.request import BaseRequest, RequestData

from bot.console.api import ConsoleBotApi
from bot.console.checks import ApiError, read_upload
from bot.console.terminal import ConsoleOutput, LineReader, isatty
from bot.lifecycle import running

BANNER = (
    "Console channel: the bot runs here, nothing goes to Telegram.\n"
    "Type /start or /help. A number presses that button of the last keyboard "
    "('42 sends the text 42). quit, exit or Ctrl-D ends."
)


class ConsoleRequest(BaseRequest):
    """PTB's HTTP seam answered in-process by a `ConsoleBotApi` (one instance per PTB request slot)."""

    def __init__(self, api: ConsoleBotApi) -> None:
        self.api = api

    @property
    def read_timeout(self) -> float | None:
        """No network, so no read timeout; getUpdates honours its own `timeout` parameter."""
        return None

    async def initialize(self) -> None:
        """Nothing to open: there is no connection pool."""

    async def shutdown(self) -> None:
        """Nothing to close."""

    async def do_request(self, url: str, method: str, request_data: RequestData | None = None,
                         read_timeout: object = None, write_timeout: object = None,
                         connect_timeout: object = None, pool_timeout: object = None) -> tuple[int, bytes]:
        """Answer `.../bot<token>/<method>` with the Bot API JSON envelope and HTTP status."""
        name = url.rsplit("/", 1)[-1]
        params: dict[str, Any] = dict(request_data.parameters) if request_data is not None else {}
        files: dict[str, tuple[str, bytes]] = {}
        if request_data is not None and request_data.contains_files:
            for part, field_tuple in request_data.multipart_data.items():
                files[part] = (field_tuple[0], read_upload(field_tuple[1]))
        try:
            result = await self.api.call(name, params, files)
        except ApiError as exc:
            body = {"ok": False, "error_code": exc.status, "description": exc.description}
            return exc.status, json.dumps(body).encode()
        return 200, json.dumps({"ok": True, "result": result}).encode()


async def run_console(build_app: Callable[[BaseRequest, BaseRequest], Application], *, user_id: int = 1,
                      stdin: TextIO | None = None, stdout: TextIO | None = None,
                      media_dir: Path = Path("data/console"), settle_timeout: float = 5.0) -> None:
    """Run the application built by `build_app(request, get_updates_request)` on the console.

    Runs the same lifecycle as `Application.run_polling` (post_init, post_stop and
    post_shutdown included) without its signal handlers or blocking loop. Returns after
    `quit`/`exit` or end of input, once the bot has handled every earlier line (at most
    `settle_timeout` seconds per line). `stdin`/`stdout` default to the process's.
    """
    stdin = sys.stdin if stdin is None else stdin
    stdout = sys.stdout if stdout is None else stdout
    interactive = stdin is sys.stdin and stdout is sys.stdout and isatty(stdin) and isatty(stdout)
    output = ConsoleOutput(stdout, ansi=isatty(stdout) and "NO_COLOR" not in os.environ, interactive=interactive)
    api = ConsoleBotApi(output, user_id=user_id, media_dir=media_dir, echo_input=not interactive,
                        settle_timeout=settle_timeout)
    app = build_app(ConsoleRequest(api), ConsoleRequest(api))
    updates = api.updates
    loop = asyncio.get_running_loop()

    def deliver(line: str | None) -> bool:
        try:
            loop.call_soon_threadsafe(updates.feed, line)
        except RuntimeError:  # the loop is closed: the console has ended
            return False
        return True

    stdout.write(BANNER + "\n")
    stdout.flush()
    try:
        async with running(app, poll_timeout=30) as runtime:
            updates.settle = runtime.settle
            LineReader(stdin, deliver, output=output).start()
            await updates.finished.wait()
    finally:
        await updates.close()
        if interactive:
            stdout.write("\n")
            stdout.flush()
