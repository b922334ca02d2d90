"""Parity: replay the bars a live path traded on through the backtest and compare the trades.

A live run (a simulation, an agent's current strategy) records the closed bars it processed and
the trades it made. `replay` backtests the same strategy on the same bars, with signals before
the live start ignored (they only warm the lookbacks up), and compares trade by trade: entry
bar, exit bar, exit reason, entry and exit fill prices. A live position still open is compared
by its entry (the backtest closes it at the last close, reason ``end``); a trade the user ended
(``stopped``) or a run that ended is compared by its entry only, since its exit was not the
strategy's decision. Decisions taken on the bar still forming are judged once it is stored.
Sizes are not compared: they depend on each account's balance.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine.backtest import BacktestInputError, run_backtest
from engine.core import Costs
from engine.strategy import Strategy

_REL = 1e-9
_MANUAL_EXITS = ("stopped", "end")


@dataclass(frozen=True)
class LiveTrade:
    """One live trade as the parity check sees it (exit fields None while still open)."""

    entry_time: int
    entry_price: float
    exit_time: int | None = None
    exit_price: float | None = None
    reason: str | None = None


@dataclass(frozen=True)
class ParityReport:
    """`identical` of `total` trades matched; `first_difference` describes the first mismatch."""

    total: int
    identical: int
    first_difference: str | None = None
    unavailable: str | None = None

    @property
    def ok(self) -> bool:
        return self.unavailable is None and self.identical == self.total

    def summary(self) -> str:
        """The one line users see, e.g. 'Parity: replayed through the backtest: 4/4 trades identical'."""
        head = "Parity: replayed through the backtest:"
        if self.unavailable:
            return f"{head} not available ({self.unavailable})"
        if self.total == 0:
            return f"{head} no closed bar with a trade yet, none in the backtest either"
        note = "" if self.ok else " (the difference is logged)"
        return f"{head} {self.identical}/{self.total} trades identical{note}"

    def to_dict(self) -> dict[str, Any]:
        return {"total": self.total, "identical": self.identical, "first_difference": self.first_difference,
                "unavailable": self.unavailable}


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=_REL, abs_tol=0.0)


def _describe(i: int, live: LiveTrade | None, ref: Any | None) -> str:
    def one(t: Any, kind: str) -> str:
        if t is None:
            return f"{kind}: none"
        if kind == "live":
            return (f"live: entry {t.entry_time} @ {t.entry_price:.10g}, exit {t.exit_time} "
                    f"@ {t.exit_price if t.exit_price is None else f'{t.exit_price:.10g}'} ({t.reason})")
        return (f"backtest: entry {t.entry_time} @ {t.entry_price:.10g}, exit {t.exit_time} "
                f"@ {t.exit_price:.10g} ({t.exit_reason})")
    return f"trade {i + 1}: {one(live, 'live')}; {one(ref, 'backtest')}"


def _same(live: LiveTrade, ref: Any, last: bool) -> bool:
    if live.entry_time != ref.entry_time or not _close(live.entry_price, ref.entry_price):
        return False
    if live.exit_time is None or live.reason in _MANUAL_EXITS:
        # still open, or ended by the user / the run: the strategy never exited it, so the
        # backtest must hold it to the end of the bars too
        return ref.exit_reason == "end" and (last or live.exit_time is not None)
    return (live.exit_time == ref.exit_time and live.reason == ref.exit_reason
            and _close(live.exit_price, ref.exit_price))


def compare(live: Sequence[LiveTrade], replayed: Sequence[Any]) -> ParityReport:
    """Compare live trades with backtest trades in order; see the module docstring."""
    total = max(len(live), len(replayed))
    identical = 0
    first: str | None = None
    for i in range(total):
        a = live[i] if i < len(live) else None
        b = replayed[i] if i < len(replayed) else None
        if a is not None and b is not None and _same(a, b, last=i == len(live) - 1):
            identical += 1
        elif first is None:
            first = _describe(i, a, b)
    return ParityReport(total=total, identical=identical, first_difference=first)


def _as_of(live: Sequence[LiveTrade], covered: int | None) -> list[LiveTrade]:
    """The live trades as the stored bars can judge them: an entry on a bar still forming is not
    covered yet, and an exit on one counts as still open."""
    if covered is None:
        return []
    out = []
    for t in live:
        if t.entry_time > covered:
            continue
        if t.exit_time is not None and t.exit_time > covered:
            t = LiveTrade(t.entry_time, t.entry_price)
        out.append(t)
    return out


def replay(strategy: Strategy, bars: Mapping[str, Any], interval_minutes: int, *, first_signal_time: int,
           live: Sequence[LiveTrade], costs: Costs) -> ParityReport:
    """Backtest `strategy` on the stored `bars` and compare with the `live` trades."""
    times = bars["time"]
    covered = int(times[-1]) if len(times) else None
    live = _as_of(live, covered)
    try:
        result = run_backtest(strategy, bars, fee_bps=costs.fee_bps, slippage_bps=costs.slippage_bps,
                              interval_minutes=interval_minutes, first_signal_time=first_signal_time)
    except BacktestInputError as exc:
        if not live:
            return ParityReport(total=0, identical=0)
        return ParityReport(total=len(live), identical=0, unavailable=str(exc))
    return compare(live, result.trades)


# Runs a picklable function elsewhere, e.g. `engine.pool.BacktestPool.call`.
Offload = Callable[..., Awaitable[Any]]


async def replay_with(offload: Offload | None, strategy: Strategy, bars: Mapping[str, Any], interval_minutes: int,
                      first_signal_time: int, live: Sequence[LiveTrade], costs: Costs) -> ParityReport:
    """`replay`, through `offload` when given (the bot process sends its replays to the backtest
    workers, so the compiled backtest never loads in it), else in this process."""
    if offload is None:
        return replay(strategy, bars, interval_minutes, first_signal_time=first_signal_time, live=live, costs=costs)
    return await offload(_replay_job, strategy, dict(bars), interval_minutes, first_signal_time, list(live), costs)


def _replay_job(strategy: Strategy, bars: Mapping[str, Any], interval_minutes: int, first_signal_time: int,
                live: Sequence[LiveTrade], costs: Costs) -> ParityReport:
    return replay(strategy, bars, interval_minutes, first_signal_time=first_signal_time, live=live, costs=costs)
