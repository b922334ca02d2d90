"""The update being processed, so the replies it causes get stable outbox keys.

The inbox enters a `Scope` around each update; `bot.guards.reply/edit` queue through it. The
n-th message an update causes is keyed `u<update_id>:<n>`, so an update processed again after a
crash queues nothing twice (the outbox ignores a known key). A task a handler starts inherits the
scope (asyncio copies the context), so a backtest's result is keyed under its command too.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.delivery.outbox import Outbox


@dataclass
class Scope:
    """One update's delivery context: the outbox and the key sequence of its messages."""

    outbox: Outbox
    update_id: int | None
    _counter: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def next_key(self) -> str | None:
        """The next message's dedupe key (None outside an update: no de-duplication)."""
        n = next(self._counter)
        return None if self.update_id is None else f"u{self.update_id}:{n}"


_current: ContextVar[Scope | None] = ContextVar("delivery_scope", default=None)


def current() -> Scope:
    """The scope of the update being processed (RuntimeError outside one: a wiring bug)."""
    scope = _current.get()
    if scope is None:
        raise RuntimeError("no delivery scope: updates must be processed through bot.delivery.Inbox")
    return scope


@contextlib.contextmanager
def entered(scope: Scope) -> Iterator[Scope]:
    """Make `scope` current for the block (and the tasks started in it)."""
    token = _current.set(scope)
    try:
        yield scope
    finally:
        _current.reset(token)
