"""A strategy in words (bot/strategy_text.py) and the coded strategy error (engine/strategy.py)."""

from __future__ import annotations

from typing import Any

import pytest

from bot.messages import describe
from bot.strategy_text import describe_strategy
from engine.strategy import StrategyError, default_strategy, parse_strategy


def _strategy(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "conditions": [{"type": "price_drop", "token": "pepe", "chain": "bsc", "threshold": 5, "timeframe": "1h"}],
        "match": "any",
        "actions": [{"type": "buy", "amount_percent": 10, "token": "pepe", "chain": "bsc"}],
        "risk_management": {"stop_loss_percent": 3, "take_profit_percent": 10},
    }
    return base | overrides


def test_describes_entries_and_exits() -> None:
    assert describe_strategy(_strategy()) == (
        "Buy 10% of the balance in PEPE on bsc when price drops 5% within 1h. "
        "Exit with a 3% stop-loss and a 10% take-profit."
    )


def test_describes_sell_conditions_all_matches_and_no_exit() -> None:
    conds = [
        {"type": "volume_spike", "token": "SOL", "threshold": 200, "timeframe": "15m"},
        {"type": "price_level", "token": "SOL", "price": 150, "direction": "above"},
        {"type": "price_rise", "token": "SOL", "threshold": 8, "timeframe": "4h", "signal": "sell"},
    ]
    actions = [{"type": "buy", "amount_percent": 25, "token": "SOL"},
               {"type": "sell", "amount_percent": 100, "token": "SOL"}]
    text = describe_strategy(_strategy(conditions=conds, actions=actions, match="all", risk_management={}))
    assert text == ("Buy 25% of the balance in SOL when volume jumps 200% above its 15m average and price "
                    "crosses above $150. Exit with selling when price rises 8% within 4h.")
    no_exit = describe_strategy(_strategy(risk_management={}))
    assert no_exit.endswith("No exit rule: positions stay open until you stop or add a stop-loss/take-profit.")


def test_strategy_error_carries_a_code_and_the_plain_reasons() -> None:
    with pytest.raises(StrategyError) as info:
        parse_strategy(_strategy(match="most"))
    err = info.value
    assert err.code == "strategy.invalid" and err.detail and str(err) == err.detail
    assert describe(err) == err.detail
    assert isinstance(err, ValueError)  # callers that catch ValueError keep working


def test_with_token_refuses_an_invalid_token_with_a_strategy_error() -> None:
    assert default_strategy("PEPE").with_token("SOL", "solana").token == "SOL"
    with pytest.raises(StrategyError):
        default_strategy("PEPE").with_token("two words")
