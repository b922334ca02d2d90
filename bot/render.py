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
from bot.i18n import N_, t, tn
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
# An agent's status code in words (an unknown code is shown as it is).
STATUS_WORDS: dict[str, str] = {"active": N_("active"), "paused": N_("paused"), "dead": N_("dead"),
                                "closed": N_("closed")}


def esc(value: object) -> str:
    """Escape anything for HTML parse mode."""
    return html.escape(str(value), quote=False)


EXIT_REASON_WORDS: dict[str, str] = {
    "stop_loss": N_("stop-loss"), "take_profit": N_("take-profit"), "signal": N_("sell signal"),
    "end": N_("end of the run"), "stopped": N_("stopped by you"),
}


def exit_reason(code: str) -> str:
    """An `engine.core` exit-reason code in words (older free-text reasons pass through)."""
    return t(EXIT_REASON_WORDS[code]) if code in EXIT_REASON_WORDS else code


def status_word(status: str) -> str:
    """An agent's status in words (plain text)."""
    return t(STATUS_WORDS[status]) if status in STATUS_WORDS else status


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
    rm, trip, fees = strategy.risk_management, f"{costs.round_trip_pct:.2f}", costs_text(costs)
    if code == "stop_within_costs":
        return t("Your {percent}% stop-loss is within the round-trip cost ({round_trip}%: {costs}): "
                 "almost any dip will stop you out at a loss.",
                 percent=format(rm.stop_loss_percent, "g"), round_trip=trip, costs=fees)
    return t("Your {percent}% take-profit does not cover the round-trip cost ({round_trip}%: {costs}): "
             "it would close trades at a loss.", percent=format(rm.take_profit_percent, "g"), round_trip=trip,
             costs=fees)


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
    return t("unknown") if value is None else f"{fmt_usdc(value, places=places)} USDC"


def remote_text(remote: RemoteBalance) -> str:
    """The Automaton's balance of an agent: "unknown" rather than a false number."""
    return t("unknown") if remote.amount is None else f"{fmt_usdc(remote.amount)} USDC ({remote.status})"


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


def _risk_line(risk: dict[str, Any] | None) -> str | None:
    """"⚖️ Risk: Sharpe 1.20, max DD 4.0%, VaR95 2.1%", or None without figures."""
    if not risk:
        return None
    parts = []
    if risk.get("sharpe") is not None:
        parts.append(t("Sharpe {value}", value=format(risk["sharpe"], ".2f")))
    if risk.get("max_drawdown_pct") is not None:
        parts.append(t("max DD {value}%", value=format(risk["max_drawdown_pct"], ".1f")))
    if risk.get("var_95_pct") is not None:
        parts.append(t("VaR95 {value}%", value=format(risk["var_95_pct"], ".1f")))
    return t("⚖️ Risk: {figures}", figures=", ".join(parts)) if parts else None


def _tree_line(agent: dict[str, Any]) -> str:
    """One agent of the /ai_portfolio tree, indented under its parent."""
    indent = "   " * int(agent.get("depth", agent["generation"] - 1))
    icon = STATUS_ICON.get(agent["status"], "•")
    branch = "└ " if agent["generation"] > 1 else ""
    line = (f"{indent}{branch}{icon} <code>{esc(agent['agent_id'])}</code> G{agent['generation']}"
            f" · {fmt_usdc(agent['isolated_balance'])} · {signed(agent['total_earnings'])}")
    if agent["child_count"]:
        line += " · " + tn("{n} child", "{n} children", agent["child_count"])
    return line


def portfolio_text(screen: PortfolioScreen, page: int, *, demo: bool = False) -> str:
    """The /ai_portfolio message: totals, risk figures, then one page of the agent tree."""
    portfolio, unrealized = screen.portfolio, screen.unrealized
    agents = portfolio["agents"]
    pages = page_count(len(agents))
    page = min(max(page, 0), pages - 1)
    lines = [
        t("📊 <b>Your AI portfolio</b> <i>(demo market)</i>") if demo else t("📊 <b>Your AI portfolio</b>"),
        "",
        t("💰 Total balance: <b>{amount}</b>", amount=usdc(portfolio["total_balance"])),
        t("💵 Available: {amount}", amount=usdc(portfolio["total_available"])),
        t("📈 Total earnings: {amount} USDC", amount=signed(portfolio["total_earnings"])),
        t("🤖 Agents: {count}", count=portfolio["agent_count"]),
    ]
    if unrealized is not None:
        lines.append(t("📉 Open positions (unrealized): {amount} USDC", amount=signed(unrealized)))
    if (risk := _risk_line(screen.risk)) is not None:
        lines.append(risk)
    if not agents:
        lines += ["", t("You have no agents yet. Use /automaton to create one.")]
        return "\n".join(lines)
    lines += ["", t("<b>Agent hierarchy</b> (page {page}/{pages})", page=page + 1, pages=pages) if pages > 1
              else t("<b>Agent hierarchy</b>")]
    lines += [_tree_line(agent) for agent in agents[page * PAGE_SIZE:(page + 1) * PAGE_SIZE]]
    return clip("\n".join(lines))


def default_strategy_text() -> str:
    """The default strategy in short, from the engine's own definition."""
    d = default_strategy()
    cond, buy, rm = d.conditions[0], d.buy, d.risk_management
    return t("default (buy {amount}% of {token} on a {threshold}% {timeframe} dip, SL {stop_loss}%, TP {take_profit}%)",
             amount=format(buy.amount_percent, "g"), token=esc(d.token), threshold=format(cond.threshold, "g"),
             timeframe=cond.timeframe, stop_loss=format(rm.stop_loss_percent, "g"),
             take_profit=format(rm.take_profit_percent, "g"))


