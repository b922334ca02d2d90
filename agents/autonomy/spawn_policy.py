"""The Automaton spawn decision (SPEC §3 "Decision"): LLM with a forced tool, or a deterministic rule.

With `LlmSettings`, the model receives the agent's stats and must call the `spawn_decision`
tool (`tool_choice` forces it), so the answer is structured: `{spawn, amount, reason}`. The
answer is validated with pydantic and then bounded by the rules:

* `amount` is clamped to `[min_child, min(max_child, spawnable)]`; if that upper bound is below
  `min_child` there is no spawn; a full tree (`live_children >= max_children`) never spawns;
* `reason` is stripped of markup/control characters and trimmed to 200 characters.

Without a key, on a timeout (default 20 s) or any failure (HTTP error, no tool call, malformed
input), the deterministic rule decides and its reason says so.

A decision's `reason` is stored and shown later, so what this module writes is a code with its
figures (`agents.ledger.reasons`; the bot words it): `spawn_rule.*` for the rule, `spawn_ai.*`
around the model's answer. The model's own one-sentence reason stays its free text.

**Deterministic rule** — spawn `suggested` (clamped as above) when all hold:
`suggested >= min_child`, `spawnable >= min_child`, `live_children < max_children`,
`drawdown_pct < 25`, and — once the agent has at least 10 closed trades — `win_rate_pct >= 35`.

Amounts are `Decimal` quantised down to 6 decimals (micro-USDC); floats are never used for money.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agents.ledger.reasons import Reason, free_text, reason
from agents.ledger.rules import clamp_child
from agents.llm_config import LlmSettings, classify_llm_error, redact
from storage.money import floor_usdc

__all__ = ["SPAWN_TOOL", "SpawnContext", "SpawnDecision", "SpawnPolicy"]

logger = logging.getLogger(__name__)

REASON_MAX = 200
ADJUSTED_NOTE = 60  # room the bot's "amount adjusted" note takes after the model's reason
NOTHING = Decimal(0)  # the amount of a decision not to spawn
SPAWN_TOOL: dict[str, Any] = {
    "name": "spawn_decision",
    "description": "Decide whether this trading agent should spawn a child agent funded from its earnings.",
    "input_schema": {
        "type": "object",
        "properties": {
            "spawn": {"type": "boolean", "description": "true to spawn a child now"},
            "amount": {"type": "number", "description": "child starting balance in USDC"},
            "reason": {"type": "string", "description": "one short sentence explaining the decision"},
        },
        "required": ["spawn", "amount", "reason"],
    },
}
_SYSTEM = (
    "You are the risk-aware spawn policy of an autonomous trading agent. Given its statistics, decide "
    "whether it should spawn a child agent now and with how much USDC. Prefer not spawning when "
    "performance is weak or drawdown is high. Stay within min_child..max_child and never above "
    "spawnable. Answer only by calling the spawn_decision tool."
)


@dataclass(frozen=True)
class SpawnContext:
    """An agent's spawn-relevant stats (money as Decimal USDC)."""

    agent_id: str
    generation: int
    balance: Decimal
    available: Decimal
    net_earnings: Decimal
    spawnable: Decimal
    suggested: Decimal
    min_child: Decimal
    max_child: Decimal
    live_children: int
    max_children: int
    win_rate_pct: float | None
    trades: int
    drawdown_pct: float


@dataclass(frozen=True)
class SpawnDecision:
    """Spawn yes/no, the child's amount (0 when no), why, and who decided."""

    spawn: bool
    amount: Decimal
    reason: str
    source: Literal["llm", "rule"]


