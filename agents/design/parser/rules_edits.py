"""Rules for edits of the current strategy: threshold changes, removals, match mode, "add" markers."""

from __future__ import annotations

import re

from agents.design.parser import vocabulary as v
from agents.design.parser.scanner import Scanner, number, rx

_NUM, _PCT = v.NUM, v.PCT

_SIDE = r"(?:(?P<side>buy|buying|entry|sell|selling|exit)\s+)?"
CHANGE_THRESHOLD = rx(
    r"\b(?:change|set|make|update|move|raise|lower|increase|decrease|adjust|put)\s+(?:the\s+|my\s+)?"
    + _SIDE + r"(?P<what>drop|dip|fall|rise|pump|gain|volume(?:\s+spike)?|spike|price\s+level|level|threshold|trigger)"
    r"(?:\s+(?:threshold|trigger|condition|level|percentage|percent|rule))?\s+(?:to|=|at|:)\s*\$?\s*"
    rf"(?P<n>{_NUM})(?P<pct>{_PCT})?"
)
NAMED_THRESHOLD = rx(
    r"\b" + _SIDE + r"(?P<what>drop|dip|rise|pump|volume|spike|level)\s+threshold\s*(?:to|=|:|of)?\s*"
    rf"(?P<n>{_NUM})(?P<pct>{_PCT})?"
)
REMOVE_CONDITION = rx(
    r"\b(?:remove|delete|drop|clear|get\s+rid\s+of)\s+(?:the\s+|my\s+|all\s+)?"
    r"(?P<what>volume(?:\s+spike)?|drop|dip|rise|pump|price\s+level|level|sell|exit)\s+"
    r"(?:conditions?|rules?|triggers?|signals?)\b"
)
MATCH_ALL = rx(
    r"\b(?:match|require|need|when|if)\s+(?:all|both|every(?:thing)?)\b(?:\s+(?:of\s+)?(?:the\s+|them|conditions?|rules?))*"
    r"|\ball\s+(?:of\s+)?(?:the\s+)?(?:conditions|rules|of\s+them)(?:\s+(?:must|have\s+to|should)\s+(?:match|hold|be\s+true|fire))?"
    r"|\bboth\s+(?:conditions|rules)\b|\bat\s+the\s+same\s+time\b"
)
MATCH_ANY = rx(
    r"\b(?:match|require|need)\s+(?:any|either|one)\b(?:\s+(?:of\s+)?(?:the\s+|them|conditions?|rules?))*"
    r"|\bany\s+(?:one\s+)?(?:of\s+)?(?:the\s+)?(?:conditions|rules|of\s+them)(?:\s+(?:is\s+enough|matches|fires))?"
    r"|\beither\b"
)
# Other languages' "and"/"or" ("dan", "e", "ou"): build reads them between conditions (match mode).
CONNECTIVE = rx(v.CONNECTIVES_MORE)
START_OVER = rx(rf"\b(?:{v.RESET_WORDS})\b\s*:?")
ADD_MARKER = rx(
    r"\b(?:add(?:\s+(?:a|another|one\s+more))?(?:\s+(?:condition|rule|trigger))?|also|another|as\s+well|too|"
    rf"additionally|plus|{v.ADD_MARKERS_MORE})\b"
)


def threshold_edit(s: Scanner, m: re.Match[str]) -> None:
    """"change the drop to 4%", "volume threshold 250%": a new value for an existing condition."""
    side = {"buying": "buy", "entry": "buy", "selling": "sell", "exit": "sell"}.get(m.group("side") or "",
                                                                                    m.group("side"))
    s.found.threshold_edits.append((m.group("what"), number(m.group("n")), bool(m.group("pct")), side))


def condition_removal(s: Scanner, m: re.Match[str]) -> None:
    """"remove the volume condition", "delete the sell rule"."""
    s.found.removals.append(m.group("what"))


def match_all(s: Scanner, m: re.Match[str]) -> None:
    """"match all", "both conditions", "at the same time": every entry condition must hold."""
    s.found.match = "all"


def match_any(s: Scanner, m: re.Match[str]) -> None:
    """"match any", "either": one entry condition is enough."""
    s.found.match = "any"


def connective(s: Scanner, m: re.Match[str]) -> None:
    """"dan", "e", "atau", "ou": nothing to record (build reads them in place), but no leftover either."""


def start_over(s: Scanner, m: re.Match[str]) -> None:
    """"start over", "reset", "mulai ulang", "do zero": the strategy is described from nothing."""
    s.found.reset = True


def add_mode(s: Scanner, m: re.Match[str]) -> None:
    """"also", "add", "as well": new conditions join the current ones instead of replacing them."""
    s.found.add_mode = True
