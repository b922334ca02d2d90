"""The entry point: normalise the message, run the rule table, build and validate the strategy."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from agents.design.notes import Note
from agents.design.parser.build import build
from agents.design.parser.scanner import Scanner
from agents.design.parser.table import scan
from engine.strategy import Strategy, StrategyError, parse_strategy

MAX_TEXT_CHARS = 2000
_TAG = re.compile(r"<[^<>]{0,200}>")
_PUNCTUATION = {0x2212: "-", 0x2013: "-", 0x2014: "-", 0x2019: "'", 0x2018: "'", 0x201C: '"', 0x201D: '"'}


@dataclass(frozen=True)
class ParseResult:
    """What the parser made of a message, as data (the bot words it: `bot.design_text`).

    `strategy` is `None` when nothing usable came out; then `failure` says why, as a `Note`:
    ``parse.empty``, ``parse.too_long`` (chars, max_chars), ``parse.cannot_build`` /
    ``parse.nothing_changed`` (a new strategy / an edit, with the blocking `reasons`, notes
    themselves), ``parse.invalid`` (`error`: the `StrategyError`) or ``parse.no_change``.
    `understood` lists what was recognised (``understood.…`` notes, echoed to the user).
    `not_understood` lists leftover pieces of the user's text, in their own words (plain text,
    the caller escapes it); on success they were harmless and ignored. `cleared`: the message
    only said "start over" / "reset" (no strategy, no failure: the caller clears the strategy).
    """

    strategy: Strategy | None
    understood: list[Note] = field(default_factory=list)
    not_understood: list[str] = field(default_factory=list)
    failure: Note | None = None
    cleared: bool = False  # "start over" and nothing else: the strategy is to be cleared

    @property
    def fully_understood(self) -> bool:
        """A strategy came out and nothing was left over."""
        return self.strategy is not None and not self.not_understood


def _normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    # Markup is never meaningful in a strategy description; drop tags, keep their text content.
    text = _TAG.sub(" ", text).translate(_PUNCTUATION)
    # Control and format characters (zero-width joiners, bidi overrides) carry no meaning here.
    return "".join(" " if unicodedata.category(c) in ("Cc", "Cf") and c != "\n" else c for c in text)


def _fail(failure: Note, understood: list[Note] | None = None, not_understood: list[str] | None = None) -> ParseResult:
    return ParseResult(None, understood or [], not_understood or [], failure)


def parse_strategy_text(text: str, current: Strategy | None = None) -> ParseResult:
    """Parse a plain-language strategy description (or an edit of `current`) without any LLM.

    Policy on leftovers: one that contains a digit or a trading word ("trailing stop 3%") blocks
    the result, since silently ignoring a rule the user believes is active is worse than asking
    again; harmless ones ("please", "to the moon") are only reported. Invalid numbers always block.
    Never raises on user input: problems come back in `failure` / `not_understood`."""
    if not isinstance(text, str) or not text.strip():
        return _fail(Note("parse.empty"))
    if len(text) > MAX_TEXT_CHARS:
        return _fail(Note("parse.too_long", chars=len(text), max_chars=MAX_TEXT_CHARS))
    scanner = Scanner(_normalise(text))
    scan(scanner)
    found = scanner.found
    leftovers = scanner.leftovers()
    not_understood = [snippet for snippet, _ in leftovers]
    blocking = [snippet for snippet, block in leftovers if block]

    if found.reset and not (found.conditions or found.tokens or found.threshold_edits or blocking):
        return ParseResult(None, [Note("understood.cleared")], not_understood, cleared=True)
    data, understood, problems = build(found, current, scanner.low)
    if found.problems:
        # Hard rejections (bad numbers, fixed amounts) first: follow-on complaints would be noise.
        problems = list(found.problems)
    if problems or blocking:
        reasons = problems + [Note("parse.not_understood", words=s) for s in blocking]
        code = "parse.nothing_changed" if current is not None else "parse.cannot_build"
        return _fail(Note(code, reasons=reasons), understood, not_understood)
    assert data is not None
    try:
        strategy = parse_strategy(data)
    except StrategyError as exc:
        return _fail(Note("parse.invalid", error=exc), understood, not_understood)
    if current is not None and strategy == current:
        return _fail(Note("parse.no_change"), understood, not_understood)
    return ParseResult(strategy, understood, not_understood)
