"""`StrategyDesigner`: parser path, crew path, daily limit, timeout, input limits, fallbacks."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest

from agents.design.crew import CrewResult
from agents.design.designer import MAX_MESSAGE_CHARS, DesignResult, StrategyDesigner
from agents.llm_config import LlmSettings
from engine.strategy import Strategy, parse_strategy
from storage import Database
from storage.repos import LlmUsageRepo
from tests.fakes.anthropic_api import AnthropicFake, text_answer

KEY = "sk-ant-designer-KEY-987654"
SETTINGS = LlmSettings(api_key=KEY, base_url="http://127.0.0.1:9", model="claude-x", max_retries=0)
VALID = {
    "conditions": [
        {"type": "price_rise", "token": "SOL", "threshold": 4, "timeframe": "4h", "signal": "buy"}
    ],
    "match": "any",
    "actions": [{"type": "buy", "amount_percent": 15, "token": "SOL"}],
    "risk_management": {"stop_loss_percent": 5},
}
UNDERSTOOD = "buy 10% PEPE on bsc when it drops 5% in 1h, stop loss 3%"
NOT_UNDERSTOOD = "buy PEPE whenever the vibes feel bullish"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2025, 3, 1, 23, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


class FakeRunner:
    """A scripted stand-in for `run_crew` that records calls."""

    def __init__(self, result: CrewResult | Exception | None = None) -> None:
        self.result = result or CrewResult(True, parse_strategy(VALID), "Buys SOL on strength.")
        self.calls: list[tuple[str, Strategy | None, list[tuple[str, str]], float]] = []

    def __call__(
        self,
        settings: LlmSettings,
        message: str,
        current: Strategy | None,
        history: Sequence[tuple[str, str]],
        timeout: float,
    ) -> CrewResult:
        self.calls.append((message, current, list(history), timeout))
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


async def test_without_llm_uses_the_parser() -> None:
    designer = StrategyDesigner(llm=None)
    result = await designer.design(1, UNDERSTOOD, None, [])
    assert isinstance(result, DesignResult)
    assert result.ok and not result.used_llm and result.changed and result.error is None
    assert result.strategy is not None and result.strategy.token == "PEPE"
    assert "Buy 10%" in result.explanation
    assert not designer.uses_llm


async def test_parser_failure_is_reported() -> None:
    result = await StrategyDesigner(llm=None).design(1, NOT_UNDERSTOOD, None, [])
    assert not result.ok and result.strategy is None and result.error
    assert result.explanation == result.error


async def test_parser_edit_and_unchanged_flag() -> None:
    designer = StrategyDesigner(llm=None)
    first = await designer.design(1, UNDERSTOOD, None, [])
    assert first.strategy is not None
    edit = await designer.design(1, "set amount to 20%", first.strategy, [])
    assert edit.ok and edit.changed and edit.strategy is not None and edit.strategy.buy.amount_percent == 20


async def test_with_llm_uses_the_crew() -> None:
    runner = FakeRunner()
    designer = StrategyDesigner(llm=SETTINGS, crew_runner=runner, timeout=5)
    history = [("user", "hello"), ("assistant", "hi")]
    result = await designer.design(7, "momentum on SOL please", None, history)
    assert result.ok and result.used_llm and result.changed
    assert result.strategy == parse_strategy(VALID)
    assert result.explanation == "Buys SOL on strength."
    assert runner.calls == [("momentum on SOL please", None, history, 5)]


async def test_llm_same_strategy_is_not_changed() -> None:
    current = parse_strategy(VALID)
    designer = StrategyDesigner(llm=SETTINGS, crew_runner=FakeRunner())
    result = await designer.design(7, "keep it", current, [])
    assert result.ok and not result.changed and "No change" in result.explanation


async def test_daily_limit_per_user_and_reset() -> None:
    clock = Clock()
    runner = FakeRunner()
    designer = StrategyDesigner(llm=SETTINGS, crew_runner=runner, daily_limit=2, clock=clock)
    for _ in range(2):
        assert (await designer.design(1, NOT_UNDERSTOOD, None, [])).used_llm
    assert designer.llm_calls_left(1) == 0
    blocked = await designer.design(1, NOT_UNDERSTOOD, None, [])
    assert not blocked.ok and blocked.error and "2 AI requests" in blocked.error
    # A fully understood message still works through the parser, with a note.
    fallback = await designer.design(1, UNDERSTOOD, None, [])
    assert fallback.ok and not fallback.used_llm and "built-in parser" in fallback.explanation
    assert len(runner.calls) == 2
    # Another user has their own budget.
    assert (await designer.design(2, NOT_UNDERSTOOD, None, [])).used_llm
    # The next UTC day resets the counter.
    clock.now += timedelta(hours=2)
    assert designer.llm_calls_left(1) == 2
    assert (await designer.design(1, NOT_UNDERSTOOD, None, [])).used_llm


async def test_overlong_and_empty_messages_are_rejected_without_llm_call() -> None:
    runner = FakeRunner()
    designer = StrategyDesigner(llm=SETTINGS, crew_runner=runner)
    long = await designer.design(1, "buy PEPE " * 300, None, [])
    assert not long.ok and long.error and "too long" in long.error and str(MAX_MESSAGE_CHARS) in long.error
    empty = await designer.design(1, "   ", None, [])
    assert not empty.ok and empty.error
    assert runner.calls == [] and designer.llm_calls_left(1) == 30


@pytest.mark.parametrize("kind", ["rate_limited", "overloaded", "auth", "invalid_output"])
async def test_llm_error_falls_back_only_when_parser_fully_understood(kind: str) -> None:
    runner = FakeRunner(CrewResult(False, None, "", f"AI problem: {kind}.", kind))
    designer = StrategyDesigner(llm=SETTINGS, crew_runner=runner)
    bad = await designer.design(1, NOT_UNDERSTOOD, None, [])
    assert not bad.ok and bad.error == f"AI problem: {kind}."
    good = await designer.design(1, UNDERSTOOD, None, [])
    assert good.ok and not good.used_llm and good.strategy is not None and good.strategy.token == "PEPE"
    assert f"AI problem: {kind}." in good.explanation and "built-in parser" in good.explanation


async def test_runner_crash_is_contained_and_key_redacted() -> None:
    designer = StrategyDesigner(llm=SETTINGS, crew_runner=FakeRunner(RuntimeError(f"boom {KEY}")))
    result = await designer.design(1, NOT_UNDERSTOOD, None, [])
    assert not result.ok and result.error and KEY not in result.error


@pytest.fixture
def fake() -> Iterator[AnthropicFake]:
    with AnthropicFake(api_key=KEY) as server:
        yield server


async def test_timeout_with_the_real_crew(fake: AnthropicFake) -> None:
    import crewai  # noqa: F401 - import up front so the timeout is spent waiting on the fake's delay

    fake.responder = lambda _req: text_answer(json.dumps(VALID), delay=30)
    settings = LlmSettings(api_key=KEY, base_url=fake.base_url, model="claude-x", max_retries=0)
    designer = StrategyDesigner(llm=settings, timeout=1.0)
    result = await designer.design(1, NOT_UNDERSTOOD, None, [])
    assert not result.ok and result.error and "too long" in result.error
    assert len(fake.message_requests()) >= 1  # the crew really was waiting on the (slow) LLM
    fallback = await designer.design(1, UNDERSTOOD, None, [])
    assert fallback.ok and not fallback.used_llm and "too long" in fallback.explanation


async def test_real_crew_end_to_end(fake: AnthropicFake) -> None:
    fake.enqueue(json.dumps(VALID), json.dumps(VALID), "Buys SOL after a 4% rise over 4 hours.")
    settings = LlmSettings(api_key=KEY, base_url=fake.base_url, model="claude-x", max_retries=0)
    result = await StrategyDesigner(llm=settings).design(3, "trade SOL momentum", None, [])
    assert result.ok and result.used_llm and result.strategy == parse_strategy(VALID)
    assert "Buys SOL after a 4% rise" in result.explanation


async def test_daily_limit_survives_a_restart_with_the_database_store(db: Database) -> None:
    """With the persistent store (as wired in the bot), a new designer (a restart) keeps the count."""
    clock = Clock()
    runner = FakeRunner()
    first = StrategyDesigner(llm=SETTINGS, crew_runner=runner, daily_limit=2, clock=clock,
                             usage_store=LlmUsageRepo(db))
    for _ in range(2):
        assert (await first.design(1, NOT_UNDERSTOOD, None, [])).used_llm
    restarted = StrategyDesigner(llm=SETTINGS, crew_runner=runner, daily_limit=2, clock=clock,
                                 usage_store=LlmUsageRepo(db))
    blocked = await restarted.design(1, NOT_UNDERSTOOD, None, [])
    assert not blocked.ok and "2 AI requests" in (blocked.error or "")
    assert (await restarted.design(2, NOT_UNDERSTOOD, None, [])).used_llm  # another user's own budget
    assert len(runner.calls) == 3
    clock.now += timedelta(hours=2)  # the next UTC day
    assert (await restarted.design(1, NOT_UNDERSTOOD, None, [])).used_llm
    assert await LlmUsageRepo(db).used(1, clock.now.date().isoformat()) == 1
