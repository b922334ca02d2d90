"""Deterministic natural-language strategy parser: the embedded default when no LLM is configured.

`parse_strategy_text("buy 10% PEPE on bsc when it drops 5% in an hour, stop loss 3%")` returns a
`ParseResult` with a validated `Strategy`, what was understood and what was not.

How it works: a table of regular expressions is run over the normalised, lower-cased text in a
fixed priority order; every match *consumes* its span so later, looser patterns cannot re-read it.
Whatever is left over (after dropping filler words) is reported as not understood.

Policy on leftovers: a leftover that contains a digit or a trading word (e.g. "trailing stop 3%",
"rsi below 30") blocks the result — silently ignoring a rule the user believes is active is
worse than asking again — while harmless leftovers ("please", "to the moon") are only reported.
Invalid numbers (NaN, infinities, 1e309, negatives, fixed dollar amounts) always block.

Edits: with `current` given, fields the message does not mention keep their current values.
New buy conditions replace the current entry conditions unless the message says "add"/"also";
the same holds for sell conditions. A bare timeframe ("use 4h instead") applies to every
condition; "change the drop to 4%" edits the matching condition's threshold.
"""

from __future__ import annotations

import itertools
import math
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine.strategy import (
    MAX_CONDITIONS,
    TIMEFRAME_MINUTES,
    Strategy,
    StrategyError,
    describe_condition,
    describe_strategy,
    parse_strategy,
)

__all__ = ["DEFAULT_AMOUNT_PERCENT", "MAX_TEXT_CHARS", "ParseResult", "parse_strategy_text"]

MAX_TEXT_CHARS = 2000
DEFAULT_AMOUNT_PERCENT = 10.0
_MAX_NUMBER = 1e12


@dataclass(frozen=True)
class ParseResult:
    """What the parser made of a message.

    `strategy` is `None` when nothing usable came out (then `message` says why).
    `not_understood` lists leftover pieces of the user's text (plain text, the caller escapes it).
    """

    strategy: Strategy | None
    understood: list[str] = field(default_factory=list)
    not_understood: list[str] = field(default_factory=list)
    message: str = ""

    @property
    def fully_understood(self) -> bool:
        """A strategy came out and nothing was left over."""
        return self.strategy is not None and not self.not_understood


# --------------------------------------------------------------------------------------------
# vocabulary

_NUM_CORE = (
    r"(?:[-+−]\s?)?"  # a sign is captured so negatives can be rejected with a reason
    r"(?:nan|inf(?:inity)?|(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:e[-+]?\d+)?|\.\d+(?:e[-+]?\d+)?)"
)
# A number that is not the start of a longer word ("5m" is a timeframe, not the number 5).
_NUM = _NUM_CORE + r"(?!\w|\.\d)"
_PCT = r"\s*(?:%|percent\b|pct\b|per\s+cent\b)"
_OPT_PCT = rf"(?:{_PCT})?"

_DROP_VERBS = (
    r"drops?|dropped|dropping|dips?|dipped|dipping|falls?|fell|falling|declines?|declined|decreases?|"
    r"decreased|dumps?|dumped|crash(?:es|ed)?|tanks?|tanked|plunges?|plunged|slides?|slid|sinks?|sank|"
    r"goes\s+down|went\s+down|moves?\s+down|is\s+down|gets\s+down|loses|lost|corrects?|corrected"
)
_RISE_VERBS = (
    r"rises?|rose|risen|rising|pumps?|pumped|climbs?|climbed|gains?|gained|increases?|increased|jumps?|"
    r"jumped|surges?|surged|rall(?:y|ies|ied)|spikes?|spiked|moons?|mooned|goes\s+up|went\s+up|moves?\s+up|"
    r"is\s+up|soars?|soared|rockets?|rocketed|grows?|grew"
)
_DROP_NOUNS = r"drop|dip|fall|decline|decrease|dump|crash|correction|pullback|down\s*move|downturn|sell-?off"
_RISE_NOUNS = r"rise|pump|gain|increase|jump|surge|rally|spike|up\s*move|breakout|move\s+up"
_MODIFIER = r"(?:(?:by|more\s+than|over|at\s+least|about|around|roughly|another|of|a)\s+)*"
_BALANCE = (
    r"(?:my\s+|the\s+|our\s+|of\s+)?(?:available\s+|total\s+|usdc\s+)?"
    r"(?:balance|equity|portfolio|capital|funds|money|account|wallet|bankroll|cash|usdc|stack)"
)

_CHAINS: dict[str, str] = {
    "bsc": "bsc",
    "bnb": "bsc",
    "bnb chain": "bsc",
    "binance smart chain": "bsc",
    "bep20": "bsc",
    "eth": "eth",
    "ethereum": "eth",
    "erc20": "eth",
    "mainnet": "eth",
    "base": "base",
    "solana": "solana",
    "arbitrum": "arbitrum",
    "arb": "arbitrum",
    "polygon": "polygon",
    "matic": "polygon",
    "avalanche": "avalanche",
    "avax": "avalanche",
    "optimism": "optimism",
    "tron": "tron",
    "ton": "ton",
    "sui": "sui",
    "blast": "blast",
    "linea": "linea",
    "fantom": "fantom",
    "zksync": "zksync",
    "mantle": "mantle",
}
# Names that are only chains (ETH, SOL, ARB… are also tokens, so they are not here).
_CHAIN_ONLY = {
    "bsc",
    "ethereum",
    "solana",
    "arbitrum",
    "polygon",
    "base",
    "optimism",
    "avalanche",
    "bep20",
    "erc20",
}
_CHAIN_ALT = "|".join(sorted((re.escape(c).replace(r"\ ", r"\s+") for c in _CHAINS), key=len, reverse=True))

