"""The design room's results in words: the parser's echo and refusals, the designer's replies.

The parser, the crew and the designer return data (`agents.design.notes.Note` codes with params,
the user's own leftover words, which path answered); this module words it with the templates of
`bot.messages.design` and describes the strategy itself (`bot.strategy_text`), so a reply always
ends with what the returned strategy really does. All text is plain: the caller escapes it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from agents.design.designer import DesignPath, DesignResult
from agents.design.notes import Note
from agents.design.parser import ParseResult
from bot.messages import FALLBACK, describe
from bot.messages.design import TEXTS
from bot.strategy_text import describe_strategy
from engine.errors import CodedError
from engine.strategy import Strategy

log = logging.getLogger(__name__)

Describe = Callable[[Strategy], str]


def note_text(note: Note) -> str:
    """One note in words. Note params are worded first; sequences of notes are joined with "; ",
    sequences of words with ", "; a coded error param is described."""
    template = TEXTS.get(note.code)
    if template is None:
        log.error("no text for design code %s", note.code)
        return FALLBACK
    try:
        return template.format(**{k: _param(v) for k, v in note.params.items()})
    except (KeyError, IndexError, ValueError) as exc:
        log.error("text for %s does not fit its params %s: %s", note.code, note.params, exc)
        return FALLBACK


def _param(value: Any) -> Any:
    if isinstance(value, Note):
        return note_text(value)
    if isinstance(value, CodedError):
        return describe(value)
    if isinstance(value, list | tuple):
        if value and all(isinstance(v, Note) for v in value):
            return "; ".join(note_text(v) for v in value)
        return ", ".join(str(v) for v in value)
    return value


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


def design_text(result: DesignResult, describe_as: Describe = describe_strategy) -> str:
    """The designer's answer in words: why there is no strategy, or the notes, then the strategy
    described (after the AI's summary on the AI path; followed by what was ignored on the parser's)."""
    strategy = result.strategy
    if strategy is None:
        return note_text(result.error) if result.error is not None else _say("design.no_strategy")
    if result.path is DesignPath.LLM:
        line = _say("design.strategy_line", description=describe_as(strategy))
        body = f"{result.summary}\n\n{line}" if result.summary else line
    else:
        ignored = ignored_text(result.ignored)
        body = describe_as(strategy) + (f" {ignored}" if ignored else "")
    return "\n\n".join([*(note_text(n) for n in result.notes), body])
