"""Notification kinds and levels: the one definition (the `users.notify_<kind>` columns).

Events carry a kind, the settings screen offers one row per kind and one button per level, and
the notifier routes by the user's level; all of them read these enums.
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


@dataclass(frozen=True)
class NotifyPrefs:
    """Per-kind notification level of one user."""

    signals: NotifyLevel = NotifyLevel.ON
    trades: NotifyLevel = NotifyLevel.ON
    spawns: NotifyLevel = NotifyLevel.ON
    risk: NotifyLevel = NotifyLevel.ON

    def level(self, kind: str) -> NotifyLevel:
        """The level of `kind` (ValueError for an unknown kind)."""
        return NotifyLevel(getattr(self, NotifyKind(kind).value))

    def as_dict(self) -> dict[str, str]:
        return {k.value: self.level(k).value for k in NotifyKind}
