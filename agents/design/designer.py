"""`StrategyDesigner`: what the bot calls when a user chats with a selected strategy bot.

* Without LLM settings it uses the deterministic parser (`agents.design.parser`).
* With them it runs the CrewAI crew (`agents.design.crew`) in a daemon thread under `asyncio.wait_for`.
  LLM problems (rate limit, overload, auth, timeout, unusable output) are reported as such;
  the parser's result is used instead **only if the parser fully understood the message**
  (a strategy came out and nothing was left over), and the result says so.
* Per-user daily limit of LLM calls, counted per UTC day by the `UsageStore` (the bot gives it
  the database's `LlmUsageRepo`, so a restart does not reset the count). Over the limit,
  fully-understood messages still work through the parser.
* Messages over 2000 characters are rejected before anything else runs.

The result is data, not words: which path answered, the strategy (or why there is none) and the
notes to tell the user, as `Note` codes with params. The bot words it and always describes the
strategy actually returned itself (`bot.design_text`), whatever the AI's summary says.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol

from agents.design.crew import CrewResult, run_crew
from agents.design.daemon import run_in_daemon_thread
from agents.design.notes import Note
from agents.design.parser import MAX_TEXT_CHARS, ParseResult, parse_strategy_text
from agents.llm_config import LlmSettings, redact
from engine.market.base import MarketDataError, TokenInfo, TokenNotFoundError
from engine.strategy import Strategy

__all__ = ["MAX_MESSAGE_CHARS", "CrewRunner", "DesignPath", "DesignResult", "StrategyDesigner", "UsageStore"]

logger = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = MAX_TEXT_CHARS
HISTORY_PASSED = 20  # designer messages handed to the crew (it keeps the last few of them)
DAILY_LIMIT = "daily_limit"  # `llm_error` when the user's AI budget for the day is spent

# (settings, message, current, history, per-request timeout, the user's language) -> CrewResult; blocking.
CrewRunner = Callable[[LlmSettings, str, Strategy | None, Sequence[tuple[str, str]], float, str], CrewResult]
# (token symbol or id, chain or None) -> the market's token; raises `TokenNotFoundError` when it has none.
TokenResolver = Callable[[str, str | None], Awaitable[TokenInfo]]


class DesignPath(StrEnum):
    """Which designer answered a turn."""

    INPUT = "input"  # the message was refused before any designer ran (empty, too long)
    RULE = "rule"  # the parser (no AI configured)
    LLM = "llm"  # the AI path: the crew's strategy, or why the AI could not give one (`llm_error`)
    FALLBACK = "fallback"  # the parser's strategy, because the AI could not be used (`llm_error`)


@dataclass(frozen=True)
class DesignResult:
    """Outcome of one design turn, as data (the bot words it).

    `strategy`: the new strategy, or None; then `error` says why (a parser failure, the AI's
    problem, an input refusal). `changed`: the strategy differs from the current one.
    `notes`: what to say before describing the strategy (e.g. why the parser answered instead of
    the AI, or that the AI's strategy is the same as before). `summary`: the AI's plain-text
    summary (LLM path, may be ""). `ignored`: harmless leftovers of the user's message, in their
    own words (parser paths). `llm_error`: the kind of AI problem when one happened (an
    `LlmErrorKind`, ``invalid_output``, ``crew_error``, ``timeout`` or ``daily_limit``).
    `cleared`: the user asked to start over and said nothing more (no strategy, no error).
    """

    path: DesignPath
    strategy: Strategy | None
    changed: bool = False
    notes: tuple[Note, ...] = ()
    summary: str = ""
    ignored: tuple[str, ...] = ()
    error: Note | None = None
    llm_error: str | None = None
    cleared: bool = False  # "start over" alone: the caller clears the strategy

    @property
    def ok(self) -> bool:
        """A usable strategy is in `strategy`."""
        return self.strategy is not None

    @property
    def used_llm(self) -> bool:
        """The strategy came from the AI crew (False for the parser, including fallbacks)."""
        return self.path is DesignPath.LLM and self.strategy is not None


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _default_runner(
    settings: LlmSettings,
    message: str,
    current: Strategy | None,
    history: Sequence[tuple[str, str]],
    timeout: float,
    language: str,
) -> CrewResult:
    return run_crew(settings, message, current, history, timeout=timeout, language=language)


class UsageStore(Protocol):
    """Where daily LLM call counts live (`storage.bots_repo.LlmUsageRepo` in the bot)."""

    async def take(self, user_id: int, day: str, limit: int) -> bool: ...


class StrategyDesigner:
    """Designs and edits strategies from chat messages (AI crew when configured, else the parser)."""

    def __init__(
        self,
        *,
        llm: LlmSettings | None,
        usage_store: UsageStore,
        daily_limit: int = 30,
        timeout: float = 90.0,
        clock: Callable[[], datetime] = _utcnow,
        crew_runner: CrewRunner | None = None,
        resolve_token: TokenResolver | None = None,
    ) -> None:
        if daily_limit < 0:
            raise ValueError("daily_limit must be >= 0")
        if timeout <= 0:
            raise ValueError("timeout must be > 0")
        self._llm = llm
        self._store = usage_store
        self._daily_limit = daily_limit
        self._timeout = timeout
        self._clock = clock
        self._runner: CrewRunner = crew_runner or _default_runner
        self._resolve = resolve_token

    async def design(
        self,
        user_id: int,
        message: str,
        current: Strategy | None,
        history: Sequence[tuple[str, str]] = (),
        language: str = "en",
    ) -> DesignResult:
        """Turn one chat message into a new or edited strategy. Never raises for user input or LLM trouble.

        `language` (en, id, pt) is the one the AI answers in. A strategy's token is checked against
        the market before it is returned, so a token the market does not have is refused now, not
        at the first backtest or trade."""
        return await self._checked(await self._design(user_id, message, current, history, language))

    async def _design(self, user_id: int, message: str, current: Strategy | None,
                      history: Sequence[tuple[str, str]], language: str) -> DesignResult:
        text = (message or "").strip()
        if not text:
            return DesignResult(DesignPath.INPUT, None, error=Note("design.empty"))
        if len(text) > MAX_MESSAGE_CHARS:
            return DesignResult(DesignPath.INPUT, None,
                                error=Note("design.too_long", chars=len(text), max_chars=MAX_MESSAGE_CHARS))
        parsed = parse_strategy_text(text, current)
        if parsed.cleared:  # "start over" alone: nothing for the AI to design
            return DesignResult(DesignPath.RULE, None, changed=current is not None, cleared=True)
        if self._llm is None:
            return _from_parser(parsed, current)

        if not await self._store.take(user_id, self._today(), self._daily_limit):
            spent = Note("design.daily_limit", limit=self._daily_limit)
            if parsed.fully_understood:
                return _from_parser(parsed, current, problem=spent, kind=DAILY_LIMIT)
            return DesignResult(DesignPath.LLM, None, error=Note("design.try_simple_phrasing", reason=spent),
                                llm_error=DAILY_LIMIT)
        return await self._with_crew(self._llm, text, current, history, parsed, language)

    async def _checked(self, result: DesignResult) -> DesignResult:
        """The result with its token checked against the market (and its chain filled in)."""
        strategy = result.strategy
        if strategy is None or self._resolve is None:
            return result
        try:
            info = await self._resolve(strategy.token, strategy.chain)
        except TokenNotFoundError as exc:
            return DesignResult(result.path, None, error=Note("design.unknown_token", error=exc),
                                llm_error=result.llm_error)
        except MarketDataError as exc:  # the market is down: keep the strategy, say it is unchecked
            logger.info("could not check token %s: %s", strategy.token, exc.code)
            return replace(result, notes=(*result.notes, Note("design.token_unchecked", token=strategy.token)))
        if strategy.chain is None and info.chain:
            return replace(result, strategy=strategy.with_token(strategy.token, info.chain))
        return result

    # -- helpers ----------------------------------------------------------------------------
    async def _with_crew(self, settings: LlmSettings, text: str, current: Strategy | None,
                         history: Sequence[tuple[str, str]], parsed: ParseResult, language: str) -> DesignResult:
        try:
            result = await asyncio.wait_for(self._run(settings, text, current, history, language),
                                            timeout=self._timeout)
        except TimeoutError:
            result = CrewResult(False, None, "", Note("design.ai_timeout"), "timeout")
        except Exception as exc:  # the crew reports its own errors; this is a last-resort guard
            logger.exception("strategy designer crashed: %s", redact(str(exc), settings.api_key))
            result = CrewResult(False, None, "", Note("design.ai_crashed"), "crew_error")
        if result.ok and result.strategy is not None and _holds_secret(result.strategy, settings.api_key):
            logger.warning("the crew's strategy quotes the API key: refused")
            result = CrewResult(False, None, "", Note("crew.no_valid_strategy"), "invalid_output")

        if result.ok and result.strategy is not None:
            changed = result.strategy != current
            notes = () if changed else (Note("design.no_change"),)
            return DesignResult(DesignPath.LLM, result.strategy, changed, notes,
                                summary=redact(result.explanation, settings.api_key))

        problem = _redacted(result.error or Note("design.ai_no_strategy"), settings.api_key)
        kind = result.error_kind or "crew_error"
        if parsed.fully_understood:
            return _from_parser(parsed, current, problem=problem, kind=kind)
        return DesignResult(DesignPath.LLM, None, error=problem, llm_error=kind)

    def _run(
        self, settings: LlmSettings, text: str, current: Strategy | None, history: Sequence[tuple[str, str]],
        language: str,
    ) -> Awaitable[CrewResult]:
        history = [(str(r), str(t)) for r, t in list(history)[-HISTORY_PASSED:]]
        return run_in_daemon_thread(lambda: self._runner(settings, text, current, history, self._timeout, language))

    def _today(self) -> str:
        now = self._clock()
        if now.tzinfo is not None:
            now = now.astimezone(UTC)
        return now.date().isoformat()


_STARTED = {"understood.replaced": "design.replaced", "understood.started_over": "design.started_over"}


def _from_parser(parsed: ParseResult, current: Strategy | None, *, problem: Note | None = None,
                 kind: str | None = None) -> DesignResult:
    """The parser's answer: RULE, or FALLBACK (with the AI `problem`) when the AI could not be used."""
    path = DesignPath.RULE if problem is None else DesignPath.FALLBACK
    if parsed.strategy is None:
        return DesignResult(path, None, error=parsed.failure, llm_error=kind)
    notes = () if problem is None else (Note("design.parser_instead", reason=problem),)
    # a whole new strategy says so: nothing of the old one was kept
    notes += tuple(Note(_STARTED[n.code]) for n in parsed.understood if n.code in _STARTED and current is not None)
    return DesignResult(path, parsed.strategy, parsed.strategy != current, notes,
                        ignored=tuple(parsed.not_understood), llm_error=kind)


def _holds_secret(strategy: Strategy, secret: str) -> bool:
    """The strategy quotes the API key (a model obeying an injection could put it in a token name)."""
    return len(secret) >= 6 and secret in json.dumps(strategy.to_config())


def _redacted(note: Note, secret: str) -> Note:
    """`note` with the secret removed from its text params (nested notes included)."""
    params = {k: redact(v, secret) if isinstance(v, str) else _redacted(v, secret) if isinstance(v, Note) else v
              for k, v in note.params.items()}
    return Note(note.code, **params)
