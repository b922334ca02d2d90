"""Callback data: short, strictly parsed strings (untrusted: a modified client can send anything).

Every pattern below is anchored and bounded; handlers still re-check ownership of the ids.
Patterns end with the end-of-string anchor (backslash-Z), not `$`: PTB routes with `re.match`,
where `$` also matches before a trailing newline, so forged data such as "pf:0" plus a newline
would reach a handler.
"""

from __future__ import annotations

import re

AGENT_ID = r"ag[0-9a-f]{10}"
_INT = r"(?:0|[1-9][0-9]{0,8})"

# name -> anchored regex (groups are the arguments)
PATTERNS: dict[str, str] = {
    "menu": r"^m:(portfolio|help|bots|automaton|settings|backtest|simulate)\Z",
    "portfolio": rf"^pf:({_INT})\Z",
    "agent": rf"^ag:({AGENT_ID}):({_INT})\Z",
    "pause": rf"^ap:({AGENT_ID})\Z",
    "resume": rf"^ar:({AGENT_ID})\Z",
    "assign": rf"^as:({AGENT_ID})\Z",
    "assign_bot": rf"^asb:({AGENT_ID}):({_INT})\Z",
    "create": rf"^new:({_INT})\Z",
    "deposit": rf"^dep:({_INT})\Z",
    "withdraw_ask": r"^wd:ask\Z",
    "withdraw_confirm": r"^wd:ok:([0-9a-f]{8})\Z",
    "withdraw_cancel": r"^wd:no:([0-9a-f]{8})\Z",
    "setting": r"^set:(signals|trades|spawns|risk):(on|silent|off)\Z",
    "bot_list": r"^bl\Z",
    "bot_new": r"^bn\Z",
    "bot_show": rf"^b:({_INT})\Z",
    "bot_select": rf"^bs:({_INT})\Z",
    "bot_backtest": rf"^bb:({_INT})\Z",
    "bot_simulate": rf"^bsim:({_INT})\Z",
    "bot_rename": rf"^br:({_INT})\Z",
    "bot_delete": rf"^bd:({_INT})\Z",
    "bot_delete_ok": rf"^bdc:({_INT})\Z",
    "sim_stop": rf"^ss:({_INT})\Z",
    "sim_stop_ok": rf"^ssc:({_INT})\Z",
}
COMPILED = {name: re.compile(p) for name, p in PATTERNS.items()}


def pattern(name: str) -> re.Pattern[str]:
    """The compiled pattern of one callback kind (for CallbackQueryHandler)."""
    return COMPILED[name]


def match(name: str, data: str | None) -> tuple[str, ...] | None:
    """The parsed arguments of `data` for callback kind `name`, or None."""
    if not data or len(data.encode()) > 64:
        return None
    m = COMPILED[name].fullmatch(data)
    return m.groups() if m else None
