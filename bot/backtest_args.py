"""The backtest command's argument grammar and its usage text (only the bot knows command syntax).

Grammar (also shown to users on a bad argument)::

    /backtest [TOKEN] [TIMEFRAME] [DAYS]

    TOKEN      PEPE             a symbol (resolved through the market data source)
               PEPE:bsc         a symbol on one chain ("symbol:chain")
               0xabc…-bsc       an AVE token id ("address-chain")
    TIMEFRAME  5m 15m 30m 1h 4h 1d            (default 1h; 60m, 240m, 24h are accepted too)
    DAYS       a whole number from 1 to 365   (default 30)

Arguments are recognised by their shape, so any of them may be left out: a number is the
days, a number with a time unit (m/h/d/w) is the timeframe, anything else is the token
(default: the strategy's own token). Each may appear once. The limits (timeframes, days, the
number of candles) are the engine's (`engine.backtest_service`): building the request checks
them and refuses with a coded `BacktestRequestError`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from bot.guards import UserFacingError
from engine.backtest_service import DEFAULT_TIMEFRAME, MAX_DAYS, MIN_DAYS, BacktestRequest, default_days
from engine.market.ave_protocol import split_token_id
from engine.strategy import TIMEFRAME_MINUTES, TIMEFRAMES

TOKEN_MAX = 100
USAGE = ("Usage: /backtest [token] [timeframe] [days], e.g. /backtest PEPE 1h 30, /backtest PEPE:bsc 4h 90 "
         "or /backtest 0xabc…-bsc 15m 7. Timeframes: " + " ".join(TIMEFRAMES) + f"; days {MIN_DAYS}–{MAX_DAYS}.")

_NUMBER = re.compile(r"^[+-]?(\d+([.,]\d*)?|[.,]\d+)(e[+-]?\d+)?$", re.IGNORECASE)
_NUMBER_WORDS = {"nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"}
_TIMEFRAME = re.compile(r"^(\d{1,6})\s?(m|min|mins|h|hr|hrs|d|w)$", re.IGNORECASE)
_UNIT_MINUTES = {"m": 1, "min": 1, "mins": 1, "h": 60, "hr": 60, "hrs": 60, "d": 1440, "w": 10080}
_MINUTES_TO_TIMEFRAME = {m: tf for tf, m in TIMEFRAME_MINUTES.items()}
_CHAIN = re.compile(r"^[a-z0-9_]{1,16}$")
_TOKEN_EXTRA = set("._-$")


class BacktestArgsError(UserFacingError):
    """A backtest argument is invalid; the message says which and how to fix it."""


def _parse_days(text: str) -> int:
    if not text.isascii() or not text.lstrip("+").isdigit():
        raise BacktestArgsError(f"Days must be a whole number from {MIN_DAYS} to {MAX_DAYS}. {USAGE}")
    digits = text.lstrip("+")
    if len(digits) > 6 or not MIN_DAYS <= int(digits) <= MAX_DAYS:
        raise BacktestArgsError(f"Days must be from {MIN_DAYS} to {MAX_DAYS}. {USAGE}")
    return int(digits)


def _parse_timeframe(text: str) -> str:
    match = _TIMEFRAME.match(text)
    if match is None:
        raise BacktestArgsError(f"Unknown timeframe. Use one of {' '.join(TIMEFRAMES)}.")
    minutes = int(match.group(1)) * _UNIT_MINUTES[match.group(2).lower()]
    timeframe = _MINUTES_TO_TIMEFRAME.get(minutes)
    if timeframe is None:
        hint = " For the number of days write just the number, e.g. 30." if match.group(2).lower() == "d" else ""
        raise BacktestArgsError(f"Unknown timeframe {text}. Use one of {' '.join(TIMEFRAMES)}.{hint}")
    return timeframe


def _parse_token(text: str) -> tuple[str, str | None]:
    """A symbol, `symbol:chain` or an `address-chain` id, checked for harmless characters."""
    if len(text) > TOKEN_MAX:
        raise BacktestArgsError(f"That token is too long. {USAGE}")
    token, chain = text, None
    if ":" in text:
        token, _, chain_part = text.rpartition(":")
        chain = chain_part.strip().lower()
        if not _CHAIN.match(chain):
            raise BacktestArgsError("After ':' give a chain name like bsc, eth, base or solana (e.g. PEPE:bsc).")
    token = token.strip().lstrip("$")
    if not token:
        raise BacktestArgsError(f"The token is missing. {USAGE}")
    if not all(c.isalnum() or c in _TOKEN_EXTRA for c in token):
        raise BacktestArgsError("A token is a symbol like PEPE, PEPE:bsc or an id like 0xabc…-bsc "
                                "(letters, digits, '.', '_', '-' only).")
    if chain is not None and split_token_id(token) is not None:
        raise BacktestArgsError("A token id already names its chain: drop the ':chain' part.")
    return token, chain


def _kind(arg: str) -> str:
    lowered = arg.lower()
    if _NUMBER.match(arg) or lowered in _NUMBER_WORDS or (arg[:1] in "+-" and arg[1:2].isdigit()):
        return "days"
    if _TIMEFRAME.match(arg) and ":" not in arg:
        return "timeframe"
    return "token"


def argument_words(args: Sequence[str]) -> list[str]:
    """The non-empty arguments, refusing more than the grammar has (token, timeframe, days)."""
    words = [str(a).strip() for a in args if str(a).strip()]
    if len(words) > 3:
        raise BacktestArgsError(f"Too many arguments. {USAGE}")
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
            what = {"days": "number of days", "timeframe": "timeframe", "token": "token"}[kind]
            raise BacktestArgsError(f"Give only one {what}. {USAGE}")
        found[kind] = word
    token = chain = None
    if "token" in found:
        token, chain = _parse_token(found["token"])
    timeframe = _parse_timeframe(found["timeframe"]) if "timeframe" in found else default_timeframe
    days = _parse_days(found["days"]) if "days" in found else default_days(timeframe)
    return BacktestRequest(token=token, chain=chain, timeframe=timeframe, days=days)
