"""Handling what the model wrote: find the JSON, validate it as a strategy, clean the explanation.

Pure functions, unit-tested without an LLM. Whatever the model says, the only strategy that
leaves the crew is one that passed `engine.strategy.parse_strategy`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from agents.llm_config import redact
from engine.strategy import Strategy, StrategyError, parse_strategy

MAX_EXPLANATION_CHARS = 700
_MAX_SCAN_CHARS = 20_000
_MAX_CANDIDATES = 50
_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
NO_JSON = "no strategy JSON object was found in the answer"


def extract_json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in `text`: a fenced ```json block first, else the first `{…}` that
    decodes. Bounded work on hostile input (scans at most 20k chars and 50 candidate braces)."""
    if not isinstance(text, str):
        return None
    text = text[:_MAX_SCAN_CHARS]
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    decoder = json.JSONDecoder()
    for chunk in candidates:
        for tried, m in enumerate(re.finditer(r"\{", chunk), start=1):
            if tried > _MAX_CANDIDATES:
                break
            try:
                value, _ = decoder.raw_decode(chunk, m.start())
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    return None


def validate_strategy_text(text: str) -> Strategy:
    """Extract and validate a strategy from model output.

    Raises `StrategyError`; its `detail` says why in plain words (it goes back to the model in
    the repair round)."""
    data = extract_json_object(text)
    if data is None:
        raise StrategyError("strategy.no_json", detail=NO_JSON)
    # Models sometimes wrap the object: {"strategy": {...}}.
    if set(data) == {"strategy"} and isinstance(data["strategy"], dict):
        data = data["strategy"]
    return parse_strategy(data)


def sanitize_explanation(text: str, *secret_values: str | None, limit: int = MAX_EXPLANATION_CHARS) -> str:
    """Plain text only: no HTML tags, markdown emphasis, code fences or links; capped; secrets removed."""
    text = redact(text or "", *secret_values)
    text = re.sub(r"```.*?```", " ", text, flags=re.DOTALL)
    text = re.sub(r"<[^<>]{0,300}>", " ", text)
    text = re.sub(r"(?:https?|ftp)://\S+|www\.\S+|\btg://\S+", "[link removed]", text, flags=re.IGNORECASE)
    text = re.sub(r"[*`#>|~]+", "", text)
    text = re.sub(r"[ \t]+", " ", text)
    text = "\n".join(line.strip() for line in text.splitlines() if line.strip())
    if len(text) > limit:
        cut = text[:limit].rsplit(" ", 1)[0]
        text = cut.rstrip(",;: ") + "…"
    return text.strip()
