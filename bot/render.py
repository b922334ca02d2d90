"""HTML formatting of bot replies. Pure functions: data in, Telegram-safe HTML out.

Every user-supplied or stored string goes through `esc`. Long output is cut to fit
Telegram's 4096-character limit by the callers' pagination; `clip` is the last guard.
"""

from __future__ import annotations

import html
import re
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from agents.ledger.reasons import parse_reason
from bot.cards import costs_text
from bot.messages import CATALOG, word
from engine.core import Costs
from engine.numbers import format_price, format_quantity
from engine.strategy import default_strategy
from storage.money import from_micro

if TYPE_CHECKING:
    from agents.screens import AgentScreen, PortfolioScreen, RemoteBalance

MAX_TEXT = 4096
MAX_CAPTION = 1024
PAGE_SIZE = 8

_TAG = re.compile(r"<(/?)([a-zA-Z-]+)[^>]*>")
_ANY_TAG = re.compile(r"<[^>]*>")
STATUS_ICON = {"active": "🟢", "paused": "⏸", "dead": "💀", "closed": "⚪"}


def esc(value: object) -> str:
    """Escape anything for HTML parse mode."""
    return html.escape(str(value), quote=False)


EXIT_REASON_WORDS: dict[str, str] = {
    "stop_loss": "stop-loss", "take_profit": "take-profit", "signal": "sell signal",
    "end": "end of the run", "stopped": "stopped by you",
}


def exit_reason(code: str) -> str:
    """An `engine.core` exit-reason code in words (older free-text reasons pass through)."""
    return EXIT_REASON_WORDS.get(code, code)


def reason_text(stored: str | None) -> str:
    """A stored reason (`agents.ledger.reasons`) in words, plain text: a code is worded by
    `bot.messages`; free text (older rows, the AI's or the remote automaton's words) stays as it is."""
    if not stored:
        return ""
    parsed = parse_reason(stored)
    if parsed is None:
        return stored
    if parsed.code not in CATALOG:  # written by a newer version: its code, not raw JSON
        return parsed.code
    return word(parsed.code, parsed.params)


def cost_warning_text(code: str, strategy: Any, costs: Costs) -> str:
    """Words for an `engine.core.cost_warnings` code."""
    rm, trip = strategy.risk_management, f"{costs.round_trip_pct:.2f}%"
    if code == "stop_within_costs":
        return (f"Your {rm.stop_loss_percent:g}% stop-loss is within the round-trip cost ({trip}: "
                f"{costs_text(costs)}): almost any dip will stop you out at a loss.")
    return (f"Your {rm.take_profit_percent:g}% take-profit does not cover the round-trip cost ({trip}: "
            f"{costs_text(costs)}): it would close trades at a loss.")


def fmt_usdc(value: Decimal | int, *, places: int = 2) -> str:
    """Human formatting: '1,234.50'. Accepts Decimal USDC (int is taken as micro-USDC)."""
    dec = from_micro(value) if isinstance(value, int) else value
    return f"{dec:,.{places}f}"


def usdc_exact(value: Decimal) -> str:
    """An amount to the micro-USDC, as short as it can be: '10.00 USDC', '9.999999 USDC' (for what a
    confirmation promises: nothing rounded)."""
    decimals = -int(value.normalize().as_tuple().exponent)  # digits after the point (negative: none)
    return f"{fmt_usdc(value, places=min(6, max(2, decimals)))} USDC"


def usdc(value: Decimal | None, places: int = 2) -> str:
    return "unknown" if value is None else f"{fmt_usdc(value, places=places)} USDC"


def remote_text(remote: RemoteBalance) -> str:
    """The Automaton's balance of an agent: "unknown" rather than a false number."""
    return "unknown" if remote.amount is None else f"{fmt_usdc(remote.amount)} USDC ({remote.status})"


