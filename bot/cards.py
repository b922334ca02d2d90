"""Cards and summaries the engine's read models are shown as: plain text, escaped by the caller.

The engine returns typed data (`SimulationStatus`, `ParityReport`, `BacktestReport`, stage and
end-reason codes); the words are here, so they are written once and can be translated.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from bot.messages import describe
from bot.wording import count
from engine.backtest_service import FETCHING, RUNNING, BacktestReport
from engine.core import Costs
from engine.numbers import format_price, format_quantity
from engine.parity import BARS_UNUSABLE, SIMULATION_PREDATES, TRADES_PREDATE, ParityReport
from engine.simulate.status import SimulationStatus
from engine.simulate.store import BOT_DELETED, MAX_DURATION, STOPPED, UNREADABLE

_PARITY_UNAVAILABLE = {
    SIMULATION_PREDATES: "this simulation predates the parity check",
    TRADES_PREDATE: "some trades predate the parity check",
}
_END_REASONS = {
    STOPPED: "stopped by you",
    UNREADABLE: "its stored data could not be read",
    BOT_DELETED: "its strategy bot was deleted",
}


def costs_text(costs: Costs) -> str:
    """'fee 0.30% + slippage 0.10% per fill' (the costs line of every card and summary)."""
    return f"fee {costs.fee_bps / 100:.2f}% + slippage {costs.slippage_bps / 100:.2f}% per fill"


def parity_line(report: ParityReport) -> str:
    """The one line users see, e.g. 'Parity: replayed through the backtest: 4/4 trades identical'."""
    head = "Parity: replayed through the backtest:"
    if report.unavailable:
        if report.unavailable == BARS_UNUSABLE and report.problem is not None:
            why = describe(report.problem)
        else:
            why = _PARITY_UNAVAILABLE.get(report.unavailable, report.unavailable)
        return f"{head} not available ({why})"
    if report.total == 0:
        return f"{head} no closed bar with a trade yet, none in the backtest either"
    note = "" if report.ok else " (the difference is logged)"
    return f"{head} {report.identical}/{report.total} trades identical{note}"


def end_reason(reason: str, max_hours: float | None = None) -> str:
    """Why a simulation ended, from its end-reason code (an unknown code is shown as it is)."""
    if reason == MAX_DURATION and max_hours is not None:
        return f"it reached the maximum duration of {round(max_hours, 2):g} h"
    return _END_REASONS.get(reason, reason)


def _money(value: Decimal) -> str:
    return f"{value:,.2f}"


def _signed(value: Decimal | int) -> str:
    amount = Decimal(value)
    return f"{'+' if amount > 0 else ''}{amount:,.2f}"


def simulation_card(status: SimulationStatus) -> str:
    """A plain-text block for one simulation (the caller escapes it for HTML)."""
    demo = " (demo market)" if status.demo else ""
    lines = [f"#{status.simulation_id} {status.bot_name} · {status.symbol} {status.timeframe}{demo} · "
             f"{status.status}",
             f"Equity {_money(status.equity)} USDC ({_signed(status.pnl)}, {status.pnl_pct:+.2f}%)"]
    pos = status.position
    if pos is not None:
        lines.append(f"Position {format_quantity(pos.size)} {status.symbol} @ {format_price(pos.entry_price)}, "
                     f"cost {_money(pos.cost)} USDC, unrealized {_signed(status.unrealized_pnl or 0)}")
    else:
        lines.append("No open position")
    price = "n/a" if status.last_price is None else format_price(status.last_price)
    lines.append(f"Signals {status.signals} · trades {status.trades} · last price {price}")
    lines.append(f"Costs: {costs_text(Costs(status.fee_bps, status.slippage_bps))}; paid "
                 f"{_money(status.fees_paid)} USDC in fees, {_money(status.slippage_paid)} in slippage")
    if status.parity is not None:
        lines.append(parity_line(status.parity))
    if status.status == "running":
        minutes = int(status.time_left_seconds // 60)
        lines.append(f"Time left {minutes // 60}h {minutes % 60:02d}m")
    if status.last_error:
        lines.append(f"Last problem: {status.last_error}")
    return "\n".join(lines)


def progress_text(stage: str, candles: int) -> str:
    """The backtest's progress line for a `engine.backtest_service` stage."""
    if stage == FETCHING:
        return "Fetching candles…"
    if stage == RUNNING:
        return f"Running backtest on {candles:,} candles…"
    return stage


def _pct(value: Any, signed: bool = True) -> str:
    if value is None:
        return "n/a"
    return f"{float(value):+.2f}%" if signed else f"{float(value):.2f}%"


def _num(value: Any, places: int = 2) -> str:
    return "n/a" if value is None else f"{float(value):.{places}f}"


def _dollars(value: Any) -> str:
    if value is None:
        return "n/a"
    amount = float(value)
    return f"{'-' if amount < 0 else ''}${abs(amount):,.2f}"


def _profit_factor(m: dict[str, Any]) -> str:
    """Gross profit over gross loss; with winners and no loser it is unbounded, not unknown."""
    value = m.get("profit_factor")
    if value is None and m.get("total_trades") and m.get("win_rate_pct") == 100:
        return "∞ (no losing trade)"
    return "n/a (no closed trade)" if value is None and not m.get("total_trades") else _num(value)


def metrics_rows(report: BacktestReport) -> list[tuple[str, str]]:
    """The backtest metrics card as plain (label, value) pairs; the handler adds the HTML."""
    m = report.metrics
    st = report.settings
    start = f" (from {_dollars(st['initial_equity'])})" if st.get("initial_equity") else ""
    rows = [
        ("Token", f"{report.symbol} ({report.chain})" + (" · demo data" if report.demo else "")),
        ("Period", f"{count(report.days, 'day', 'days')} of {report.timeframe} candles ({report.candles:,})"),
        ("Total return", _pct(m.get("total_return_pct"))),
        ("Buy & hold", _pct(m.get("buy_hold_return_pct"))),
        ("Trades", str(m.get("total_trades", 0))),
        ("Win rate", _pct(m.get("win_rate_pct"), signed=False)),
        ("Signals (buy / sell)", f"{m.get('buy_signals', 0)} / {m.get('sell_signals', 0)}"),
        ("Max drawdown", _pct(m.get("max_drawdown_pct"), signed=False)),
        ("Sharpe", _num(m.get("sharpe"))),
        ("Sortino", _num(m.get("sortino"))),
        ("Profit factor", _profit_factor(m)),
        ("Expectancy", _dollars(m.get("expectancy"))),
        ("Exposure", _pct(m.get("exposure_pct"), signed=False)),
        ("Final equity", _dollars(m.get("final_equity")) + start),
    ]
    if "fee_bps" in st and "slippage_bps" in st:
        paid = (f": paid {_dollars(st['fees_paid'])} in fees + {_dollars(st['slippage_paid'])} in slippage"
                if "fees_paid" in st and "slippage_paid" in st else "")
        rows.append(("Costs", costs_text(Costs(st["fee_bps"], st["slippage_bps"])) + paid))
    return rows
