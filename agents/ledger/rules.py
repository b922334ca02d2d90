"""The ledger's rules (SPEC §3), each in one place: limits, available balance, the status an
agent's balance implies, the peak, and the spawn bounds. Amounts inside are micro-USDC.

`MoneyRules` is built from Settings in main.py and passed down.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from agents.ledger import reasons
from storage.money import floor_usdc, to_micro

GROWS_PEAK = ("deposit", "spawn_in", "withdraw", "spawn_out")  # money moved in or out is not a drawdown
DEAD_REASON = reasons.reason("status.below_minimum")
RESTORED_REASON = reasons.reason("status.balance_restored")


@dataclass(frozen=True)
class MoneyRules:
    """All limits in USDC; `micro(value)` gives the integer form used inside."""

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
        return to_micro(value)


def available(balance: int, locked: int) -> int:
    """What an agent can spend, withdraw or give a child: its balance less what open positions lock."""
    return balance - locked


def status_after(rules: MoneyRules, status: str, balance: int, *, may_revive: bool) -> tuple[str, str] | None:
    """The (status, reason) an agent moves to after its balance changed, or None if it stays
    (the reason is stored encoded, see `agents.ledger.reasons`).

    Below the minimum a living agent dies. Only money coming in from outside the trade (a
    deposit, a recorded profit, a remote sync: `may_revive`) lifts a dead agent back to life
    once it is at the minimum again; a close or a withdrawal never does (a dead agent's open
    positions only run out their stops and targets). A closed agent stays closed.
    """
    minimum = rules.micro(rules.min_agent_balance)
    if status == "closed":
        return None
    if balance < minimum and status != "dead":
        return "dead", DEAD_REASON
    if may_revive and balance >= minimum and status == "dead":
        return "active", RESTORED_REASON
    return None


def peak_after(kind: str, balance: int, peak: int, amount: int) -> tuple[int, int] | None:
    """(balance, peak) after a ledger row of `kind` moving `amount`; None if it would go negative.

    Money that came in or left (deposits, withdrawals, spawns) moves the peak with it, since it
    is not a gain or a drawdown; P&L only raises the peak to a new high.
    """
    after = balance + amount
    if after < 0:
        return None
    return after, (max(peak + amount, after) if kind in GROWS_PEAK else max(peak, after))


@dataclass(frozen=True)
class SpawnBounds:
    """What an agent may give a child now, by the spawn rule (micro-USDC)."""

    eligible: bool
    spawnable: int  # unspent net earnings, keeping the reserve
    suggested: int  # 0 when not eligible
    min_child: int
    max_child: int  # 0 when not eligible
    live_children: int
    max_children: int
    net_earnings: int
    available: int

    @classmethod
    def of(cls, rules: MoneyRules, status: str, balance: int, locked: int, net: int, spent: int,
           live_children: int) -> SpawnBounds:
        """The bounds for an agent with this status and balance, `net` earnings of which `spent`
        already funded children, and `live_children` alive."""
        free = available(balance, locked)
        spawnable = max(0, min(net - spent, free - rules.micro(rules.spawn_reserve)))
        min_child = rules.micro(rules.min_child_balance)
        max_child = min(spawnable, free // 2)
        suggested = min(max(int(spawnable * rules.spawn_fraction), min_child), max_child)
        eligible = (status == "active" and spawnable >= rules.micro(rules.spawn_min_earnings)
                    and live_children < rules.max_children and suggested >= min_child)
        return cls(eligible, spawnable, suggested if eligible else 0, min_child, max_child if eligible else 0,
                   live_children, rules.max_children, net, free)


def clamp_child(amount: Decimal, min_child: Decimal, upper: Decimal) -> Decimal:
    """A proposed child balance moved inside [min_child, upper] (USDC, rounded down)."""
    return floor_usdc(min(max(amount, min_child), upper))