def signed(value: Decimal, places: int = 2) -> str:
    sign = "+" if value > 0 else ""
    return f"{sign}{fmt_usdc(value, places=places)}"


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit Telegram counts limits and offsets in (the raw HTML
    is never shorter than what it shows)."""
    return len(text.encode("utf-16-le")) // 2


def _balanced(fragment: str) -> bool:
    """True when every tag opened in `fragment` is closed in it (and no tag is cut)."""
    if fragment.count("<") != fragment.count(">"):
        return False
    stack: list[str] = []
    for closing, name in _TAG.findall(fragment):
        if not closing:
            stack.append(name.lower())
        elif not stack or stack.pop() != name.lower():
            return False
    return not stack


def clip(text: str, limit: int = MAX_TEXT) -> str:
    """Last-resort guard: cut at a line break where no tag is open; else fall back to plain text.

    Without a safe line break (one overlong line, or a tag spanning the cut) the markup is
    dropped and the plain text is cut, so the result is always valid HTML within `limit`.
    """
    if utf16_len(text) <= limit:
        return text
    cut = text.rfind("\n", 0, limit - 2)
    while cut > 0:
        head = text[:cut]
        if utf16_len(head) <= limit - 2 and _balanced(head):
            return head + "\n…"
        cut = text.rfind("\n", 0, cut)
    plain = html.unescape(_ANY_TAG.sub("", text))
    while (excess := utf16_len(plain) - (limit - 1)) > 0:
        plain = plain[: len(plain) - max(1, (excess + 1) // 2)]  # a character is 1 or 2 units
    return esc(plain) + "…"


def page_count(total: int, size: int = PAGE_SIZE) -> int:
    return max(1, (total + size - 1) // size)


def portfolio_text(screen: PortfolioScreen, page: int, *, demo: bool = False) -> str:
    """The /ai_portfolio message: totals, risk figures, then one page of the agent tree."""
    portfolio, risk, unrealized = screen.portfolio, screen.risk, screen.unrealized
    agents = portfolio["agents"]
    pages = page_count(len(agents))
    page = min(max(page, 0), pages - 1)
    lines = [
        "📊 <b>Your AI portfolio</b>" + (" <i>(demo market)</i>" if demo else ""),
        "",
        f"💰 Total balance: <b>{usdc(portfolio['total_balance'])}</b>",
        f"💵 Available: {usdc(portfolio['total_available'])}",
        f"📈 Total earnings: {signed(portfolio['total_earnings'])} USDC",
        f"🤖 Agents: {portfolio['agent_count']}",
    ]
    if unrealized is not None:
        lines.append(f"📉 Open positions (unrealized): {signed(unrealized)} USDC")
    if risk:
        parts = []
        if risk.get("sharpe") is not None:
            parts.append(f"Sharpe {risk['sharpe']:.2f}")
        if risk.get("max_drawdown_pct") is not None:
            parts.append(f"max DD {risk['max_drawdown_pct']:.1f}%")
        if risk.get("var_95_pct") is not None:
            parts.append(f"VaR95 {risk['var_95_pct']:.1f}%")
        if parts:
            lines.append("⚖️ Risk: " + ", ".join(parts))
    if not agents:
        lines += ["", "You have no agents yet. Use /automaton to create one."]
        return "\n".join(lines)
    lines += ["", "<b>Agent hierarchy</b>" + (f" (page {page + 1}/{pages})" if pages > 1 else "")]
    for agent in agents[page * PAGE_SIZE:(page + 1) * PAGE_SIZE]:
        indent = "   " * int(agent.get("depth", agent["generation"] - 1))
        icon = STATUS_ICON.get(agent["status"], "•")
        branch = "└ " if agent["generation"] > 1 else ""
        lines.append(
            f"{indent}{branch}{icon} <code>{esc(agent['agent_id'])}</code> G{agent['generation']}"
            f" · {fmt_usdc(agent['isolated_balance'])} · {signed(agent['total_earnings'])}"
            + (f" · {agent['child_count']} child" + ("ren" if agent["child_count"] != 1 else "")
               if agent["child_count"] else "")
        )
    return clip("\n".join(lines))


def default_strategy_text() -> str:
    """The default strategy in short, from the engine's own definition."""
    d = default_strategy()
    cond, buy, rm = d.conditions[0], d.buy, d.risk_management
    return (f"default (buy {buy.amount_percent:g}% of {esc(d.token)} on a {cond.threshold:g}% {cond.timeframe} dip, "
            f"SL {rm.stop_loss_percent:g}%, TP {rm.take_profit_percent:g}%)")