_WORD_NUMBERS = {
    "a": 1,
    "an": 1,
    "one": 1,
    "two": 2,
    "four": 4,
    "five": 5,
    "fifteen": 15,
    "thirty": 30,
    "sixty": 60,
    "twenty four": 24,
}
_TF = (
    r"(?:(?:in|within|over|during|inside|across|on|per|every|for|of|at|using|a|an)\s+)?"
    r"(?:(?:the|a|an)\s+)?(?:(?:last|past|same|next)\s+)?"
    r"(?:(?P<tfn>\d+(?:\.\d+)?)\s*(?P<tfu>minutes?|mins?|m|hours?|hrs?|hr|h|days?|d)\b"
    # Spelled-out counts need a space and a full unit word ("an hour"; never "and").
    r"|(?P<tfn2>an?|one|two|four|five|fifteen|thirty|sixty|twenty[-\s]four)\s+(?P<tfu2>minutes?|mins?|hours?|hrs?|days?)\b"
    r"|(?P<tfw>hourly|daily|hour|day|minute))"
    r"(?:\s+(?:timeframe|time\s*frame|candles?|chart|window|bars?|period|interval))?"
)

# Words that carry no meaning of their own here; leftovers made only of these are ignored.
_FILLER = set(
    """
a an the i im i'm me my mine we our you your it its it's this that these those there here is are was be been
being am do does did to of in on at by for with from into onto as so and or but if when whenever once then
than while after before until till also just only please pls plz kindly ok okay thanks thank hi hello hey
want wanna would like let lets let's can could should shall will might must need needs go goes going get gets
make it's strategy bot trade trades trading token coin price prices its value some any more much very
set use using change update switch instead now new rule rules condition conditions trigger triggers
time timeframe frame candle candles chart average avg mean normal something whatever yes yeah sure new
position positions buy buys buying sell sells selling purchase enter exit close long entry order
automatically auto always every each per again both either all any percent pct level levels market
""".split()
)
# Leftover words that mean the user asked for something this parser could not represent.
_BLOCKING_WORDS = set(
    """
trailing trail rsi macd ema sma ma bollinger leverage short shorts shorting limit dca grid stop loss profit
volume breakeven hedge margin futures fibonacci vwap atr stochastic ichimoku partial
""".split()
)
_RESERVED_SYMBOLS = {
    "AND",
    "OR",
    "IF",
    "WHEN",
    "THEN",
    "BUY",
    "SELL",
    "SL",
    "TP",
    "USD",
    "UTC",
    "RSI",
    "EMA",
    "SMA",
    "MACD",
    "ATH",
    "ATL",
    "AM",
    "PM",
    "OK",
    "PLS",
    "DCA",
    "TF",
    "I",
    "A",
    "AN",
    "THE",
    "IN",
    "ON",
    "OF",
    "AT",
    "MY",
    "IT",
    "TO",
    "BY",
    "NO",
    "ANY",
    "ALL",
    "BOTH",
    "STOP",
    "LOSS",
    "TAKE",
    "PROFIT",
    "PRICE",
    "VOLUME",
    "ID",
    "AI",
    "API",
    "PNL",
    "ROI",
    "APY",
    "BOT",
    "DEX",
    "CEX",
    "LONG",
    "SHORT",
    "NOT",
    "NEW",
    "MA",
}


# --------------------------------------------------------------------------------------------
# numbers and timeframes


class _Reject(Exception):
    """A hard problem with the input (bad number, unsupported amount kind)."""


def _number(raw: str) -> float:
    """Parse a matched number; negatives, NaN, infinities and absurd magnitudes are rejected."""
    text = raw.strip().replace("−", "-").replace(" ", "")
    if text.startswith("-"):
        raise _Reject(
            f"negative numbers are not allowed here ('{raw.strip()}'): write the size without a minus sign"
        )
    text = text.lstrip("+").replace(",", "")
    try:
        value = float(text)
    except ValueError as exc:
        raise _Reject(f"'{raw.strip()}' is not a number I can use") from exc
    if not math.isfinite(value) or abs(value) > _MAX_NUMBER:
        raise _Reject(f"'{raw.strip()}' is not a usable number")
    return value


def _timeframe(match: re.Match[str]) -> str:
    """Turn a timeframe match into one of 5m/15m/30m/1h/4h/1d, or raise `_Reject`."""
    word = match.group("tfw")
    if word:
        return {"hourly": "1h", "hour": "1h", "daily": "1d", "day": "1d", "minute": "_1m"}.get(word, "1h")
    if match.group("tfn"):
        n, unit = float(match.group("tfn")), match.group("tfu")[0]
    else:
        n, unit = (
            _WORD_NUMBERS[" ".join(match.group("tfn2").replace("-", " ").split())],
            match.group("tfu2")[0],
        )
    minutes = n * {"m": 1, "h": 60, "d": 1440}[unit]
    for name, mins in TIMEFRAME_MINUTES.items():
        if math.isclose(minutes, mins):
            return name
    return f"_{match.group(0).strip()}"


# --------------------------------------------------------------------------------------------
# the scanner


@dataclass
class _Cond:
    type: str
    pos: int
    end: int
    threshold: float | None = None
    price: float | None = None
    direction: str | None = None
    timeframe: str | None = None
    signal: str = "buy"


