"""Words for the trade reports (/profit, /trades)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from agents.screens import PeriodRow, ProfitRow, ProfitScreen
from bot.render import clip, esc, exit_reason, signed, usdc
from bot.wording import count
from engine.numbers import format_price, format_quantity

MAX_AGENT_ROWS = 10


def _profit_factor(row: ProfitRow) -> str:
    if row.profit_factor is not None:
        return f"{row.profit_factor:.2f}"
    return "∞ (no losing trade)" if row.trades else "n/a"


def _row(row: ProfitRow) -> list[str]:
    return [f"Closed trades: {row.trades} · win rate {row.win_rate_pct:.0f}% · profit factor {_profit_factor(row)}",
            f"P&amp;L: <b>{signed(row.pnl)} USDC</b> (won {usdc(row.gross_win)}, lost {usdc(row.gross_loss)})",
            f"Best {signed(row.best)} · worst {signed(row.worst)} USDC"]


def profit_text(screen: ProfitScreen) -> str:
    """/profit: the total over every agent, then each agent with closed trades."""
    if not screen.total.trades:
        return ("💹 <b>Profit</b>\n\nNo closed trades yet. Agents trade on their own when their strategy's "
                "conditions hold; see /ai_status for what each one waits for.")
    lines = ["💹 <b>Profit</b> (closed paper trades, net of fees)", "", "<b>All agents</b>", *_row(screen.total)]
    for row in screen.agents[:MAX_AGENT_ROWS]:
        lines += ["", f"<code>{esc(row.agent_id or '')}</code>", *_row(row)]
    if len(screen.agents) > MAX_AGENT_ROWS:
        lines += ["", f"… and {count(len(screen.agents) - MAX_AGENT_ROWS, 'more agent', 'more agents')}"]
    return clip("\n".join(lines))


def trades_text(trades: list[dict[str, Any]], limit: int) -> str:
    """/trades [n]: the newest closed trades, newest first."""
    if not trades:
        return "🧾 <b>Trades</b>\n\nNo closed trades yet."
    lines = [f"🧾 <b>Last {count(len(trades), 'trade', 'trades')}</b>" + (f" (of up to {limit})" if len(trades) < limit
                                                                           else ""), ""]
    for t in trades:
        when = esc(str(t["closed_at"])[:16].replace("T", " "))
        lines.append(f"• {when} <code>{esc(t['agent_id'])}</code> {esc(t['symbol'])} "
                     f"{format_price(t['entry_price'])} → {format_price(t['exit_price'])}: "
                     f"<b>{signed(t['pnl'])} USDC</b> ({esc(exit_reason(t['exit_reason']))})")
    return clip("\n".join(lines))


PERIOD_TITLES = {"day": "Daily", "week": "Weekly", "month": "Monthly"}


def _period_label(row: PeriodRow, period: str) -> str:
    if period == "month":
        return row.start.strftime("%b %Y")
    if period == "week":
        return "week of " + row.start.strftime("%d %b %Y")
    return row.start.strftime("%a %d %b %Y")


def periods_text(rows: list[PeriodRow], period: str) -> str:
    """/daily, /weekly, /monthly: closed P&L per calendar period (UTC), newest first."""
    total = sum((r.pnl for r in rows), Decimal(0))
    lines = [f"📅 <b>{PERIOD_TITLES[period]} profit</b> (UTC, closed paper trades, net of fees)", ""]
    for row in rows:
        figures = f"{signed(row.pnl)} USDC · {count(row.trades, 'trade', 'trades')}" if row.trades else "no trades"
        lines.append(f"• {esc(_period_label(row, period))}: {figures}")
    lines += ["", f"Over these {count(len(rows), period, period + 's')}: <b>{signed(total)} USDC</b>"]
    return clip("\n".join(lines))


MAX_POSITIONS = 15


def _level(price: float | None) -> str:
    return "—" if price is None else format_price(price)


def positions_text(positions: list[dict[str, Any]]) -> str:
    """/status: each open position with the current price, unrealized P&L and its stop/target."""
    if not positions:
        return "📂 <b>Open positions</b>\n\nNone open. /trades shows the closed ones."
    lines = [f"📂 <b>Open positions</b> ({len(positions)})", ""]
    for p in positions[:MAX_POSITIONS]:
        if p["price"] is None:
            now = "price unavailable, P&amp;L unknown"
        else:
            change = (p["price"] / p["entry_price"] - 1) * 100 if p["entry_price"] else 0.0
            now = f"now {format_price(p['price'])} ({change:+.1f}%), unrealized <b>{signed(p['unrealized'])} USDC</b>"
        lines += [f"• {esc(p['symbol'])} <code>{esc(p['agent_id'])}</code>: {format_quantity(p['size'])} @ "
                  f"{format_price(p['entry_price'])} (cost {usdc(p['cost'])})",
                  f"  {now}", f"  stop {_level(p['stop_loss'])} · target {_level(p['take_profit'])}"]
    if len(positions) > MAX_POSITIONS:
        lines.append(f"… and {count(len(positions) - MAX_POSITIONS, 'more position', 'more positions')}")
    lines += ["", "Unrealized P&amp;L includes the exit fee and slippage."]
    return clip("\n".join(lines))
