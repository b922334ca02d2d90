"""The design room's results in words: the parser's echo and refusals, the designer's replies.

The parser, the crew and the designer return data (`agents.design.notes.Note` codes with params,
the user's own leftover words, which path answered); this module words it with the templates of
`bot.messages.design` and describes the strategy itself (`bot.strategy_text`), so a reply always
ends with what the returned strategy really does. All text is plain: the caller escapes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agents.design.designer import DesignPath, DesignResult
from agents.design.notes import Note
from agents.design.parser import ParseResult
from bot.messages import word
from bot.strategy_text import describe_strategy


def note_text(note: Note) -> str:
    """One note in words (`bot.messages.word`)."""
    return word(note.code, note.params)


def _say(code: str, **params: Any) -> str:
    return note_text(Note(code, **params))


def ignored_text(pieces: Sequence[str]) -> str:
    """ "I ignored: 'x'; 'y'." for harmless leftovers (the user's own words), "" when there are none."""
    if not pieces:
        return ""
    return _say("parse.ignored", pieces="; ".join(_say("parse.ignored_piece", words=p) for p in pieces))


def parse_text(result: ParseResult) -> str:
    """What the parser made of a message: why nothing came out, or the echo of what it understood
    followed by what it ignored."""
    if result.strategy is None:
        return note_text(result.failure) if result.failure is not None else _say("design.no_strategy")
    echo = _say("parse.understood", understood=list(result.understood)) if result.understood else _say(
        "parse.understood_nothing")
    ignored = ignored_text(result.not_understood)
    return f"{echo} {ignored}" if ignored else echo


def design_text(result: DesignResult) -> str:
    """The designer's answer in words: why there is no strategy, or the notes, then the strategy
    described (after the AI's summary on the AI path; followed by what was ignored on the parser's)."""
    strategy = result.strategy
    if strategy is None:
        return note_text(result.error) if result.error is not None else _say("design.no_strategy")
    if result.path is DesignPath.LLM:
        line = _say("design.strategy_line", description=describe_strategy(strategy))
        body = f"{result.summary}\n\n{line}" if result.summary else line
    else:
        ignored = ignored_text(result.ignored)
        body = describe_strategy(strategy) + (f" {ignored}" if ignored else "")
    return "\n\n".join([*(note_text(n) for n in result.notes), body])
