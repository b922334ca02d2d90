"""The scanner: the message being read, which characters are already claimed, and what was found.

Rules (see `table.RULES`) run in a fixed order; every match *claims* its span so later, looser
rules cannot re-read it. What no rule claimed is the leftover, reported back to the user in their own words.
Problems are `Note`s (a code and params): the bot words them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from agents.design.notes import Note
from agents.design.parser import vocabulary as v
from engine.strategy import TIMEFRAME_MINUTES


class Reject(Exception):
    """A hard problem with the input (bad number, unsupported amount kind): it blocks the result.

    Carries the problem as a `Note` (``parse.…`` code and params)."""

    def __init__(self, code: str, /, **params: object) -> None:
        super().__init__(code)
        self.note = Note(code, **params)


def number(raw: str) -> float:
    """Parse a matched number; negatives, NaN, infinities and absurd magnitudes are rejected."""
    text = raw.strip().replace("−", "-").replace(" ", "")
    if text.startswith("-"):
        raise Reject("parse.negative_number", words=raw.strip())
    text = text.lstrip("+")
    # "2,5" is a decimal comma; any other comma is an English thousands separator ("3,500").
    text = text.replace(",", ".") if v.DECIMAL_COMMA_NUMBER.fullmatch(text) else text.replace(",", "")
    try:
        value = float(text)
    except ValueError as exc:
        raise Reject("parse.not_a_number", words=raw.strip()) from exc
    if not math.isfinite(value) or abs(value) > v.MAX_NUMBER:
        raise Reject("parse.unusable_number", words=raw.strip())
    return value


def timeframe(match: re.Match[str]) -> str:
    """A timeframe match as one of 5m/15m/30m/1h/4h/1d; an unsupported one comes back as "_<text>"."""
    word = match.group("tfw")
    if word:
        return v.TIMEFRAME_WORDS.get(" ".join(word.split()), "1h")
    if match.group("tfn"):
        n, unit = float(match.group("tfn").replace(",", ".")), match.group("tfu")
    else:
        n, unit = (
            v.WORD_NUMBERS[" ".join(match.group("tfn2").replace("-", " ").split())],
            match.group("tfu2"),
        )
    minutes = n * v.unit_minutes(unit)
    for name, mins in TIMEFRAME_MINUTES.items():
        if math.isclose(minutes, mins):
            return name
    return f"_{match.group(0).strip()}"


@dataclass
class Cond:
    """One condition as read: `pos`/`end` is its span (the signal is decided by nearby action words)."""

    type: str
    pos: int
    end: int
    threshold: float | None = None
    price: float | None = None
    direction: str | None = None
    timeframe: str | None = None
    signal: str = "buy"
    # End of the words read for it, a timeframe right after it included (for the echo).
    reach: int = 0


@dataclass
class Found:
    """Everything recognised in one message."""

    conditions: list[Cond] = field(default_factory=list)
    amount: float | None = None
    stop_loss: float | None = None
    take_profit: float | None = None
    remove_sl: bool = False
    remove_tp: bool = False
    tokens: list[tuple[str, str | None]] = field(default_factory=list)
    chain: str | None = None
    match: str | None = None
    timeframes: list[str] = field(default_factory=list)
    actions: list[tuple[int, str]] = field(default_factory=list)
    # (target word, value, value was a percent, side named: "buy" / "sell" / None)
    threshold_edits: list[tuple[str, float, bool, str | None]] = field(default_factory=list)
    removals: list[str] = field(default_factory=list)
    add_mode: bool = False
    reset: bool = False
    problems: list[Note] = field(default_factory=list)


# A rule's handler records what its match means; returning False leaves the span unclaimed.
Handler = Callable[["Scanner", re.Match[str]], "bool | None"]


def rx(pattern: str) -> re.Pattern[str]:
    """A rule pattern: case-insensitive (rules read the lower-cased text unless they say otherwise)."""
    return re.compile(pattern, re.IGNORECASE)


def _whole(m: re.Match[str]) -> tuple[int, int]:
    return m.span()


@dataclass(frozen=True)
class Rule:
    """One phrase kind: a pattern and the handler that records what a match of it means.

    `orig`: match the original-case text (symbols, ids) instead of the lower-cased one.
    `span`: the part of a match that must be unclaimed and is then claimed (the whole match by default).
    """

    name: str
    pattern: re.Pattern[str]
    handler: Handler
    orig: bool = False
    span: Callable[[re.Match[str]], tuple[int, int]] = _whole


_TF_AFTER = re.compile(rf"\s*,?\s*{v.TF}\b", re.IGNORECASE)
_CLAUSE_BREAK = re.compile(rf"(?:{v.LIST_COMMA}|[;\n!?])+|\.(?!\d)|\s[-–—]\s")
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")
SNIPPET_MAX = 80


class Scanner:
    """The message, its claimed characters and the `Found` record the rules fill in."""

    def __init__(self, text: str) -> None:
        self.orig = text
        # Lower-case per character so offsets stay aligned with the original text.
        self.low = "".join(c.lower() if len(c.lower()) == 1 else c for c in text)
        self.used = [False] * len(text)
        self.found = Found()

    def free(self, start: int, end: int) -> bool:
        """No character of [start, end) is claimed yet."""
        return not any(self.used[start:end])

    def take(self, start: int, end: int) -> None:
        """Claim [start, end)."""
        for i in range(start, end):
            self.used[i] = True

    def run(self, rule: Rule) -> None:
        """Apply `rule` to every match whose span is still free, then claim the span.

        A `Reject` from the handler is recorded as a problem (the span is claimed all the same)."""
        source = self.orig if rule.orig else self.low
        for m in rule.pattern.finditer(source):
            start, end = rule.span(m)
            if start == end or not self.free(start, end):
                continue
            try:
                claimed = rule.handler(self, m)
            except Reject as exc:
                self.found.problems.append(exc.note)
                claimed = True
            if claimed is not False:
                self.take(start, end)

    def follow_timeframe(self, end: int) -> tuple[str | None, int]:
        """A timeframe right after position `end` ("drops 5% in 1h"), claimed; (None, end) if there is none."""
        m = _TF_AFTER.match(self.low, end)
        if m and self.free(m.start(), m.end()):
            self.take(m.start(), m.end())
            return timeframe(m), m.end()
        return None, end

    def add_condition(
        self,
        kind: str,
        m: re.Match[str],
        *,
        threshold: float | None = None,
        price: float | None = None,
        direction: str | None = None,
    ) -> None:
        """Record a condition read from match `m`, with the timeframe that follows it if any."""
        tf, reach = self.follow_timeframe(m.end())
        self.found.conditions.append(
            Cond(kind, m.start(), m.end(), threshold=threshold, price=price, direction=direction,
                 timeframe=tf, reach=reach)
        )

    def leftovers(self) -> list[tuple[str, bool]]:
        """Unclaimed pieces that still mean something: (text, blocking)."""
        pieces: list[tuple[str, bool]] = []
        masked = "".join(" " if u else c for c, u in zip(self.orig, self.used, strict=True))
        for chunk in _CLAUSE_BREAK.split(masked):
            words = _WORD.findall(chunk.lower())
            meaningful = [w for w in words if w not in v.LEFTOVER_FILLER]
            if not meaningful:
                continue
            blocking = any(any(ch.isdigit() for ch in w) or w in v.BLOCKING_WORDS for w in meaningful)
            snippet = " ".join(chunk.split())
            if len(snippet) > SNIPPET_MAX:
                snippet = snippet[: SNIPPET_MAX - 3] + "…"
            pieces.append((snippet, blocking))
        return pieces
