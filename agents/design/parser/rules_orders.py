"""Rules for what to trade and how much: token ids and symbols, chains, amounts, action words."""

from __future__ import annotations

import re

from agents.design.parser import vocabulary as v
from agents.design.parser.scanner import Reject, Scanner, number, rx

_NUM, _PCT, _BALANCE = v.NUM, v.PCT, v.BALANCE
_SYMBOL = r"[a-z][a-z0-9]{1,14}"

TOKEN_ID = rx(r"\b(?P<addr>0x[0-9a-f]{6,64}|[1-9a-hj-np-z]{32,44})-(?P<ch>[a-z][a-z0-9]{1,15})\b")
FIXED_AMOUNT = rx(rf"\b(?:buy|spend|invest|use|put)\s+(?:\$\s*{_NUM}|{_NUM}\s*(?:\$|usd[ct]?|dollars?|bucks))")
PARTIAL_SELL = rx(rf"\b(?:sell|exit|close)\s+(?P<n>{_NUM}){_PCT}(?!\s+(?:profit|gain|loss|up|down))")

AMOUNT_VERB = rx(
    rf"\b(?:buy|purchase|spend|invest|use|allocate|put|bet|risk|with)\s+(?:with\s+)?(?P<n>{_NUM}){_PCT}"
    rf"(?:\s+of\s+{_BALANCE})?"
)
PERCENT_OF_BALANCE = rx(rf"(?<![\w.])(?P<n>{_NUM}){_PCT}\s+of\s+{_BALANCE}")
AMOUNT_FIELD = rx(
    rf"\b(?:amount|size|position\s+size|position|allocation|order\s+size|trade\s+size|stake|buy\s+size)"
    rf"\s*(?:to|=|:|of|is|at|->)?\s*(?P<n>{_NUM}){v.OPT_PCT}(?:\s+of\s+{_BALANCE})?"
)
AMOUNT_WORD = rx(
    r"\b(?:buy|spend|use|invest|put\s+in)\s+(?P<w>half|a\s+quarter|a\s+third|everything|all)\b"
    rf"(?:\s+(?:of\s+)?{_BALANCE})?"
)
ALL_IN = rx(r"\ball[\s-]in\b")

CHAIN_AFTER_PREPOSITION = rx(
    rf"\b(?:on|via|using|at)\s+(?:the\s+)?(?P<c>{v.CHAIN_ALT})(?:\s+(?:chain|network|blockchain|mainnet))?\b"
)
CHAIN_BEFORE_NOUN = rx(rf"\b(?P<c>{v.CHAIN_ALT})\s+(?:chain|network|blockchain)\b")
CHAIN_FIELD = rx(rf"\bchain\s*(?:[:=]|is|to)?\s*(?P<c>{v.CHAIN_ALT})\b")

ACTION_WORD = rx(
    r"\b(?:buy(?:ing)?|purchase|enter|go\s+long|long|ape\s+in(?:to)?|sell(?:ing)?|exit|"
    r"close(?:\s+(?:it|the\s+position))?|get\s+out|take\s+profits?)\b"
)
_SELLING = ("sell", "exit", "close", "get", "take")

CASHTAG = rx(rf"\$(?P<sym>{_SYMBOL})\b")
CAPS_SYMBOL = re.compile(r"\b(?P<sym>[A-Z][A-Z0-9]{1,14})\b")  # case-sensitive on purpose: ALLCAPS only
# Lower-case symbols only where a token is expected; the span checked is the symbol's own.
SYMBOL_IN_TOKEN_POSITION = rx(
    r"\b(?:buy|sell|token|coin|trade|trading|switch\s+to|change\s+(?:the\s+)?(?:token|coin)\s+to|use|into|in|of|on|for)\s+"
    rf"(?:(?P<skip>{_NUM}{_PCT}(?:\s+of\s+{_BALANCE})?)\s+)?(?:(?:of|in|into|some|more|the|token|coin)\s+)?"
    rf"(?P<sym>{_SYMBOL})\b"
    rf"|\b(?:when|if|once|whenever)\s+(?P<sym2>{_SYMBOL})(?:'s)?\s+(?:price\s+)?(?=\S)"
)


def token_id(s: Scanner, m: re.Match[str]) -> None:
    """An AVE token id ("0xabc…-bsc"): the token and its chain at once."""
    chain = m.group("ch").lower()
    s.found.tokens.append((f"{m.group('addr')}-{chain}", v.CHAINS.get(chain, chain)))


def fixed_amount(s: Scanner, m: re.Match[str]) -> None:
    """"buy $50": amounts are a percent of the balance, so a fixed sum is refused."""
    raise Reject("parse.fixed_amount", words=m.group(0).strip())


def partial_sell(s: Scanner, m: re.Match[str]) -> None:
    """"sell 100%" is a sell; any other share is refused (a sell closes the whole position)."""
    if number(m.group("n")) != 100:
        raise Reject("parse.partial_sell")
    s.found.actions.append((m.start(), "sell"))


def amount(s: Scanner, m: re.Match[str]) -> None:
    """"buy 10%", "10% of my balance", "position size 15%"."""
    s.found.amount = number(m.group("n"))
    if m.group(0).lower().startswith(("buy", "purchase")):
        s.found.actions.append((m.start(), "buy"))


def amount_word(s: Scanner, m: re.Match[str]) -> None:
    """"buy half", "spend a quarter", "use everything"."""
    s.found.amount = v.AMOUNT_WORDS.get(" ".join(m.group("w").split()), v.ALL_OF_IT)
    if m.group(0).lower().startswith("buy"):
        s.found.actions.append((m.start(), "buy"))


def all_in(s: Scanner, m: re.Match[str]) -> None:
    """"all-in": the whole balance."""
    s.found.amount = v.ALL_OF_IT


def chain(s: Scanner, m: re.Match[str]) -> None:
    """"on bsc", "solana chain", "chain: base" (aliases like "bnb" resolve to the canonical name)."""
    name = " ".join((m.group("c") or "").split())
    s.found.chain = v.CHAINS.get(name, name)


def action(s: Scanner, m: re.Match[str]) -> None:
    """A buy or sell word: its position decides the signal of the conditions near it."""
    word = m.group(0).lower()
    s.found.actions.append((m.start(), "sell" if word.startswith(_SELLING) else "buy"))


def symbol(s: Scanner, m: re.Match[str]) -> None:
    """"$PEPE" or "PEPE": a token, unless it is a reserved word; a chain-only name sets the chain."""
    sym = m.group("sym")
    lowered = sym.lower()
    if sym.upper() in v.RESERVED_SYMBOLS or lowered in v.FILLER or lowered in v.NON_TOKEN_WORDS:
        return
    if lowered in v.CHAIN_ONLY:
        s.found.chain = v.CHAINS[lowered]
        return
    s.found.tokens.append((sym.upper(), None))


def _symbol_group(m: re.Match[str]) -> str:
    return "sym" if m.group("sym") else "sym2"


def symbol_span(m: re.Match[str]) -> tuple[int, int]:
    """The span of the symbol itself in a token-position match (the words before it may be claimed)."""
    return m.span(_symbol_group(m))


def symbol_in_token_position(s: Scanner, m: re.Match[str]) -> bool:
    """"buy pepe", "when sol dips": a lower-case word where a token is expected; False if it is not one."""
    word = m.group(_symbol_group(m))
    lowered = word.lower()
    if lowered in v.FILLER or lowered in v.NON_TOKEN_WORDS:
        return False
    if word.upper() in v.RESERVED_SYMBOLS or lowered in v.CHAIN_ONLY:
        return False
    s.found.tokens.append((word.upper(), None))
    return True
