"""Words for the lower layers' typed errors: one template per error code.

`agents/` and `engine/` raise `CodedError(code, **params)`; this package is the only place that
turns a code into a sentence (one module per area, merged here), so the wording can be
translated and is written once. Templates are `str.format` strings over the error's params.
"""

from __future__ import annotations

import logging
import string
from collections.abc import Mapping
from typing import Any

from bot.messages import design, engine, ledger, reasons
from engine.errors import CodedError
from engine.numbers import format_price

log = logging.getLogger(__name__)

CATALOG: Mapping[str, str] = {**ledger.TEXTS, **design.TEXTS, **engine.TEXTS, **reasons.TEXTS}
# Params whose value is itself a code (e.g. which amount a refusal is about), by param name.
PARAM_WORDS: Mapping[str, Mapping[str, str]] = {**ledger.PARAM_WORDS, **reasons.PARAM_WORDS}
FALLBACK = "That did not work. Please check the input and try again."


def describe(error: CodedError) -> str:
    """The user-facing sentence for `error` (plain text; the caller escapes it for HTML)."""
    return word(error.code, error.params)


class _Formatter(string.Formatter):
    """`str.format` plus the spec `price` (`{value:price}`): the one price rule, `engine.numbers`."""

    def format_field(self, value: Any, format_spec: str) -> str:
        if format_spec == "price" and isinstance(value, int | float):
            return format_price(value)
        return super().format_field(value, format_spec)


_FORMATTER = _Formatter()


def word(code: str, params: Mapping[str, Any]) -> str:
    """The template of `code` filled with `params`: the one place a code becomes words.

    A param that is itself coded (a refusal's cause, a design note) is worded first; a list of
    coded things is joined with "; ", a list of words with ", "; a param whose value is a code
    (which amount a refusal is about) takes its word from `PARAM_WORDS`.
    """
    template = CATALOG.get(code)
    if template is None:
        log.error("no text for code %s", code)
        return FALLBACK
    try:
        return _FORMATTER.format(template, **{k: _param(k, v) for k, v in params.items()})
    except (KeyError, IndexError, ValueError, TypeError) as exc:  # never break a screen
        log.error("text for %s does not fit its params %s: %s", code, params, exc)
        return FALLBACK


def _coded(value: Any) -> bool:
    return isinstance(value, CodedError) or (hasattr(value, "code") and hasattr(value, "params"))


def _param(name: str, value: Any) -> Any:
    if isinstance(value, str):
        return PARAM_WORDS.get(name, {}).get(value, value)
    if _coded(value):
        return word(value.code, value.params)
    if isinstance(value, list | tuple):
        if value and all(_coded(v) for v in value):
            return "; ".join(word(v.code, v.params) for v in value)
        return ", ".join(str(v) for v in value)
    return value
