"""The bot's commands: names, argument grammar in short, and what each does (the one list).

The command menu, /help and every "Usage:" reply are built from it. Descriptions are marked for
the catalogs (`N_`) and translated where shown (`description`); in the argument grammar only the
words are (`arguments`: "<amount|all>" -> "<jumlah|all>"), since the keywords the bot parses
("all", "start", "stop", "status") and names such as agent_id stay as they are.
"""

from __future__ import annotations

import difflib
import re

from agents.design.strategy_bots import MAX_BOTS
from bot.i18n import N_, t

COMMANDS: list[tuple[str, str, str]] = [
    ("start", "", N_("Welcome and main menu")),
    ("help", "", N_("All commands")),
    ("automaton", "[amount]", N_("Create or show your generation-1 agent")),
    ("deposit", "<amount>", N_("Add paper USDC to your main agent")),
    ("ai_portfolio", "", N_("Your agents, balances and earnings")),
    ("ai_status", "[agent_id]", N_("Details of one agent")),
    ("withdraw", "<amount|all>", N_("Withdraw from your whole agent tree")),
    ("status", "", N_("Open positions: current price, unrealized P&L, stop and target")),
    ("profit", "", N_("Closed P&L, win rate and profit factor per agent")),
    ("trades", "[n]", N_("Your agents' last closed trades")),
    ("daily", "[n]", N_("Closed P&L per day (also /weekly, /monthly)")),
    ("weekly", "[n]", N_("Closed P&L per week")),
    ("monthly", "[n]", N_("Closed P&L per month")),
    ("performance", "", N_("Closed P&L per token")),
    ("stopall", "", N_("Pause every agent and sell its open positions (asks first)")),
    ("bots", "", N_("Your strategy bots (max {max_bots})")),
    ("newbot", "[name]", N_("Create a strategy bot")),
    ("backtest", "[token] [timeframe] [days] [capital]", N_("Backtest the selected bot")),
    ("simulate", "start [capital] | stop | status", N_("Live paper simulation of the selected bot")),
    ("settings", "", N_("Notification preferences")),
    ("cancel", "", N_("Leave a pending prompt (rename, withdrawal)")),
]
ADMIN_COMMANDS = [("health", "", N_("Workers, cache and API health (admins)")),
                  ("stats", "", N_("Users, agents and balances (admins)"))]
# The words of the argument grammar a user reads; any other word of it is typed as it is.
ARGUMENT_WORDS = {"amount": N_("amount"), "name": N_("name"), "days": N_("days"), "capital": N_("capital")}
_WORD = re.compile(r"[a-z_]+")
# The same strategy in each language: the rule parser reads all three (tests/test_i18n.py checks it).
STRATEGY_EXAMPLE = N_("buy 10% PEPE on bsc when it drops 5% in an hour, stop loss 3%, take profit 10%")


def strategy_example() -> str:
    """The example strategy sentence in the current language, in italics (HTML)."""
    return f"<i>{t(STRATEGY_EXAMPLE)}</i>"


def description(text: str) -> str:
    """A command's description (from `COMMANDS`) in the current language."""
    return t(text, max_bots=MAX_BOTS)


def arguments(grammar: str) -> str:
    """A command's argument grammar with its words in the current language."""
    return _WORD.sub(lambda m: t(ARGUMENT_WORDS[m[0]]) if m[0] in ARGUMENT_WORDS else m[0], grammar)


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
    grammar = next(a for n, a, _ in COMMANDS + ADMIN_COMMANDS if n == name)
    line = f"/{name} {arguments(grammar)}".rstrip()
    if example:
        return t("Usage: {command}, e.g. {example}", command=line, example=example)
    return t("Usage: {command}", command=line)
