"""Cards and summaries the engine's read models are shown as: plain text, escaped by the caller.

The engine returns typed data (`SimulationStatus`, `ParityReport`, `BacktestReport`, stage and
end-reason codes); the words are here, so they are written once and can be translated.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from bot.i18n import N_, t, tn
from bot.messages import describe
from engine.backtest_service import FETCHING, RUNNING, BacktestReport
from engine.core import Costs
from engine.numbers import format_price, format_quantity
from engine.parity import BARS_UNUSABLE, SIMULATION_PREDATES, TRADES_PREDATE, ParityReport
from engine.simulate.status import SimulationStatus
from engine.simulate.store import BOT_DELETED, MAX_DURATION, STOPPED, UNREADABLE

_PARITY_UNAVAILABLE = {
    SIMULATION_PREDATES: N_("this simulation predates the parity check"),
    TRADES_PREDATE: N_("some trades predate the parity check"),
}
_END_REASONS = {
    STOPPED: N_("stopped by you"),
    UNREADABLE: N_("its stored data could not be read"),
    BOT_DELETED: N_("its strategy bot was deleted"),
}
# A simulation's status code in words (an unknown code is shown as it is).
_SIMULATION_STATUSES = {"running": N_("running"), "stopped": N_("stopped"), "finished": N_("finished"),
                        "failed": N_("failed")}


def _worded(table: dict[str, str], code: str) -> str:
    return t(table[code]) if code in table else code


def costs_text(costs: Costs) -> str:
    """'fee 0.30% + slippage 0.10% per fill' (the costs line of every card and summary)."""
    return t("fee {fee}% + slippage {slippage}% per fill", fee=format(costs.fee_bps / 100, ".2f"),
             slippage=format(costs.slippage_bps / 100, ".2f"))


def parity_line(report: ParityReport) -> str:
    """The one line users see, e.g. 'Parity: replayed through the backtest: 4/4 trades identical'."""
    if report.unavailable:
        if report.unavailable == BARS_UNUSABLE and report.problem is not None:
            why = describe(report.problem)
        else:
            why = _worded(_PARITY_UNAVAILABLE, report.unavailable)
        return t("Parity: replayed through the backtest: not available ({why})", why=why)
    if report.total == 0:
        return t("Parity: replayed through the backtest: no closed bar with a trade yet, none in the backtest either")
    if report.ok:
        return t("Parity: replayed through the backtest: {identical}/{total} trades identical",
                 identical=report.identical, total=report.total)
    return t("Parity: replayed through the backtest: {identical}/{total} trades identical (the difference is logged)",
             identical=report.identical, total=report.total)


def end_reason(reason: str, max_hours: float | None = None) -> str:
    """Why a simulation ended, from its end-reason code (an unknown code is shown as it is)."""
    if reason == MAX_DURATION and max_hours is not None:
        return t("it reached the maximum duration of {hours} h", hours=format(round(max_hours, 2), "g"))
    return _worded(_END_REASONS, reason)


def _money(value: Decimal) -> str:
    return f"{value:,.2f}"


def _signed(value: Decimal | int) -> str:
    amount = Decimal(value)
    return f"{'+' if amount > 0 else ''}{amount:,.2f}"


def _title(status: SimulationStatus) -> str:
    """'#7 Dip buyer · PEPE 1h · running'."""
    params = {"simulation_id": status.simulation_id, "bot_name": status.bot_name, "symbol": status.symbol,
              "timeframe": status.timeframe, "status": _worded(_SIMULATION_STATUSES, status.status)}
    if status.demo:
        return t("#{simulation_id} {bot_name} · {symbol} {timeframe} (demo market) · {status}", **params)
    return t("#{simulation_id} {bot_name} · {symbol} {timeframe} · {status}", **params)


def simulation_card(status: SimulationStatus) -> str:
    """A plain-text block for one simulation (the caller escapes it for HTML)."""
    lines = [_title(status),
             t("Equity {equity} USDC ({pnl}, {pnl_pct}%)", equity=_money(status.equity), pnl=_signed(status.pnl),
               pnl_pct=format(status.pnl_pct, "+.2f"))]
    pos = status.position
    if pos is not None:
        lines.append(t("Position {size} {symbol} @ {price}, cost {cost} USDC, unrealized {unrealized}",
                       size=format_quantity(pos.size), symbol=status.symbol, price=format_price(pos.entry_price),
                       cost=_money(pos.cost), unrealized=_signed(status.unrealized_pnl or 0)))
    else:
        lines.append(t("No open position"))
    price = t("n/a") if status.last_price is None else format_price(status.last_price)
    lines.append(t("Signals {signals} · trades {trades} · last price {price}", signals=status.signals,
                   trades=status.trades, price=price))
    lines.append(t("Costs: {costs}; paid {fees} USDC in fees, {slippage} in slippage",
                   costs=costs_text(Costs(status.fee_bps, status.slippage_bps)), fees=_money(status.fees_paid),
                   slippage=_money(status.slippage_paid)))
    if status.parity is not None:
        lines.append(parity_line(status.parity))
    if status.status == "running":
        minutes = int(status.time_left_seconds // 60)
        lines.append(t("Time left {hours}h {minutes}m", hours=minutes // 60, minutes=format(minutes % 60, "02d")))
    if status.last_error:
        lines.append(t("Last problem: {problem}", problem=status.last_error))
    return "\n".join(lines)


def progress_text(stage: str, candles: int) -> str:
    """The backtest's progress line for a `engine.backtest_service` stage."""
    if stage == FETCHING:
        return t("Fetching candles…")
    if stage == RUNNING:
        return t("Running backtest on {candles} candles…", candles=format(candles, ","))
    return stage


