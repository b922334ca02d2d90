"""Building the CrewAI crew: the LLM, the three agents, their tasks and the designer's guardrail.

Sequential process:

1. **Trading Strategy Designer** turns the user's message (+ current strategy + recent chat)
   into strategy JSON. A task guardrail extracts the JSON and validates it; on failure CrewAI
   sends the validation error back to the designer for exactly one repair round
   (`guardrail_max_retries=1`).
2. **Strategy Validator** checks the designer's strategy against the rules and the request and
   outputs the (possibly corrected) JSON.
3. **Strategy Explainer** summarises in plain words what the strategy does and what changed.

CrewAI is imported lazily inside `build_crew` after `configure_crewai_environment()` has turned
telemetry and tracing off (env vars), so importing this module does no I/O.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agents.design.crew.output import validate_strategy_text
from agents.design.crew.prompts import Prompts
from agents.llm_config import LlmSettings
from engine.strategy import Strategy, StrategyError

_CREWAI_ENV = {
    "CREWAI_DISABLE_TELEMETRY": "true",
    "CREWAI_DISABLE_TRACKING": "true",
    "OTEL_SDK_DISABLED": "true",
    "CREWAI_TRACING_ENABLED": "false",
    # CrewAI keeps a small SQLite file of the last kickoff's task outputs under
    # <user data dir>/<CREWAI_STORAGE_DIR>/ (appdirs; XDG_DATA_HOME moves it). A fixed name
    # keeps that location independent of the working directory.
    "CREWAI_STORAGE_DIR": "automaton-trading-bot",
}
_ROLES = (
    ("Trading Strategy Designer",
     "Translate a user's trading idea into a strategy JSON object that follows the bot's rules exactly.",
     "You design rule-based crypto trading strategies for a Telegram bot and answer only with JSON."),
    ("Strategy Validator",
     "Make sure the strategy JSON follows every rule and matches what the user asked for.",
     "You are a meticulous risk reviewer; you fix rule violations and answer only with JSON."),
    ("Strategy Explainer",
     "Explain a trading strategy and what changed in a few plain sentences.",
     "You explain trading rules to non-experts clearly and briefly, in plain text."),
)


def configure_crewai_environment() -> None:
    """Turn CrewAI telemetry/tracing off (and pin its storage dir name) unless the operator set
    these variables explicitly. Called before CrewAI is imported."""
    for key, value in _CREWAI_ENV.items():
        os.environ.setdefault(key, value)


@dataclass
class GuardState:
    """What the designer's guardrail saw: attempts, the last validation error, the strategy that passed."""

    attempts: int = 0
    last_error: StrategyError | None = None
    strategy: Strategy | None = None


def designer_guardrail(state: GuardState) -> Callable[[Any], tuple[bool, Any]]:
    """The designer task's guardrail: accept only output that validates as a strategy."""

    def guard(output: Any) -> tuple[bool, Any]:
        state.attempts += 1
        try:
            strategy = validate_strategy_text(str(getattr(output, "raw", output)))
        except StrategyError as exc:
            state.last_error = exc
            return False, (
                f"The strategy is invalid: {exc.detail}. Reply with ONLY the corrected strategy JSON "
                "object that follows the rules."
            )
        state.strategy = strategy
        state.last_error = None
        return True, json.dumps(strategy.to_config())

    # CrewAI checks the *evaluated* return annotation; with postponed annotations it would see a
    # string and refuse the guardrail, so put the real type object in place.
    guard.__annotations__["return"] = tuple[bool, Any]
    return guard


def build_crew(settings: LlmSettings, prompts: Prompts, state: GuardState, *, timeout: float,
               max_tokens: int) -> Any:
    """The sequential three-agent crew on `settings`' LLM; `timeout` bounds each LLM request."""
    configure_crewai_environment()
    from crewai import LLM, Agent, Crew, Process, Task  # heavy import, deferred on purpose

    # `provider="anthropic"` with the bare model name, not `model="anthropic/<name>"`: CrewAI 1.15
    # only routes that prefix natively for names it recognises as Claude models and otherwise
    # needs LiteLLM, which would break MiniMax's Anthropic-compatible models (e.g. MiniMax-M2).
    llm = LLM(
        model=settings.bare_model,
        provider="anthropic",
        base_url=settings.base_url,
        api_key=settings.api_key,
        max_tokens=max_tokens,
        timeout=timeout,
        max_retries=settings.max_retries,
        temperature=0.2,
    )
    designer, validator, explainer = (
        Agent(role=role, goal=goal, backstory=backstory, llm=llm, tools=[], allow_delegation=False,
              verbose=False, max_iter=2, max_retry_limit=0, respect_context_window=False)
        for role, goal, backstory in _ROLES
    )
    tasks = [
        Task(description=prompts.designer, expected_output="One strategy JSON object.", agent=designer,
             guardrail=designer_guardrail(state), guardrail_max_retries=1),
        Task(description=prompts.validator, expected_output="The final strategy JSON object.", agent=validator),
        Task(description=prompts.explainer, expected_output="A short plain-text explanation.", agent=explainer),
    ]
    return Crew(agents=[designer, validator, explainer], tasks=tasks, process=Process.sequential, verbose=False,
                memory=False, cache=False, planning=False, tracing=False)
