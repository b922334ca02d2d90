"""Rules for entry/exit conditions: volume spikes, percentage price moves, price levels, timeframes."""

from __future__ import annotations

import re

from agents.design.parser import vocabulary as v
from agents.design.parser.scanner import Reject, Scanner, number, rx, timeframe

_NUM, _PCT, _MOD = v.NUM, v.PCT, v.MODIFIER
_AVERAGE = rf"(?:{v.AVERAGES})"

VOLUME_PERCENT = rx(
    rf"\b(?:(?:trading\s+)?volume\s+(?:spike\s+|surge\s+|jump\s+|increase\s+)?|(?:{v.VOLUME_NOUNS})\s+)"
    rf"(?:{v.VOLUME_VERBS}\s+)?{_MOD}"
    rf"(?P<n>{_NUM}){_PCT}"
    rf"(?:\s+(?:{v.ABOVE_AVERAGE})\s+(?:(?:{v.AVERAGE_DETS})\s+)?{_AVERAGE})?"
)
PERCENT_VOLUME = rx(
    rf"(?<![\w.])(?P<n>{_NUM}){_PCT}\s+(?:volume\s+(?:spike|jump|surge|increase|rise)|"
    r"(?:rise|increase|jump|spike|surge)\s+in\s+(?:trading\s+)?volume|more\s+volume)"
)
VOLUME_MULTIPLE = rx(
    rf"\b(?:volume|{v.VOLUME_NOUNS})\s+(?:(?:{v.VOLUME_VERBS})\s+)?(?:(?:{v.VOLUME_TO})\s+)?"
    rf"(?:(?P<n>{v.NUM_CORE})\s*(?:{v.VOLUME_TIMES})\b|(?P<w>{v.VOLUME_MULTIPLE_ALT}))"
    rf"(?:\s+(?:(?:{v.AVERAGE_DETS})\s+)?{_AVERAGE})?"
)
MULTIPLE_VOLUME = rx(rf"(?<![\w.])(?P<n>{v.NUM_CORE})\s*x\s+(?:the\s+)?(?:average\s+|normal\s+|usual\s+)?volume\b")

DROP_VERB = rx(rf"\b(?:{v.DROP_VERBS})\s+{_MOD}(?P<n>{_NUM}){_PCT}")
RISE_VERB = rx(rf"\b(?:{v.RISE_VERBS})\s+{_MOD}(?P<n>{_NUM}){_PCT}")
PERCENT_DROP = rx(rf"(?<![\w.])(?P<n>{_NUM}){_PCT}\s+{v.PCT_NOUN_JOINER}(?:price\s+)?(?:{v.DROP_NOUNS})\b")
PERCENT_RISE = rx(rf"(?<![\w.])(?P<n>{_NUM}){_PCT}\s+{v.PCT_NOUN_JOINER}(?:price\s+)?(?:{v.RISE_NOUNS})\b")
DROP_OF = rx(rf"\b(?:{v.DROP_NOUNS})\s+(?:{v.NOUN_JOINERS})\s+(?P<n>{_NUM}){_PCT}")
RISE_OF = rx(rf"\b(?:{v.RISE_NOUNS})\s+(?:{v.NOUN_JOINERS})\s+(?P<n>{_NUM}){_PCT}")
DOWN_BY = rx(rf"\bdown\s+(?:by\s+)?(?P<n>{_NUM}){_PCT}")
UP_BY = rx(rf"\bup\s+(?:by\s+)?(?P<n>{_NUM}){_PCT}")

PRICE_LEVEL = rx(
    rf"\b(?:(?:{v.PRICE_WORDS})\s+)?(?:(?:{v.LEVEL_VERBS})\s+(?:back\s+)?)?(?P<dir>{v.ABOVE}|{v.BELOW})\s+(?:the\s+)?"
    rf"(?:{v.LEVEL_NOUNS})?\$?\s*(?P<n>{_NUM})(?!\s*(?:%|percent|pct|x\b|times{v.LEVEL_NOT_AFTER}))"
    r"(?:\s*(?:\$|usd[ct]?\b|dollars?\b))?"
)
_INDICATOR_BEFORE = re.compile(rf"\b({v.INDICATORS})\b(?:\s+\w+)?\s*$")

TIMEFRAME = rx(rf"\b{v.TF}")


def volume_percent(s: Scanner, m: re.Match[str]) -> None:
    """"volume spikes 200%", "a 150% volume jump"."""
    s.add_condition("volume_spike", m, threshold=number(m.group("n")))


def volume_multiple(s: Scanner, m: re.Match[str]) -> None:
    """"volume doubles", "3x volume": a multiple of the average, stored as the percent above it."""
    word = m.groupdict().get("w") or ""
    if m.group("n"):
        mult = number(m.group("n"))
    else:
        mult = next((n for stem, n in v.VOLUME_MULTIPLE_WORDS.items() if word.startswith(stem)),
                    v.VOLUME_MULTIPLE_OTHER)
    if mult <= 1:
        raise Reject("parse.volume_multiple_too_small", multiple=mult)
    s.add_condition("volume_spike", m, threshold=round((mult - 1) * 100, 6))


def price_drop(s: Scanner, m: re.Match[str]) -> None:
    """"drops 5%", "a 5% dip", "down 5%"."""
    s.add_condition("price_drop", m, threshold=number(m.group("n")))


def price_rise(s: Scanner, m: re.Match[str]) -> None:
    """"rises 5%", "a 5% pump", "up by 5%"."""
    s.add_condition("price_rise", m, threshold=number(m.group("n")))


def price_level(s: Scanner, m: re.Match[str]) -> None:
    """"crosses above 3500", "falls below 0.001"; indicator levels ("rsi below 30") are refused."""
    before = s.low[max(0, m.start() - 30) : m.start()]
    indicator = _INDICATOR_BEFORE.search(before)
    if indicator:
        raise Reject("parse.indicator_level", indicator=indicator.group(1))
    direction = "above" if v.ABOVE_RX.fullmatch(m.group("dir")) else "below"
    s.add_condition("price_level", m, price=number(m.group("n")), direction=direction)


def standalone_timeframe(s: Scanner, m: re.Match[str]) -> None:
    """A timeframe on its own ("use 4h instead", "daily", "per day"): it applies to the conditions."""
    s.found.timeframes.append(timeframe(m))