class _LlmAnswer(BaseModel):
    model_config = ConfigDict(extra="ignore")

    spawn: bool = Field(strict=True)
    amount: Decimal = Field(ge=0)
    reason: str = Field(min_length=1, max_length=5000)

    @field_validator("amount", mode="before")
    @classmethod
    def _amount(cls, v: Any) -> Decimal:
        # bool is an int subclass; a JSON true must not become 1 USDC.
        if isinstance(v, bool) or not isinstance(v, int | float | str | Decimal):
            raise ValueError("amount must be a number")
        try:
            d = Decimal(str(v))  # via str: no binary-float artefacts
        except InvalidOperation as exc:
            raise ValueError("amount must be a number") from exc
        if not d.is_finite():
            raise ValueError("amount must be finite")
        return d


def clean_reason(text: str, limit: int = REASON_MAX) -> str:
    """Plain one-line text: no tags, markdown, links or control characters; at most `limit` chars."""
    text = re.sub(r"<[^<>]{0,300}>", " ", text)
    text = re.sub(r"(?:https?|ftp|tg)://\S+|www\.\S+", "", text, flags=re.IGNORECASE)
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    text = re.sub(r"[*_`#<>|~\[\]]+", "", text)
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


class SpawnPolicy:
    """Decides whether an agent spawns a child: LLM (forced tool) when configured, else the rule."""

    def __init__(
        self,
        llm: LlmSettings | None = None,
        *,
        timeout: float = 20.0,
        max_drawdown_pct: float = 25.0,
        min_win_rate_pct: float = 35.0,
        min_trades_for_win_rate: int = 10,
    ) -> None:
        self._llm = llm
        self._timeout = timeout
        self._max_drawdown = max_drawdown_pct
        self._min_win_rate = min_win_rate_pct
        self._min_trades = min_trades_for_win_rate

    async def decide(self, ctx: SpawnContext) -> SpawnDecision:
        """Decide for one agent. Never raises for LLM trouble: the rule takes over."""
        if self._llm is None:
            return self.rule(ctx)
        try:
            answer = await asyncio.wait_for(self._ask(self._llm, ctx), timeout=self._timeout)
        except TimeoutError:
            return self.rule(ctx, why=Reason("spawn_rule.ai_timeout", {}))
        except (ValidationError, ValueError) as exc:
            logger.info("spawn policy: unusable LLM answer for %s: %s", ctx.agent_id, exc)
            return self.rule(ctx, why=Reason("spawn_rule.ai_malformed", {}))
        except Exception as exc:
            failure = classify_llm_error(exc)
            logger.warning(
                "spawn policy LLM failure for %s (%s): %s",
                ctx.agent_id,
                failure.kind,
                redact(str(exc), self._llm.api_key),
            )
            return self.rule(ctx, why=Reason("spawn_rule.ai_unavailable", {"failure": failure.kind}))
        return self._bound(ctx, answer)

    # -- the deterministic rule -------------------------------------------------------------
    def rule(self, ctx: SpawnContext, why: Reason | None = None) -> SpawnDecision:
        """The documented deterministic rule (see the module docstring); `why` it decides instead
        of the AI, if it does."""
        upper = _upper_bound(ctx)
        refusal = self._refusal(ctx, upper)
        if refusal is not None:
            return SpawnDecision(False, NOTHING, _ruled(refusal, why), "rule")
        amount = clamp_child(ctx.suggested, ctx.min_child, upper)
        figures = {"amount": amount, "earnings": ctx.net_earnings, "drawdown_pct": ctx.drawdown_pct}
        if ctx.win_rate_pct is None:
            decided = Reason("spawn_rule.yes", figures)
        else:
            decided = Reason("spawn_rule.yes_win_rate",
                             {**figures, "win_rate_pct": ctx.win_rate_pct, "trades": ctx.trades})
        return SpawnDecision(True, amount, _ruled(decided, why), "rule")

    def _refusal(self, ctx: SpawnContext, upper: Decimal) -> Reason | None:
        if ctx.live_children >= ctx.max_children:
            return Reason("spawn_rule.no_full", {"live": ctx.live_children, "maximum": ctx.max_children})
        if ctx.suggested < ctx.min_child or upper < ctx.min_child:
            return Reason("spawn_rule.no_earnings", {"min_child": ctx.min_child})
        if ctx.drawdown_pct >= self._max_drawdown:
            return Reason("spawn_rule.no_drawdown", {"drawdown_pct": ctx.drawdown_pct, "limit_pct": self._max_drawdown})
        if ctx.trades >= self._min_trades and ctx.win_rate_pct is not None and ctx.win_rate_pct < self._min_win_rate:
            return Reason("spawn_rule.no_win_rate", {"win_rate_pct": ctx.win_rate_pct, "trades": ctx.trades,
                                                     "limit_pct": self._min_win_rate})
        return None

    # -- LLM path ---------------------------------------------------------------------------
    async def _ask(self, settings: LlmSettings, ctx: SpawnContext) -> _LlmAnswer:
        import anthropic  # deferred: only needed when a key is configured

        stats = {
            "agent_id": ctx.agent_id,
            "generation": ctx.generation,
            "balance": str(ctx.balance),
            "available": str(ctx.available),
            "net_earnings": str(ctx.net_earnings),
            "spawnable": str(ctx.spawnable),
            "suggested_child_balance": str(ctx.suggested),
            "min_child": str(ctx.min_child),
            "max_child": str(ctx.max_child),
            "live_children": ctx.live_children,
            "max_children": ctx.max_children,
            "win_rate_pct": ctx.win_rate_pct,
            "closed_trades": ctx.trades,
            "drawdown_pct": ctx.drawdown_pct,
        }
        async with anthropic.AsyncAnthropic(
            api_key=settings.api_key,
            base_url=settings.base_url,
            timeout=self._timeout,
            max_retries=settings.max_retries,
        ) as client:
            response = await client.messages.create(
                model=settings.bare_model,
                max_tokens=300,
                system=_SYSTEM,
                messages=[{"role": "user", "content": "Agent statistics (JSON):\n" + json.dumps(stats)}],
                tools=[SPAWN_TOOL],
                tool_choice={"type": "tool", "name": "spawn_decision"},
            )
        for block in response.content:
            if (
                getattr(block, "type", None) == "tool_use"
                and getattr(block, "name", None) == "spawn_decision"
            ):
                if not isinstance(block.input, dict):
                    raise ValueError("tool input is not an object")
                return _LlmAnswer.model_validate(block.input)
        raise ValueError("the model did not call spawn_decision")

    def _bound(self, ctx: SpawnContext, answer: _LlmAnswer) -> SpawnDecision:
        key = self._llm.api_key if self._llm else None
        said = clean_reason(redact(answer.reason, key))
        if not answer.spawn:
            return SpawnDecision(False, NOTHING, free_text(said) if said else reason("spawn_ai.no_reason"), "llm")
        if ctx.live_children >= ctx.max_children:
            return SpawnDecision(False, NOTHING, reason("spawn_ai.full", live=ctx.live_children,
                                                        maximum=ctx.max_children), "llm")
        upper = _upper_bound(ctx)
        if upper < ctx.min_child:
            return SpawnDecision(False, NOTHING, reason("spawn_ai.too_little", upper=upper, min_child=ctx.min_child),
                                 "llm")
        amount = clamp_child(answer.amount, ctx.min_child, upper)
        if amount != floor_usdc(answer.amount):
            said = clean_reason(redact(answer.reason, key), limit=REASON_MAX - ADJUSTED_NOTE)
            return SpawnDecision(True, amount, reason("spawn_ai.adjusted", said=said, amount=amount), "llm")
        return SpawnDecision(True, amount, free_text(said) if said else reason("spawn_ai.no_reason"), "llm")


def _ruled(decided: Reason, why: Reason | None) -> str:
    """The rule's reason: what it decided, and why the rule decided rather than the AI."""
    if why is None:
        return reason("spawn_rule.decided", decision=decided)
    return reason("spawn_rule.fallback", decision=decided, why=why)


def _upper_bound(ctx: SpawnContext) -> Decimal:
    return floor_usdc(min(ctx.max_child, ctx.spawnable))

