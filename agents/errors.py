"""Typed errors of the agent layer: a refused operation that changed nothing.

Each carries a code and parameters (`engine.errors.CodedError`); `bot.messages` words them.
"""

from __future__ import annotations

from typing import Any

from engine.errors import CodedError


class AgentError(CodedError):
    """Base class of the agent layer's refusals."""


class InvalidAmountError(AgentError):
    """Zero, negative, NaN, infinite, too precise, out of limits, or not a number."""


class InsufficientFundsError(AgentError):
    """The operation needs more available balance than there is."""


class AgentNotFoundError(AgentError):
    """No such agent for this user (the same refusal for a foreign id as for a missing one)."""

    def __init__(self, agent_id: object = None) -> None:
        super().__init__("agent.not_found")
        self.agent_id = agent_id


class AgentExistsError(AgentError):
    """The user already has a live generation-1 agent."""

    def __init__(self, **params: Any) -> None:
        super().__init__("agent.exists", **params)


class AgentStateError(AgentError):
    """The agent's status does not allow this (paused, dead, closed)."""


class SpawnNotAllowedError(AgentError):
    """Spawn bounds not met: earnings, children limit, amount outside the allowed range."""


class IdempotencyConflictError(AgentError):
    """An idempotency key was reused for a different kind of operation."""

    def __init__(self) -> None:
        super().__init__("idempotency.conflict")


class PositionNotFoundError(AgentError):
    """No such open position."""

    def __init__(self) -> None:
        super().__init__("position.not_found")
