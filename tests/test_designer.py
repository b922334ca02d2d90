"""`StrategyDesigner`: parser path, crew path, daily limit, timeout, input limits, fallbacks."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest

from agents.design.crew import CrewResult
from agents.design.designer import MAX_MESSAGE_CHARS, DesignPath, DesignResult, StrategyDesigner
from agents.design.notes import Note
from agents.llm_config import LlmSettings
from bot.design_text import design_text
from bot.strategy_text import describe_strategy
from engine.strategy import Strategy, StrategyError, parse_strategy
from storage import Database
from storage.bots_repo import LlmUsageRepo
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


class MemoryUsage:
    """An in-memory `UsageStore` (the bot uses the database's `LlmUsageRepo`)."""

    def __init__(self) -> None:
        self.calls: dict[tuple[int, str], int] = {}

    async def take(self, user_id: int, day: str, limit: int) -> bool:
        if self.calls.get((user_id, day), 0) >= limit:
            return False
        self.calls[(user_id, day)] = self.calls.get((user_id, day), 0) + 1
        return True


def designer_for(llm: LlmSettings | None, **kwargs: object) -> StrategyDesigner:
    kwargs.setdefault("usage_store", MemoryUsage())
    return StrategyDesigner(llm=llm, **kwargs)  # type: ignore[arg-type]


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
        language: str = "en",
    ) -> CrewResult:
        self.language = language
        self.calls.append((message, current, list(history), timeout))
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


async def test_without_llm_uses_the_parser() -> None:
    designer = designer_for(None)
    result = await designer.design(1, UNDERSTOOD, None, [])
    assert isinstance(result, DesignResult)
    assert result.ok and not result.used_llm and result.changed and result.error is None
    assert result.path is DesignPath.RULE and result.notes == () and result.llm_error is None
    assert result.strategy is not None and result.strategy.token == "PEPE"
    assert design_text(result) == describe_strategy(result.strategy)


async def test_parser_leftovers_are_named_after_the_description() -> None:
    result = await designer_for(None).design(1, UNDERSTOOD + ", to the moon", None, [])
    assert result.ok and result.strategy is not None and result.ignored == ("to the moon",)
    assert design_text(result) == describe_strategy(result.strategy) + " I ignored: 'to the moon'."


async def test_parser_failure_is_reported() -> None:
    result = await designer_for(None).design(1, NOT_UNDERSTOOD, None, [])
    assert not result.ok and result.strategy is None and result.path is DesignPath.RULE
    assert result.error == Note("parse.cannot_build", reasons=[Note("parse.no_buy_condition")])
    assert design_text(result) == (
        "I couldn't build a strategy: I need at least one buy condition, e.g. 'buy when it drops 5% in 1h'."
    )


async def test_parser_edit_and_unchanged_flag() -> None:
    designer = designer_for(None)
    first = await designer.design(1, UNDERSTOOD, None, [])
    assert first.strategy is not None
    edit = await designer.design(1, "set amount to 20%", first.strategy, [])
    assert edit.ok and edit.changed and edit.strategy is not None and edit.strategy.buy.amount_percent == 20


async def test_with_llm_uses_the_crew() -> None:
    runner = FakeRunner()
    designer = designer_for(SETTINGS, crew_runner=runner, timeout=5)
    history = [("user", "hello"), ("assistant", "hi")]
    result = await designer.design(7, "momentum on SOL please", None, history)
    assert result.ok and result.used_llm and result.changed and result.path is DesignPath.LLM
    assert result.strategy == parse_strategy(VALID) and result.summary == "Buys SOL on strength."
    # The crew's summary, then always the deterministic description of the strategy returned.
    assert design_text(result) == f"Buys SOL on strength.\n\nStrategy: {describe_strategy(VALID)}"
    assert runner.calls == [("momentum on SOL please", None, history, 5)]


async def test_llm_same_strategy_is_not_changed() -> None:
    current = parse_strategy(VALID)
    designer = designer_for(SETTINGS, crew_runner=FakeRunner())
    result = await designer.design(7, "keep it", current, [])
    assert result.ok and not result.changed and result.notes == (Note("design.no_change"),)
    assert design_text(result) == (
        "No change: the strategy is the same as before.\n\n"
        f"Buys SOL on strength.\n\nStrategy: {describe_strategy(VALID)}"
    )


