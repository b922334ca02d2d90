"""The bot's commands: names, argument grammar in short, and what each does (the one list).

The command menu, /help and every "Usage:" reply are built from it.
"""

from __future__ import annotations

import difflib

from agents.design.strategy_bots import MAX_BOTS

COMMANDS: list[tuple[str, str, str]] = [
    ("start", "", "Welcome and main menu"),
    ("help", "", "All commands"),
    ("automaton", "[amount]", "Create or show your generation-1 agent"),
    ("deposit", "<amount>", "Add paper USDC to your main agent"),
    ("ai_portfolio", "", "Your agents, balances and earnings"),
    ("ai_status", "[agent_id]", "Details of one agent"),
    ("withdraw", "<amount|all>", "Withdraw from your whole agent tree"),
    ("status", "", "Open positions: current price, unrealized P&L, stop and target"),
    ("profit", "", "Closed P&L, win rate and profit factor per agent"),
    ("trades", "[n]", "Your agents' last closed trades"),
    ("daily", "[n]", "Closed P&L per day (also /weekly, /monthly)"),
    ("weekly", "[n]", "Closed P&L per week"),
    ("monthly", "[n]", "Closed P&L per month"),
    ("bots", "", f"Your strategy bots (max {MAX_BOTS})"),
    ("newbot", "[name]", "Create a strategy bot"),
    ("backtest", "[token] [timeframe] [days]", "Backtest the selected bot"),
    ("simulate", "start | stop | status", "Live paper simulation of the selected bot"),
    ("settings", "", "Notification preferences"),
    ("cancel", "", "Leave the current conversation"),
]
ADMIN_COMMANDS = [("health", "", "Workers, cache and API health (admins)"),
                  ("stats", "", "Users, agents and balances (admins)")]


def closest(name: str) -> str | None:
    """The user command a mistyped name most likely meant ("protfolio" -> "ai_portfolio"), or None."""
    names = [n for n, _, _ in COMMANDS]
    typed = name.lower().lstrip("/").split("@", 1)[0]
    if len(typed) >= 4:  # a beginning, then a part of a name ("statu", "portfolio") is a strong hint
        for hit in ([n for n in names if n.startswith(typed)] or [n for n in names if typed in n]):
            return hit
    match = difflib.get_close_matches(typed, names + [n.removeprefix("ai_") for n in names], n=1, cutoff=0.6)
    if not match:
        return None
    return next(n for n in names if n == match[0] or n.removeprefix("ai_") == match[0])


def usage(name: str, example: str | None = None) -> str:
    """ "Usage: /name args" (and ", e.g. …" when an example is given) for a command in the list."""
    args = next(a for n, a, _ in COMMANDS + ADMIN_COMMANDS if n == name)
    return f"Usage: /{name} {args}".rstrip() + (f", e.g. {example}" if example else "")
