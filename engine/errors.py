"""The base of every refusal the lower layers report to people.

An error carries a stable `code` (what went wrong, e.g. ``"ledger.insufficient_funds"``) and
`params` (the figures: amounts, limits, names). Only `bot/` turns it into words
(`bot.messages.describe`), so the text can be translated and a second channel can word it its
own way; the lower layers never write a sentence for a user or name a command.
"""

from __future__ import annotations

from typing import Any


class CodedError(Exception):
    """A refused operation that changed nothing, described by `code` and `params`."""

    def __init__(self, code: str, /, **params: Any) -> None:
        super().__init__(code)
        self.code = code
        self.params = params

    def __str__(self) -> str:
        if not self.params:
            return self.code
        return self.code + " (" + ", ".join(f"{k}={v!r}" for k, v in self.params.items()) + ")"
