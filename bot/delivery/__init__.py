"""Nothing lost, nothing doubled: the durable inbox, the outbox and its sender, and the poller.

    Telegram ──getUpdates──▶ Poller ──store──▶ Inbox (inbox_updates) ──per-user, fair──▶ PTB handlers
    handlers / Notifier ──▶ Outbox (outbox_messages) ──▶ Sender ──rate-limited, retried──▶ Telegram
"""

from __future__ import annotations

import warnings
from typing import Any

from telegram.warnings import PTBUserWarning

# Sent through `Bot.do_api_request` on purpose: parsing the echoed message into PTB objects was
# the largest share of the bot's CPU per reply (benchmarks/bot_load.py), and the poller stores
# updates as Telegram sent them. `build_application` silences PTB's "use Bot.x" hint for these.
RAW_METHODS = ("sendMessage", "sendPhoto", "editMessageText", "getUpdates")


def quiet_raw_calls() -> None:
    """Silence PTB's "Please use Bot.x" hint for exactly the RAW_METHODS (idempotent)."""
    for method in RAW_METHODS:
        warnings.filterwarnings("ignore", message=rf"Please use 'Bot\.{method}'", category=PTBUserWarning)


def defaults_of(bot: Any) -> dict[str, Any]:
    """The application's `Defaults` (parse mode, link previews) as raw Bot API parameters.

    PTB fills its Defaults in only for its typed methods; the raw calls read them here.
    """
    defaults = getattr(bot, "defaults", None)
    out: dict[str, Any] = {}
    if defaults is not None:
        if defaults.parse_mode is not None:
            out["parse_mode"] = defaults.parse_mode
        if defaults.link_preview_options is not None:
            out["link_preview_options"] = defaults.link_preview_options.to_dict()
    return out
