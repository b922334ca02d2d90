"""Callback data: short, strictly parsed strings (untrusted: a modified client can send anything).

Every pattern below is anchored and bounded; handlers still re-check ownership of the ids.
"""

from __future__ import annotations

import re

AGENT_ID = r"ag[0-9a-f]{10}"
_INT = r"(?:0|[1-9][0-9]{0,8})"

# name -> anchored regex (groups are the arguments)
PATTERNS: dict[str, str] = {
    "menu": r"^m:(portfolio|help|bots|automaton|settings|backtest|simulate)$",
    "portfolio": rf"^pf:({_INT})$",
    "agent": rf"^ag:({AGENT_ID}):({_INT})$",
    "pause": rf"^ap:({AGENT_ID})$",
    "resume": rf"^ar:({AGENT_ID})$",
    "assign": rf"^as:({AGENT_ID})$",
    "assign_bot": rf"^asb:({AGENT_ID}):({_INT})$",
    "create": rf"^new:({_INT})$",
    "deposit": rf"^dep:({_INT})$",
    "withdraw_ask": r"^wd:ask$",
    "withdraw_confirm": r"^wd:ok:([0-9a-f]{8})$",
    "withdraw_cancel": r"^wd:no:([0-9a-f]{8})$",
    "setting": r"^set:(signals|trades|spawns|risk):(on|silent|off)$",
    "bot_list": r"^bl$",
    "bot_new": r"^bn$",
    "bot_show": rf"^b:({_INT})$",
    "bot_select": rf"^bs:({_INT})$",
    "bot_backtest": rf"^bb:({_INT})$",
    "bot_simulate": rf"^bsim:({_INT})$",
    "bot_rename": rf"^br:({_INT})$",
    "bot_delete": rf"^bd:({_INT})$",
    "bot_delete_ok": rf"^bdc:({_INT})$",
    "sim_stop": rf"^ss:({_INT})$",
    "sim_stop_ok": rf"^ssc:({_INT})$",
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