@dataclass
class _Found:
    """Everything recognised in one message."""

    conditions: list[_Cond] = field(default_factory=list)
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
    threshold_edits: list[tuple[str, float, bool]] = field(default_factory=list)
    removals: list[str] = field(default_factory=list)
    add_mode: bool = False
    problems: list[str] = field(default_factory=list)


class _Scanner:
    def __init__(self, text: str) -> None:
        self.orig = text
        # Lower-case per character so offsets stay aligned with the original text.
        self.low = "".join(c.lower() if len(c.lower()) == 1 else c for c in text)
        self.used = [False] * len(text)
        self.found = _Found()

    def free(self, start: int, end: int) -> bool:
        return not any(self.used[start:end])

    def take(self, start: int, end: int) -> None:
        for i in range(start, end):
            self.used[i] = True

    def run(
        self, pattern: re.Pattern[str], handler: Callable[[re.Match[str]], None], *, orig: bool = False
    ) -> None:
        """Apply `handler` to every match whose span is still free, then consume the span."""
        source = self.orig if orig else self.low
        for m in pattern.finditer(source):
            start, end = m.span()
            if start == end or not self.free(start, end):
                continue
            try:
                handler(m)
            except _Reject as exc:
                self.found.problems.append(str(exc))
            self.take(start, end)

    def leftovers(self) -> list[tuple[str, bool]]:
        """Unconsumed pieces that still mean something: (text, blocking)."""
        pieces: list[tuple[str, bool]] = []
        masked = "".join(" " if u else c for c, u in zip(self.orig, self.used, strict=True))
        for chunk in re.split(r"[,;\n!?]+|\.(?!\d)|\s[-–—]\s", masked):
            words = re.findall(r"[^\W_]+(?:'[^\W_]+)?", chunk.lower())
            meaningful = [w for w in words if w not in _FILLER]
            if not meaningful:
                continue
            blocking = any(any(ch.isdigit() for ch in w) or w in _BLOCKING_WORDS for w in meaningful)
            snippet = " ".join(chunk.split())
            if len(snippet) > 80:
                snippet = snippet[:77] + "…"
            pieces.append((snippet, blocking))
        return pieces