async def test_daily_limit_per_user_and_reset() -> None:
    clock = Clock()
    runner = FakeRunner()
    designer = designer_for(SETTINGS, crew_runner=runner, daily_limit=2, clock=clock)
    for _ in range(2):
        assert (await designer.design(1, NOT_UNDERSTOOD, None, [])).used_llm
    blocked = await designer.design(1, NOT_UNDERSTOOD, None, [])
    assert not blocked.ok and blocked.llm_error == "daily_limit"
    assert design_text(blocked) == (
        "You have used today's 2 AI requests (the limit resets at 00:00 UTC). Simple phrasings still work "
        "without AI, e.g. 'buy 10% PEPE when it drops 5% in 1h, stop loss 3%'."
    )
    # A fully understood message still works through the parser, with a note.
    fallback = await designer.design(1, UNDERSTOOD, None, [])
    assert fallback.ok and not fallback.used_llm and fallback.path is DesignPath.FALLBACK
    assert fallback.llm_error == "daily_limit"
    assert fallback.notes == (Note("design.parser_instead", reason=Note("design.daily_limit", limit=2)),)
    assert design_text(fallback) == (
        "You have used today's 2 AI requests (the limit resets at 00:00 UTC). I used the built-in parser instead."
        f"\n\n{describe_strategy(fallback.strategy)}"
    )
    assert len(runner.calls) == 2
    # Another user has their own budget.
    assert (await designer.design(2, NOT_UNDERSTOOD, None, [])).used_llm
    # The next UTC day resets the counter.
    clock.now += timedelta(hours=2)
    assert (await designer.design(1, NOT_UNDERSTOOD, None, [])).used_llm
    assert (await designer.design(1, NOT_UNDERSTOOD, None, [])).used_llm


async def test_overlong_and_empty_messages_are_rejected_without_llm_call() -> None:
    runner = FakeRunner()
    usage = MemoryUsage()
    designer = designer_for(SETTINGS, crew_runner=runner, usage_store=usage)
    long = await designer.design(1, "buy PEPE " * 300, None, [])
    assert not long.ok and long.path is DesignPath.INPUT
    assert long.error == Note("design.too_long", chars=2699, max_chars=MAX_MESSAGE_CHARS)
    assert design_text(long) == "That message is too long (2699 characters). Please keep it under 2000 characters."
    empty = await designer.design(1, "   ", None, [])
    assert not empty.ok and empty.error == Note("design.empty")
    assert design_text(empty) == (
        "Send a strategy in plain words, e.g. 'buy 10% PEPE on bsc when it drops 5% in 1h, stop loss 3%'."
    )
    assert runner.calls == [] and usage.calls == {}


_BAD_AMOUNT = StrategyError("strategy.invalid", detail="amount (% of balance) must be at most 100.0")
AI_PROBLEMS = [
    ("rate_limited", Note("llm.rate_limited"),
     "The AI service is rate-limiting requests right now. Please try again in a minute."),
    ("overloaded", Note("llm.overloaded"),
     "The AI service is overloaded right now. Please try again in a few minutes."),
    ("auth", Note("llm.auth"), "The AI service rejected the bot's API key. Please tell the bot's operator."),
    ("invalid_output", Note("crew.invalid_output", error=_BAD_AMOUNT),
     "The AI could not produce a valid strategy (amount (% of balance) must be at most 100.0). "
     "Try rephrasing, e.g. 'buy 10% PEPE on bsc when it drops 5% in 1h'."),
]


@pytest.mark.parametrize(("kind", "note", "words"), AI_PROBLEMS, ids=[k for k, _, _ in AI_PROBLEMS])
async def test_llm_error_falls_back_only_when_parser_fully_understood(kind: str, note: Note, words: str) -> None:
    runner = FakeRunner(CrewResult(False, None, "", note, kind))
    designer = designer_for(SETTINGS, crew_runner=runner)
    bad = await designer.design(1, NOT_UNDERSTOOD, None, [])
    assert not bad.ok and bad.path is DesignPath.LLM and bad.error == note and bad.llm_error == kind
    assert design_text(bad) == words
    good = await designer.design(1, UNDERSTOOD, None, [])
    assert good.ok and not good.used_llm and good.strategy is not None and good.strategy.token == "PEPE"
    assert good.path is DesignPath.FALLBACK and good.llm_error == kind
    assert design_text(good) == f"{words} I used the built-in parser instead.\n\n{describe_strategy(good.strategy)}"


