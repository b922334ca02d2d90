"""Agent layer: the isolated AI manager and everything that makes agents autonomous."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agents.errors import (
    AgentError,
    AgentExistsError,
    AgentNotFoundError,
    AgentStateError,
    IdempotencyConflictError,
    InsufficientFundsError,
    InvalidAmountError,
    SpawnNotAllowedError,
)
from agents.ledger.manager import IsolatedAIManager
from agents.ledger.rules import MoneyRules
from engine.events import EventSink

if TYPE_CHECKING:
    from storage import Database


def get_isolated_ai_manager(db: Database, rules: MoneyRules | None = None,
                            events: EventSink | None = None) -> IsolatedAIManager:
    """Build the manager over a migrated database (no hidden global: each call is a new object)."""
    return IsolatedAIManager(db, rules, events)


__all__ = [
    "AgentError", "AgentExistsError", "AgentNotFoundError", "AgentStateError", "IdempotencyConflictError",
    "InsufficientFundsError", "InvalidAmountError", "IsolatedAIManager", "MoneyRules", "SpawnNotAllowedError",
    "get_isolated_ai_manager",
]
