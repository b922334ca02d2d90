"""One price rule (engine.numbers): no exponent notation anywhere a price or a quantity is written."""

from __future__ import annotations

import re
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from bot.messages import word
from bot.notifier import format_event
from bot.strategy_text import describe_strategy
from engine.events import SignalFired, TradeClosed, TradeOpened
from engine.numbers import format_price, format_quantity
from engine.signal_reasons import SignalReason
from engine.strategy import PriceLevelCondition, parse_strategy

EXPONENT = re.compile(r"\d[eE][+-−]?\d")


def test_prices_are_written_out() -> None:
    assert format_price(0.0000113707391) == "0.0000113707"
    assert format_price(1.137e-05) == "0.00001137"
    assert format_price(0.00000001) == "0.00000001"
    assert format_price(144.144) == "144.144"
    assert format_price(1.5) == "1.5"
    assert format_price(65000) == "65,000"
    assert format_price(3100.5) == "3,100.5"
    assert format_price(123456.789) == "123,457"  # 6 significant digits, as signal reasons are stored
    assert format_price(-0.0025) == "-0.0025"
    assert format_price(float("nan")) == "n/a" and format_price(float("inf")) == "n/a"


def test_quantities_are_written_out() -> None:
    assert format_quantity(123_456_789.4) == "123,456,789"
    assert format_quantity(1.2e8) == "120,000,000"
    assert format_quantity(0.000123) == "0.000123"


@given(st.floats(min_value=1e-12, max_value=1e12, allow_nan=False, allow_infinity=False))
def test_no_exponent_for_any_price_or_quantity(value: float) -> None:
    for text in (format_price(value), format_quantity(value), format_price(-value)):
        assert not EXPONENT.search(text), text


def test_pushes_summaries_and_notes_use_it() -> None:
    opened = TradeOpened(user_id=1, agent_id="ag0123456789", symbol="PEPE", price=1.137e-05, cost=Decimal(10))
    closed = TradeClosed(user_id=1, agent_id="ag0123456789", symbol="PEPE", entry_price=1.137e-05,
                         exit_price=1.2e-05, pnl=Decimal("0.5"), reason="take_profit")
    level = PriceLevelCondition(token="PEPE", type="price_level", price=1.5e-05, direction="below")
    fired = SignalFired(user_id=1, symbol="PEPE", side="buy", price=1.4e-05, reasons=(SignalReason(level, 1.4e-05),))
    strategy = parse_strategy({"conditions": [level.model_dump()],
                               "actions": [{"type": "buy", "token": "PEPE", "amount_percent": 10}]})
    texts = [format_event(opened), format_event(closed), format_event(fired), describe_strategy(strategy),
             word("understood.price_changed", {"target": "the level", "value": 1.5e-05})]
    for text in texts:
        assert not EXPONENT.search(text), text
    assert "0.00001137" in texts[0] and "0.000015" in texts[3] and "0.000015" in texts[4]