async def test_runner_crash_is_contained_and_key_redacted() -> None:
    designer = designer_for(SETTINGS, crew_runner=FakeRunner(RuntimeError(f"boom {KEY}")))
    result = await designer.design(1, NOT_UNDERSTOOD, None, [])
    assert not result.ok and result.error == Note("design.ai_crashed") and result.llm_error == "crew_error"
    assert design_text(result) == "The AI strategy designer failed unexpectedly." and KEY not in design_text(result)


async def test_a_strategy_quoting_the_key_is_refused() -> None:
    leaky = {**VALID, "conditions": [{**VALID["conditions"][0], "token": KEY}],
             "actions": [{**VALID["actions"][0], "token": KEY}]}
    designer = designer_for(SETTINGS, crew_runner=FakeRunner(CrewResult(True, parse_strategy(leaky), "ok")))
    result = await designer.design(1, NOT_UNDERSTOOD, None, [])
    assert not result.ok and result.llm_error == "invalid_output" and KEY not in design_text(result)


@pytest.fixture
def fake() -> Iterator[AnthropicFake]:
    with AnthropicFake(api_key=KEY) as server:
        yield server


async def test_timeout_with_the_real_crew(fake: AnthropicFake) -> None:
    import crewai  # noqa: F401 - import up front so the timeout is spent waiting on the fake's delay

    fake.responder = lambda _req: text_answer(json.dumps(VALID), delay=30)
    settings = LlmSettings(api_key=KEY, base_url=fake.base_url, model="claude-x", max_retries=0)
    designer = designer_for(settings, timeout=1.0)
    result = await designer.design(1, NOT_UNDERSTOOD, None, [])
    assert not result.ok and result.error == Note("design.ai_timeout") and result.llm_error == "timeout"
    assert design_text(result) == "The AI took too long to answer. Please try again."
    assert len(fake.message_requests()) >= 1  # the crew really was waiting on the (slow) LLM
    fallback = await designer.design(1, UNDERSTOOD, None, [])
    assert fallback.ok and not fallback.used_llm and "took too long" in design_text(fallback)


async def test_real_crew_end_to_end(fake: AnthropicFake) -> None:
    fake.enqueue(json.dumps(VALID), json.dumps(VALID), "Buys SOL after a 4% rise over 4 hours.")
    settings = LlmSettings(api_key=KEY, base_url=fake.base_url, model="claude-x", max_retries=0)
    result = await designer_for(settings).design(3, "trade SOL momentum", None, [])
    assert result.ok and result.used_llm and result.strategy == parse_strategy(VALID)
    assert design_text(result) == f"Buys SOL after a 4% rise over 4 hours.\n\nStrategy: {describe_strategy(VALID)}"


async def test_daily_limit_survives_a_restart_with_the_database_store(db: Database) -> None:
    """With the persistent store (as wired in the bot), a new designer (a restart) keeps the count."""
    clock = Clock()
    runner = FakeRunner()
    first = designer_for(SETTINGS, crew_runner=runner, daily_limit=2, clock=clock, usage_store=LlmUsageRepo(db))
    for _ in range(2):
        assert (await first.design(1, NOT_UNDERSTOOD, None, [])).used_llm
    restarted = designer_for(SETTINGS, crew_runner=runner, daily_limit=2, clock=clock, usage_store=LlmUsageRepo(db))
    blocked = await restarted.design(1, NOT_UNDERSTOOD, None, [])
    assert not blocked.ok and blocked.error is not None and "2 AI requests" in design_text(blocked)
    assert (await restarted.design(2, NOT_UNDERSTOOD, None, [])).used_llm  # another user's own budget
    assert len(runner.calls) == 3
    clock.now += timedelta(hours=2)  # the next UTC day
    assert (await restarted.design(1, NOT_UNDERSTOOD, None, [])).used_llm
    assert await LlmUsageRepo(db).used(1, clock.now.date().isoformat()) == 1


async def test_the_crew_is_told_the_users_language() -> None:
    runner = FakeRunner()
    designer = designer_for(SETTINGS, crew_runner=runner)
    await designer.design(1, "buy SOL on strength", None, [], language="id")
    assert runner.language == "id"
    from agents.design.crew.prompts import build_prompts
    prompts = build_prompts("beli SOL", None, [], "tag", "pt")
    assert "Brazilian Portuguese" in prompts.explainer and "Brazilian Portuguese" not in prompts.designer