def _rx(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


# -- handlers -----------------------------------------------------------------------------


def _scan(scanner: _Scanner) -> None:
    """Run the pattern table over the message, filling `scanner.found`."""
    f = scanner.found
    low = scanner.low

    def follow_tf(end: int) -> tuple[str | None, int]:
        m = _TF_AFTER.match(low, end)
        if m and scanner.free(m.start(), m.end()):
            scanner.take(m.start(), m.end())
            return _timeframe(m), m.end()
        return None, end

    def add_cond(
        kind: str,
        m: re.Match[str],
        *,
        threshold: float | None = None,
        price: float | None = None,
        direction: str | None = None,
    ) -> None:
        tf, _ = follow_tf(m.end())
        f.conditions.append(
            _Cond(
                kind, m.start(), m.end(), threshold=threshold, price=price, direction=direction, timeframe=tf
            )
        )

    # 1. AVE token ids (contain digits, so before any number pattern).
    def on_id(m: re.Match[str]) -> None:
        chain = m.group("ch").lower()
        f.tokens.append((f"{m.group('addr')}-{chain}", _CHAINS.get(chain, chain)))

    scanner.run(
        _rx(r"\b(?P<addr>0x[0-9a-f]{6,64}|[1-9a-hj-np-z]{32,44})-(?P<ch>[a-z][a-z0-9]{1,15})\b"),
        on_id,
        orig=True,
    )

    # 2. Fixed-currency amounts and partial sells: not representable -> hard problems.
    def on_fixed(m: re.Match[str]) -> None:
        raise _Reject(
            f"'{m.group(0).strip()}' is a fixed amount: amounts are a percent of the balance (e.g. 'buy 10%')"
        )

    scanner.run(
        _rx(rf"\b(?:buy|spend|invest|use|put)\s+(?:\$\s*{_NUM}|{_NUM}\s*(?:\$|usd[ct]?|dollars?|bucks))"),
        on_fixed,
    )

    def on_partial_sell(m: re.Match[str]) -> None:
        if _number(m.group("n")) != 100:
            raise _Reject("partial sells are not supported: a sell closes the whole position")
        f.actions.append((m.start(), "sell"))

    scanner.run(
        _rx(rf"\b(?:sell|exit|close)\s+(?P<n>{_NUM}){_PCT}(?!\s+(?:profit|gain|loss|up|down))"),
        on_partial_sell,
    )

    # 3. Stop-loss / take-profit, including removals and "sell at 10% profit".
    def on_sl(m: re.Match[str]) -> None:
        f.stop_loss = _number(m.group("n"))

    def on_tp(m: re.Match[str]) -> None:
        f.take_profit = _number(m.group("n"))

    def on_rm_sl(m: re.Match[str]) -> None:
        f.remove_sl = True

    def on_rm_tp(m: re.Match[str]) -> None:
        f.remove_tp = True

    sl_words = r"(?:stop[\s-]*loss(?:es)?|stoploss|stop|sl|cut\s+(?:the\s+)?loss(?:es)?|max(?:imum)?\s+loss)"
    tp_words = (
        r"(?:take[\s-]*profits?|takeprofit|tp|profit\s+target|target|take\s+gains?|take\s+profit\s+target)"
    )
    joiner = r"\s*(?:at|of|to|=|:|is|on|=>|->|around|about|set\s+to|@)?\s*"
    scanner.run(
        _rx(
            rf"\b(?:no|without|remove|disable|delete|clear|drop|turn\s+off|cancel)\s+(?:the\s+|my\s+|a\s+|any\s+)?{sl_words}\b"
        ),
        on_rm_sl,
    )
    scanner.run(
        _rx(
            rf"\b(?:no|without|remove|disable|delete|clear|drop|turn\s+off|cancel)\s+(?:the\s+|my\s+|a\s+|any\s+)?{tp_words}\b"
        ),
        on_rm_tp,
    )
    scanner.run(_rx(rf"\b{sl_words}\b{joiner}(?P<n>{_NUM}){_OPT_PCT}"), on_sl)
    scanner.run(_rx(rf"\b{tp_words}\b{joiner}(?P<n>{_NUM}){_OPT_PCT}"), on_tp)
    scanner.run(_rx(rf"(?<![\w.])(?P<n>{_NUM}){_PCT}\s+{sl_words}\b"), on_sl)
    scanner.run(_rx(rf"(?<![\w.])(?P<n>{_NUM}){_PCT}\s+{tp_words}\b"), on_tp)
    scanner.run(
        _rx(
            rf"\b(?:sell|exit|close(?:\s+it)?)\s+(?:at|with|on|after|for)\s+(?:a\s+)?(?P<n>{_NUM}){_PCT}\s+(?:profit|gain|up)\b"
        ),
        on_tp,
    )
    scanner.run(
        _rx(
            rf"\b(?:sell|exit|close(?:\s+it)?)\s+(?:at|with|on|after|for)\s+(?:a\s+)?(?P<n>{_NUM}){_PCT}\s+(?:loss|down)\b"
        ),
        on_sl,
    )

    # 4. Volume spikes (before price rises: "spikes" is shared).
    def on_volume(m: re.Match[str]) -> None:
        add_cond("volume_spike", m, threshold=_number(m.group("n")))

    def on_volume_mult(m: re.Match[str]) -> None:
        word = m.group("w") or ""
        mult = (
            _number(m.group("n"))
            if m.group("n")
            else (2 if word.startswith("doubl") else 3 if word.startswith("tripl") else 4)
        )
        if mult <= 1:
            raise _Reject(f"a volume multiple must be more than 1x (got {mult:g}x)")
        add_cond("volume_spike", m, threshold=round((mult - 1) * 100, 6))

    vol_verbs = (
        r"(?:spikes?|spiked|jumps?|jumped|surges?|surged|rises?|rose|increases?|increased|goes\s+up|is\s+up|"
        r"grows?|grew|explodes?|pumps?|is|gets|climbs?)"
    )
    scanner.run(
        _rx(
            rf"\b(?:trading\s+)?volume\s+(?:spike\s+|surge\s+|jump\s+|increase\s+)?(?:{vol_verbs}\s+)?{_MODIFIER}(?P<n>{_NUM}){_PCT}"
            r"(?:\s+(?:above|over|more\s+than)\s+(?:the\s+|its\s+)?(?:average|avg|mean|normal|usual))?"
        ),
        on_volume,
    )
    scanner.run(
        _rx(
            rf"(?<![\w.])(?P<n>{_NUM}){_PCT}\s+(?:volume\s+(?:spike|jump|surge|increase|rise)|(?:rise|increase|jump|spike|surge)\s+in\s+(?:trading\s+)?volume|more\s+volume)"
        ),
        on_volume,
    )
    scanner.run(
        _rx(
            rf"\bvolume\s+(?:(?:{vol_verbs})\s+)?(?:to\s+)?(?:(?P<n>{_NUM_CORE})\s*(?:x|times)\b|(?P<w>doubles|doubled|triples|tripled|quadruples))"
            r"(?:\s+(?:the\s+|its\s+)?(?:average|avg|normal|mean|usual))?"
        ),
        on_volume_mult,
    )
    scanner.run(
        _rx(rf"(?<![\w.])(?P<n>{_NUM_CORE})\s*x\s+(?:the\s+)?(?:average\s+|normal\s+|usual\s+)?volume\b"),
        on_volume_mult,
    )

    # 5. Percentage price moves.
    def on_drop(m: re.Match[str]) -> None:
        add_cond("price_drop", m, threshold=_number(m.group("n")))

    def on_rise(m: re.Match[str]) -> None:
        add_cond("price_rise", m, threshold=_number(m.group("n")))

    scanner.run(_rx(rf"\b(?:{_DROP_VERBS})\s+{_MODIFIER}(?P<n>{_NUM}){_PCT}"), on_drop)
    scanner.run(_rx(rf"\b(?:{_RISE_VERBS})\s+{_MODIFIER}(?P<n>{_NUM}){_PCT}"), on_rise)
    scanner.run(_rx(rf"(?<![\w.])(?P<n>{_NUM}){_PCT}\s+(?:price\s+)?(?:{_DROP_NOUNS})\b"), on_drop)
    scanner.run(_rx(rf"(?<![\w.])(?P<n>{_NUM}){_PCT}\s+(?:price\s+)?(?:{_RISE_NOUNS})\b"), on_rise)
    scanner.run(_rx(rf"\b(?:{_DROP_NOUNS})\s+of\s+(?P<n>{_NUM}){_PCT}"), on_drop)
    scanner.run(_rx(rf"\b(?:{_RISE_NOUNS})\s+of\s+(?P<n>{_NUM}){_PCT}"), on_rise)
    scanner.run(_rx(rf"\bdown\s+(?:by\s+)?(?P<n>{_NUM}){_PCT}"), on_drop)
    scanner.run(_rx(rf"\bup\s+(?:by\s+)?(?P<n>{_NUM}){_PCT}"), on_rise)

    # 6. Price levels ("crosses above 3500", "falls below 0.001").
    def on_level(m: re.Match[str]) -> None:
        before = low[max(0, m.start() - 30) : m.start()]
        indicator = re.search(
            r"\b(rsi|macd|ema|sma|ma|vwap|atr|stoch\w*|bollinger|volume|market\s+cap|mcap|tvl)\b"
            r"(?:\s+\w+)?\s*$",
            before,
        )
        if indicator:
            raise _Reject(
                f"'{indicator.group(1)}' levels are not supported: use a price drop/rise, a volume "
                "spike or a price level"
            )
        direction = "above" if m.group("dir") in ("above", "over") else "below"
        add_cond("price_level", m, price=_number(m.group("n")), direction=direction)

    scanner.run(
        _rx(
            r"\b(?:price\s+)?(?:(?:crosses|cross|crossed|crossing|breaks|break|broke|breaking|goes|go|moves?|rises?|"
            r"climbs?|pushes|gets|trades?|is|closes?|jumps?|pumps?|falls?|drops?|dips?|sinks?|slides?|crashes|"
            r"comes)\s+(?:back\s+)?)?(?P<dir>above|over|below|under|beneath)\s+(?:the\s+)?(?:level\s+(?:of\s+)?|"
            rf"price\s+(?:of\s+)?)?\$?\s*(?P<n>{_NUM})(?!\s*(?:%|percent|pct|x\b|times))(?:\s*(?:\$|usd[ct]?\b|dollars?\b))?"
        ),
        on_level,
    )

    # 7. Amount.
    def on_amount(m: re.Match[str]) -> None:
        f.amount = _number(m.group("n"))
        if m.group(0).lower().startswith(("buy", "purchase")):
            f.actions.append((m.start(), "buy"))

    def on_amount_word(m: re.Match[str]) -> None:
        f.amount = {"half": 50.0, "a quarter": 25.0, "a third": 100 / 3}.get(
            " ".join(m.group("w").split()), 100.0
        )
        if m.group(0).lower().startswith("buy"):
            f.actions.append((m.start(), "buy"))

    scanner.run(
        _rx(
            rf"\b(?:buy|purchase|spend|invest|use|allocate|put|bet|risk|with)\s+(?:with\s+)?(?P<n>{_NUM}){_PCT}"
            rf"(?:\s+of\s+{_BALANCE})?"
        ),
        on_amount,
    )
    scanner.run(_rx(rf"(?<![\w.])(?P<n>{_NUM}){_PCT}\s+of\s+{_BALANCE}"), on_amount)
    scanner.run(
        _rx(
            rf"\b(?:amount|size|position\s+size|position|allocation|order\s+size|trade\s+size|stake|buy\s+size)"
            rf"\s*(?:to|=|:|of|is|at|->)?\s*(?P<n>{_NUM}){_OPT_PCT}(?:\s+of\s+{_BALANCE})?"
        ),
        on_amount,
    )
    scanner.run(
        _rx(
            rf"\b(?:buy|spend|use|invest|put\s+in)\s+(?P<w>half|a\s+quarter|a\s+third|everything|all)\b(?:\s+(?:of\s+)?{_BALANCE})?"
        ),
        on_amount_word,
    )
    scanner.run(_rx(r"\ball[\s-]in\b"), lambda m: setattr(f, "amount", 100.0))

    # 8. Threshold edits ("change the drop to 4%") and condition removals.
    def on_threshold_edit(m: re.Match[str]) -> None:
        f.threshold_edits.append((m.group("what"), _number(m.group("n")), bool(m.group("pct"))))

    scanner.run(
        _rx(
            r"\b(?:change|set|make|update|move|raise|lower|increase|decrease|adjust|put)\s+(?:the\s+|my\s+)?"
            r"(?P<what>drop|dip|fall|rise|pump|gain|volume(?:\s+spike)?|spike|price\s+level|level|threshold|trigger)"
            r"(?:\s+(?:threshold|trigger|condition|level|percentage|percent|rule))?\s+(?:to|=|at|:)\s*\$?\s*"
            rf"(?P<n>{_NUM})(?P<pct>{_PCT})?"
        ),
        on_threshold_edit,
    )
    scanner.run(
        _rx(
            rf"\b(?P<what>drop|dip|rise|pump|volume|spike|level)\s+threshold\s*(?:to|=|:|of)?\s*(?P<n>{_NUM})(?P<pct>{_PCT})?"
        ),
        on_threshold_edit,
    )

    def on_removal(m: re.Match[str]) -> None:
        f.removals.append(m.group("what"))

    scanner.run(
        _rx(
            r"\b(?:remove|delete|drop|clear|get\s+rid\s+of)\s+(?:the\s+|my\s+|all\s+)?"
            r"(?P<what>volume(?:\s+spike)?|drop|dip|rise|pump|price\s+level|level|sell|exit)\s+"
            r"(?:conditions?|rules?|triggers?|signals?)\b"
        ),
        on_removal,
    )

    # 9. Match mode.
    def set_match(value: str) -> Callable[[re.Match[str]], None]:
        return lambda m: setattr(f, "match", value)

    scanner.run(
        _rx(
            r"\b(?:match|require|need|when|if)\s+(?:all|both|every(?:thing)?)\b(?:\s+(?:of\s+)?(?:the\s+|them|conditions?|rules?))*"
            r"|\ball\s+(?:of\s+)?(?:the\s+)?(?:conditions|rules|of\s+them)(?:\s+(?:must|have\s+to|should)\s+(?:match|hold|be\s+true|fire))?"
            r"|\bboth\s+(?:conditions|rules)\b|\bat\s+the\s+same\s+time\b"
        ),
        set_match("all"),
    )
    scanner.run(
        _rx(
            r"\b(?:match|require|need)\s+(?:any|either|one)\b(?:\s+(?:of\s+)?(?:the\s+|them|conditions?|rules?))*"
            r"|\bany\s+(?:one\s+)?(?:of\s+)?(?:the\s+)?(?:conditions|rules|of\s+them)(?:\s+(?:is\s+enough|matches|fires))?"
            r"|\beither\b"
        ),
        set_match("any"),
    )

    # 10. Add mode markers.
    def on_add(m: re.Match[str]) -> None:
        f.add_mode = True

    scanner.run(
        _rx(
            r"\b(?:add(?:\s+(?:a|another|one\s+more))?(?:\s+(?:condition|rule|trigger))?|also|another|as\s+well|too|additionally|plus)\b"
        ),
        on_add,
    )

    # 11. Chains.
    def on_chain(m: re.Match[str]) -> None:
        name = " ".join((m.group("c") or "").split())
        f.chain = _CHAINS.get(name, name)

    scanner.run(
        _rx(
            rf"\b(?:on|via|using|at)\s+(?:the\s+)?(?P<c>{_CHAIN_ALT})(?:\s+(?:chain|network|blockchain|mainnet))?\b"
        ),
        on_chain,
    )
    scanner.run(_rx(rf"\b(?P<c>{_CHAIN_ALT})\s+(?:chain|network|blockchain)\b"), on_chain)
    scanner.run(_rx(rf"\bchain\s*(?:[:=]|is|to)?\s*(?P<c>{_CHAIN_ALT})\b"), on_chain)

    # 12. Standalone timeframes ("use 4h instead", "daily", "per day").
    def on_tf(m: re.Match[str]) -> None:
        f.timeframes.append(_timeframe(m))

    scanner.run(_rx(rf"\b{_TF}"), on_tf)

    # 13. Action words (positions decide a condition's buy/sell signal).
    def on_action(m: re.Match[str]) -> None:
        word = m.group(0).lower()
        selling = word.startswith(("sell", "exit", "close", "get", "take"))
        f.actions.append((m.start(), "sell" if selling else "buy"))

    scanner.run(
        _rx(
            r"\b(?:buy(?:ing)?|purchase|enter|go\s+long|long|ape\s+in(?:to)?|sell(?:ing)?|exit|close(?:\s+(?:it|the\s+position))?|get\s+out|take\s+profits?)\b"
        ),
        on_action,
    )

    # 14. Tokens (original case): $CASHTAG, ALLCAPS, or a word in a token position.
    def on_symbol(m: re.Match[str]) -> None:
        sym = m.group("sym")
        lowered = sym.lower()
        if sym.upper() in _RESERVED_SYMBOLS or lowered in _FILLER or lowered in _NON_TOKEN_WORDS:
            return
        if lowered in _CHAIN_ONLY:
            f.chain = _CHAINS[lowered]
            return
        f.tokens.append((sym.upper(), None))

    scanner.run(_rx(r"\$(?P<sym>[a-z][a-z0-9]{1,14})\b"), on_symbol, orig=True)
    scanner.run(re.compile(r"\b(?P<sym>[A-Z][A-Z0-9]{1,14})\b"), on_symbol, orig=True)
    # Lower-case symbols only where a token is expected; the span checked is the symbol's own.
    lower_positions = _rx(
        rf"\b(?:buy|sell|token|coin|trade|trading|switch\s+to|change\s+(?:the\s+)?(?:token|coin)\s+to|use|into|in|of|on|for)\s+"
        rf"(?:(?P<skip>{_NUM}{_PCT}(?:\s+of\s+{_BALANCE})?)\s+)?(?:(?:of|in|into|some|more|the|token|coin)\s+)?"
        r"(?P<sym>[a-z][a-z0-9]{1,14})\b"
        r"|\b(?:when|if|once|whenever)\s+(?P<sym2>[a-z][a-z0-9]{1,14})(?:'s)?\s+(?:price\s+)?(?=\S)"
    )
    for m in lower_positions.finditer(scanner.orig):
        group = "sym" if m.group("sym") else "sym2"
        start, end = m.span(group)
        word = m.group(group)
        if not scanner.free(start, end) or word.lower() in _FILLER or word.lower() in _NON_TOKEN_WORDS:
            continue
        if word.upper() in _RESERVED_SYMBOLS or word.lower() in _CHAIN_ONLY:
            continue
        f.tokens.append((word.upper(), None))
        scanner.take(start, end)


_TF_AFTER = re.compile(rf"\s*,?\s*{_TF}\b", re.IGNORECASE)
_NON_TOKEN_WORDS = set(
    """
balance equity portfolio capital funds money account wallet bankroll cash stack price volume profit loss
stop target drop dip rise pump gain spike level threshold amount size market hour hours minute minutes day
days daily hourly average case total half everything all quarter third strategy percent value above below
over under it them me us that this what which dollars dollar usd usdt usdc bucks order orders limit
condition conditions rule rules signal signals trigger triggers timeframe instead
""".split()
)


# --------------------------------------------------------------------------------------------
# building the strategy


def _signal_of(cond: _Cond, found: _Found, text: str) -> str:
    """The nearest action word in the same clause: preceding first, else following; default buy."""
    clause_bounds = [0] + [m.end() for m in re.finditer(r"[,;\n]|\.(?!\d)|\bthen\b", text)] + [len(text)]
    lo = max(b for b in clause_bounds if b <= cond.pos)
    hi = min(b for b in clause_bounds if b >= cond.end)
    before = [(p, a) for p, a in found.actions if lo <= p < cond.pos]
    if before:
        return max(before)[1]
    after = [(p, a) for p, a in found.actions if cond.end <= p < hi]
    if after:
        return min(after)[1]
    return "buy"


def _implicit_match(buys: list[_Cond], text: str) -> str | None:
    votes: set[str] = set()
    ordered = sorted(buys, key=lambda c: c.pos)
    for a, b in itertools.pairwise(ordered):
        between = text[a.end : b.pos]
        if re.search(r"\b(?:and|plus)\b|&", between):
            votes.add("all")
        if re.search(r"\bor\b", between):
            votes.add("any")
    return votes.pop() if len(votes) == 1 else None


def _cond_dict(c: _Cond, token: str, chain: str | None, default_tf: str) -> dict[str, Any]:
    d: dict[str, Any] = {
        "type": c.type,
        "token": token,
        "chain": chain,
        "timeframe": c.timeframe or default_tf,
        "signal": c.signal,
    }
    if c.type == "price_level":
        d.update(price=c.price, direction=c.direction)
    else:
        d["threshold"] = c.threshold
    return d


_EDIT_TARGETS = {
    "drop": ("price_drop",),
    "dip": ("price_drop",),
    "fall": ("price_drop",),
    "rise": ("price_rise",),
    "pump": ("price_rise",),
    "gain": ("price_rise",),
    "volume": ("volume_spike",),
    "volume spike": ("volume_spike",),
    "spike": ("volume_spike",),
    "level": ("price_level",),
    "price level": ("price_level",),
    "threshold": ("price_drop", "price_rise", "volume_spike"),
    "trigger": ("price_drop", "price_rise", "volume_spike"),
    "sell": (),
    "exit": (),
}


def _apply_edits(
    conds: list[dict[str, Any]], found: _Found, understood: list[str], problems: list[str]
) -> None:
    for what, value, _pct in found.threshold_edits:
        key = " ".join(what.split())
        kinds = _EDIT_TARGETS.get(key, ())
        targets = [c for c in conds if c["type"] in kinds]
        if not targets:
            problems.append(f"there is no {key} condition to change")
            continue
        if len(targets) > 1 and key in ("threshold", "trigger"):
            problems.append(
                "several conditions have a threshold: say which one (e.g. 'change the drop to 4%')"
            )
            continue
        for c in targets:
            if c["type"] == "price_level":
                c["price"] = value
            else:
                c["threshold"] = value
        understood.append(f"{key} changed to {value:g}{'' if kinds == ('price_level',) else '%'}")
    for what in found.removals:
        key = " ".join(what.split())
        before = len(conds)
        if key in ("sell", "exit"):
            conds[:] = [c for c in conds if c.get("signal") != "sell"]
        else:
            kinds = _EDIT_TARGETS.get(key, ())
            conds[:] = [c for c in conds if c["type"] not in kinds]
        if len(conds) == before:
            problems.append(f"there is no {key} condition to remove")
        else:
            understood.append(f"removed the {key} condition(s)")


def _build(
    found: _Found, current: Strategy | None, text: str
) -> tuple[dict[str, Any] | None, list[str], list[str]]:
    """Merge what was found with `current` into a strategy dict; returns (dict, understood, problems)."""
    understood: list[str] = []
    problems = list(found.problems)

    tf_values = [t for t in found.timeframes if not t.startswith("_")]
    problems += [
        f"'{t[1:]}' is not a supported timeframe (use 5m, 15m, 30m, 1h, 4h or 1d)"
        for t in found.timeframes
        if t.startswith("_")
    ]
    for c in found.conditions:
        if c.timeframe and c.timeframe.startswith("_"):
            problems.append(
                f"'{c.timeframe[1:]}' is not a supported timeframe (use 5m, 15m, 30m, 1h, 4h or 1d)"
            )
            c.timeframe = None
    if len(set(tf_values)) > 1:
        problems.append(f"several timeframes given ({', '.join(dict.fromkeys(tf_values))}): say which one")
    standalone_tf = tf_values[0] if tf_values else None

    distinct = list(dict.fromkeys(found.tokens))
    if len({t for t, _ in distinct}) > 1:
        problems.append(
            f"a strategy trades one token, but I found {', '.join(dict.fromkeys(t for t, _ in distinct))}"
        )
    new_token = distinct[0] if distinct else None

    found.conditions.sort(key=lambda c: c.pos)
    for c in found.conditions:
        c.signal = _signal_of(c, found, text)

    # Token and chain.
    if new_token:
        token, id_chain = new_token
        chain = found.chain or id_chain
    elif current is not None:
        token, chain = current.token, found.chain or current.chain
    else:
        token, chain = None, found.chain
    if token is None:
        problems.append("which token? e.g. 'buy 10% PEPE on bsc when it drops 5% in 1h'")
        return None, understood, problems
    if new_token or found.chain:
        understood.append(f"token: {token}" + (f" on {chain}" if chain else ""))

    default_tf = standalone_tf or "1h"
    pairs = [(c, _cond_dict(c, token, chain, default_tf)) for c in found.conditions]
    new_buys = [d for c, d in pairs if c.signal == "buy"]
    new_sells = [d for c, d in pairs if c.signal == "sell"]
    explicit_tf = {id(d) for c, d in pairs if c.timeframe}
    for d in new_buys:
        understood.append(f"buy when {describe_condition(_Shim(d))}")
    for d in new_sells:
        understood.append(f"sell when {describe_condition(_Shim(d))}")

    cur = current.model_dump(mode="json") if current is not None else None
    old_buys = [c for c in cur["conditions"] if c.get("signal", "buy") == "buy"] if cur else []
    old_sells = [c for c in cur["conditions"] if c.get("signal") == "sell"] if cur else []
    if found.add_mode:
        buys, sells = old_buys + new_buys, old_sells + new_sells
    else:
        buys = new_buys or old_buys
        sells = new_sells or old_sells
    conds = [*buys, *sells]
    if standalone_tf and cur is not None:
        # A bare timeframe in an edit applies to the conditions that did not name their own.
        for d in conds:
            if id(d) not in explicit_tf:
                d["timeframe"] = standalone_tf
        understood.append(f"timeframe: {standalone_tf}")
    _apply_edits(conds, found, understood, problems)
    for d in conds:
        d["token"], d["chain"] = token, chain
    if not any(c.get("signal", "buy") == "buy" for c in conds):
        problems.append("I need at least one buy condition, e.g. 'buy when it drops 5% in 1h'")
        return None, understood, problems
    if len(conds) > MAX_CONDITIONS:
        problems.append(f"at most {MAX_CONDITIONS} conditions are allowed")
        return None, understood, problems

    # Amount.
    if found.amount is not None:
        amount = found.amount
        understood.append(f"amount: {amount:g}% of the balance")
    elif current is not None:
        amount = current.buy.amount_percent
    else:
        amount = DEFAULT_AMOUNT_PERCENT
        understood.append(f"no amount given: using {DEFAULT_AMOUNT_PERCENT:g}% of the balance")
    actions: list[dict[str, Any]] = [
        {"type": "buy", "amount_percent": amount, "token": token, "chain": chain}
    ]
    if any(c.get("signal") == "sell" for c in conds):
        actions.append({"type": "sell", "amount_percent": 100, "token": token, "chain": chain})

    # Risk management.
    rm = dict(cur["risk_management"]) if cur else {"stop_loss_percent": None, "take_profit_percent": None}
    if found.remove_sl:
        rm["stop_loss_percent"] = None
        understood.append("stop-loss removed")
    if found.remove_tp:
        rm["take_profit_percent"] = None
        understood.append("take-profit removed")
    if found.stop_loss is not None:
        rm["stop_loss_percent"] = found.stop_loss
        understood.append(f"stop-loss: {found.stop_loss:g}%")
    if found.take_profit is not None:
        rm["take_profit_percent"] = found.take_profit
        understood.append(f"take-profit: {found.take_profit:g}%")

    # Match mode.
    match = found.match or _implicit_match([c for c in found.conditions if c.signal == "buy"], text)
    if match is not None:
        if found.match or len(new_buys) > 1:
            understood.append("match: all conditions" if match == "all" else "match: any condition")
    else:
        match = cur["match"] if cur else "any"

    return (
        {"conditions": conds, "match": match, "actions": actions, "risk_management": rm},
        understood,
        problems,
    )


class _Shim:
    """Attribute view of a condition dict, so `describe_condition` can describe it before validation."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.__dict__.update(data)


# --------------------------------------------------------------------------------------------
# public entry point


def _normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    # Markup is never meaningful in a strategy description; drop tags, keep their text content.
    text = re.sub(r"<[^<>]{0,200}>", " ", text)
    text = text.translate(
        {0x2212: "-", 0x2013: "-", 0x2014: "-", 0x2019: "'", 0x2018: "'", 0x201C: '"', 0x201D: '"'}
    )
    # Control and format characters (zero-width joiners, bidi overrides) carry no meaning here.
    return "".join(" " if unicodedata.category(c) in ("Cc", "Cf") and c != "\n" else c for c in text)


def _fail(
    message: str, understood: list[str] | None = None, not_understood: list[str] | None = None
) -> ParseResult:
    return ParseResult(None, understood or [], not_understood or [], message)


def parse_strategy_text(text: str, current: Strategy | None = None) -> ParseResult:
    """Parse a plain-language strategy description (or an edit of `current`) without any LLM.

    Never raises on user input: problems come back in `message` / `not_understood`."""
    if not isinstance(text, str) or not text.strip():
        return _fail("Describe a strategy, e.g. 'buy 10% PEPE on bsc when it drops 5% in 1h, stop loss 3%'.")
    if len(text) > MAX_TEXT_CHARS:
        return _fail(
            f"That message is too long ({len(text)} characters); please keep it under {MAX_TEXT_CHARS}."
        )
    normalised = _normalise(text)
    scanner = _Scanner(normalised)
    _scan(scanner)
    found = scanner.found
    leftovers = scanner.leftovers()
    not_understood = [snippet for snippet, _ in leftovers]
    blocking = [snippet for snippet, block in leftovers if block]

    data, understood, problems = _build(found, current, scanner.low)
    if found.problems:
        # Hard rejections (bad numbers, fixed amounts) first: follow-on complaints would be noise.
        problems = list(found.problems)
    if problems or blocking:
        reasons = problems + [f"I didn't understand '{s}'" for s in blocking]
        prefix = "Nothing was changed: " if current is not None else "I couldn't build a strategy: "
        return _fail(prefix + "; ".join(reasons) + ".", understood, not_understood)
    assert data is not None
    try:
        strategy = parse_strategy(data)
    except StrategyError as exc:
        return _fail(f"That strategy isn't valid: {exc}.", understood, not_understood)
    if current is not None and strategy == current:
        return _fail("I didn't find any change to make in that message.", understood, not_understood)

    message = describe_strategy(strategy)
    if not_understood:
        message += " I ignored: " + "; ".join(f"'{s}'" for s in not_understood) + "."
    return ParseResult(strategy, understood, not_understood, message)
