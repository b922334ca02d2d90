"""LLM connection settings and error classification shared by the crew and the spawn policy.

Both the `anthropic` SDK and CrewAI's Anthropic provider take a *base URL without the API
path*: the SDK appends `/v1/messages` itself (keeping any path prefix). So:

* Anthropic: leave `base_url` unset (SDK default `https://api.anthropic.com`);
* MiniMax's Anthropic-compatible endpoint: `https://api.minimax.io/anthropic`
  (requests go to `https://api.minimax.io/anthropic/v1/messages`).

`normalise_base_url` strips an accidental trailing `/v1` or `/v1/messages` so either form of
`ANTHROPIC_BASE_URL` works.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

LlmErrorKind = Literal["rate_limited", "overloaded", "auth", "timeout", "connection", "bad_request", "server"]

_API_SUFFIX = re.compile(r"(?:/v1(?:/messages)?)?/*$")


@dataclass(frozen=True)
class LlmSettings:
    """How to reach an Anthropic-Messages-format LLM. The key is kept out of `repr`."""

    api_key: str = field(repr=False)
    base_url: str | None
    model: str
    max_retries: int = 1

    def __post_init__(self) -> None:
        if not self.api_key or not self.api_key.strip():
            raise ValueError("LlmSettings.api_key is empty")
        if not self.model or not self.model.strip():
            raise ValueError("LlmSettings.model is empty")
        if self.max_retries < 0:
            raise ValueError("LlmSettings.max_retries must be >= 0")
        object.__setattr__(self, "base_url", normalise_base_url(self.base_url))

    @property
    def bare_model(self) -> str:
        """The model name without a provider prefix (`anthropic/claude-…` -> `claude-…`)."""
        return self.model.removeprefix("anthropic/")


def llm_settings_from(
    api_key: str | None, base_url: str | None, model: str, max_retries: int = 1
) -> LlmSettings | None:
    """`LlmSettings`, or `None` when no key is configured (the rule-based fallbacks are used)."""
    if not api_key or not api_key.strip():
        return None
    return LlmSettings(api_key=api_key.strip(), base_url=base_url, model=model, max_retries=max_retries)


def normalise_base_url(base_url: str | None) -> str | None:
    """Strip whitespace and an accidental `/v1` or `/v1/messages` suffix; `None`/empty -> `None`."""
    if base_url is None or not base_url.strip():
        return None
    url = base_url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("the LLM base URL must be an http(s) URL like https://api.minimax.io/anthropic")
    return _API_SUFFIX.sub("", url) or url


@dataclass(frozen=True)
class LlmFailure:
    """A classified LLM failure: `kind` says what went wrong (the bot words it as ``llm.<kind>``)."""

    kind: LlmErrorKind

    @property
    def code(self) -> str:
        """The message code of this failure, e.g. ``"llm.rate_limited"``."""
        return f"llm.{self.kind}"


def classify_llm_error(exc: BaseException) -> LlmFailure:
    """Map an `anthropic` SDK / CrewAI / asyncio exception to a kind (``server`` when unknown).

    Walks the cause/context chain because CrewAI re-raises provider errors wrapped."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        kind = _classify_one(current)
        if kind is not None:
            return LlmFailure(kind)
        current = current.__cause__ or current.__context__
    return LlmFailure("server")


def _classify_one(exc: BaseException) -> LlmErrorKind | None:
    # Imported lazily: the SDK is heavy and only needed once an LLM is configured.
    import anthropic

    if isinstance(exc, TimeoutError | anthropic.APITimeoutError):
        return "timeout"
    if isinstance(exc, anthropic.APIConnectionError):
        return "connection"
    if isinstance(exc, anthropic.APIStatusError):
        status = exc.status_code
        if status == 429:
            return "rate_limited"
        if status == 529 or (
            isinstance(exc, anthropic.InternalServerError) and "overloaded" in str(exc).lower()
        ):
            return "overloaded"
        if status in (401, 403):
            return "auth"
        if 400 <= status < 500:
            return "bad_request"
        return "server"
    return None


def redact(text: str, *secrets: str | None) -> str:
    """Replace every occurrence of each (non-trivial) secret with `[redacted]`."""
    for secret in secrets:
        if secret and len(secret) >= 6:
            text = text.replace(secret, "[redacted]")
    return text
