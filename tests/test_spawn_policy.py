"""The spawn decision policy: LLM (forced tool) with clamping, and the deterministic rule."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from agents.autonomy.spawn_policy import SPAWN_TOOL, SpawnContext, SpawnDecision, SpawnPolicy
from agents.llm_config import LlmSettings
from bot.render import reason_text
from storage.money import USDC_STEP, floor_usdc
from tests.fakes.anthropic_api import (
    AnthropicFake,
    FakeAnswer,
    overloaded,
    rate_limited,
    text_answer,
    tool_answer,
)

KEY = "sk-ant-spawn-KEY-4242424242"
D = Decimal


def ctx(**changes: Any) -> SpawnContext:
    base = SpawnContext(
        agent_id="agent-1",
        generation=1,
        balance=D("200"),
        available=D("180"),
        net_earnings=D("60"),
        spawnable=D("50"),
        suggested=D("25"),
        min_child=D("10"),
        max_child=D("90"),
        live_children=0,
        max_children=3,
        win_rate_pct=60.0,
        trades=20,
        drawdown_pct=5.0,
    )
    return dataclasses.replace(base, **changes)


@pytest.fixture
def fake() -> Iterator[AnthropicFake]:
    with AnthropicFake(api_key=KEY) as server:
        yield server


@pytest.fixture
def policy(fake: AnthropicFake) -> SpawnPolicy:
    return SpawnPolicy(
        LlmSettings(api_key=KEY, base_url=fake.base_url, model="claude-x", max_retries=0), timeout=5
    )


def decision_tool(**fields: Any) -> FakeAnswer:
    return tool_answer("spawn_decision", {"spawn": True, "amount": 20, "reason": "solid earnings", **fields})


# -- LLM path -----------------------------------------------------------------------------------


async def test_llm_yes_within_bounds(fake: AnthropicFake, policy: SpawnPolicy) -> None:
    fake.enqueue(decision_tool(amount=20.5))
    decision = await policy.decide(ctx())
    assert decision == SpawnDecision(True, D("20.500000"), "solid earnings", "llm")
    request = fake.message_requests()[0]
    assert request.headers["x-api-key"] == KEY
    body = request.body or {}
    assert body["tool_choice"] == {"type": "tool", "name": "spawn_decision"}
    assert body["tools"][0]["name"] == "spawn_decision"
    assert body["tools"][0]["input_schema"] == SPAWN_TOOL["input_schema"]
    assert '"spawnable": "50"' in request.all_text()


async def test_llm_amount_way_too_high_is_clamped(fake: AnthropicFake, policy: SpawnPolicy) -> None:
    fake.enqueue(decision_tool(amount=1e12))
    decision = await policy.decide(ctx())
    assert decision.spawn and decision.source == "llm"
    assert decision.amount == D("50.000000")  # min(max_child 90, spawnable 50)
    assert reason_text(decision.reason) == "solid earnings (amount adjusted to 50 USDC to fit the limits)"


async def test_llm_amount_too_low_is_raised_to_minimum(fake: AnthropicFake, policy: SpawnPolicy) -> None:
    fake.enqueue(decision_tool(amount=0.5))
    decision = await policy.decide(ctx())
    assert decision.spawn and decision.amount == D("10.000000")


async def test_llm_yes_but_nothing_spawnable_means_no(fake: AnthropicFake, policy: SpawnPolicy) -> None:
    fake.enqueue(decision_tool(amount=20))
    decision = await policy.decide(ctx(spawnable=D("7"), suggested=D("3.5")))
    assert not decision.spawn and decision.amount == 0 and decision.source == "llm"
    assert reason_text(decision.reason) == (
        "AI wanted to spawn, but at most 7 USDC is spawnable, below the 10 USDC minimum.")


async def test_llm_yes_but_tree_full_means_no(fake: AnthropicFake, policy: SpawnPolicy) -> None:
    fake.enqueue(decision_tool())
    decision = await policy.decide(ctx(live_children=3))
    assert not decision.spawn
    assert reason_text(decision.reason) == "AI wanted to spawn, but the agent already has 3 live children (max 3)."


async def test_llm_no(fake: AnthropicFake, policy: SpawnPolicy) -> None:
    fake.enqueue(
        tool_answer("spawn_decision", {"spawn": False, "amount": 30, "reason": "drawdown is rising"})
    )
    decision = await policy.decide(ctx())
    assert decision == SpawnDecision(False, D("0.000000"), "drawdown is rising", "llm")


async def test_llm_reason_is_cleaned_and_trimmed(fake: AnthropicFake, policy: SpawnPolicy) -> None:
    reason = f"<b>Great</b> **run** https://evil.example {KEY} " + "x" * 500
    fake.enqueue(decision_tool(reason=reason))
    decision = await policy.decide(ctx())
    assert decision.source == "llm" and len(decision.reason) <= 200
    assert "<b>" not in decision.reason and "**" not in decision.reason and "https://" not in decision.reason
    assert KEY not in decision.reason
    assert decision.reason.startswith("Great run")


@pytest.mark.parametrize(
    "answer",
    [
        tool_answer("spawn_decision", {"spawn": "yes", "amount": 20, "reason": "x"}),
        tool_answer("spawn_decision", {"spawn": True, "amount": "lots", "reason": "x"}),
        tool_answer("spawn_decision", {"spawn": True, "amount": -5, "reason": "x"}),
        tool_answer("spawn_decision", {"spawn": True, "amount": True, "reason": "x"}),
        tool_answer("spawn_decision", {"spawn": True, "amount": 20}),
        tool_answer("spawn_decision", {"spawn": True, "amount": 20, "reason": ""}),
        tool_answer("spawn_decision", ["not", "an", "object"]),
        tool_answer("other_tool", {"spawn": True, "amount": 20, "reason": "x"}),
        text_answer("I think it should spawn 20 USDC."),
        FakeAnswer(raw_body='{"id": "msg_1", "type": "message", "content": [{"type": "tool_use"'),
    ],
    ids=[
        "spawn-str",
        "amount-str",
        "negative",
        "amount-bool",
        "no-reason",
        "empty-reason",
        "list-input",
        "wrong-tool",
        "text-only",
        "truncated-json",
    ],
)
async def test_malformed_answer_falls_back_to_rule(
    fake: AnthropicFake, policy: SpawnPolicy, answer: FakeAnswer
) -> None:
    fake.enqueue(answer)
    decision = await policy.decide(ctx())
    assert decision.source == "rule"
    assert reason_text(decision.reason) == (
        "Rule-based decision (the AI answer was malformed): spawn 25 USDC: earnings 60 USDC, drawdown 5.0%, "
        "win rate 60% over 20 trades")
    assert decision.spawn and decision.amount == D("25.000000")


@pytest.mark.parametrize(
    ("answer", "word"),
    [
        (overloaded(), "overloaded"),
        (rate_limited(0), "rate limited"),
        (FakeAnswer(status=500, error_type="api_error", error_message="boom"), "server"),
    ],
)
async def test_service_errors_fall_back_to_rule(
    fake: AnthropicFake, policy: SpawnPolicy, answer: FakeAnswer, word: str
) -> None:
    fake.enqueue(answer)
    decision = await policy.decide(ctx())
    assert decision.source == "rule"
    assert reason_text(decision.reason).startswith(f"Rule-based decision (AI unavailable: {word}): ")
    assert decision.spawn and decision.amount == D("25.000000")


async def test_auth_failure_falls_back_to_rule(fake: AnthropicFake) -> None:
    policy = SpawnPolicy(
        LlmSettings(api_key="wrong-key-000000", base_url=fake.base_url, model="m", max_retries=0)
    )
    decision = await policy.decide(ctx())
    assert decision.source == "rule"
    assert reason_text(decision.reason).startswith("Rule-based decision (AI unavailable: auth): ")


async def test_timeout_falls_back_to_rule(fake: AnthropicFake) -> None:
    fake.enqueue(tool_answer("spawn_decision", {"spawn": True, "amount": 20, "reason": "slow"}, delay=10))
    policy = SpawnPolicy(
        LlmSettings(api_key=KEY, base_url=fake.base_url, model="m", max_retries=0), timeout=0.3
    )
    decision = await policy.decide(ctx())
    assert decision.source == "rule"
    assert reason_text(decision.reason).startswith("Rule-based decision (the AI did not answer in time): spawn 25 USDC")


async def test_unreachable_llm_falls_back_to_rule() -> None:
    policy = SpawnPolicy(LlmSettings(api_key=KEY, base_url="http://127.0.0.1:9", model="m", max_retries=0))
    decision = await policy.decide(ctx())
    assert decision.source == "rule" and "(AI unavailable: connection)" in reason_text(decision.reason)


# -- the rule -----------------------------------------------------------------------------------


async def test_no_key_uses_rule() -> None:
    decision = await SpawnPolicy(None).decide(ctx())
    assert decision.source == "rule" and decision.spawn
    assert decision.amount == D("25.000000")
    assert reason_text(decision.reason) == (
        "Rule-based decision: spawn 25 USDC: earnings 60 USDC, drawdown 5.0%, win rate 60% over 20 trades")


@pytest.mark.parametrize(
    ("changes", "spawn", "amount", "word"),
    [
        ({}, True, "25", ": spawn 25 USDC: earnings 60 USDC"),
        ({"suggested": D("9.99")}, False, "0",
         ": no spawn, spawnable earnings below the 10 USDC minimum child balance"),
        ({"spawnable": D("9"), "suggested": D("10")}, False, "0", "below the 10 USDC minimum child balance"),
        ({"live_children": 3}, False, "0", ": no spawn, already 3 live children (max 3)"),
        ({"drawdown_pct": 25.0}, False, "0", ": no spawn, drawdown 25.0% is at or above 25%"),
        ({"drawdown_pct": 24.9}, True, "25", "drawdown 24.9%, win rate 60% over 20 trades"),
        ({"win_rate_pct": 20.0, "trades": 10}, False, "0", ": no spawn, win rate 20.0% over 10 trades is below 35%"),
        ({"win_rate_pct": 20.0, "trades": 9}, True, "25", "win rate 20% over 9 trades"),  # too few trades to judge
        ({"win_rate_pct": None, "trades": 0}, True, "25", "spawn 25 USDC: earnings 60 USDC, drawdown 5.0%"),
        ({"suggested": D("80"), "max_child": D("40")}, True, "40", "spawn 40 USDC"),
        ({"suggested": D("12.3456789")}, True, "12.345678", "spawn 12.345678 USDC"),
    ],
)
def test_rule_table(changes: dict[str, Any], spawn: bool, amount: str, word: str) -> None:
    decision = SpawnPolicy(None).rule(ctx(**changes))
    assert decision.spawn is spawn
    assert decision.amount == D(amount)
    words = reason_text(decision.reason)
    assert words.startswith("Rule-based decision: ") and word in words
    assert decision.source == "rule"


async def test_amounts_are_decimal_micro_usdc(fake: AnthropicFake, policy: SpawnPolicy) -> None:
    fake.enqueue(decision_tool(amount=12.3456789))
    decision = await policy.decide(ctx())
    assert isinstance(decision.amount, Decimal)
    assert decision.amount == D("12.345678")
    assert decision.amount.as_tuple().exponent == -6
    rule = SpawnPolicy(None).rule(ctx(suggested=D("11.1111119")))
    assert isinstance(rule.amount, Decimal) and rule.amount == D("11.111111")
    assert floor_usdc(D("0.0000019")) == D("0.000001") and USDC_STEP == D("0.000001")
    # 0.1 + 0.2 as floats would be 0.30000000000000004; via str it stays exact.
    fake.enqueue(decision_tool(amount=10.3))
    assert (await policy.decide(ctx())).amount == D("10.300000")