def checked_text(last_check: float | None, every: float, now: float) -> str:
    """"Last market check: 40 s ago (every 60 s)", or that none has run since the bot started."""
    if last_check is None:
        return t("Last market check: not yet since the bot started (every {every})", every=_duration(every))
    return t("Last market check: {ago} ago (every {every})", ago=_duration(max(0.0, now - last_check)),
             every=_duration(every))


def _duration(seconds: float) -> str:
    if seconds < 90:
        return t("{seconds} s", seconds=format(seconds, ".0f"))
    if seconds < 90 * 60:
        return t("{minutes} min", minutes=format(seconds / 60, ".0f"))
    return t("{hours} h", hours=format(seconds / 3600, ".1f"))


def first_run_hint(strategy: str | None, every: float) -> str:
    """After /automaton: what the new agent does now and when a first trade can come."""
    return t("⏱ It checks the market every {every} and trades when its strategy's conditions hold: {strategy}. "
             "Conditions are read on closed candles, so a first trade comes at the earliest when a matching candle "
             "closes, maybe not today. Follow it with /ai_status; you get a message for every trade.",
             every=_duration(every), strategy=esc(strategy) if strategy else default_strategy_text())


def _status_line(agent: dict[str, Any]) -> str:
    icon, status = STATUS_ICON.get(agent["status"], "•"), esc(status_word(agent["status"]))
    if agent.get("status_reason"):
        return t("Status: {icon} {status} ({reason})", icon=icon, status=status,
                 reason=esc(reason_text(agent["status_reason"])))
    return t("Status: {icon} {status}", icon=icon, status=status)


def _agent_lines(screen: AgentScreen, strategy: str | None) -> list[str]:
    """The figures of one agent: balances, family, the remote balance and its strategy."""
    agent, children = screen.agent, screen.children
    lines = [
        t("🤖 <b>Agent</b> <code>{agent_id}</code>", agent_id=esc(agent["agent_id"])),
        "",
        t("Generation: {generation}", generation=agent["generation"]),
        _status_line(agent),
        t("Balance: <b>{amount}</b>", amount=usdc(agent["isolated_balance"])),
        t("Available: {amount}", amount=usdc(agent["available_balance"])),
        t("Earnings: {amount} USDC", amount=signed(agent["total_earnings"])),
        t("Parent: <code>{agent_id}</code>", agent_id=esc(agent["parent_agent_id"])) if agent["parent_agent_id"]
        else t("Parent: —"),
        t("Children: {count}", count=agent["child_count"]),
    ]
    if agent.get("spawn_reason"):
        lines.append(t("Spawned because: <i>{reason}</i>", reason=esc(reason_text(agent["spawn_reason"]))))
    if screen.remote is not None:
        lines.append(t("Remote automaton balance: {balance}", balance=esc(remote_text(screen.remote))))
    if screen.strategy.invalid:
        lines.append(t("Strategy: ⚠️ the assigned strategy is no longer valid, so this agent does not trade. "
                       "Assign another one."))
    else:
        lines.append(t("Strategy: {strategy}", strategy=esc(strategy) if strategy else default_strategy_text()))
    if children:
        listed = ", ".join(f"<code>{esc(c)}</code>" for c in children[:10]) + (" …" if len(children) > 10 else "")
        lines.append(t("Child agents: {agents}", agents=listed))
    return lines


def agent_text(screen: AgentScreen, *, strategy: str | None = None, parity: str | None = None,
               costs: str | None = None, checked: str | None = None, watching: str | None = None) -> str:
    """The /ai_status message for one agent (`strategy`: the description of its own strategy;
    `checked`: the last-market-check line; `watching`: what it waits for, HTML)."""
    lines = _agent_lines(screen, strategy)
    if watching:
        lines += ["", watching]
    if screen.positions:
        lines += ["", t("<b>Open positions</b>")]
        for p in screen.positions[:5]:
            lines.append(t("• {symbol}: {size} @ {price} (cost {cost})", symbol=esc(p["symbol"]),
                           size=format_quantity(p["size"]), price=format_price(p["entry_price"]), cost=usdc(p["cost"])))
    if screen.trades:
        lines += ["", t("<b>Last trades</b>")]
        for trade in screen.trades[:5]:
            lines.append(f"• {esc(trade['symbol'])} {format_price(trade['entry_price'])} → "
                         f"{format_price(trade['exit_price'])}: {signed(trade['pnl'])} USDC "
                         f"({esc(exit_reason(trade['exit_reason']))})")
    if costs:
        lines.append(t("Costs: {costs}", costs=esc(costs)))
    if checked and screen.agent["status"] == "active":
        lines.append(esc(checked))
    if parity:
        lines.append(esc(parity))
    return clip("\n".join(lines))


def agent_summary(agent: dict[str, Any], *, demo: bool) -> str:
    """The /automaton reply for an existing agent."""
    icon = STATUS_ICON.get(agent["status"], "•")
    return "\n".join([
        t("🤖 <b>Your automaton</b> <i>(demo market)</i>") if demo else t("🤖 <b>Your automaton</b>"),
        "",
        t("ID: <code>{agent_id}</code>", agent_id=esc(agent["agent_id"])),
        t("Status: {icon} {status}", icon=icon, status=esc(status_word(agent["status"]))),
        t("Balance: <b>{amount}</b> (available {available})", amount=usdc(agent["isolated_balance"]),
          available=usdc(agent["available_balance"])),
        t("Earnings: {amount} USDC", amount=signed(agent["total_earnings"])),
        t("Children: {count}", count=agent["child_count"]),
        "",
        t("It trades on its own and spawns child agents from its earnings."),
    ])
