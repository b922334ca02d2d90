"""The trading core: the one set of fill and exit rules used by the backtest, the simulations and the agents.

A strategy trades one position at a time, long only, on closed bars of its own timeframe:

* Conditions are judged on a bar's close. An entry signal at the close of bar ``i`` while flat
  buys at the open of bar ``i+1``; a sell signal at the close of ``j`` while holding sells at the
  open of ``j+1``. A signal on the last bar of a backtest never fills.
* Stop-loss and take-profit levels are relative to the entry fill and are checked against each
  bar's low / high from the entry bar on. When both are hit in one bar the **stop-loss wins**.
  A level fills at the level itself, or at the bar's open when the bar gaps through it.
* A market exit at an open happens before that bar's intrabar moves.
* New entries come only from signals at or after the bar of the last exit: an entry signal that
  fired while a position was open is never acted on later (no stale re-entry).

`TradingCore` is the incremental form: feed it bars one by one (`on_bar`) or, live, a bar's open
as soon as it is known (`on_open`), its extremes so far (`on_extremes`) and its close
(`on_close`). Decisions taken on a partial bar are only those the full bar cannot change: a
touched stop-loss (it wins over the target anyway) and a target when there is no stop-loss, so
live and backtest decide identically. The vectorised backtest (`engine.backtest`) makes the same
decisions with the same price functions below; a property test replays both bar by bar.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

ExitReason = Literal["stop_loss", "take_profit", "signal", "end", "stopped"]
EXIT_REASONS: tuple[str, ...] = ("stop_loss", "take_profit", "signal", "end", "stopped")
# Exit reasons as small integer codes (index into EXIT_REASONS), for whole-column backtests.
EXIT_STOP, EXIT_TARGET, EXIT_SIGNAL, EXIT_END = 0, 1, 2, 3
Side = Literal["buy", "sell"]


# -- costs and prices (one home for every fill rule) -------------------------------------------

@dataclass(frozen=True)
class Costs:
    """Fee and slippage per fill, in basis points (the README's defaults: 30 and 10)."""

    fee_bps: float = 30.0
    slippage_bps: float = 10.0

    def __post_init__(self) -> None:
        for name in ("fee_bps", "slippage_bps"):
            value = float(getattr(self, name))
            if not (math.isfinite(value) and 0 <= value < 10_000):
                raise ValueError(f"{name} must be between 0 and 10000")

    @property
    def fee(self) -> float:
        return self.fee_bps / 10_000

    @property
    def slippage(self) -> float:
        return self.slippage_bps / 10_000

    def buy_fill(self, price: float) -> float:
        """What a buy at `price` really pays per unit (slippage against us)."""
        return price * (1.0 + self.slippage)

    def sell_fill(self, price: float) -> float:
        """What a sell at `price` really receives per unit."""
        return price * (1.0 - self.slippage)

    def units_for(self, budget: float, fill: float) -> float:
        """Units a `budget` buys at `fill` with the fee paid out of the budget."""
        return budget / (fill * (1.0 + self.fee))

    def proceeds(self, units: float, exit_fill: float) -> float:
        """Cash back from selling `units` at `exit_fill`, after the fee."""
        return units * exit_fill * (1.0 - self.fee)

    def slippage_cost(self, units: float, entry_fill: float, exit_fill: float) -> float:
        """What slippage cost a round trip of `units`, against fills at the market price."""
        paid = units * entry_fill * self.slippage / (1.0 + self.slippage)
        if self.slippage < 1.0:
            paid += units * exit_fill * self.slippage / (1.0 - self.slippage)
        return paid

    @property
    def round_trip_pct(self) -> float:
        """Percent of a position lost to fees and slippage on a flat price (buy then sell)."""
        kept = (1.0 - self.slippage) * (1.0 - self.fee) / ((1.0 + self.slippage) * (1.0 + self.fee))
        return (1.0 - kept) * 100.0


def cost_warnings(strategy: Any, costs: Costs) -> tuple[str, ...]:
    """Codes for levels that the round-trip cost alone reaches: `stop_within_costs` (the stop is
    hit by costs plus any tiny dip), `target_within_costs` (a take-profit that still loses money)."""
    rm = strategy.risk_management
    found = []
    if rm.stop_loss_percent is not None and rm.stop_loss_percent <= costs.round_trip_pct:
        found.append("stop_within_costs")
    if rm.take_profit_percent is not None and rm.take_profit_percent <= costs.round_trip_pct:
        found.append("target_within_costs")
    return tuple(found)


def levels(entry_fill: float, stop_loss_pct: float | None, take_profit_pct: float | None
           ) -> tuple[float | None, float | None]:
    """(stop, target) prices relative to the entry fill; None where the strategy has no such rule."""
    stop = entry_fill * (1.0 - stop_loss_pct / 100.0) if stop_loss_pct is not None else None
    target = entry_fill * (1.0 + take_profit_pct / 100.0) if take_profit_pct is not None else None
    return stop, target


def stop_price(bar_open: Any, stop: Any) -> Any:
    """A stop fills at its level, or at the open when the bar opened below it (a gap).
    Floats or numpy arrays (the backtest prices whole columns)."""
    return np.minimum(bar_open, stop) if isinstance(bar_open, np.ndarray) else min(bar_open, stop)


def target_price(bar_open: Any, target: Any) -> Any:
    """A target fills at its level, or at the open when the bar opened above it (a gap)."""
    return np.maximum(bar_open, target) if isinstance(bar_open, np.ndarray) else max(bar_open, target)


# -- the state machine -------------------------------------------------------------------------

@dataclass(frozen=True)
class Fill:
    """One decision of the core. `price` is the market price (level or open), `fill` includes slippage.

    For an entry, `stop` and `target` are the position's levels.
    """

    side: Side
    bar_time: int
    price: float
    fill: float
    reason: str
    stop: float | None = None
    target: float | None = None


@dataclass
class CorePosition:
    """The open position as the core sees it (sizes are the caller's business)."""

    entry_time: int
    entry_fill: float
    stop: float | None
    target: float | None


@dataclass
class CoreState:
    """Everything the core carries between bars; JSON-ready through `to_dict` / `from_dict`."""

    position: CorePosition | None = None
    pending: Side | None = None  # the order decided at the close of `last_close`
    last_close: int | None = None  # time of the last bar whose close was processed
    bar_time: int | None = None  # the bar whose open has been processed (may still be forming)
    bar_open: float | None = None
    exit_time: int | None = None  # bar of the last exit

    def to_dict(self) -> dict[str, Any]:
        # written out: dataclasses.asdict deep-copies and is ~10x slower, and a tick calls this per agent
        pos = self.position
        return {"position": None if pos is None else {"entry_time": pos.entry_time, "entry_fill": pos.entry_fill,
                                                      "stop": pos.stop, "target": pos.target},
                "pending": self.pending, "last_close": self.last_close, "bar_time": self.bar_time,
                "bar_open": self.bar_open, "exit_time": self.exit_time}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> CoreState:
        """Decode a stored state; raises ValueError when it is unusable."""
        if not data:
            return cls()
        try:
            pos = data.get("position")
            position = None if pos is None else CorePosition(
                entry_time=int(pos["entry_time"]), entry_fill=float(pos["entry_fill"]),
                stop=None if pos.get("stop") is None else float(pos["stop"]),
                target=None if pos.get("target") is None else float(pos["target"]))
            pending = data.get("pending")
            if pending not in (None, "buy", "sell"):
                raise ValueError("bad pending order")

            def opt(key: str, kind: type) -> Any:
                return None if data.get(key) is None else kind(data[key])

            return cls(position=position, pending=pending, last_close=opt("last_close", int),
                       bar_time=opt("bar_time", int), bar_open=opt("bar_open", float),
                       exit_time=opt("exit_time", int))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"unusable trading state: {exc}") from None


