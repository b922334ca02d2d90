"""The one background rhythm of the delivery pieces: do a step every few tenths of a second."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable


async def every(seconds: float, step: Callable[[], Awaitable[object]], log: logging.Logger, failure: str) -> None:
    """Run `step` every `seconds` until cancelled. A failing step (the database busy for a moment) is
    logged with `failure` and simply tried again next round: its batch waits, nothing is dropped."""
    while True:
        await asyncio.sleep(seconds)
        try:
            await step()
        except Exception:
            log.warning(failure, exc_info=True)


async def stop_task(task: asyncio.Task[None] | None) -> None:
    """Cancel a background task (such as an `every` loop) and wait until it has ended."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
