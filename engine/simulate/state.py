"""What a running simulation carries between polls (stored as `simulations.state_json`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from engine.core import CorePosition, CoreState, Costs
from storage.money import from_micro, to_micro, usdc_down

STATE_FORMAT = 2


@dataclass(frozen=True)
class PaperPosition:
    """The open paper position of a simulation (prices are fills, slippage included)."""

    size: float
    entry_price: float
    cost: Decimal
    stop_loss: float | None
    take_profit: float | None
    opened_at: str
    entry_bar_time: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"size": self.size, "entry_price": self.entry_price, "cost_micro": to_micro(self.cost),
                "stop_loss": self.stop_loss, "take_profit": self.take_profit, "opened_at": self.opened_at,
                "entry_bar_time": self.entry_bar_time}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PaperPosition:
        size, entry = float(data["size"]), float(data["entry_price"])
        if not (size > 0 and entry > 0 and math.isfinite(size) and math.isfinite(entry)):
            raise ValueError("invalid position")
        sl, tp = data.get("stop_loss"), data.get("take_profit")
        return cls(size=size, entry_price=entry, cost=from_micro(int(data["cost_micro"])),
                   stop_loss=None if sl is None else float(sl), take_profit=None if tp is None else float(tp),
                   opened_at=str(data["opened_at"]),
                   entry_bar_time=None if data.get("entry_bar_time") is None else int(data["entry_bar_time"]))

    def value_at(self, price: float) -> Decimal:
        """Mark-to-market value before exit costs (the backtest's equity convention)."""
        return usdc_down(self.size * price)

    def core_position(self) -> CorePosition:
        """The trading core's view of this position."""
        return CorePosition(int(self.entry_bar_time or 0), self.entry_price, self.stop_loss, self.take_profit)


@dataclass
class SimState:
    """Everything a running simulation carries between polls.

    `core` is the trading core's state without the position (that is `position`); `since` is
    the first bar whose signals the simulation trades on (the parity replay starts there).
    """

    bot_name: str
    chain: str
    demo: bool
    initial_micro: int
    cash_micro: int
    fee_bps: float
    slippage_bps: float
    window_bars: int
    since: int | None = None
    core: dict[str, Any] = field(default_factory=dict)
    last_price: float | None = None
    last_price_at: str | None = None
    position: PaperPosition | None = None
    version: int = 0
    last_error: str | None = None
    fees_micro: int = 0
    slippage_micro: int = 0

    @property
    def costs(self) -> Costs:
        return Costs(self.fee_bps, self.slippage_bps)

    @property
    def last_bar_time(self) -> int | None:
        """The last closed bar the simulation processed."""
        value = self.core.get("last_close")
        return None if value is None else int(value)

    def core_state(self) -> CoreState:
        """The trading core's state with the position filled in from `position`."""
        state = CoreState.from_dict({**self.core, "position": None})
        state.position = None if self.position is None else self.position.core_position()
        return state

    def set_core(self, state: CoreState) -> None:
        data = state.to_dict()
        data.pop("position", None)
        self.core = data

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT, "bot_name": self.bot_name, "chain": self.chain, "demo": self.demo,
            "initial_micro": self.initial_micro, "cash_micro": self.cash_micro, "fee_bps": self.fee_bps,
            "slippage_bps": self.slippage_bps, "window_bars": self.window_bars, "since": self.since,
            "core": dict(self.core), "last_price": self.last_price, "last_price_at": self.last_price_at,
            "position": None if self.position is None else self.position.to_dict(), "version": self.version,
            "last_error": self.last_error, "fees_micro": self.fees_micro, "slippage_micro": self.slippage_micro,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SimState:
        """Decode and check a stored state (ValueError when it is unusable)."""
        try:
            position = data.get("position")
            core = data.get("core")
            if core is None:  # format 1: only the last processed bar was kept
                last = data.get("last_bar_time")
                core = {"last_close": last, "bar_time": last}
            CoreState.from_dict(core)  # validates
            state = cls(
                bot_name=str(data.get("bot_name") or "Strategy bot"), chain=str(data.get("chain") or ""),
                demo=bool(data.get("demo", False)), initial_micro=int(data["initial_micro"]),
                cash_micro=int(data["cash_micro"]), fee_bps=float(data["fee_bps"]),
                slippage_bps=float(data["slippage_bps"]), window_bars=int(data["window_bars"]),
                since=None if data.get("since") is None else int(data["since"]), core=dict(core),
                last_price=None if data.get("last_price") is None else float(data["last_price"]),
                last_price_at=data.get("last_price_at"),
                position=None if position is None else PaperPosition.from_dict(position),
                version=int(data.get("version", 0)), last_error=data.get("last_error"),
                fees_micro=int(data.get("fees_micro", 0)), slippage_micro=int(data.get("slippage_micro", 0)))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"unusable simulation state: {exc}") from None
        if state.initial_micro <= 0 or state.cash_micro < 0 or not 1 <= state.window_bars <= 5000:
            raise ValueError("unusable simulation state: bad amounts or window")
        return state
