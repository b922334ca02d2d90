"""Rules for what to trade and how much: token ids and symbols, chains, amounts, action words."""

from __future__ import annotations

import re

from agents.design.parser import vocabulary as v
from agents.design.parser.scanner import Reject, Scanner, number, rx

_NUM, _PCT, _OF_BALANCE = v.NUM, v.PCT, v.OF_BALANCE
_SYMBOL = r"[a-z][a-z0-9]{1,14}"

TOKEN_ID = rx(r"\b(?P<addr>0x[0-9a-f]{6,64}|[1-9a-hj-np-z]{32,44})-(?P<ch>[a-z][a-z0-9]{1,15})\b")
FIXED_AMOUNT = rx(rf"\b(?:{v.FIXED_AMOUNT_VERBS})\s+(?:\$\s*{_NUM}|{_NUM}\s*(?:{v.CURRENCIES}))")
PARTIAL_SELL = rx(
    rf"\b(?:{v.EXIT_VERBS})\s+(?P<n>{_NUM}){_PCT}(?!\s+{v.PCT_NOUN_JOINER}(?:{v.PROFIT_WORDS}|{v.LOSS_WORDS}))"
)

AMOUNT_VERB = rx(
    rf"\b(?P<verb>{v.AMOUNT_VERBS})\s+(?:(?:{v.AMOUNT_WITH})\s+)?(?P<n>{_NUM}){_PCT}"
    rf"(?:\s+(?:{_OF_BALANCE}))?"
)
# "beli PEPE 10%": the amount after the token (other languages only); the token is left to the symbol rules.
AMOUNT_AFTER_TOKEN = rx(
    rf"\b(?:{v.BUY_TOKEN_AMOUNT_VERBS})\s+\$?(?P<sym>{_SYMBOL})\s+(?:(?:{v.AMOUNT_WITH})\s+)?(?P<n>{_NUM}){_PCT}"
    rf"(?:\s+(?:{_OF_BALANCE}))?"
)
PERCENT_OF_BALANCE = rx(rf"(?<![\w.])(?P<n>{_NUM}){_PCT}\s+(?:{_OF_BALANCE})")
AMOUNT_FIELD = rx(
    rf"\b(?:{v.AMOUNT_FIELDS})"
    rf"\s*(?:{v.FIELD_JOINERS})?\s*(?P<n>{_NUM}){v.OPT_PCT}(?:\s+(?:{_OF_BALANCE}))?"
)
AMOUNT_WORD = rx(
    rf"\b(?P<verb>{v.AMOUNT_WORD_VERBS})\s+(?P<w>{v.AMOUNT_WORD_ALT})\b"
    rf"(?:\s+(?:{v.AMOUNT_WORD_BALANCE}))?"
)
ALL_IN = rx(r"\ball[\s-]in\b")

CHAIN_AFTER_PREPOSITION = rx(
    rf"\b(?:{v.CHAIN_PREPS})\s+(?:the\s+)?{v.CHAIN_NOUN_BEFORE}(?P<c>{v.CHAIN_ALT})"
    r"(?:\s+(?:chain|network|blockchain|mainnet))?\b"
)
CHAIN_BEFORE_NOUN = rx(rf"\b(?P<c>{v.CHAIN_ALT})\s+(?:chain|network|blockchain)\b")
CHAIN_FIELD = rx(rf"\b(?:{v.CHAIN_FIELD_NOUNS})\s*(?:[:=]|is|to)?\s*(?P<c>{v.CHAIN_ALT})\b")

ACTION_WORD = rx(rf"\b(?:(?P<buy>{v.BUY_VERBS})|(?P<sell>{v.SELL_VERBS}))\b")

CASHTAG = rx(rf"\$(?P<sym>{_SYMBOL})\b")
CAPS_SYMBOL = re.compile(r"\b(?P<sym>[A-Z][A-Z0-9]{1,14})\b")  # case-sensitive on purpose: ALLCAPS only
# Lower-case symbols only where a token is expected; the span checked is the symbol's own.
SYMBOL_IN_TOKEN_POSITION = rx(
    rf"\b(?:{v.TOKEN_LEADS})\s+"
    rf"(?:(?P<skip>{_NUM}{_PCT}(?:\s+(?:{_OF_BALANCE}))?)\s+)?(?:(?:{v.TOKEN_FILLERS})\s+)?"
    rf"(?P<sym>{_SYMBOL})\b"
    rf"|\b(?:when|if|once|whenever)\s+(?P<sym2>{_SYMBOL})(?:'s)?\s+(?:price\s+)?(?=\S)"
    rf"|\b(?:{v.WHEN_WORDS_MORE})\s+(?P<sym3>{_SYMBOL})\s+(?=(?:{v.MOVE_VERBS_MORE})\b)"
)
_SYMBOL_GROUPS = ("sym", "sym2", "sym3")


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


def _buy_verb(m: re.Match[str]) -> bool:
    verb = m.groupdict().get("verb")
    return bool(verb and v.BUY_AMOUNT_VERBS.fullmatch(verb.lower()))


def amount(s: Scanner, m: re.Match[str]) -> None:
    """"buy 10%", "10% of my balance", "position size 15%"."""
    s.found.amount = number(m.group("n"))
    if _buy_verb(m):
        s.found.actions.append((m.start(), "buy"))


def amount_span(m: re.Match[str]) -> tuple[int, int]:
    """What an amount-after-token match claims: the amount only (the verb and token are read by their rules)."""
    return m.end("sym"), m.end()


def amount_after_token(s: Scanner, m: re.Match[str]) -> bool:
    """"beli PEPE 10%", "comprar SOL 20% do saldo"; False if the word is no token ("beli saat 5%")."""
    word = m.group("sym").lower()
    if word in v.FILLER or word in v.NON_TOKEN_WORDS:
        return False
    s.found.amount = number(m.group("n"))
    return True


def amount_word(s: Scanner, m: re.Match[str]) -> None:
    """"buy half", "spend a quarter", "use everything"."""
    s.found.amount = v.AMOUNT_WORDS.get(" ".join(m.group("w").split()), v.ALL_OF_IT)
    if _buy_verb(m):
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
    s.found.actions.append((m.start(), "sell" if m.group("sell") else "buy"))


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
    return next(g for g in _SYMBOL_GROUPS if m.group(g))


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
