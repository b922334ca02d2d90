"""Notification kinds and levels: the one definition (the `users.notify_<kind>` columns).

Events carry a kind, the settings screen offers each kind at each level, and the notifier
routes by the user's level; all of them read these enums.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class NotifyKind(StrEnum):
    SIGNALS = "signals"
    TRADES = "trades"
    SPAWNS = "spawns"
    RISK = "risk"


class NotifyLevel(StrEnum):
    ON = "on"
    SILENT = "silent"  # delivered without sound
    OFF = "off"


COLUMNS: tuple[str, ...] = tuple(f"notify_{kind.value}" for kind in NotifyKind)  # in NotifyKind order


@dataclass(frozen=True)
class NotifyPrefs:
    """Per-kind notification level of one user, in `NotifyKind` order (all on by default)."""

    levels: tuple[NotifyLevel, ...] = tuple(NotifyLevel.ON for _ in NotifyKind)

    def level(self, kind: str) -> NotifyLevel:
        """The level of `kind` (ValueError for an unknown kind)."""
        return self.levels[list(NotifyKind).index(NotifyKind(kind))]

    def __getattr__(self, name: str) -> NotifyLevel:
        # prefs.trades, prefs.risk, …: one attribute per kind, derived from the enum
        try:
            return self.level(name)
        except ValueError:
            raise AttributeError(name) from None

    def as_dict(self) -> dict[str, str]:
        return {k.value: self.level(k).value for k in NotifyKind}