def _pct(value: Any, signed: bool = True) -> str:
    if value is None:
        return t("n/a")
    return f"{float(value):+.2f}%" if signed else f"{float(value):.2f}%"


def _num(value: Any, places: int = 2) -> str:
    return t("n/a") if value is None else f"{float(value):.{places}f}"


def _dollars(value: Any) -> str:
    if value is None:
        return t("n/a")
    amount = float(value)
    return f"{'-' if amount < 0 else ''}${abs(amount):,.2f}"


def _profit_factor(m: dict[str, Any]) -> str:
    """Gross profit over gross loss; with winners and no loser it is unbounded, not unknown."""
    value = m.get("profit_factor")
    if value is None and m.get("total_trades") and m.get("win_rate_pct") == 100:
        return t("∞ (no losing trade)")
    return t("n/a (no closed trade)") if value is None and not m.get("total_trades") else _num(value)


def _token_value(report: BacktestReport) -> str:
    if report.demo:
        return t("{symbol} ({chain}) · demo data", symbol=report.symbol, chain=report.chain)
    return f"{report.symbol} ({report.chain})"


def _final_equity(m: dict[str, Any], st: dict[str, Any]) -> str:
    if st.get("initial_equity"):
        return t("{final} (from {initial})", final=_dollars(m.get("final_equity")),
                 initial=_dollars(st["initial_equity"]))
    return _dollars(m.get("final_equity"))


def _costs_value(st: dict[str, Any]) -> str:
    costs = costs_text(Costs(st["fee_bps"], st["slippage_bps"]))
    if "fees_paid" in st and "slippage_paid" in st:
        return t("{costs}: paid {fees} in fees + {slippage} in slippage", costs=costs,
                 fees=_dollars(st["fees_paid"]), slippage=_dollars(st["slippage_paid"]))
    return costs


def metrics_rows(report: BacktestReport) -> list[tuple[str, str]]:
    """The backtest metrics card as plain (label, value) pairs; the handler adds the HTML."""
    m = report.metrics
    st = report.settings
    rows = [
        (t("Token"), _token_value(report)),
        (t("Period"), tn("{n} day of {timeframe} candles ({candles})", "{n} days of {timeframe} candles ({candles})",
                         report.days, timeframe=report.timeframe, candles=format(report.candles, ","))),
        (t("Total return"), _pct(m.get("total_return_pct"))),
        (t("Buy & hold"), _pct(m.get("buy_hold_return_pct"))),
        (t("Trades"), str(m.get("total_trades", 0))),
        (t("Win rate"), _pct(m.get("win_rate_pct"), signed=False)),
        (t("Signals (buy / sell)"), f"{m.get('buy_signals', 0)} / {m.get('sell_signals', 0)}"),
        (t("Max drawdown"), _pct(m.get("max_drawdown_pct"), signed=False)),
        (t("Sharpe"), _num(m.get("sharpe"))),
        (t("Sortino"), _num(m.get("sortino"))),
        (t("Profit factor"), _profit_factor(m)),
        (t("Expectancy"), _dollars(m.get("expectancy"))),
        (t("Exposure"), _pct(m.get("exposure_pct"), signed=False)),
        (t("Final equity"), _final_equity(m, st)),
    ]
    if "fee_bps" in st and "slippage_bps" in st:
        rows.append((t("Costs"), _costs_value(st)))
    return rows
