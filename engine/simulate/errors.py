"""The simulate service's refusals: typed, with ``"simulate.…"`` codes that `bot/` words."""

from __future__ import annotations

from typing import Any

from engine.errors import CodedError


class SimulationError(CodedError):
    """Base of simulation refusals (nothing was changed)."""


class SimulationNotFoundError(SimulationError):
    """No such simulation (or strategy bot) for this user; also the answer for a foreign id."""

    def __init__(self, code: str = "simulate.not_found", /, **params: Any) -> None:
        super().__init__(code, **params)


class SimulationExistsError(SimulationError):
    """The bot already has a running simulation."""

    def __init__(self) -> None:
        super().__init__("simulate.exists")


class SimulationLimitError(SimulationError):
    """The user already runs the maximum number of simulations."""
