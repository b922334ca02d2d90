"""Callback data: each kind defined once, here, and used both to build buttons and to route presses.

Callback data is untrusted (a modified client can send anything), so every kind is a short,
strictly parsed string: `CallbackKind.parse` checks Telegram's 64-byte limit and matches the
whole string; handlers still re-check ownership of the ids. `build` runs the same parser on
what it builds, so a button can never carry data its own handler would refuse.
The routing pattern ends with the end-of-string anchor (backslash-Z), not `$`: PTB routes with
`re.match`, where `$` also matches before a trailing newline, so forged data such as "pf:0"
plus a newline would reach a handler.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from storage.notify import NotifyKind, NotifyLevel

MAX_BYTES = 64  # Telegram's limit on callback_data
AGENT_ID = r"ag[0-9a-f]{10}"


@dataclass(frozen=True)
class Arg:
    """One argument of a callback kind: its regex (no groups) and the conversion of the match."""

    regex: str
    convert: Callable[[str], Any] = str


def one_of(values: Iterable[str], convert: Callable[[str], Any] = str) -> Arg:
    """An argument that is exactly one of `values` (e.g. the members of a StrEnum)."""
    return Arg("|".join(re.escape(str(v)) for v in values), convert)


INT = Arg(r"0|[1-9][0-9]{0,8}", int)  # no sign, no leading zeros, fits any id or page
AGENT = Arg(AGENT_ID)
NONCE = Arg(r"[0-9a-f]{8}")


@dataclass(frozen=True)
class CallbackKind:
    """One callback-data kind: `prefix` then `:arg` per argument, e.g. `ag:<agent id>:<page>`."""

    prefix: str
    args: tuple[Arg, ...] = ()
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        body = "".join(f":({arg.regex})" for arg in self.args)
        object.__setattr__(self, "pattern", re.compile(rf"^{re.escape(self.prefix)}{body}\Z"))

    def build(self, *values: object) -> str:
        """The callback data for `values` (ValueError if this kind's parser would refuse it)."""
        data = ":".join([self.prefix, *(str(v) for v in values)])
        if self.parse(data) is None:
            raise ValueError(f"{data!r} is not valid callback data for {self.prefix!r}")
        return data

    def parse(self, data: str | None) -> tuple[Any, ...] | None:
        """The converted arguments of `data`, or None when it is not exactly this kind."""
        if not data or len(data.encode("utf-8", "surrogatepass")) > MAX_BYTES:
            return None
        match = self.pattern.fullmatch(data)
        if match is None:
            return None
        return tuple(arg.convert(value) for arg, value in zip(self.args, match.groups(), strict=True))


# Main menu (one kind per target: each feature module routes its own).
MENU_AUTOMATON = CallbackKind("m:automaton")
MENU_PORTFOLIO = CallbackKind("m:portfolio")
MENU_BOTS = CallbackKind("m:bots")
MENU_BACKTEST = CallbackKind("m:backtest")
MENU_SIMULATE = CallbackKind("m:simulate")
MENU_SETTINGS = CallbackKind("m:settings")
MENU_HELP = CallbackKind("m:help")

# Portfolio and agents.
PORTFOLIO = CallbackKind("pf", (INT,))  # page
AGENT_DETAILS = CallbackKind("ag", (AGENT, INT))  # agent id, portfolio page to go back to
PAUSE = CallbackKind("ap", (AGENT,))
RESUME = CallbackKind("ar", (AGENT,))
ASSIGN = CallbackKind("as", (AGENT,))
ASSIGN_BOT = CallbackKind("asb", (AGENT, INT))  # agent id, bot id (0: the default strategy)
CREATE = CallbackKind("new", (INT,))  # amount in USDC
DEPOSIT = CallbackKind("dep", (INT,))  # amount in USDC

# Withdrawal (the nonce ties a confirmation to the pending request).
WITHDRAW_ASK = CallbackKind("wd:ask")
WITHDRAW_CONFIRM = CallbackKind("wd:ok", (NONCE,))
WITHDRAW_CANCEL = CallbackKind("wd:no", (NONCE,))
WITHDRAW_KEEP = CallbackKind("wd:keep")  # withdraw all but what keeps every agent trading

# Notification settings: one button per kind and level.
SETTING = CallbackKind("set", (one_of(NotifyKind, NotifyKind), one_of(NotifyLevel, NotifyLevel)))

# "Stop everything": confirm or keep running.
STOP_ALL_OK = CallbackKind("sa:ok")
STOP_ALL_NO = CallbackKind("sa:no")
# Refresh a report in place: which one, and its argument (a count; 0 for none).
REFRESH = CallbackKind("rf", (one_of(("status", "profit", "trades", "daily", "weekly", "monthly", "performance")),
                              INT))
MENU = CallbackKind("m:home")  # 🏠 back to the main menu, from any sub-screen

# Language: one of the catalogs, or "auto" (follow the Telegram app).
LANGUAGE = CallbackKind("lang", (one_of(("en", "id", "pt", "auto")),))

# Strategy bots and simulations.
BOT_LIST = CallbackKind("bl")
BOT_NEW = CallbackKind("bn")
BOT_SHOW = CallbackKind("b", (INT,))
BOT_SELECT = CallbackKind("bs", (INT,))
BOT_BACKTEST = CallbackKind("bb", (INT,))
BOT_SIMULATE = CallbackKind("bsim", (INT,))
BOT_RENAME = CallbackKind("br", (INT,))
BOT_DELETE = CallbackKind("bd", (INT,))
BOT_DELETE_OK = CallbackKind("bdc", (INT,))
SIM_STOP = CallbackKind("ss", (INT,))
SIM_STOP_OK = CallbackKind("ssc", (INT,))
