"""`Note`: one thing the design room tells the user, as a code and params (never a sentence).

The parser, the crew and the designer return notes (what was understood, what blocked a
strategy, why the AI could not be used); `bot.design_text` words them with the templates of
`bot.messages.design`, so the wording lives in one place and can be translated.

Params are plain values (numbers, the user's own words, token names), nested notes (a refusal's
reasons), sequences of either, or a `CodedError` (a strategy validation error).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, init=False)
class Note:
    """A code (e.g. ``"parse.no_token"``) and its params (e.g. ``limit=30``)."""

    code: str
    params: dict[str, Any]

    def __init__(self, code: str, /, **params: Any) -> None:
        object.__setattr__(self, "code", code)
        # Lists become tuples so a note cannot be changed after it was made.
        object.__setattr__(self, "params", {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()})

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"Note({self.code!r}{', ' + inner if inner else ''})"
