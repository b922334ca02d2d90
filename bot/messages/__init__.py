"""Words for the lower layers' typed errors: one template per error code.

`agents/` and `engine/` raise `CodedError(code, **params)`; this package is the only place that
turns a code into a sentence (one module per area, merged here), so the wording can be
translated and is written once. Templates are `str.format` strings over the error's params.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from bot.messages import design, engine, ledger
from engine.errors import CodedError

log = logging.getLogger(__name__)

CATALOG: Mapping[str, str] = {**ledger.TEXTS, **design.TEXTS, **engine.TEXTS}
# Params whose value is itself a code (e.g. which amount a refusal is about), by param name.
PARAM_WORDS: Mapping[str, Mapping[str, str]] = {**ledger.PARAM_WORDS}
FALLBACK = "That did not work. Please check the input and try again."


def describe(error: CodedError) -> str:
    """The user-facing sentence for `error` (plain text; the caller escapes it for HTML)."""
    template = CATALOG.get(error.code)
    if template is None:
        log.error("no text for error code %s", error.code)
        return FALLBACK
    # a param that is itself a refusal (the cause of a wrapping one) is worded first
    params = {k: PARAM_WORDS.get(k, {}).get(v, v) if isinstance(v, str) else describe(v) if isinstance(v, CodedError)
              else v for k, v in error.params.items()}
    try:
        return template.format(**params)
    except (KeyError, IndexError, ValueError) as exc:
        log.error("text for %s does not fit its params %s: %s", error.code, error.params, exc)
        return FALLBACK
