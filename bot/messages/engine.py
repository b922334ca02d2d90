"""Words for the engine error codes (see `bot.messages`)."""

from __future__ import annotations

TEXTS: dict[str, str] = {
}
