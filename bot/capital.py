"""The paper capital a backtest or a simulation starts with: chosen, else the main agent's balance,
else the engine's default; and the words that say which (the reply always states it)."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import TYPE_CHECKING

from agents.ledger.amounts import parse_amount
from bot.i18n import t
from bot.render import fmt_usdc
from engine.capital import DEFAULT_CAPITAL, MIN_CAPITAL
from storage.money import floor_usdc, from_micro

if TYPE_CHECKING:
    from bot.services import Services

# "$500", "500$", "500usdc", "500 USD": a number with a currency mark is a capital, not days.
# The number must start like one ("$PEPE" stays a cashtag token); the ledger's rules then judge it.
_NUMBERISH = r"[+-]?(?:\d|[.,]\d)[^$\s]*"
CAPITAL_WORD = re.compile(rf"^(?:\$\s?(?P<a>{_NUMBERISH})|(?P<b>{_NUMBERISH}?)\s?(?:usdc|usd|\$))$", re.IGNORECASE)
CHOSEN, AGENT, DEFAULT = "chosen", "agent", "default"


def capital_word(word: str) -> str | None:
    """The number of a capital-shaped argument ("$500" -> "500"), or None for another argument."""
    match = CAPITAL_WORD.match(word.strip())
    return None if match is None else (match.group("a") or match.group("b"))


def parse_capital(text: str) -> Decimal:
    """A capital typed by the user, in USDC (the ledger's amount rules: a coded refusal otherwise;
    the engine checks the range)."""
    return from_micro(parse_amount(text, what="capital"))


async def capital_for(services: Services, user_id: int, chosen: Decimal | float | None) -> tuple[Decimal, str]:
    """The capital to run with and where it came from: `chosen`, else `default_capital`."""
    if chosen is not None:
        return Decimal(str(chosen)), CHOSEN
    return await default_capital(services, user_id)


async def default_capital(services: Services, user_id: int) -> tuple[Decimal, str]:
    """The main agent's available balance when it has one worth testing with, else the default."""
    agent = await services.manager.get_main_agent(user_id)
    if agent is not None and agent["status"] in ("active", "paused"):
        available = floor_usdc(Decimal(agent["available_balance"]))
        if available >= MIN_CAPITAL:
            return available, AGENT
    return Decimal(DEFAULT_CAPITAL), DEFAULT


def capital_text(amount: Decimal | float, source: str) -> str:
    """'Capital: 1,000.00 USDC (the default; choose one like $500)' — the line every result states."""
    value = fmt_usdc(Decimal(str(amount)))
    if source == AGENT:
        return t("Capital: {amount} USDC (your main agent's available balance)", amount=value)
    if source == DEFAULT:
        return t("Capital: {amount} USDC (the default; choose another like $500)", amount=value)
    return t("Capital: {amount} USDC", amount=value)
