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
FALLBACK = "That did not work. Please check the input and try again."


def describe(error: CodedError) -> str:
    """The user-facing sentence for `error` (plain text; the caller escapes it for HTML)."""
    template = CATALOG.get(error.code)
    if template is None:
        log.error("no text for error code %s", error.code)
        return FALLBACK
    try:
        return template.format(**error.params)
    except (KeyError, IndexError, ValueError) as exc:
        log.error("text for %s does not fit its params %s: %s", error.code, error.params, exc)
        return FALLBACK
