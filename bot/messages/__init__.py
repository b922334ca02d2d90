"""Words for the lower layers' typed errors: one template per error code.

`agents/` and `engine/` raise `CodedError(code, **params)`; this package is the only place that
turns a code into a sentence (one module per area, merged here), so the wording can be
translated and is written once. Templates are `str.format` strings over the error's params, marked
with `N_` for the catalogs and translated (`bot.i18n.t`) when worded.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from bot.i18n import FORMATTER, N_, t
from bot.messages import design, engine, ledger, reasons
from engine.errors import CodedError

log = logging.getLogger(__name__)

CATALOG: Mapping[str, str] = {**ledger.TEXTS, **design.TEXTS, **engine.TEXTS, **reasons.TEXTS}
# Params whose value is itself a code (e.g. which amount a refusal is about), by param name.
PARAM_WORDS: Mapping[str, Mapping[str, str]] = {**ledger.PARAM_WORDS, **reasons.PARAM_WORDS}
FALLBACK = N_("That did not work. Please check the input and try again.")


def describe(error: CodedError) -> str:
    """The user-facing sentence for `error` (plain text; the caller escapes it for HTML)."""
    return word(error.code, error.params)


def word(code: str, params: Mapping[str, Any]) -> str:
    """The template of `code` filled with `params`: the one place a code becomes words.

    A param that is itself coded (a refusal's cause, a design note) is worded first; a list of
    coded things is joined with "; ", a list of words with ", "; a param whose value is a code
    (which amount a refusal is about) takes its word from `PARAM_WORDS`.
    """
    template = CATALOG.get(code)
    if template is None:
        log.error("no text for code %s", code)
        return t(FALLBACK)
    try:
        return FORMATTER.format(t(template), **{k: _param(k, v) for k, v in params.items()})
    except (KeyError, IndexError, ValueError, TypeError) as exc:  # never break a screen
        log.error("text for %s does not fit its params %s: %s", code, params, exc)
        return t(FALLBACK)


def _coded(value: Any) -> bool:
    return isinstance(value, CodedError) or (hasattr(value, "code") and hasattr(value, "params"))


def _param(name: str, value: Any) -> Any:
    if isinstance(value, str):
        named = PARAM_WORDS.get(name, {}).get(value)
        return value if named is None else t(named)
    if _coded(value):
        return word(value.code, value.params)
    if isinstance(value, list | tuple):
        if value and all(_coded(v) for v in value):
            return "; ".join(word(v.code, v.params) for v in value)
        return ", ".join(str(v) for v in value)
    return value
