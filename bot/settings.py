"""Configuration (SPEC §2): one pydantic-settings model read from the environment and `.env`.

Built once in `main.py`; lower layers receive plain values or small config objects.
"""

from __future__ import annotations

import os
from decimal import Decimal
from typing import Annotated, Literal
from urllib.parse import urlparse

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from agents.ledger.rules import MoneyRules
from storage.dialect import is_postgres_url

DEFAULT_LLM_MODEL = "claude-sonnet-4-5"


def _http_url(value: str, name: str) -> str:
    value = value.strip()
    if not value:
        return value
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(f"{name} must be an http(s) URL")
    return value.rstrip("/")


class Settings(BaseSettings):
    """Every setting has a safe default except TELEGRAM_BOT_TOKEN (needed for Telegram only)."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore",
                                      case_sensitive=False, populate_by_name=True)

    telegram_bot_token: SecretStr = SecretStr("")
    telegram_base_url: str = "https://api.telegram.org/bot"
    database_url: str = "sqlite:///./data/bot.db"
    admin_user_ids: Annotated[frozenset[int], NoDecode] = frozenset()

    ave_api_key: SecretStr = SecretStr("")
    ave_api_plan: Literal["free", "normal", "pro"] = "free"
    ave_base_url: str = "https://data.ave-api.xyz"
    ave_wss_url: str = "wss://wss.ave-api.xyz"

    automaton_base_url: str = ""
    automaton_api_key: SecretStr = SecretStr("")

    anthropic_api_key: SecretStr = Field(
        default=SecretStr(""), validation_alias=AliasChoices("ANTHROPIC_API_KEY", "MINIMAX_API_KEY",
                                                             "anthropic_api_key"))
    anthropic_base_url: str = ""
    llm_model: str = Field(default=DEFAULT_LLM_MODEL,
                           validation_alias=AliasChoices("LLM_MODEL", "MINIMAX_MODEL", "llm_model"))
    llm_daily_limit: int = Field(default=30, ge=0, le=10_000)
    llm_timeout_seconds: float = Field(default=90.0, gt=0, le=600)

    # Webhook mode (bot.delivery.web): Telegram posts updates to WEBHOOK_URL; PORT is where this
    # process listens (Railway sets it) and also serves /healthz in polling mode.
    webhook_url: str = ""
    port: int | None = Field(default=None, ge=0, le=65_535)
    webhook_max_connections: int = Field(default=40, ge=1, le=100)

    agent_tick_seconds: float = Field(default=60.0, gt=0, le=86_400)
    # Delivery (bot.delivery): flood limits per user, notification lifetimes, Bot API rates.
    user_burst: int = Field(default=20, ge=1, le=10_000)
    user_updates_per_minute: float = Field(default=40.0, gt=0, le=100_000)
    notify_ttl_minutes: float = Field(default=24 * 60, gt=0, le=7 * 24 * 60)
    signal_ttl_minutes: float = Field(default=30, gt=0, le=7 * 24 * 60)
    send_rate_per_second: float = Field(default=30.0, gt=0, le=1000)
    shutdown_drain_seconds: float = Field(default=60.0, ge=0, le=600)
    token_rejected_grace_seconds: float = Field(default=30.0, ge=0, le=3600)
    backtest_workers: int = Field(default_factory=lambda: max(1, os.cpu_count() or 1), ge=1, le=64)
    backtest_timeout_seconds: float = Field(default=120.0, gt=0, le=3600)
    backtest_queue_size: int = Field(default=16, ge=1, le=1000)
    simulate_max_hours: float = Field(default=24.0, gt=0, le=24 * 30)

    min_deposit: Decimal = Field(default=Decimal(10), gt=0, decimal_places=6)
    max_deposit: Decimal = Field(default=Decimal(1_000_000), gt=0, decimal_places=6)
    spawn_min_earnings: Decimal = Field(default=Decimal(10), ge=0, decimal_places=6)
    spawn_reserve: Decimal = Field(default=Decimal(10), ge=0, decimal_places=6)
    min_child_balance: Decimal = Field(default=Decimal(10), gt=0, decimal_places=6)
    max_children: int = Field(default=3, ge=0, le=50)
    min_agent_balance: Decimal = Field(default=Decimal(1), ge=0, decimal_places=6)
    max_agent_drawdown: float = Field(default=0.5, gt=0, lt=1)

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["text", "json"] = "text"

    @field_validator("admin_user_ids", mode="before")
    @classmethod
    def _admins(cls, value: object) -> object:
        if isinstance(value, str):
            parts = [p.strip() for p in value.replace(";", ",").split(",") if p.strip()]
            try:
                return frozenset(int(p) for p in parts)
            except ValueError:
                raise ValueError("must be comma-separated Telegram user ids, like 123,456") from None
        if isinstance(value, int):
            return frozenset({value})
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("ave_api_plan", "log_format", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("telegram_base_url")
    @classmethod
    def _tg_url(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        return _http_url(v, "TELEGRAM_BASE_URL")

    @field_validator("ave_base_url")
    @classmethod
    def _ave_url(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        return _http_url(v, "AVE_BASE_URL")

    @field_validator("ave_wss_url")
    @classmethod
    def _wss_url(cls, v: str) -> str:
        v = v.strip()
        if not v.startswith(("ws://", "wss://")) or len(v) <= len("wss://"):
            raise ValueError("must be a ws:// or wss:// URL")
        return v

    @field_validator("automaton_base_url", "anthropic_base_url")
    @classmethod
    def _opt_url(cls, v: str) -> str:
        return _http_url(v, "URL")

    @field_validator("webhook_url")
    @classmethod
    def _webhook(cls, v: str) -> str:
        v = v.strip()
        if not v:
            return v
        parsed = urlparse(v)
        loopback = parsed.scheme == "http" and parsed.hostname in ("127.0.0.1", "localhost")
        if not parsed.hostname or not (parsed.scheme == "https" or loopback):
            raise ValueError("must be the public https:// URL Telegram posts updates to")
        return v

    @field_validator("database_url")
    @classmethod
    def _db_url(cls, v: str) -> str:
        v = v.strip()
        if "://" in v and not (v.lower().startswith("sqlite:") or is_postgres_url(v)):
            raise ValueError("must be a sqlite:///… or postgresql://… URL")
        return v

    @model_validator(mode="after")
    def _ranges(self) -> Settings:
        if self.max_deposit < self.min_deposit:
            raise ValueError("MAX_DEPOSIT must be at least MIN_DEPOSIT")
        return self

    # -- derived ---------------------------------------------------------------------------
    @property
    def webhook_path(self) -> str:
        """The path the webhook is served on: WEBHOOK_URL's (a proxy forwards it unchanged)."""
        return urlparse(self.webhook_url).path or "/"

    @property
    def listen_port(self) -> int | None:
        """PORT; in webhook mode 8080 when unset; None: no HTTP server (polling, no PORT)."""
        return self.port if self.port is not None else (8080 if self.webhook_url else None)

    @property
    def demo_market(self) -> bool:
        return not self.ave_api_key.get_secret_value()

    @property
    def llm_enabled(self) -> bool:
        return bool(self.anthropic_api_key.get_secret_value())

    @property
    def automaton_enabled(self) -> bool:
        return bool(self.automaton_base_url)

    def money_rules(self) -> MoneyRules:
        return MoneyRules(
            min_deposit=self.min_deposit, max_deposit=self.max_deposit,
            spawn_min_earnings=self.spawn_min_earnings, spawn_reserve=self.spawn_reserve,
            min_child_balance=self.min_child_balance, max_children=self.max_children,
            min_agent_balance=self.min_agent_balance, max_agent_drawdown=self.max_agent_drawdown,
        )


class SettingsError(Exception):
    """A bad configuration value; `str()` is one line naming the variable."""


def load_settings(**overrides: object) -> Settings:
    """Build Settings, turning validation errors into one clear line per variable.

    Secrets are never echoed (pydantic's input value is left out of the message).
    """
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = first.get("loc") or ()
        msg = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
        more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
        # Cross-field checks have no location; their message already names the variables.
        where = f"{str(loc[0]).upper()}: " if loc else ""
        raise SettingsError(f"Invalid configuration: {where}{msg}{more}") from None
