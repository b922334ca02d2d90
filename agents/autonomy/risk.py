"""The risk worker (SPEC §7 step 4) and per-user risk metrics for the portfolio screen.

`run_once()` marks every active agent to market: equity = realized balance + unrealized P&L of
its open positions at the (cached) current prices, where a position is worth `size × price`
after the exit fee. The peak is the larger of the ledger's `peak_balance` and the highest equity
this worker has seen. Money that left the agent (withdrawals, children) lowers `peak_balance`
in the ledger; the same drop is applied to the tracked equity peak so it is never mistaken for
a drawdown. Beyond `rules.max_agent_drawdown` the agent is paused with the reason
`status.risk_drawdown` (percents: `drawdown_pct`, `limit_pct`) and one `AgentPaused`
event carrying the same reason is published; a paused agent is no longer checked.

`user_risk_metrics(user_id)` summarises the user's realized agent returns from the ledger
(`profit`, `loss`, `sync_adjust` rows, each relative to the balance before it), grouped per
agent per UTC day: annualised Sharpe (365 days, risk-free 0), the worst agent's max drawdown of
its compounded return index, and the 95% one-day historical VaR. Each is None without enough
data.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np

from agents.errors import AgentError
from agents.events import AgentPaused
from agents.ledger.manager import IsolatedAIManager
from agents.ledger.reasons import reason as coded_reason
from engine.events import EventSink
from engine.market.base import MarketData, MarketDataError
from engine.metrics import drawdown, max_drawdown
from storage import Database
from storage import risk_repo as risk_rows
from storage.money import from_micro, to_micro, usdc_down

__all__ = ["MIN_SHARPE_SAMPLES", "MIN_VAR_SAMPLES", "RiskReport", "RiskWorker"]

logger = logging.getLogger(__name__)

MIN_SHARPE_SAMPLES = 2
MIN_VAR_SAMPLES = 10

@dataclass
class RiskReport:
    """What one risk pass did."""

    checked: int = 0
    paused: int = 0
    price_error: str | None = None


@dataclass
class _Peak:
    equity: int
    ledger_peak: int


class RiskWorker:
    """Pauses agents whose drawdown from their peak passes the limit; computes risk metrics."""

    def __init__(self, db: Database, manager: IsolatedAIManager, market: MarketData, events: EventSink, *,
                 max_drawdown: float | None = None, fee_bps: int = 30) -> None:
        self.db = db
        self.manager = manager
        self.market = market
        self.events = events
        self.max_drawdown = float(manager.rules.max_agent_drawdown if max_drawdown is None else max_drawdown)
        self._exit_factor = 1.0 - fee_bps / 10_000
        self._peaks: dict[str, _Peak] = {}

    async def run_once(self) -> RiskReport:
        """Check every active agent once."""
        rows = await self.db.read(risk_rows.active_equity)
        report = RiskReport()
        tokens = sorted({r["token_id"] for r in rows if r["token_id"] is not None})
        prices: dict[str, float] = {}
        if tokens:
            try:
                prices = {k: q.price_usd for k, q in (await self.market.get_prices(tokens)).items()}
            except MarketDataError as exc:
                # Without prices positions count at cost: realized drawdowns are still caught.
                report.price_error = str(exc)
        agents: dict[str, dict[str, Any]] = {}
        for r in rows:
            a = agents.setdefault(r["agent_id"], {"user_id": r["user_id"], "balance": r["isolated_balance"],
                                                  "peak": r["peak_balance"], "unrealized": 0})
            if r["token_id"] is not None:
                price = prices.get(r["token_id"])
                if price is not None:
                    value = to_micro(usdc_down(r["size"] * price * self._exit_factor))
                    a["unrealized"] += value - r["cost"]
        live = set(agents)
        for gone in [k for k in self._peaks if k not in live]:
            del self._peaks[gone]
        for agent_id, a in agents.items():
            report.checked += 1
            equity = a["balance"] + a["unrealized"]
            peak = self._track(agent_id, equity, a["peak"])
            fall = drawdown(peak, equity)
            if fall > self.max_drawdown and await self._pause(agent_id, a["user_id"], fall):
                report.paused += 1
        return report

    def _track(self, agent_id: str, equity: int, ledger_peak: int) -> int:
        seen = self._peaks.get(agent_id)
        if seen is None:
            seen = self._peaks[agent_id] = _Peak(max(equity, ledger_peak), ledger_peak)
        if ledger_peak < seen.ledger_peak:  # money left the agent: not a loss
            seen.equity -= seen.ledger_peak - ledger_peak
        seen.ledger_peak = ledger_peak
        seen.equity = max(seen.equity, ledger_peak, equity)
        return seen.equity

    async def _pause(self, agent_id: str, user_id: int, drawdown: float) -> bool:
        reason = coded_reason("status.risk_drawdown", drawdown_pct=drawdown * 100, limit_pct=self.max_drawdown * 100)
        try:
            await self.manager.pause_agent(agent_id, None, reason=reason)
        except AgentError:
            return False  # paused, dead or closed meanwhile: someone else already acted
        self._peaks.pop(agent_id, None)
        try:
            await self.events.publish(AgentPaused(user_id=user_id, agent_id=agent_id, reason=reason,
                                                  drawdown_pct=round(drawdown * 100, 2)))
        except Exception:
            logger.exception("event sink failed for AgentPaused")
        return True

    async def unrealized_pnl(self, user_id: int) -> Decimal | None:
        """Unrealized P&L of the user's open positions at current (cached) prices, exit fee included.

        None when the user has open positions but prices are unavailable (never a false zero).
        """
        rows = await self.db.read(risk_rows.open_exposure, user_id)
        if not rows:
            return Decimal("0")
        try:
            quotes = await self.market.get_prices(sorted({r["token_id"] for r in rows}))
        except MarketDataError:
            return None
        total = 0
        for r in rows:
            quote = quotes.get(r["token_id"])
            if quote is None:
                return None
            total += to_micro(usdc_down(r["size"] * quote.price_usd * self._exit_factor)) - r["cost"]
        return from_micro(total)

    async def marked_positions(self, user_id: int) -> list[dict[str, Any]]:
        """The user's open positions marked at current (cached) prices: each with `price` and
        `unrealized` (exit fee included; both None when its price is unavailable, never a guess)."""
        rows = await self.db.read(risk_rows.open_positions, user_id)
        quotes: dict[str, Any] = {}
        if rows:
            try:
                quotes = await self.market.get_prices(sorted({r["token_id"] for r in rows}))
            except MarketDataError:
                quotes = {}
        marked = []
        for r in rows:
            quote = quotes.get(r["token_id"])
            price = None if quote is None else float(quote.price_usd)
            unrealized = (None if price is None
                          else from_micro(to_micro(usdc_down(r["size"] * price * self._exit_factor)) - r["cost"]))
            marked.append({"position_id": r["position_id"], "agent_id": r["agent_id"], "symbol": r["symbol"],
                           "size": r["size"], "entry_price": r["entry_price"], "cost": from_micro(r["cost"]),
                           "stop_loss": r["stop_loss"], "take_profit": r["take_profit"], "opened_at": r["opened_at"],
                           "price": price, "unrealized": unrealized})
        return marked

    # --- metrics ------------------------------------------------------------------------------

    async def user_risk_metrics(self, user_id: int) -> dict[str, Any]:
        """`{"sharpe", "max_drawdown_pct", "var_95_pct", "observations"}` (None where data is short)."""
        rows = await self.db.read(risk_rows.realized_rows, user_id)
        daily: dict[tuple[str, str], float] = defaultdict(lambda: 1.0)
        index: dict[str, list[float]] = defaultdict(lambda: [1.0])
        for r in rows:
            before = r["balance_after"] - r["amount"]
            if before <= 0:
                continue
            growth = 1.0 + r["amount"] / before
            daily[(r["agent_id"], r["day"])] *= growth
            curve = index[r["agent_id"]]
            curve.append(curve[-1] * growth)
        returns = np.array([g - 1.0 for g in daily.values()], dtype=np.float64)
        sharpe = None
        if returns.size >= MIN_SHARPE_SAMPLES:
            std = float(returns.std(ddof=1))
            if std > 0 and math.isfinite(std):
                sharpe = round(float(returns.mean()) / std * math.sqrt(365.0), 3)
        var95 = None
        if returns.size >= MIN_VAR_SAMPLES:
            var95 = round(max(0.0, -float(np.quantile(returns, 0.05))) * 100, 3)
        max_dd = None
        if index:
            worst = max(max_drawdown(np.asarray(curve)) for curve in index.values())
            max_dd = round(worst * 100, 3)
        return {"sharpe": sharpe, "max_drawdown_pct": max_dd, "var_95_pct": var95,
                "observations": int(returns.size)}
