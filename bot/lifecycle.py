"""Run an Application the way `run_polling` does, without blocking or installing signal handlers.

`Application.initialize()` alone does not call `post_init` (where the services are opened),
so every non-blocking runner (the console, the test harness, the load benchmark) goes through
this one sequence: initialize → post_init → start polling → start … stop → post_stop →
shutdown → post_shutdown.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from telegram import Update
from telegram.ext import Application


@contextlib.asynccontextmanager
async def running(app: Application, **polling: Any) -> AsyncIterator[Application]:
    """Start `app` with long polling (keyword arguments go to `start_polling`) and stop it after."""
    if app.updater is None:
        raise ValueError("the application needs an Updater to poll")
    polling.setdefault("poll_interval", 0)
    polling.setdefault("allowed_updates", Update.ALL_TYPES)
    await app.initialize()
    try:
        if app.post_init is not None:
            await app.post_init(app)
        await app.updater.start_polling(**polling)
        await app.start()
        try:
            yield app
        finally:
            if app.updater.running:
                await app.updater.stop()
            if app.running:
                await app.stop()
                if app.post_stop is not None:
                    await app.post_stop(app)
    finally:
        await app.shutdown()
        if app.post_shutdown is not None:
            await app.post_shutdown(app)
