"""The backtest command's argument grammar and its usage text (only the bot knows command syntax).

Grammar (also shown to users on a bad argument)::

    /backtest [TOKEN] [TIMEFRAME] [DAYS] [CAPITAL]

    TOKEN      PEPE             a symbol (resolved through the market data source)
               PEPE:bsc         a symbol on one chain ("symbol:chain")
               0xabc…-bsc       an AVE token id ("address-chain")
    TIMEFRAME  5m 15m 30m 1h 4h 1d            (default 1h; 60m, 240m, 24h are accepted too)
    DAYS       a whole number from 1 to 365   (default 30)
    CAPITAL    $500, 500usdc                  (default: the main agent's balance, else 1,000)

Arguments are recognised by their shape, so any of them may be left out: a number is the
days, a number with a time unit (m/h/d/w) is the timeframe, a number with a currency mark ($,
usd, usdc) is the capital, anything else is the token
(default: the strategy's own token). Each may appear once. The limits (timeframes, days, the
number of candles) are the engine's (`engine.backtest_service`): building the request checks
them and refuses with a coded `BacktestRequestError`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from bot.capital import capital_word, parse_capital
from bot.guards import UserFacingError
from bot.i18n import N_, t
from engine.backtest_service import DEFAULT_TIMEFRAME, MAX_DAYS, MIN_DAYS, BacktestRequest, default_days
from engine.market.ave_protocol import split_token_id
from engine.strategy import TIMEFRAME_MINUTES, TIMEFRAMES

TOKEN_MAX = 100
USAGE = N_("Usage: /backtest [token] [timeframe] [days] [capital], e.g. /backtest PEPE 1h 30, /backtest PEPE:bsc "
           "4h 90 $500 or /backtest 0xabc…-bsc 15m 7. Timeframes: {timeframes}; days {min_days}–{max_days}.")

_NUMBER = re.compile(r"^[+-]?(\d+([.,]\d*)?|[.,]\d+)(e[+-]?\d+)?$", re.IGNORECASE)
_NUMBER_WORDS = {"nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"}
_TIMEFRAME = re.compile(r"^(\d{1,6})\s?(m|min|mins|h|hr|hrs|d|w)$", re.IGNORECASE)
_UNIT_MINUTES = {"m": 1, "min": 1, "mins": 1, "h": 60, "hr": 60, "hrs": 60, "d": 1440, "w": 10080}
_MINUTES_TO_TIMEFRAME = {m: tf for tf, m in TIMEFRAME_MINUTES.items()}
_CHAIN = re.compile(r"^[a-z0-9_]{1,16}$")
_TOKEN_EXTRA = set("._-$")
_TIMEFRAME_LIST = " ".join(TIMEFRAMES)
_ONLY_ONE = {"days": N_("Give only one number of days. {usage}"), "timeframe": N_("Give only one timeframe. {usage}"),
             "token": N_("Give only one token. {usage}"), "capital": N_("Give only one capital. {usage}")}


class BacktestArgsError(UserFacingError):
    """A backtest argument is invalid; the message says which and how to fix it."""


def usage() -> str:
    """The command's usage line, in the reader's language."""
    return t(USAGE, timeframes=_TIMEFRAME_LIST, min_days=MIN_DAYS, max_days=MAX_DAYS)


def _parse_days(text: str) -> int:
    if not text.isascii() or not text.lstrip("+").isdigit():
        raise BacktestArgsError(t("Days must be a whole number from {min_days} to {max_days}. {usage}",
                                  min_days=MIN_DAYS, max_days=MAX_DAYS, usage=usage()))
    digits = text.lstrip("+")
    if len(digits) > 6 or not MIN_DAYS <= int(digits) <= MAX_DAYS:
        raise BacktestArgsError(t("Days must be from {min_days} to {max_days}. {usage}", min_days=MIN_DAYS,
                                  max_days=MAX_DAYS, usage=usage()))
    return int(digits)


def _parse_timeframe(text: str) -> str:
    match = _TIMEFRAME.match(text)
    if match is None:
        raise BacktestArgsError(t("Unknown timeframe. Use one of {timeframes}.", timeframes=_TIMEFRAME_LIST))
    minutes = int(match.group(1)) * _UNIT_MINUTES[match.group(2).lower()]
    timeframe = _MINUTES_TO_TIMEFRAME.get(minutes)
    if timeframe is None:
        if match.group(2).lower() == "d":
            raise BacktestArgsError(t("Unknown timeframe {timeframe}. Use one of {timeframes}. For the number of days "
                                      "write just the number, e.g. 30.", timeframe=text, timeframes=_TIMEFRAME_LIST))
        raise BacktestArgsError(t("Unknown timeframe {timeframe}. Use one of {timeframes}.", timeframe=text,
                                  timeframes=_TIMEFRAME_LIST))
    return timeframe


def _parse_token(text: str) -> tuple[str, str | None]:
    """A symbol, `symbol:chain` or an `address-chain` id, checked for harmless characters."""
    if len(text) > TOKEN_MAX:
        raise BacktestArgsError(t("That token is too long. {usage}", usage=usage()))
    token, chain = text, None
    if ":" in text:
        token, _, chain_part = text.rpartition(":")
        chain = chain_part.strip().lower()
        if not _CHAIN.match(chain):
            raise BacktestArgsError(t("After ':' give a chain name like bsc, eth, base or solana (e.g. PEPE:bsc)."))
    token = token.strip().lstrip("$")
    if not token:
        raise BacktestArgsError(t("The token is missing. {usage}", usage=usage()))
    if not all(c.isalnum() or c in _TOKEN_EXTRA for c in token):
        raise BacktestArgsError(t("A token is a symbol like PEPE, PEPE:bsc or an id like 0xabc…-bsc "
                                  "(letters, digits, '.', '_', '-' only)."))
    if chain is not None and split_token_id(token) is not None:
        raise BacktestArgsError(t("A token id already names its chain: drop the ':chain' part."))
    return token, chain


def _kind(arg: str) -> str:
    lowered = arg.lower()
    if capital_word(arg) is not None:
        return "capital"
    if _NUMBER.match(arg) or lowered in _NUMBER_WORDS or (arg[:1] in "+-" and arg[1:2].isdigit()):
        return "days"
    if _TIMEFRAME.match(arg) and ":" not in arg:
        return "timeframe"
    return "token"


def argument_words(args: Sequence[str]) -> list[str]:
    """The non-empty arguments, refusing more than the grammar has (token, timeframe, days, capital)."""
    words = [str(a).strip() for a in args if str(a).strip()]
    if len(words) > 4:
        raise BacktestArgsError(t("Too many arguments. {usage}", usage=usage()))
    return words


def parse_backtest_args(args: Sequence[str], default_timeframe: str = DEFAULT_TIMEFRAME) -> BacktestRequest:
    """Parse the backtest command's arguments (see the module docstring).

    Raises `BacktestArgsError` for what the grammar refuses, and the engine's
    `BacktestRequestError` for a range outside its limits. Without a timeframe,
    `default_timeframe` is used (the bot passes the strategy's finest condition timeframe);
    without days, `engine.backtest_service.default_days`.
    """
    words = argument_words(args)
    found: dict[str, str] = {}
    for word in words:
        kind = _kind(word)
        if kind in found:
            raise BacktestArgsError(t(_ONLY_ONE[kind], usage=usage()))
        found[kind] = word
    token = chain = None
    if "token" in found:
        token, chain = _parse_token(found["token"])
    timeframe = _parse_timeframe(found["timeframe"]) if "timeframe" in found else default_timeframe
    days = _parse_days(found["days"]) if "days" in found else default_days(timeframe)
    capital = float(parse_capital(capital_word(found["capital"]) or "")) if "capital" in found else None
    return BacktestRequest(token=token, chain=chain, timeframe=timeframe, days=days, capital=capital)