class TradingCore:
    """One strategy's position logic, fed bar by bar; see the module docstring."""

    def __init__(self, *, stop_loss_pct: float | None, take_profit_pct: float | None,
                 costs: Costs | None = None, state: CoreState | None = None) -> None:
        self.stop_loss_pct = stop_loss_pct
        self.take_profit_pct = take_profit_pct
        self.costs = costs or Costs()
        self.state = state or CoreState()

    @classmethod
    def for_strategy(cls, strategy: Any, costs: Costs | None = None,
                     state: CoreState | None = None) -> TradingCore:
        """A core with `strategy`'s stop-loss and take-profit."""
        rm = strategy.risk_management
        return cls(stop_loss_pct=rm.stop_loss_percent, take_profit_pct=rm.take_profit_percent,
                   costs=costs, state=state)

    @property
    def position(self) -> CorePosition | None:
        return self.state.position

    # -- bar events --------------------------------------------------------------------------
    def on_open(self, time: int, open_price: float) -> list[Fill]:
        """Bar `time` opened at `open_price`: run the order decided at the previous close.

        Calling it again for the same bar does nothing, so a live path may call it on every poll.
        """
        st = self.state
        if st.bar_time is not None and time <= st.bar_time:
            return []
        st.bar_time, st.bar_open = int(time), float(open_price)
        pending, st.pending = st.pending, None
        if pending == "sell" and st.position is not None:
            return [self._exit(time, open_price, "signal")]
        if pending == "buy" and st.position is None:
            fill = self.costs.buy_fill(open_price)
            stop, target = levels(fill, self.stop_loss_pct, self.take_profit_pct)
            st.position = CorePosition(int(time), fill, stop, target)
            return [Fill("buy", int(time), float(open_price), fill, "signal", stop, target)]
        return []

    def on_extremes(self, time: int, high: float, low: float, *, final: bool) -> list[Fill]:
        """Bar `time`'s high and low so far (`final` once the bar has closed): stops and targets.

        On a partial bar only decisions the rest of the bar cannot change are taken.
        """
        st, pos = self.state, self.state.position
        if pos is None or st.bar_time != time or st.bar_open is None:
            return []
        if pos.stop is not None and low <= pos.stop:
            return [self._exit(time, stop_price(st.bar_open, pos.stop), "stop_loss")]
        if pos.target is not None and high >= pos.target and (final or pos.stop is None):
            return [self._exit(time, target_price(st.bar_open, pos.target), "take_profit")]
        return []

    def on_close(self, time: int, buy: bool, sell: bool) -> None:
        """Bar `time` closed with these signals: decide the order for the next open."""
        st = self.state
        st.last_close = int(time)
        if st.position is not None:
            st.pending = "sell" if sell else None
        else:
            st.pending = "buy" if buy else None

    def on_bar(self, time: int, open_price: float, high: float, low: float,
               buy: bool = False, sell: bool = False) -> list[Fill]:
        """A whole closed bar: its open, its extremes, then its close's signals."""
        fills = self.on_open(time, open_price)
        fills += self.on_extremes(time, high, low, final=True)
        self.on_close(time, buy, sell)
        return fills

    def close_out(self, time: int, price: float, reason: str = "end") -> Fill | None:
        """Sell an open position at `price` (a backtest's end: its last close)."""
        if self.state.position is None:
            return None
        self.state.pending = None
        return self._exit(time, price, reason)

    def cancel_entry(self) -> None:
        """The caller could not book the entry the core decided (no funds, agent paused)."""
        self.state.position = None

    def adopt(self, position: CorePosition | None) -> None:
        """Align with the booked position (the ledger is the truth after a crash or a refusal)."""
        self.state.position = position

    def _exit(self, time: int, price: float, reason: str) -> Fill:
        self.state.position = None
        self.state.exit_time = int(time)
        return Fill("sell", int(time), float(price), self.costs.sell_fill(price), reason)
