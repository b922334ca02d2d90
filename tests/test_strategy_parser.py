"""Table-driven tests of the deterministic strategy parser (no LLM)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.design.notes import Note
from agents.design.parser import DEFAULT_AMOUNT_PERCENT, MAX_TEXT_CHARS, parse_strategy_text
from bot.design_text import parse_text
from engine.strategy import Strategy, parse_strategy

BASE = "buy 10% PEPE on bsc when it drops 5% in an hour, stop loss 3%, take profit 10%"


def _cond(s: Strategy, i: int = 0) -> dict[str, Any]:
    return s.to_config()["conditions"][i]


def _summary(s: Strategy) -> dict[str, Any]:
    """A compact, comparable view of a strategy."""
    cfg = s.to_config()
    conds = []
    for c in cfg["conditions"]:
        value = c.get("threshold", c.get("price"))
        conds.append((c["type"], value, c["timeframe"], c.get("signal", "buy"), c.get("direction")))
    rm = cfg["risk_management"]
    return {
        "token": s.token,
        "chain": s.chain,
        "match": s.match,
        "amount": s.buy.amount_percent,
        "conds": conds,
        "sl": rm.get("stop_loss_percent"),
        "tp": rm.get("take_profit_percent"),
        "sell_action": any(a["type"] == "sell" for a in cfg["actions"]),
    }


# (text, expected subset of _summary)
NEW_STRATEGIES: list[tuple[str, dict[str, Any]]] = [
    (
        BASE,
        {
            "token": "PEPE",
            "chain": "bsc",
            "amount": 10,
            "sl": 3,
            "tp": 10,
            "conds": [("price_drop", 5, "1h", "buy", None)],
        },
    ),
    (
        "when volume spikes 200% in 15m buy 25% of my balance in SOL",
        {"token": "SOL", "amount": 25, "conds": [("volume_spike", 200, "15m", "buy", None)]},
    ),
    (
        "buy WETH if price crosses above 3500",
        {
            "token": "WETH",
            "amount": DEFAULT_AMOUNT_PERCENT,
            "conds": [("price_level", 3500, "1h", "buy", "above")],
        },
    ),
    (
        "buy weth if price crosses above 3,500 usd",
        {"token": "WETH", "conds": [("price_level", 3500, "1h", "buy", "above")]},
    ),
    (
        "buy 5% PEPE when it drops 3% within 4 hours",
        {"amount": 5, "conds": [("price_drop", 3, "4h", "buy", None)]},
    ),
    ("buy 5% PEPE when it drops 3% 1h", {"conds": [("price_drop", 3, "1h", "buy", None)]}),
    (
        "buy 20% of ETH on daily dips of 4%",
        {"token": "ETH", "amount": 20, "conds": [("price_drop", 4, "1d", "buy", None)]},
    ),
    ("buy 10% PEPE when it drops 5% per day", {"conds": [("price_drop", 5, "1d", "buy", None)]}),
    ("buy 10% PEPE when it falls 2% in 15 minutes", {"conds": [("price_drop", 2, "15m", "buy", None)]}),
    ("buy 10% PEPE on a 7% dip over 30 min", {"conds": [("price_drop", 7, "30m", "buy", None)]}),
    ("buy 10% PEPE when it is down 6% in the last 4h", {"conds": [("price_drop", 6, "4h", "buy", None)]}),
    (
        "buy 15% DOGE when it pumps 12% in 5m",
        {"token": "DOGE", "amount": 15, "conds": [("price_rise", 12, "5m", "buy", None)]},
    ),
    ("buy 10% PEPE when it rises by 4 percent in an hour", {"conds": [("price_rise", 4, "1h", "buy", None)]}),
    ("buy $PEPE when volume doubles", {"token": "PEPE", "conds": [("volume_spike", 100, "1h", "buy", None)]}),
    (
        "buy 10% pepe when volume is 3x the average in 1h",
        {"token": "PEPE", "conds": [("volume_spike", 200, "1h", "buy", None)]},
    ),
    (
        "buy 10% PEPE when it drops 5% in 1h, sell when it rises 8% in 1h",
        {
            "conds": [("price_drop", 5, "1h", "buy", None), ("price_rise", 8, "1h", "sell", None)],
            "sell_action": True,
        },
    ),
    (  # a sell "when it rises 8%" with no window of its own is a take-profit
        "buy 10% PEPE when it drops 5% in 1h, sell when it rises 8%",
        {"conds": [("price_drop", 5, "1h", "buy", None)], "tp": 8},
    ),
    (
        "buy 10% PEPE when it drops 5% and sell if it falls below 0.001",
        {"conds": [("price_drop", 5, "1h", "buy", None), ("price_level", 0.001, "1h", "sell", "below")]},
    ),
    (
        "buy weth when it drops 3% within 4 hours and volume spikes 100%, tp 12 sl 4",
        {
            "match": "all",
            "sl": 4,
            "tp": 12,
            "conds": [("price_drop", 3, "4h", "buy", None), ("volume_spike", 100, "1h", "buy", None)],
        },
    ),
    (
        "buy 10% pepe on bsc when it dips 5% or rises 10% in 30 minutes",
        {
            "match": "any",
            "chain": "bsc",
            "conds": [("price_drop", 5, "1h", "buy", None), ("price_rise", 10, "30m", "buy", None)],
        },
    ),
    ("buy 10% PEPE when both it drops 5% in 1h and volume spikes 150% in 1h", {"match": "all"}),
    ("buy 10% PEPE when it drops 5%, sl 2.5%, tp 7.5%", {"sl": 2.5, "tp": 7.5}),
    ("buy 10% PEPE when it drops 5%, stop-loss at 4%, take-profit of 20%", {"sl": 4, "tp": 20}),
    ("buy 10% PEPE when it drops 5%, 3% stop loss, 9% take profit", {"sl": 3, "tp": 9}),
    ("buy 10% PEPE when it drops 5%, sell at 15% profit", {"tp": 15}),
    (
        "Buy half my balance in SOL on solana when it drops 10% in 4h",
        {"token": "SOL", "chain": "solana", "amount": 50, "conds": [("price_drop", 10, "4h", "buy", None)]},
    ),
    ("buy 10% PEPE when it drops 5% in 1h. Stop loss 3. Take profit 10.", {"sl": 3, "tp": 10}),
    (
        "if SOL dumps 8% in 4h, buy 30%",
        {"token": "SOL", "amount": 30, "conds": [("price_drop", 8, "4h", "buy", None)]},
    ),
    (
        "buy eth when it drops 5% in 4h",
        {"token": "ETH", "chain": None, "conds": [("price_drop", 5, "4h", "buy", None)]},
    ),
    ("buy 10% arb on arbitrum when it dips 6%", {"token": "ARB", "chain": "arbitrum"}),
    (
        "buy 10% ＰＥＰＥ when it drops ５％ in 1h",
        {"token": "PEPE", "conds": [("price_drop", 5, "1h", "buy", None)]},
    ),
    (
        "BUY 10% PEPE WHEN IT DROPS 5% IN 1H",
        {"token": "PEPE", "conds": [("price_drop", 5, "1h", "buy", None)]},
    ),
    (
        "position size 30%, token PEPE, buy when price drops 4% on the 4h chart",
        {"amount": 30, "conds": [("price_drop", 4, "4h", "buy", None)]},
    ),
    (
        "buy 10% of 0xabcdef1234567890-bsc when price falls below 0.001",
        {
            "token": "0xabcdef1234567890-bsc",
            "chain": "bsc",
            "conds": [("price_level", 0.001, "1h", "buy", "below")],
        },
    ),
    (
        "buy 10% WETH on base when price breaks above 4000 or drops 8% in 1d",
        {
            "chain": "base",
            "match": "any",
            "conds": [("price_level", 4000, "1h", "buy", "above"), ("price_drop", 8, "1d", "buy", None)],
        },
    ),
]


@pytest.mark.parametrize(("text", "expected"), NEW_STRATEGIES, ids=[t for t, _ in NEW_STRATEGIES])
def test_new_strategy_phrasings(text: str, expected: dict[str, Any]) -> None:
    result = parse_strategy_text(text)
    assert result.strategy is not None, parse_text(result)
    got = _summary(result.strategy)
    for key, value in expected.items():
        if key == "conds":
            assert [(t, pytest.approx(v), tf, sig, d) for t, v, tf, sig, d in value] == got["conds"], got
        else:
            assert got[key] == (pytest.approx(value) if isinstance(value, float) else value), (key, got)
    assert result.not_understood == [], result.not_understood
    assert result.fully_understood
    # The result always round-trips through the real validator.
    assert parse_strategy(result.strategy.to_config()) == result.strategy


# (edit text, expected subset of _summary) applied to BASE
EDITS: list[tuple[str, dict[str, Any]]] = [
    ("change stop loss to 5%", {"sl": 5, "tp": 10, "amount": 10}),
    ("use 4h instead", {"conds": [("price_drop", 5, "4h", "buy", None)], "sl": 3}),
    ("set amount to 20%", {"amount": 20, "sl": 3}),
    ("tp 12 sl 4", {"sl": 4, "tp": 12}),
    ("remove take profit", {"tp": None, "sl": 3}),
    ("no stop loss", {"sl": None, "tp": 10}),
    ("change the drop to 4%", {"conds": [("price_drop", 4, "1h", "buy", None)]}),
    ("switch to SOL", {"token": "SOL", "chain": None, "sl": 3}),
    ("on base", {"token": "PEPE", "chain": "base"}),
    (
        "sell if it falls below 0.001",
        {
            "conds": [("price_drop", 5, "1h", "buy", None), ("price_level", 0.001, "1h", "sell", "below")],
            "sell_action": True,
        },
    ),
    (
        "also buy when volume spikes 100%",
        {"conds": [("price_drop", 5, "1h", "buy", None), ("volume_spike", 100, "1h", "buy", None)]},
    ),
    (
        "buy when it rises 3% in 15m",
        {"conds": [("price_rise", 3, "15m", "buy", None)], "amount": 10, "sl": 3},
    ),
    ("match all", {"match": "all"}),
    ("daily", {"conds": [("price_drop", 5, "1d", "buy", None)]}),
]


@pytest.mark.parametrize(("text", "expected"), EDITS, ids=[t for t, _ in EDITS])
def test_edits_relative_to_current(text: str, expected: dict[str, Any]) -> None:
    current = parse_strategy_text(BASE).strategy
    assert current is not None
    result = parse_strategy_text(text, current)
    assert result.strategy is not None, parse_text(result)
    assert result.strategy != current
    got = _summary(result.strategy)
    for key, value in expected.items():
        if key == "conds":
            assert [(t, pytest.approx(v), tf, sig, d) for t, v, tf, sig, d in value] == got["conds"], got
        else:
            assert got[key] == value, (key, got)


def test_edit_then_remove_sell_conditions() -> None:
    current = parse_strategy_text("buy 10% PEPE when it drops 5%, sell when it rises 8% in 4h").strategy
    assert current is not None and current.exit_conditions()
    result = parse_strategy_text("remove the sell condition", current)
    assert result.strategy is not None, parse_text(result)
    assert result.strategy.exit_conditions() == []
    assert [a.type for a in result.strategy.actions] == ["buy"]


# (text, words the failure message must contain: the parser's failure as the bot words it)
FAILURES: list[tuple[str, str]] = [
    ("hello there", "which token"),
    ("buy PEPE", "buy condition"),
    ("buy 1e309% PEPE when it drops 5%", "not a usable number"),
    ("buy 10% PEPE when it drops NaN%", "not a usable number"),
    ("buy 10% PEPE when it drops inf%", "not a usable number"),
    ("buy 10% PEPE when it drops -5%", "negative"),
    ("buy 10% PEPE when it drops 5%, stop loss -3%", "negative"),
    ("buy 500% PEPE when it drops 5%", "at most 100"),
    ("buy 10% PEPE when it drops 150%", "less than 100"),
    ("buy $50 of PEPE when it drops 5%", "percent of the balance"),
    ("buy 10% PEPE when it drops 5% in 2 hours", "not a supported timeframe"),
    ("buy 10% PEPE when it drops 5%, trailing stop 3%", "trailing"),
    ("buy 10% PEPE when RSI is below 30", "rsi"),
    ("buy 10% PEPE and SOL when it drops 5%", "one token"),
    ("buy 10% PEPE when it drops 5%, sell 50%", "partial sells"),
    ("buy 10% PEPE when it drops 5% or 6% or 7% or 8% or 9% or 10%", "didn't understand"),
    ("buy 10% PEPE when volume is above 1000000", "not supported"),
]


@pytest.mark.parametrize(("text", "needle"), FAILURES, ids=[t for t, _ in FAILURES])
def test_failures_explain_why(text: str, needle: str) -> None:
    result = parse_strategy_text(text)
    assert result.strategy is None
    assert needle.lower() in parse_text(result).lower(), parse_text(result)
    assert not result.fully_understood


def test_too_many_conditions_is_rejected() -> None:
    text = (
        "buy 10% PEPE when it drops 1% or drops 2% in 4h or rises 3% or volume spikes 50% "
        "or crosses above 5 or falls below 1"
    )
    result = parse_strategy_text(text)
    assert result.strategy is None
    assert "at most 5" in parse_text(result)


def test_edit_that_changes_nothing_says_so() -> None:
    current = parse_strategy_text(BASE).strategy
    result = parse_strategy_text("blah blah", current)
    assert result.strategy is None
    assert "change" in parse_text(result).lower()
    assert result.not_understood == ["blah blah"]
    same = parse_strategy_text("stop loss 3%", current)
    assert same.strategy is None and "change" in parse_text(same).lower()


def test_harmless_leftovers_are_reported_but_do_not_block() -> None:
    result = parse_strategy_text("buy 10% PEPE when it drops 5% in 1h, to the moon lol")
    assert result.strategy is not None
    assert result.not_understood == ["to the moon lol"]
    assert not result.fully_understood
    assert parse_text(result).endswith(" I ignored: 'to the moon lol'.")


def test_leftover_with_numbers_blocks() -> None:
    result = parse_strategy_text("buy 10% PEPE when it drops 5% in 1h, and wait 3 candles")
    assert result.strategy is None
    assert any("3 candles" in s for s in result.not_understood)


def test_missing_amount_uses_documented_default() -> None:
    result = parse_strategy_text("buy PEPE when it drops 5%")
    assert result.strategy is not None
    assert result.strategy.buy.amount_percent == DEFAULT_AMOUNT_PERCENT
    assert Note("understood.default_amount", percent=DEFAULT_AMOUNT_PERCENT) in result.understood
    assert "no amount given: using 10% of the balance" in parse_text(result)


@pytest.mark.parametrize(
    "text",
    [
        "<script>alert(1)</script> buy 10% PEPE when it drops 5%",
        "<b>buy</b> 10% <i>PEPE</i> when it drops 5% <a href='x'>now</a>",
        "buy 10% PE<PE when it drops 5%",
        "\u202ebuy 10% PEPE\u200b when it drops 5%",
        "buy 10% PEPE when it drops 5%" + " lol" * 400,
        "🚀🚀 buy 10% 🐸 when it drops 5% 🚀",
        "x" * (MAX_TEXT_CHARS + 1),
        "A" * 5000,
        "1e309 " * 300,
        "%%%%%%%% $$$$ {{{{ }}}} ;;; ,,, ...",
        "buy 10% PEPE when it drops 5% " + "0" * 400,
        "\x00\x01\x02 buy",
    ],
)
def test_hostile_input_never_raises_and_never_yields_markup(text: str) -> None:
    result = parse_strategy_text(text)
    assert isinstance(parse_text(result), str) and parse_text(result)
    if result.strategy is not None:
        config = str(result.strategy.to_config())
        assert "<" not in config and ">" not in config
        parse_strategy(result.strategy.to_config())


def test_overlong_input_is_rejected_plainly() -> None:
    result = parse_strategy_text("buy 10% PEPE when it drops 5% " * 200)
    assert result.strategy is None
    assert "too long" in parse_text(result)


def test_html_stripped_message_still_parses() -> None:
    result = parse_strategy_text("<b>buy 10% PEPE</b> when it drops 5% in 1h")
    assert result.strategy is not None
    assert _cond(result.strategy)["threshold"] == 5


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_random_text_never_raises(text: str) -> None:
    result = parse_strategy_text(text)
    if result.strategy is not None:
        parse_strategy(result.strategy.to_config())


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "buy",
                "sell",
                "10%",
                "PEPE",
                "when",
                "it",
                "drops",
                "rises",
                "5%",
                "in",
                "1h",
                "4h",
                "and",
                "or",
                "stop",
                "loss",
                "tp",
                "sl",
                "3",
                "volume",
                "spikes",
                "200%",
                "above",
                "below",
                "3500",
                "on",
                "bsc",
                ",",
                "-",
                "1e309",
                "nan",
                "daily",
                "%",
                "$",
            ]
        ),
        max_size=25,
    )
)
def test_random_vocabulary_soup_is_valid_or_explained(words: list[str]) -> None:
    result = parse_strategy_text(" ".join(words))
    if result.strategy is None:
        assert parse_text(result)
    else:
        parse_strategy(result.strategy.to_config())
