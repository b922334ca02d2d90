"""Value conventions of the stored rows: times as ISO-8601 UTC text, strict JSON, row ids."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

_MAX_ID = 2**63 - 1


def to_iso(ts: float) -> str:
    """Unix seconds -> '2024-05-01T12:00:00.000Z' (millisecond precision, like SQLite's default)."""
    moment = datetime.fromtimestamp(float(ts), tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def from_iso(text: str) -> float:
    """Inverse of `to_iso`; also accepts SQLite's 'YYYY-MM-DD HH:MM:SS' and a missing 'Z'."""
    value = text.strip().replace(" ", "T")
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def json_safe(value: Any) -> Any:
    """A copy of `value` that `json.dumps(allow_nan=False)` accepts: NaN/inf become None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return json_safe(value.item())
    return value


def dumps(value: Any) -> str:
    """Compact, strict JSON (no NaN) for the *_json columns."""
    return json.dumps(json_safe(value), separators=(",", ":"), allow_nan=False, ensure_ascii=False)


def valid_id(value: object) -> int | None:
    """`value` as a positive row id if it is one (an int, or a string of ASCII digits), else None.

    Ids often come from untrusted input (a modified client can send anything): bools, floats,
    signs, spaces, non-ASCII digits and out-of-range numbers are all refused.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        if not (0 < len(value) <= 19 and value.isascii() and value.isdigit()):
            return None
        value = int(value)
    if isinstance(value, int) and 0 < value <= _MAX_ID:
        return value
    return None
