"""Helpers for end-to-end tests: run `python main.py` as a subprocess against the loopback fakes
and talk to it as Telegram users do."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.fakes.telegram_api import StoredMessage, TelegramFake

ROOT = Path(__file__).resolve().parent.parent


class Warp:
    """A wall clock `speed` times faster than real time, shared by a bot subprocess (through
    `tests/timewarp/sitecustomize.py`) and the fakes in the test process."""

    def __init__(self, speed: float) -> None:
        self.speed = float(speed)
        self.t0 = self.r0 = time.time()

    def now(self) -> float:
        return self.t0 + (time.time() - self.r0) * self.speed

    def env(self) -> dict[str, str]:
        return {"PYTHONPATH": str(ROOT / "tests" / "timewarp") + os.pathsep + str(ROOT),
                "TIMEWARP_SPEED": repr(self.speed), "TIMEWARP_T0": repr(self.t0), "TIMEWARP_R0": repr(self.r0)}

    async def until(self, wall: float) -> None:
        """Sleep (real time) until the warped clock reaches `wall`."""
        await asyncio.sleep(max(0.0, (wall - self.now()) / self.speed))


class BotProcess:
    """`python main.py` in a subprocess with the given environment; logs go to a file."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> BotProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "AVE_", "ANTHROPIC_",
                                                                          "MINIMAX_", "AUTOMATON_"))}
        env.update(self.env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "main.py")], cwd=self.log_path.parent, env=env,
                                     stdout=log, stderr=subprocess.STDOUT)
        log.close()
        return self

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait: the bot must shut down gracefully."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("bot did not stop within the timeout after SIGTERM") from None
        return int(self.proc.returncode or 0)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class User:
    """One Telegram user talking to the bot through the fake."""

    def __init__(self, fake: TelegramFake, user_id: int, first_name: str = "Test") -> None:
        self.fake = fake
        self.id = user_id
        self.first_name = first_name

    def bot_messages(self) -> list[StoredMessage]:
        return [m for m in self.fake.messages(self.id) if m.from_bot]

    async def _settle(self, check: Callable[[], bool], timeout: float) -> None:
        await self.fake.wait_for_async(lambda: check() or None, timeout=timeout)
        await asyncio.sleep(0.15)  # let a burst of replies (e.g. edit + new message) land

    async def say(self, text: str, *, timeout: float = 15.0, expect: int = 1) -> list[StoredMessage]:
        """Send a message and return the bot's new messages (at least `expect`)."""
        before = len(self.bot_messages())
        self.fake.user_sends(self.id, text, first_name=self.first_name)
        await self._settle(lambda: len(self.bot_messages()) >= before + expect, timeout)
        return self.bot_messages()[before:]

    async def press(self, message: StoredMessage, text_contains: str, *, timeout: float = 15.0) -> StoredMessage:
        """Press a button; returns the edited message or the newest bot message."""
        data = message.button(text_contains)["callback_data"]
        return await self.press_data(message.message_id, data, timeout=timeout)

    async def press_data(self, message_id: int, data: str, *, timeout: float = 15.0) -> StoredMessage:
        before_msgs = len(self.bot_messages())
        before = self.fake.message(self.id, message_id)
        before_edit = before.edit_date if before else None
        before_text = before.content if before else None
        qid = self.fake.user_presses(self.id, message_id, data)

        def changed() -> bool:
            answered = any(a.callback_query_id == qid for a in self.fake.answered_callbacks)
            now = self.fake.message(self.id, message_id)
            edited = now is not None and (now.edit_date != before_edit or now.content != before_text)
            return answered and (edited or len(self.bot_messages()) > before_msgs)

        try:
            await self._settle(changed, timeout)
        except TimeoutError:
            # Some presses only answer the query (a toast): that is a valid reaction too.
            await self.fake.wait_for_async(
                lambda: any(a.callback_query_id == qid for a in self.fake.answered_callbacks) or None, timeout=2)
        if len(self.bot_messages()) > before_msgs:
            return self.bot_messages()[-1]
        return self.fake.message(self.id, message_id) or self.bot_messages()[-1]

    def answer_for(self, query_id: str) -> Any:
        return next((a for a in self.fake.answered_callbacks if a.callback_query_id == query_id), None)


def wait_until(predicate: Callable[[], Any], timeout: float, step: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise TimeoutError("condition not met in time")
