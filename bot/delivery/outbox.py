"""The outbox: every reply, edit, photo and notification is stored first, then sent by the `Sender`.

Priorities: `REPLY` (the answer to a user's own action, a money receipt: never expires) goes
before `NOTIFY` (pushes: expire after their kind's lifetime, coalesced into digests when many are
queued for one chat). A message is keyed (`dedupe_key`) so an update processed twice, or an event
published twice, is sent once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from telegram import InlineKeyboardMarkup

from bot.render import clip
from storage.outbox_repo import OutboxRepo, OutboxRow

REPLY = 0
NOTIFY = 1


class Outbox:
    """Queue Bot API calls durably; `Sender.add` picks them up in memory right after they commit."""

    def __init__(self, repo: OutboxRepo, hand_over: Callable[[list[OutboxRow]], None], *,
                 defaults: dict[str, Any] | None = None, clock: Callable[[], float] = time.time) -> None:
        self._repo = repo
        self._hand_over = hand_over
        self._defaults = dict(defaults or {})
        self._clock = clock

    async def add(self, rows: Sequence[OutboxRow]) -> list[int]:
        """Store rows (known keys are kept as they are) and hand the new ones to the sender."""
        if not rows:
            return []
        ids = await self._repo.add(rows)
        fresh = []
        for row, (outbox_id, new) in zip(rows, ids, strict=True):
            row.outbox_id = outbox_id
            if new:
                fresh.append(row)
        if fresh:
            self._hand_over(fresh)
        return [outbox_id for outbox_id, _ in ids]

    def message(self, chat_id: int, text: str, markup: InlineKeyboardMarkup | None = None, *,
                priority: int = REPLY, key: str | None = None, ttl: float | None = None,
                silent: bool = False) -> OutboxRow:
        """A sendMessage row (HTML, defaults applied); not stored until `add`."""
        params = self._params({"chat_id": chat_id, "text": clip(text)}, markup)
        if silent:
            params["disable_notification"] = True
        return OutboxRow(chat_id, "sendMessage", params, priority, key, expires_at=self._expiry(ttl))

    def photo(self, chat_id: int, png: bytes, caption: str | None = None, *, key: str | None = None) -> OutboxRow:
        """A sendPhoto row carrying the image bytes."""
        params: dict[str, Any] = {"chat_id": chat_id}
        if caption:
            params = self._params(params | {"caption": caption}, None, previews=False)
        return OutboxRow(chat_id, "sendPhoto", params, REPLY, key, file=png)

    def edit(self, chat_id: int, text: str, markup: InlineKeyboardMarkup | None = None, *,
             message_id: int | None = None, edit_of: int | None = None, inline_message_id: str | None = None,
             key: str | None = None) -> OutboxRow:
        """An editMessageText row for a Telegram message id, a queued message (`edit_of`) or an inline message."""
        params = self._params({"text": clip(text)}, markup)
        if inline_message_id is not None:
            params["inline_message_id"] = inline_message_id
        else:
            params["chat_id"] = chat_id
            if message_id is not None:
                params["message_id"] = message_id
        return OutboxRow(chat_id, "editMessageText", params, REPLY, key, edit_of=edit_of)

    def _params(self, params: dict[str, Any], markup: InlineKeyboardMarkup | None, *,
                previews: bool = True) -> dict[str, Any]:
        for name, value in self._defaults.items():
            if previews or name != "link_preview_options":
                params.setdefault(name, value)
        if markup is not None:
            params["reply_markup"] = markup.to_dict()
        return params

    def _expiry(self, ttl: float | None) -> float | None:
        return None if ttl is None else self._clock() + ttl
