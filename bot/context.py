"""Typed handler context: handlers reach the services through `context.services`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from telegram.ext import CallbackContext, ExtBot

if TYPE_CHECKING:
    from bot.services import Services


class AppContext(CallbackContext[ExtBot, dict, dict, dict]):
    """PTB's context with typed access to the object graph built in `bot.services`."""

    @property
    def services(self) -> Services:
        return self.bot_data["services"]
