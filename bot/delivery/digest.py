"""Coalescing: many queued notifications for one chat become one digest message."""

from __future__ import annotations

from collections.abc import Sequence

from bot.i18n import tn
from bot.render import MAX_TEXT, utf16_len
from storage.outbox_repo import OutboxRow

DIGEST_AT = 4  # this many queued notifications in one chat are sent as one digest
SEPARATOR = "\n\n➖➖➖\n\n"


def header(count: int) -> str:
    """The digest's first line, in the reader's language (the sender sets it)."""
    return tn("📬 <b>{n} update</b>", "📬 <b>{n} updates</b>", count) + "\n\n"


def combine(rows: Sequence[OutboxRow]) -> tuple[str, list[OutboxRow]]:
    """The digest text and the rows it carries: whole messages, oldest first, within Telegram's limit.

    Each message is valid HTML on its own, so their concatenation is too. Rows that do not fit
    stay queued for the next digest; the first row always fits (messages are clipped on queueing).
    """
    taken: list[OutboxRow] = []
    size = utf16_len(header(len(rows)))
    for row in rows:
        text = str(row.params.get("text", ""))
        extra = utf16_len(text) + (utf16_len(SEPARATOR) if taken else 0)
        if taken and size + extra > MAX_TEXT:
            break
        taken.append(row)
        size += extra
    body = SEPARATOR.join(str(r.params.get("text", "")) for r in taken)
    text = header(len(taken)) + body if len(taken) > 1 else body
    if utf16_len(text) > MAX_TEXT:  # one message alone close to the limit: send it as it is
        text = body
    return text, taken
