"""Stored reasons as codes with params: why an agent changed status, why a child was (not) spawned.

The ledger and the autonomy workers store a reason beside what they did (an agent's
`status_reason` and `spawn_reason`, a spawn decision's `reason`), and the bot shows it later,
maybe long after, in the user's words. So what is stored is not a sentence but a code with its
figures, and only `bot/` words it (`bot.messages.reasons`, rendered by `bot.render.reason_text`).

This module is the one place that writes and reads that format. A reason is one TEXT value: a
compact JSON object, ``{"code":"status.risk_drawdown","drawdown_pct":52,"limit_pct":50}``.
Params are numbers, text, or other reasons nested as objects (a refusal around the decision it
refused, a typed error's code and params), always nested explicitly (a `Reason` or a
`CodedError`), never guessed from a string. A `Decimal` is stored tagged, ``{"dec":"12.5"}``
(JSON numbers would come back as floats), and read back as a `Decimal`. Text that does not parse
as such an object is free text (rows from earlier versions) and is shown as it is; text from
outside (the LLM's own words, the remote Automaton's) goes through `free_text`, so a sentence
that happens to look like an encoded reason is never read as one.
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal
from typing import Any, NamedTuple

from engine.errors import CodedError

_CODE = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+")
_DEC = "dec"  # the tag of a stored Decimal
FREE = "text.free"  # the code of text from outside, stored as a param


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
    return json.dumps(_object(code, params), ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def free_text(text: str, limit: int = 300) -> str:
    """Text from outside (an LLM's reason, the remote Automaton's) in the stored form: as it is
    when it cannot be mistaken for an encoded reason, else wrapped in the `FREE` code."""
    clipped = clip_text(text, limit)
    return reason(FREE, text=clipped) if clipped.startswith("{") else clipped


def nested(text: str) -> Reason | str:
    """A stored reason as a param of another: the decoded reason, or the free text itself."""
    return parse_reason(text) or text


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
        return clip_text(text, limit)
    return reason(parsed.code, **_clip_params(parsed.params, limit))


def clip_text(text: str, limit: int) -> str:
    """Plain text made safe to store: on one line (whitespace collapsed), at most `limit` characters."""
    return " ".join(str(text).split())[:limit]


def _clip_params(params: dict[str, Any], limit: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, Reason):
            value = Reason(value.code, _clip_params(value.params, limit))
        elif isinstance(value, str):
            value = clip_text(value, limit)
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
        return {_DEC: format(value.normalize(), "f")}  # the value, not how it was quantised
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, str | bool | int | float):
        return value
    return str(value)


def _decode(data: Any) -> Reason | None:
    if not isinstance(data, dict) or not isinstance(data.get("code"), str) or not _CODE.fullmatch(data["code"]):
        return None
    params: dict[str, Any] = {}
    for key, value in data.items():
        if key == "code":
            continue
        if isinstance(value, dict) and set(value) == {_DEC} and isinstance(value[_DEC], str):
            try:
                value = Decimal(value[_DEC])
            except ArithmeticError:
                return None
        elif isinstance(value, dict):
            value = _decode(value)
            if value is None:
                return None
        elif isinstance(value, list):
            return None
        params[key] = value
    return Reason(data["code"], params)


__all__ = ["FREE", "Reason", "clip_reason", "clip_text", "free_text", "nested", "parse_reason", "reason"]
