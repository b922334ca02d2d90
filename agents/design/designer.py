"""`StrategyDesigner`: what the bot calls when a user chats with a selected strategy bot.

* Without LLM settings it uses the deterministic parser (`agents.design.strategy_parser`).
* With them it runs the CrewAI crew (`agents.design.crew`) in a daemon thread under `asyncio.wait_for`.
  LLM problems (rate limit, overload, auth, timeout, unusable output) produce a clear error;
  the parser's result is used instead **only if the parser fully understood the message**
  (a strategy came out and nothing was left over), and the reply says so.
* Per-user daily limit of LLM calls: an in-memory counter keyed by (user id, UTC date). It
  resets on restart (documented trade-off: a restart is rare and only grants extra calls).
  Over the limit, fully-understood messages still work through the parser.
* Messages over 2000 characters are rejected before anything else runs.

`DesignResult.explanation` is plain text: the bot must HTML-escape it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Protocol

from agents.design.crew import CrewResult, run_crew, run_in_daemon_thread
from agents.design.strategy_parser import MAX_TEXT_CHARS, ParseResult, parse_strategy_text
from agents.llm_config import LlmSettings, redact
from engine.strategy import Strategy

__all__ = ["MAX_MESSAGE_CHARS", "CrewRunner", "DesignResult", "StrategyDesigner", "UsageStore"]

logger = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = MAX_TEXT_CHARS

# (settings, message, current, history, per-request timeout) -> CrewResult; blocking.
CrewRunner = Callable[[LlmSettings, str, Strategy | None, Sequence[tuple[str, str]], float], CrewResult]


@dataclass(frozen=True)
class DesignResult:
    """Outcome of one design turn.

    `ok`: a usable strategy is in `strategy`. `changed`: it differs from the current one.
    `used_llm`: the strategy came from the AI crew (False for the parser, including fallbacks).
    `error`: a user-facing sentence when not ok (plain text)."""

    ok: bool
    strategy: Strategy | None
    explanation: str
    changed: bool
    used_llm: bool
    error: str | None = None


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _default_runner(
    settings: LlmSettings,
    message: str,
    current: Strategy | None,
    history: Sequence[tuple[str, str]],
    timeout: float,
) -> CrewResult:
    return run_crew(settings, message, current, history, timeout=timeout)


class UsageStore(Protocol):
    """Where daily LLM call counts live (see `storage.repos.LlmUsageRepo`)."""

    async def take(self, user_id: int, day: str, limit: int) -> bool: ...


class StrategyDesigner:
    """Designs and edits strategies from chat messages (AI crew when configured, else the parser)."""

    def __init__(
        self,
        *,
        llm: LlmSettings | None,
        daily_limit: int = 30,
        timeout: float = 90.0,
        clock: Callable[[], datetime] = _utcnow,
        crew_runner: CrewRunner | None = None,
        usage_store: UsageStore | None = None,
    ) -> None:
        if daily_limit < 0:
            raise ValueError("daily_limit must be >= 0")
        if timeout <= 0:
            raise ValueError("timeout must be > 0")
        self._llm = llm
        self._daily_limit = daily_limit
        self._timeout = timeout
        self._clock = clock
        self._runner: CrewRunner = crew_runner or _default_runner
        self._usage: dict[tuple[int, date], int] = {}
        # Persistent counts (storage.repos.LlmUsageRepo) when given, so restarts don't reset
        # the limit; the in-memory dict otherwise.
        self._store = usage_store

    @property
    def uses_llm(self) -> bool:
        """Whether an LLM is configured."""
        return self._llm is not None

    def llm_calls_left(self, user_id: int) -> int:
        """LLM calls the user has left today (UTC); the daily limit when no LLM is configured."""
        return max(0, self._daily_limit - self._usage.get((user_id, self._today()), 0))

    async def design(
        self,
        user_id: int,
        message: str,
        current: Strategy | None,
        history: Sequence[tuple[str, str]] = (),
    ) -> DesignResult:
        """Turn one chat message into a new or edited strategy. Never raises for user input or LLM trouble."""
        text = (message or "").strip()
        if not text:
            return self._error(
                "Send a strategy in plain words, e.g. "
                "'buy 10% PEPE on bsc when it drops 5% in 1h, stop loss 3%'."
            )
        if len(text) > MAX_MESSAGE_CHARS:
            return self._error(
                f"That message is too long ({len(text)} characters). "
                f"Please keep it under {MAX_MESSAGE_CHARS} characters."
            )
        parsed = parse_strategy_text(text, current)
        if self._llm is None:
            return self._from_parser(parsed, current)

        if not await self._take_call(user_id):
            note = f"You have used today's {self._daily_limit} AI requests (the limit resets at 00:00 UTC)."
            if parsed.fully_understood:
                return self._from_parser(parsed, current, note=note + " I used the built-in parser instead.")
            return self._error(
                note + " Simple phrasings still work without AI, e.g. "
                "'buy 10% PEPE when it drops 5% in 1h, stop loss 3%'."
            )

        settings = self._llm
        try:
            result = await asyncio.wait_for(
                self._run(settings, text, current, history), timeout=self._timeout
            )
        except TimeoutError:
            result = CrewResult(
                False, None, "", "The AI took too long to answer. Please try again.", "timeout"
            )
        except Exception as exc:  # the crew reports its own errors; this is a last-resort guard
            logger.exception("strategy designer crashed: %s", redact(str(exc), settings.api_key))
            result = CrewResult(
                False, None, "", "The AI strategy designer failed unexpectedly.", "crew_error"
            )

        if result.ok and result.strategy is not None:
            changed = result.strategy != current
            explanation = result.explanation
            if not changed:
                explanation = "No change: the strategy is the same as before.\n\n" + explanation
            return DesignResult(True, result.strategy, explanation, changed, True, None)

        error = redact(result.error or "The AI could not design a strategy.", settings.api_key)
        if parsed.fully_understood:
            return self._from_parser(parsed, current, note=error + " I used the built-in parser instead.")
        return self._error(error)

    # -- helpers ----------------------------------------------------------------------------
    def _run(
        self, settings: LlmSettings, text: str, current: Strategy | None, history: Sequence[tuple[str, str]]
    ) -> Awaitable[CrewResult]:
        history = [(str(r), str(t)) for r, t in list(history)[-20:]]
        return run_in_daemon_thread(lambda: self._runner(settings, text, current, history, self._timeout))

    def _today(self) -> date:
        now = self._clock()
        if now.tzinfo is not None:
            now = now.astimezone(UTC)
        return now.date()

    async def _take_call(self, user_id: int) -> bool:
        today = self._today()
        if self._store is not None:
            return await self._store.take(user_id, today.isoformat(), self._daily_limit)
        # Forget earlier days so the counter cannot grow without bound.
        for key in [k for k in self._usage if k[1] != today]:
            del self._usage[key]
        used = self._usage.get((user_id, today), 0)
        if used >= self._daily_limit:
            return False
        self._usage[(user_id, today)] = used + 1
        return True

    @staticmethod
    def _error(message: str) -> DesignResult:
        return DesignResult(False, None, message, False, False, message)

    @staticmethod
    def _from_parser(parsed: ParseResult, current: Strategy | None, note: str | None = None) -> DesignResult:
        if parsed.strategy is None:
            message = f"{note}\n\n{parsed.message}" if note else parsed.message
            return DesignResult(False, None, message, False, False, parsed.message)
        explanation = parsed.message if note is None else f"{note}\n\n{parsed.message}"
        return DesignResult(True, parsed.strategy, explanation, parsed.strategy != current, False, None)
