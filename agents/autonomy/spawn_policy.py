"""The Automaton spawn decision (SPEC §3 "Decision"): LLM with a forced tool, or a deterministic rule.

With `LlmSettings`, the model receives the agent's stats and must call the `spawn_decision`
tool (`tool_choice` forces it), so the answer is structured: `{spawn, amount, reason}`. The
answer is validated with pydantic and then bounded by the rules:

* `amount` is clamped to `[min_child, min(max_child, spawnable)]`; if that upper bound is below
  `min_child` there is no spawn; a full tree (`live_children >= max_children`) never spawns;
* `reason` is stripped of markup/control characters and trimmed to 200 characters.

Without a key, on a timeout (default 20 s) or any failure (HTTP error, no tool call, malformed
input), the deterministic rule decides and its reason says so.

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

from agents.ledger.rules import clamp_child
from agents.llm_config import LlmSettings, classify_llm_error, redact
from storage.money import floor_usdc

__all__ = ["SPAWN_TOOL", "SpawnContext", "SpawnDecision", "SpawnPolicy"]

logger = logging.getLogger(__name__)

REASON_MAX = 200
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
            return self.rule(ctx, why="the AI did not answer in time")
        except (ValidationError, ValueError) as exc:
            logger.info("spawn policy: unusable LLM answer for %s: %s", ctx.agent_id, exc)
            return self.rule(ctx, why="the AI answer was malformed")
        except Exception as exc:
            failure = classify_llm_error(exc)
            logger.warning(
                "spawn policy LLM failure for %s (%s): %s",
                ctx.agent_id,
                failure.kind,
                redact(str(exc), self._llm.api_key),
            )
            return self.rule(ctx, why=f"AI unavailable: {failure.kind.replace('_', ' ')}")
        return self._bound(ctx, answer)

    # -- the deterministic rule -------------------------------------------------------------
    def rule(self, ctx: SpawnContext, why: str | None = None) -> SpawnDecision:
        """The documented deterministic rule (see the module docstring)."""
        prefix = f"Rule-based decision ({why}): " if why else "Rule-based decision: "
        upper = _upper_bound(ctx)
        refusal = None
        if ctx.live_children >= ctx.max_children:
            refusal = f"already {ctx.live_children} live children (max {ctx.max_children})"
        elif ctx.suggested < ctx.min_child or upper < ctx.min_child:
            refusal = f"spawnable earnings below the {_fmt(ctx.min_child)} USDC minimum child balance"
        elif ctx.drawdown_pct >= self._max_drawdown:
            refusal = f"drawdown {ctx.drawdown_pct:.1f}% is at or above {self._max_drawdown:g}%"
        elif (
            ctx.trades >= self._min_trades
            and ctx.win_rate_pct is not None
            and ctx.win_rate_pct < self._min_win_rate
        ):
            refusal = (
                f"win rate {ctx.win_rate_pct:.1f}% over {ctx.trades} trades is below {self._min_win_rate:g}%"
            )
        if refusal:
            return SpawnDecision(
                False, NOTHING, clean_reason(prefix + "no spawn, " + refusal), "rule"
            )
        amount = clamp_child(ctx.suggested, ctx.min_child, upper)
        text = (
            f"spawn {_fmt(amount)} USDC: earnings {_fmt(ctx.net_earnings)} USDC, "
            f"drawdown {ctx.drawdown_pct:.1f}%"
        )
        if ctx.win_rate_pct is not None:
            text += f", win rate {ctx.win_rate_pct:.0f}% over {ctx.trades} trades"
        return SpawnDecision(True, amount, clean_reason(prefix + text), "rule")

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
        reason = clean_reason(redact(answer.reason, key)) or "no reason given"
        if not answer.spawn:
            return SpawnDecision(False, NOTHING, reason, "llm")
        if ctx.live_children >= ctx.max_children:
            return SpawnDecision(
                False,
                NOTHING,
                clean_reason(
                    f"AI wanted to spawn, but the agent already has {ctx.live_children} live children "
                    f"(max {ctx.max_children})."
                ),
                "llm",
            )
        upper = _upper_bound(ctx)
        if upper < ctx.min_child:
            return SpawnDecision(
                False,
                NOTHING,
                clean_reason(
                    f"AI wanted to spawn, but at most {_fmt(upper)} USDC is spawnable, below the "
                    f"{_fmt(ctx.min_child)} USDC minimum."
                ),
                "llm",
            )
        amount = clamp_child(answer.amount, ctx.min_child, upper)
        if amount != floor_usdc(answer.amount):
            note = f" (amount adjusted to {_fmt(amount)} USDC to fit the limits)"
            reason = clean_reason(redact(answer.reason, key), limit=REASON_MAX - len(note)) + note
        return SpawnDecision(True, amount, reason, "llm")


def _upper_bound(ctx: SpawnContext) -> Decimal:
    return floor_usdc(min(ctx.max_child, ctx.spawnable))


def _fmt(value: Decimal) -> str:
    return format(value.normalize(), "f")
