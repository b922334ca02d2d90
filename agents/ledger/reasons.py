"""Stored reasons as codes with params: why an agent changed status, why a child was (not) spawned.

The ledger and the autonomy workers store a reason beside what they did (an agent's
`status_reason` and `spawn_reason`, a spawn decision's `reason`), and the bot shows it later,
maybe long after, in the user's words. So what is stored is not a sentence but a code with its
figures, and only `bot/` words it (`bot.messages.reasons`, rendered by `bot.render.reason_text`).

This module is the one place that writes and reads that format. A reason is one TEXT value: a
compact JSON object, ``{"code":"status.risk_drawdown","drawdown_pct":52,"limit_pct":50}``.
Params are numbers, text, or other reasons nested as objects (a refusal around the decision it
refused, a typed error's code and params). A `Decimal` is stored as its plain digits in a JSON
string (JSON numbers would come back as floats) and read back as a `Decimal`. Text that does not
parse as such an object is free text (rows from earlier versions, the LLM's own words, the
remote Automaton's) and is shown as it is.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any, NamedTuple

from engine.errors import CodedError

_CODE = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+")
_DIGITS = re.compile(r"-?\d+(?:\.\d+)?")


class Reason(NamedTuple):
    """A decoded reason: its code and params (nested reasons are `Reason`s too)."""

    code: str
    params: dict[str, Any]


def reason(code: str, /, **params: Any) -> str:
    """The stored form of reason `code` with `params`.

    A param may be a number, text, a `Decimal`, a `Reason`, a `CodedError` (stored as its code
    and params) or an already encoded reason (nested rather than quoted).
    """
    if not _CODE.fullmatch(code):
        raise ValueError(f"not a reason code: {code!r}")
    return json.dumps(_object(code, params), ensure_ascii=False, separators=(",", ":"))


def parse_reason(text: str | None) -> Reason | None:
    """`(code, params)` of a stored reason, or None when `text` is free text (shown as it is)."""
    if not text or not text.startswith("{"):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return _decode(data)


def clip_reason(text: str, limit: int) -> str:
    """`text` made safe to store: free text on one line and at most `limit` characters; an
    encoded reason kept whole (cutting it would break it) with each text param clipped so."""
    parsed = parse_reason(text)
    if parsed is None:
        return _clip(text, limit)
    return reason(parsed.code, **_clip_params(parsed.params, limit))


def _clip(text: str, limit: int) -> str:
    return " ".join(str(text).split())[:limit]


def _clip_params(params: dict[str, Any], limit: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, Reason):
            value = Reason(value.code, _clip_params(value.params, limit))
        elif isinstance(value, str):
            value = _clip(value, limit)
        out[key] = value
    return out


def _object(code: str, params: dict[str, Any]) -> dict[str, Any]:
    if "code" in params:
        raise ValueError("a reason param cannot be named 'code'")
    return {"code": code, **{key: _value(value) for key, value in params.items()}}


def _value(value: Any) -> Any:
    if isinstance(value, Reason):
        return _object(value.code, value.params)
    if isinstance(value, CodedError):
        return _object(value.code, value.params)
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")  # the value, not how it was quantised
    if isinstance(value, str):
        nested = parse_reason(value)
        return value if nested is None else _object(nested.code, nested.params)
    if value is None or isinstance(value, bool | int | float):
        return value
    return str(value)


def _decode(data: Any) -> Reason | None:
    if not isinstance(data, dict) or not isinstance(data.get("code"), str) or not _CODE.fullmatch(data["code"]):
        return None
    params: dict[str, Any] = {}
    for key, value in data.items():
        if key == "code":
            continue
        if isinstance(value, dict):
            value = _decode(value)
            if value is None:
                return None
        elif isinstance(value, str) and _DIGITS.fullmatch(value) and format(Decimal(value), "f") == value:
            value = Decimal(value)
        elif isinstance(value, list):
            return None
        params[key] = value
    return Reason(data["code"], params)


__all__ = ["Reason", "clip_reason", "parse_reason", "reason"]
