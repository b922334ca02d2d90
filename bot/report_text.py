"""Words for the trade reports (/profit, /trades)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from agents.screens import PeriodRow, ProfitRow, ProfitScreen
from bot.i18n import N_, t, tn
from bot.render import clip, esc, exit_reason, signed, usdc
from engine.numbers import format_price, format_quantity

MAX_AGENT_ROWS = 10


def _profit_factor(row: ProfitRow) -> str:
    if row.profit_factor is not None:
        return f"{row.profit_factor:.2f}"
    return t("∞ (no losing trade)") if row.trades else t("n/a")


def _row(row: ProfitRow) -> list[str]:
    return [t("Closed trades: {trades} · win rate {win_rate}% · profit factor {profit_factor}", trades=row.trades,
              win_rate=format(row.win_rate_pct, ".0f"), profit_factor=_profit_factor(row)),
            t("P&amp;L: <b>{pnl} USDC</b> (won {won}, lost {lost})", pnl=signed(row.pnl), won=usdc(row.gross_win),
              lost=usdc(row.gross_loss)),
            t("Best {best} · worst {worst} USDC", best=signed(row.best), worst=signed(row.worst)),
            t("Fees paid: {fees}", fees=usdc(row.fees))]


def profit_text(screen: ProfitScreen) -> str:
    """/profit: the total over every agent, then each agent with closed trades."""
    if not screen.total.trades:
        return t("💹 <b>Profit</b>\n\nNo closed trades yet. Agents trade on their own when their strategy's "
                 "conditions hold; see /ai_status for what each one waits for.")
    lines = [t("💹 <b>Profit</b> (closed paper trades, net of fees)"), "", t("<b>All agents</b>"), *_row(screen.total)]
    for row in screen.agents[:MAX_AGENT_ROWS]:
        lines += ["", f"<code>{esc(row.agent_id or '')}</code>", *_row(row)]
    if len(screen.agents) > MAX_AGENT_ROWS:
        lines += ["", tn("… and {n} more agent", "… and {n} more agents", len(screen.agents) - MAX_AGENT_ROWS)]
    return clip("\n".join(lines))


def performance_text(screen: ProfitScreen) -> str:
    """/performance: closed trades per token, best first, with the total over all of them."""
    if not screen.total.trades:
        return t("🏆 <b>Performance per token</b>\n\nNo closed trades yet.")
    lines = [t("🏆 <b>Performance per token</b> (closed paper trades, net of fees)")]
    for row in screen.agents[:MAX_AGENT_ROWS]:
        lines += ["", f"<b>{esc(row.agent_id or '')}</b>", *_row(row)]
    if len(screen.agents) > MAX_AGENT_ROWS:
        lines += ["", tn("… and {n} more token", "… and {n} more tokens", len(screen.agents) - MAX_AGENT_ROWS)]
    lines += ["", t("<b>All tokens</b>"), *_row(screen.total)]
    return clip("\n".join(lines))


def trades_text(trades: list[dict[str, Any]], limit: int) -> str:
    """/trades [n]: the newest closed trades, newest first."""
    if not trades:
        return t("🧾 <b>Trades</b>\n\nNo closed trades yet.")
    if len(trades) < limit:
        title = tn("🧾 <b>Last {n} trade</b> (of up to {limit})", "🧾 <b>Last {n} trades</b> (of up to {limit})",
                   len(trades), limit=limit)
    else:
        title = tn("🧾 <b>Last {n} trade</b>", "🧾 <b>Last {n} trades</b>", len(trades))
    lines = [title, ""]
    for trade in trades:
        when = esc(str(trade["closed_at"])[:16].replace("T", " "))
        lines.append(f"• {when} <code>{esc(trade['agent_id'])}</code> {esc(trade['symbol'])} "
                     f"{format_price(trade['entry_price'])} → {format_price(trade['exit_price'])}: "
                     f"<b>{signed(trade['pnl'])} USDC</b> ({esc(exit_reason(trade['exit_reason']))})")
    return clip("\n".join(lines))


PERIOD_TITLES = {"day": N_("📅 <b>Daily profit</b> (UTC, closed paper trades, net of fees)"),
                 "week": N_("📅 <b>Weekly profit</b> (UTC, closed paper trades, net of fees)"),
                 "month": N_("📅 <b>Monthly profit</b> (UTC, closed paper trades, net of fees)")}
# Month and weekday names as `strftime`'s %b and %a write them in English.
MONTHS = (N_("Jan"), N_("Feb"), N_("Mar"), N_("Apr"), N_("May"), N_("Jun"), N_("Jul"), N_("Aug"), N_("Sep"),
          N_("Oct"), N_("Nov"), N_("Dec"))
WEEKDAYS = (N_("Mon"), N_("Tue"), N_("Wed"), N_("Thu"), N_("Fri"), N_("Sat"), N_("Sun"))


def _day_month_year(day: date | datetime) -> str:
    """'05 Jan 2025' (strftime's '%d %b %Y', the month in the reader's language)."""
    return f"{day.day:02d} {t(MONTHS[day.month - 1])} {day.year}"


def _period_label(row: PeriodRow, period: str) -> str:
    if period == "month":
        return f"{t(MONTHS[row.start.month - 1])} {row.start.year}"
    if period == "week":
        return t("week of {date}", date=_day_month_year(row.start))
    return f"{t(WEEKDAYS[row.start.weekday()])} {_day_month_year(row.start)}"


def _over(period: str, periods: int, total: str) -> str:
    """The total line: 'Over these 7 days: <b>+1.20 USDC</b>'."""
    if period == "month":
        return tn("Over these {n} month: <b>{total} USDC</b>", "Over these {n} months: <b>{total} USDC</b>", periods,
                  total=total)
    if period == "week":
        return tn("Over these {n} week: <b>{total} USDC</b>", "Over these {n} weeks: <b>{total} USDC</b>", periods,
                  total=total)
    return tn("Over these {n} day: <b>{total} USDC</b>", "Over these {n} days: <b>{total} USDC</b>", periods,
              total=total)


def periods_text(rows: list[PeriodRow], period: str) -> str:
    """/daily, /weekly, /monthly: closed P&L per calendar period (UTC), newest first."""
    total = sum((r.pnl for r in rows), Decimal(0))
    lines = [t(PERIOD_TITLES[period]), ""]
    for row in rows:
        figures = (tn("{pnl} USDC · {n} trade", "{pnl} USDC · {n} trades", row.trades, pnl=signed(row.pnl))
                   if row.trades else t("no trades"))
        lines.append(f"• {esc(_period_label(row, period))}: {figures}")
    lines += ["", _over(period, len(rows), signed(total))]
    return clip("\n".join(lines))


MAX_POSITIONS = 15


def _level(price: float | None) -> str:
    return "—" if price is None else format_price(price)


def _position_lines(p: dict[str, Any]) -> list[str]:
    if p["price"] is None:
        now = t("price unavailable, P&amp;L unknown")
    else:
        change = (p["price"] / p["entry_price"] - 1) * 100 if p["entry_price"] else 0.0
        now = t("now {price} ({change}%), unrealized <b>{pnl} USDC</b>", price=format_price(p["price"]),
                change=format(change, "+.1f"), pnl=signed(p["unrealized"]))
    return [t("• {symbol} <code>{agent_id}</code>: {size} @ {price} (cost {cost})", symbol=esc(p["symbol"]),
              agent_id=esc(p["agent_id"]), size=format_quantity(p["size"]), price=format_price(p["entry_price"]),
              cost=usdc(p["cost"])),
            f"  {now}",
            "  " + t("stop {stop} · target {target}", stop=_level(p["stop_loss"]), target=_level(p["take_profit"]))]


def positions_text(positions: list[dict[str, Any]]) -> str:
    """/status: each open position with the current price, unrealized P&L and its stop/target."""
    if not positions:
        return t("📂 <b>Open positions</b>\n\nNone open. /trades shows the closed ones.")
    lines = [t("📂 <b>Open positions</b> ({count})", count=len(positions)), ""]
    for p in positions[:MAX_POSITIONS]:
        lines += _position_lines(p)
    if len(positions) > MAX_POSITIONS:
        lines.append(tn("… and {n} more position", "… and {n} more positions", len(positions) - MAX_POSITIONS))
    lines += ["", t("Unrealized P&amp;L includes the exit fee and slippage.")]
    return clip("\n".join(lines))
