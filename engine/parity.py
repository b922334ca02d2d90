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
from engine.errors import CodedError
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
class TradeDifference:
    """The first trade where the live run and the backtest disagree; None where one has no such trade."""

    number: int  # counted from 1
    live: LiveTrade | None
    backtest: LiveTrade | None


# Why a replay could not judge the trades (`ParityReport.unavailable`).
SIMULATION_PREDATES = "simulation_predates"  # stored before the live path recorded its bars
TRADES_PREDATE = "trades_predate"  # some trades carry no bar times
BARS_UNUSABLE = "bars_unusable"  # the backtest refused the stored bars: see `problem`


@dataclass(frozen=True)
class ParityReport:
    """`identical` of `total` trades matched; `first_difference` is the first mismatch.

    `unavailable` is set (one of the codes above) when no comparison was possible; `problem`
    is then the backtest's refusal for `BARS_UNUSABLE`. The bot words it (`bot.cards`).
    """

    total: int
    identical: int
    first_difference: TradeDifference | None = None
    unavailable: str | None = None
    problem: CodedError | None = None

    @property
    def ok(self) -> bool:
        """True when every trade matched."""
        return self.unavailable is None and self.identical == self.total


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=_REL, abs_tol=0.0)


def _as_live(ref: Any | None) -> LiveTrade | None:
    """A backtest trade in the live trade's shape (for the difference record)."""
    if ref is None:
        return None
    return LiveTrade(ref.entry_time, ref.entry_price, ref.exit_time, ref.exit_price, ref.exit_reason)


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
    first: TradeDifference | None = None
    for i in range(total):
        a = live[i] if i < len(live) else None
        b = replayed[i] if i < len(replayed) else None
        if a is not None and b is not None and _same(a, b, last=i == len(live) - 1):
            identical += 1
        elif first is None:
            first = TradeDifference(i + 1, a, _as_live(b))
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
        return ParityReport(total=len(live), identical=0, unavailable=BARS_UNUSABLE, problem=exc)
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