def checked_text(last_check: float | None, every: float, now: float) -> str:
    """"Last market check: 40 s ago (every 60 s)", or that none has run since the bot started."""
    cadence = f"every {_duration(every)}"
    if last_check is None:
        return f"Last market check: not yet since the bot started ({cadence})"
    return f"Last market check: {_duration(max(0.0, now - last_check))} ago ({cadence})"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def first_run_hint(strategy: str | None, every: float) -> str:
    """After /automaton: what the new agent does now and when a first trade can come."""
    return (f"⏱ It checks the market {('every ' + _duration(every))} and trades when its strategy's conditions hold: "
            f"{esc(strategy) if strategy else default_strategy_text()}. Conditions are read on closed candles, "
            "so a first trade comes at the earliest when a matching candle closes, maybe not today. "
            "Follow it with /ai_status; you get a message for every trade.")


def agent_text(screen: AgentScreen, *, strategy: str | None = None, parity: str | None = None,
               costs: str | None = None, checked: str | None = None) -> str:
    """The /ai_status message for one agent (`strategy`: the description of its own strategy;
    `checked`: the last-market-check line)."""
    agent, positions, trades, children = screen.agent, screen.positions, screen.trades, screen.children
    icon = STATUS_ICON.get(agent["status"], "•")
    lines = [
        f"🤖 <b>Agent</b> <code>{esc(agent['agent_id'])}</code>",
        "",
        f"Generation: {agent['generation']}",
        f"Status: {icon} {esc(agent['status'])}"
        + (f" ({esc(reason_text(agent['status_reason']))})" if agent.get("status_reason") else ""),
        f"Balance: <b>{usdc(agent['isolated_balance'])}</b>",
        f"Available: {usdc(agent['available_balance'])}",
        f"Earnings: {signed(agent['total_earnings'])} USDC",
        f"Parent: {('<code>' + esc(agent['parent_agent_id']) + '</code>') if agent['parent_agent_id'] else '—'}",
        f"Children: {agent['child_count']}",
    ]
    if agent.get("spawn_reason"):
        lines.append(f"Spawned because: <i>{esc(reason_text(agent['spawn_reason']))}</i>")
    if screen.remote is not None:
        lines.append(f"Remote automaton balance: {esc(remote_text(screen.remote))}")
    if screen.strategy.invalid:
        lines.append("Strategy: ⚠️ the assigned strategy is no longer valid, so this agent does not trade. "
                     "Assign another one.")
    else:
        lines.append(f"Strategy: {esc(strategy) if strategy else default_strategy_text()}")
    if children:
        lines.append("Child agents: " + ", ".join(f"<code>{esc(c)}</code>" for c in children[:10])
                     + (" …" if len(children) > 10 else ""))
    if positions:
        lines += ["", "<b>Open positions</b>"]
        for p in positions[:5]:
            lines.append(f"• {esc(p['symbol'])}: {format_quantity(p['size'])} @ "
                         f"{format_price(p['entry_price'])} (cost {usdc(p['cost'])})")
    if trades:
        lines += ["", "<b>Last trades</b>"]
        for t in trades[:5]:
            lines.append(f"• {esc(t['symbol'])} {format_price(t['entry_price'])} → {format_price(t['exit_price'])}: "
                         f"{signed(t['pnl'])} USDC ({esc(exit_reason(t['exit_reason']))})")
    if costs:
        lines.append(f"Costs: {esc(costs)}")
    if checked and agent["status"] == "active":
        lines.append(esc(checked))
    if parity:
        lines.append(esc(parity))
    return clip("\n".join(lines))


def agent_summary(agent: dict[str, Any], *, demo: bool) -> str:
    """The /automaton reply for an existing agent."""
    icon = STATUS_ICON.get(agent["status"], "•")
    return "\n".join([
        "🤖 <b>Your automaton</b>" + (" <i>(demo market)</i>" if demo else ""),
        "",
        f"ID: <code>{esc(agent['agent_id'])}</code>",
        f"Status: {icon} {esc(agent['status'])}",
        f"Balance: <b>{usdc(agent['isolated_balance'])}</b> (available {usdc(agent['available_balance'])})",
        f"Earnings: {signed(agent['total_earnings'])} USDC",
        f"Children: {agent['child_count']}",
        "",
        "It trades on its own and spawns child agents from its earnings.",
    ])
