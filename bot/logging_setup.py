"""Logging to stdout, text or JSON (Railway), with secrets redacted from everything written.

Redaction is applied to the formatted output, not to the record's message alone: a traceback
(`exc_info`) or a stack (`stack_info`) can carry a secret too — PTB's `InvalidToken` quotes the
rejected bot token in its text.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from typing import IO

MIN_SECRET_LEN = 6  # shorter strings would blank out ordinary words, not protect anything
MASK = "***"
# A Telegram bot token is `<bot id>:<secret>`; the id is public, the part after ':' is the secret,
# and it shows up alone when ':' is percent-encoded in a logged URL (`123%3AABC...`).
_TELEGRAM_TOKEN = re.compile(r"\d+:(?P<secret>[A-Za-z0-9_-]+)")
# Characters that str.splitlines() and some log collectors treat as line breaks, which json.dumps
# (ensure_ascii=False) leaves raw: escaped so one record stays one line.
_LINE_BREAKS = {0x85: "\\u0085", 0x2028: "\\u2028", 0x2029: "\\u2029"}
NOISY_LOGGERS = ("httpx", "httpcore", "apscheduler", "telegram.ext.Updater", "LiteLLM")


class Redactor:
    """Replaces every configured secret (and a Telegram token's secret part) in a text with '***'."""

    def __init__(self, secrets: Iterable[str]) -> None:
        found: set[str] = set()
        for secret in secrets:
            if not secret or len(secret) < MIN_SECRET_LEN:
                continue
            found.add(secret)
            token = _TELEGRAM_TOKEN.fullmatch(secret)
            if token and len(token.group("secret")) >= MIN_SECRET_LEN:
                found.add(token.group("secret"))
        # Longest first: a whole token is masked as one, not as '<id>:***'.
        self.secrets = sorted(found, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        """`text` with every secret masked."""
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text


class RedactingFormatter(logging.Formatter):
    """The standard text format; the whole output (message, traceback, stack) is redacted."""

    def __init__(self, redact: Redactor, fmt: str | None = None) -> None:
        super().__init__(fmt)
        self._redact = redact

    def format(self, record: logging.LogRecord) -> str:
        return self._redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and `exc`/`stack` when present,
    each redacted."""

    def __init__(self, redact: Redactor | None = None) -> None:
        super().__init__()
        self._redact = redact or Redactor(())

    def format(self, record: logging.LogRecord) -> str:
        data = {"time": self.formatTime(record), "level": record.levelname, "logger": record.name,
                "message": record.getMessage()}
        if record.exc_info:
            # Not cached in record.exc_text: that cache is the unredacted text other handlers reuse.
            data["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            data["exc"] = record.exc_text
        if record.stack_info:
            data["stack"] = self.formatStack(record.stack_info)
        data = {key: self._redact(value) for key, value in data.items()}
        return json.dumps(data, ensure_ascii=False).translate(_LINE_BREAKS)


def configure_logging(level: str, fmt: str, secrets: Iterable[str], *, stream: IO[str] | None = None) -> None:
    """Root logging: one handler on `stream` (stdout by default), text or `fmt == "json"`, every
    secret in `secrets` redacted; noisy HTTP loggers (which print URLs with tokens) quieted."""
    redact = Redactor(secrets)
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter(redact) if fmt == "json" else
                         RedactingFormatter(redact, "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # PTB logs a traceback at ERROR for every non-JSON answer (a proxy's 502 page) before raising
    # the NetworkError that the poller and the sender report themselves, one line per retry.
    logging.getLogger("telegram.request.BaseRequest").setLevel(logging.CRITICAL)
