"""Configurable money rules (SPEC §3). Built from Settings in main.py and passed down."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from agents.money import MICRO


@dataclass(frozen=True)
class MoneyRules:
    """All limits in USDC; `*_micro` properties give the integer form used inside."""

    min_deposit: Decimal = Decimal(10)
    max_deposit: Decimal = Decimal(1_000_000)
    spawn_min_earnings: Decimal = Decimal(10)
    spawn_reserve: Decimal = Decimal(10)
    min_child_balance: Decimal = Decimal(10)
    max_children: int = 3
    min_agent_balance: Decimal = Decimal(1)
    max_agent_drawdown: float = 0.5
    spawn_fraction: Decimal = Decimal("0.5")

    def micro(self, value: Decimal) -> int:
        return int(value * MICRO)
