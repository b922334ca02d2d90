"""Secrets never reach the log output: not in the message, a traceback or a stack, in the text
format or in JSON (one object per line), and a Telegram token's secret part alone is masked too."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from telegram.error import InvalidToken

from bot.logging_setup import NOISY_LOGGERS, Redactor, configure_logging

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
TOKEN_SECRET = TOKEN.split(":", 1)[1]
API_KEY = "sk-ant-api03-very-secret-key"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """configure_logging rewires the root logger; put back what pytest had."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    noisy = {name: logging.getLogger(name).level for name in NOISY_LOGGERS}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, lvl in noisy.items():
        logging.getLogger(name).setLevel(lvl)


def _log_with_traceback(fmt: str) -> str:
    out = io.StringIO()
    configure_logging("INFO", fmt, [TOKEN, API_KEY], stream=out)
    log = logging.getLogger("bot.test")
    try:
        raise InvalidToken(f"The token `{TOKEN}` was rejected by the server.")
    except InvalidToken:
        log.exception("start-up failed with key %s", API_KEY)
    try:
        raise RuntimeError(f"GET https://api.telegram.org/bot123456789%3A{TOKEN_SECRET}/getMe failed")
    except RuntimeError:
        log.error("request failed", exc_info=True, stack_info=True)
    log.warning("stack for %s", TOKEN, stack_info=True)
    return out.getvalue()


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_no_secret_in_message_traceback_or_stack(fmt: str, restore_logging: None) -> None:
    output = _log_with_traceback(fmt)
    for secret in (TOKEN, TOKEN_SECRET, API_KEY):
        assert secret not in output
    # the tracebacks are there, masked: the redaction did not just drop them
    assert "InvalidToken" in output and "RuntimeError" in output
    assert "The token `***` was rejected" in output
    assert "bot123456789%3A***/getMe" in output
    assert "start-up failed with key ***" in output
    if fmt == "text":
        assert "Traceback (most recent call last)" in output


def test_json_is_one_valid_object_per_line_with_the_traceback_in_exc(restore_logging: None) -> None:
    lines = _log_with_traceback("json").splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 3
    first, second, third = records
    assert first["level"] == "ERROR" and first["logger"] == "bot.test"
    assert first["message"] == "start-up failed with key ***"
    assert first["exc"].startswith("Traceback (most recent call last)")
    assert "telegram.error.InvalidToken: The token `***` was rejected" in first["exc"]
    assert "RuntimeError" in second["exc"] and "stack" in second
    assert "exc" not in third and "Stack (most recent call last)" in third["stack"]


def test_json_keeps_unicode_line_separators_on_one_line(restore_logging: None) -> None:
    out = io.StringIO()
    configure_logging("INFO", "json", [], stream=out)
    logging.getLogger("bot.test").info("name: Алиса\u2028second\u2029third\x85fourth\nfifth")
    (line,) = out.getvalue().splitlines()
    assert json.loads(line)["message"] == "name: Алиса\u2028second\u2029third\x85fourth\nfifth"


def test_short_strings_are_not_secrets(restore_logging: None) -> None:
    out = io.StringIO()
    configure_logging("INFO", "text", ["", "abc", "12345", "123456"], stream=out)
    logging.getLogger("bot.test").info("abc 12345 123456")
    assert out.getvalue().rstrip().endswith("bot.test: abc 12345 ***")  # only the 6-character one
    # a token whose secret part is short: the whole token is masked, the part alone is not
    assert Redactor(["12345:abcde"])("12345:abcde abcde") == "*** abcde"


def test_the_whole_token_is_masked_as_one() -> None:
    redact = Redactor([TOKEN])
    assert redact(f"token={TOKEN} secret={TOKEN_SECRET} id=123456789") == "token=*** secret=*** id=123456789"
    assert Redactor(["not-a-token:but-long"])("x not-a-token:but-long but-long") == "x *** but-long"


def test_noisy_loggers_are_quieted_and_the_level_applies(restore_logging: None) -> None:
    out = io.StringIO()
    configure_logging("DEBUG", "text", [TOKEN], stream=out)
    for name in NOISY_LOGGERS:
        assert logging.getLogger(name).getEffectiveLevel() == logging.WARNING
    logging.getLogger("httpx").info(f"HTTP Request: POST https://api.telegram.org/bot{TOKEN}/getUpdates")
    logging.getLogger("bot.test").debug("debug line")
    assert out.getvalue().count("\n") == 1 and "debug line" in out.getvalue()
    assert logging.getLogger().level == logging.DEBUG
