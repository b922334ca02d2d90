"""Typed errors of the agent layer. Each message is safe and clear to show to the user."""

from __future__ import annotations


class AgentError(Exception):
    """Base class: a refused operation that changed nothing."""


class InvalidAmountError(AgentError):
    """Zero, negative, NaN, infinite, too precise, out of limits, or not a number."""


class InsufficientFundsError(AgentError):
    """The operation needs more available balance than there is."""


class AgentNotFoundError(AgentError):
    """No such agent for this user (the same reply for a foreign id as for a missing one)."""

    def __init__(self, agent_id: object = None) -> None:
        super().__init__("Agent not found.")
        self.agent_id = agent_id


class AgentExistsError(AgentError):
    """The user already has a live generation-1 agent."""


class AgentStateError(AgentError):
    """The agent's status does not allow this (paused, dead, closed)."""


class SpawnNotAllowedError(AgentError):
    """Spawn bounds not met: earnings, children limit, amount outside the allowed range."""


class IdempotencyConflictError(AgentError):
    """An idempotency key was reused for a different kind of operation."""


class PositionNotFoundError(AgentError):
    """No such open position."""
