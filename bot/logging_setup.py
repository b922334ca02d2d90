"""Logging to stdout, text or JSON (Railway), with secrets redacted from every record."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable


class RedactingFilter(logging.Filter):
    """Replaces any configured secret that appears in a log message with '***'."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if s and len(s) >= 6]

    def filter(self, record: logging.LogRecord) -> bool:
        if self._secrets:
            msg = record.getMessage()
            if any(s in msg for s in self._secrets):
                for s in self._secrets:
                    msg = msg.replace(s, "***")
                record.msg, record.args = msg, ()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {"time": self.formatTime(record), "level": record.levelname, "logger": record.name,
                "message": record.getMessage()}
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


def configure_logging(level: str, fmt: str, secrets: Iterable[str], *, stream: object = None) -> None:
    """Root logging: one stdout handler; noisy HTTP loggers (which print URLs with tokens) quieted."""
    handler = logging.StreamHandler(stream or sys.stdout)  # type: ignore[arg-type]
    handler.setFormatter(JsonFormatter() if fmt == "json" else
                         logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "apscheduler", "telegram.ext.Updater", "LiteLLM"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
