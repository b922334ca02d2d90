"""Running the crew: a validated strategy and a clean summary, or a classified failure.

Whatever the model says, the only thing returned as a strategy is a `Strategy` that passed
`parse_strategy`; the summary is stripped of markup and links, capped in length and scrubbed
of the API key. `run_crew` blocks: the designer runs it in a daemon thread. Failures are
`Note`s (``llm.<kind>``, ``crew.…``): the bot words them.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agents.design.crew.assembly import GuardState, build_crew
from agents.design.crew.output import sanitize_explanation, validate_strategy_text
from agents.design.crew.prompts import build_prompts
from agents.design.notes import Note
from agents.llm_config import LlmSettings, classify_llm_error, redact
from engine.strategy import Strategy, StrategyError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CrewResult:
    """Outcome of one crew run. `strategy` is always validated when `ok`.

    `explanation` is the explainer's sanitised summary ("" when there is none, or when it
    described a validator version that was rejected); the caller adds the strategy's own
    description. `error_kind` is `"invalid_output"` when the model never produced a valid
    strategy, an `LlmErrorKind` (`rate_limited`, `overloaded`, `auth`, `timeout`, …) for service
    errors, or `"crew_error"` for anything else. `error` says what went wrong as a `Note`
    (``llm.<kind>``, ``crew.no_valid_strategy``, ``crew.invalid_output`` with the validation
    `error`, ``crew.failed``), without secrets.
    """

    ok: bool
    strategy: Strategy | None
    explanation: str
    error: Note | None = None
    error_kind: str | None = None
    repaired: bool = False


def run_crew(
    settings: LlmSettings,
    message: str,
    current: Strategy | None = None,
    history: Sequence[tuple[str, str]] = (),
    *,
    timeout: float = 60.0,
    max_tokens: int = 2048,
    language: str = "en",
) -> CrewResult:
    """Run the three-agent crew synchronously and return a validated strategy or a clear failure.

    Never raises for LLM/service/model-output problems; `timeout` bounds each LLM request."""
    prompts = build_prompts(message, current, history, secrets.token_hex(6), language)
    state = GuardState()
    crew = build_crew(settings, prompts, state, timeout=timeout, max_tokens=max_tokens)
    try:
        output = crew.kickoff()
    except Exception as exc:
        return _failure(exc, state, settings)
    return _outcome(output, state, settings)


def _outcome(output: Any, state: GuardState, settings: LlmSettings) -> CrewResult:
    """The designer's strategy, replaced by the validator's when that validates too."""
    designed = state.strategy
    if designed is None:  # guardrail never passed yet kickoff returned: treat as invalid output
        return CrewResult(False, None, "", Note("crew.no_valid_strategy"), "invalid_output")
    outputs = [getattr(t, "raw", "") or "" for t in (output.tasks_output or [])]
    final, validator_accepted = designed, False
    if len(outputs) >= 2:
        try:
            final = validate_strategy_text(outputs[1])
            validator_accepted = True
        except StrategyError as exc:
            logger.info("validator output rejected, keeping the designer's strategy: %s", exc.detail)
    # The explainer described the validator's version: without it, its summary would be wrong.
    summary = (
        sanitize_explanation(outputs[2], settings.api_key) if validator_accepted and len(outputs) >= 3 else ""
    )
    return CrewResult(True, final, summary, repaired=state.attempts > 1)


def _failure(exc: BaseException, state: GuardState, settings: LlmSettings) -> CrewResult:
    if _is_llm_error(exc):
        failure = classify_llm_error(exc)
        logger.warning("strategy crew LLM failure (%s): %s", failure.kind, redact(str(exc), settings.api_key))
        return CrewResult(False, None, "", Note(failure.code), failure.kind)
    if state.last_error is not None and state.attempts >= 2:
        last = state.last_error
        # The reasons may quote the model's output, which may quote the key.
        reason = StrategyError(last.code, **{**last.params, "detail": redact(last.detail, settings.api_key)})
        return CrewResult(False, None, "", Note("crew.invalid_output", error=reason), "invalid_output")
    logger.exception("strategy crew failed", exc_info=(type(exc), exc, exc.__traceback__))
    return CrewResult(False, None, "", Note("crew.failed"), "crew_error")


def _is_llm_error(exc: BaseException) -> bool:
    import anthropic

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, anthropic.APIError | TimeoutError):
            return True
        current = current.__cause__ or current.__context__
    return False
