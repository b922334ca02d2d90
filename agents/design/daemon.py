"""Running blocking work (a crew run) in a daemon thread from async code.

A daemon thread, not the default executor: a hung LLM call must never block event-loop or
process shutdown (the per-request LLM timeout bounds the thread's lifetime anyway).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, TypeVar

_T = TypeVar("_T")


async def run_in_daemon_thread(func: Callable[[], _T], *, name: str = "strategy-crew") -> _T:
    """Run blocking `func` in a daemon thread and await its result (cancellation leaves it running)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[_T] = loop.create_future()

    def deliver(setter: Callable[[Any], None], value: Any) -> None:
        if not future.done():
            setter(value)

    def target() -> None:
        try:
            result = func()
        except BaseException as exc:
            try:
                loop.call_soon_threadsafe(deliver, future.set_exception, exc)
            except RuntimeError:  # loop already closed: nobody is waiting any more
                pass
            return
        try:
            loop.call_soon_threadsafe(deliver, future.set_result, result)
        except RuntimeError:
            pass

    threading.Thread(target=target, name=name, daemon=True).start()
    return await future
