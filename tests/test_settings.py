"""Configuration (SPEC §2): defaults, one clear line per bad value, aliases, secrets kept out."""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import AliasChoices

from agents import MoneyRules
from bot.settings import DEFAULT_LLM_MODEL, Settings, SettingsError, load_settings

SECRET = "s3cr3t-value-never-shown"


def _env_names() -> set[str]:
    names: set[str] = set()
    for name, field in Settings.model_fields.items():
        names.add(name.upper())
        if isinstance(field.validation_alias, AliasChoices):
            names.update(str(c).upper() for c in field.validation_alias.choices)
    return names


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No setting leaks in from the machine running the tests."""
    wanted = _env_names()
    for key in list(os.environ):
        if key.upper() in wanted:
            monkeypatch.delenv(key)


def test_defaults() -> None:
    s = load_settings(_env_file=None)
    assert s.telegram_bot_token.get_secret_value() == ""
    assert s.telegram_base_url == "https://api.telegram.org/bot"
    assert s.database_url == "sqlite:///./data/bot.db"
    assert s.admin_user_ids == frozenset()
    assert s.ave_api_key.get_secret_value() == "" and s.ave_api_plan == "free"
    assert s.ave_base_url == "https://data.ave-api.xyz"
    assert s.automaton_base_url == "" and s.automaton_api_key.get_secret_value() == ""
    assert s.anthropic_api_key.get_secret_value() == "" and s.llm_model == DEFAULT_LLM_MODEL
    assert s.agent_tick_seconds == 60
    assert s.backtest_workers == max(1, os.cpu_count() or 1)
    assert s.log_level == "INFO" and s.log_format == "text"
    assert s.demo_market and not s.llm_enabled and not s.automaton_enabled
    assert s.money_rules() == MoneyRules()
    assert s.min_deposit == Decimal(10) and s.max_deposit == Decimal(1_000_000)


def test_values_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_TICK_SECONDS", "5")
    monkeypatch.setenv("AVE_API_PLAN", " Pro ")
    monkeypatch.setenv("AVE_API_KEY", SECRET)
    monkeypatch.setenv("ADMIN_USER_IDS", " 1, 2;3 ")
    monkeypatch.setenv("TELEGRAM_BASE_URL", "http://127.0.0.1:8081/bot/")
    monkeypatch.setenv("AUTOMATON_BASE_URL", "http://127.0.0.1:9000")
    monkeypatch.setenv("LOG_LEVEL", "debug")
    monkeypatch.setenv("LOG_FORMAT", "JSON")
    monkeypatch.setenv("MIN_DEPOSIT", "1")
    monkeypatch.setenv("MAX_CHILDREN", "5")
    s = load_settings(_env_file=None)
    assert s.agent_tick_seconds == 5 and s.ave_api_plan == "pro" and not s.demo_market
    assert s.admin_user_ids == frozenset({1, 2, 3})
    assert s.telegram_base_url == "http://127.0.0.1:8081/bot"
    assert s.automaton_enabled
    assert s.log_level == "DEBUG" and s.log_format == "json"
    rules = s.money_rules()
    assert rules.min_deposit == Decimal(1) and rules.max_children == 5


def test_single_admin_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADMIN_USER_IDS", "42")
    assert load_settings(_env_file=None).admin_user_ids == frozenset({42})


@pytest.mark.parametrize(("variable", "value"), [
    ("AGENT_TICK_SECONDS", "-5"),
    ("AGENT_TICK_SECONDS", "0"),
    ("AGENT_TICK_SECONDS", "soon"),
    ("AVE_API_PLAN", "gold"),
    ("TELEGRAM_BASE_URL", "not a url"),
    ("TELEGRAM_BASE_URL", ""),
    ("AVE_BASE_URL", "ftp://data.example"),
    ("AVE_WSS_URL", "https://wss.example"),
    ("AUTOMATON_BASE_URL", "http://"),
    ("ANTHROPIC_BASE_URL", "api.minimax.io/anthropic"),
    ("DATABASE_URL", "mysql://user:pw@host/db"),
    ("ADMIN_USER_IDS", "abc"),
    ("ADMIN_USER_IDS", "1,two"),
    ("BACKTEST_WORKERS", "0"),
    ("LOG_LEVEL", "loud"),
    ("LOG_FORMAT", "xml"),
    ("MIN_DEPOSIT", "-1"),
    ("MIN_DEPOSIT", "10.0000001"),  # money limits sit on the micro-USDC grid (storage.money.to_micro is exact)
    ("SPAWN_RESERVE", "0.1234567"),
    ("MAX_CHILDREN", "-1"),
])
def test_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    monkeypatch.setenv(variable, value)
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", SECRET)
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    with pytest.raises(SettingsError) as info:
        load_settings(_env_file=None)
    message = str(info.value)
    assert "\n" not in message
    assert variable in message
    assert SECRET not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_min_above_max_deposit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIN_DEPOSIT", "100")
    monkeypatch.setenv("MAX_DEPOSIT", "50")
    with pytest.raises(SettingsError) as info:
        load_settings(_env_file=None)
    assert "MAX_DEPOSIT" in str(info.value) and "\n" not in str(info.value)


def test_secret_in_a_bad_url_is_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOMATON_BASE_URL", f"ftp://user:{SECRET}@host")
    with pytest.raises(SettingsError) as info:
        load_settings(_env_file=None)
    assert SECRET not in str(info.value) and "AUTOMATON_BASE_URL" in str(info.value)


def test_minimax_aliases(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINIMAX_API_KEY", SECRET)
    monkeypatch.setenv("MINIMAX_MODEL", "MiniMax-M2")
    s = load_settings(_env_file=None)
    assert s.anthropic_api_key.get_secret_value() == SECRET and s.llm_model == "MiniMax-M2"
    assert s.llm_enabled


def test_primary_names_win_over_aliases(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINIMAX_API_KEY", "alias-key")
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    monkeypatch.setenv("MINIMAX_MODEL", "MiniMax-M2")
    monkeypatch.setenv("LLM_MODEL", "claude-x")
    s = load_settings(_env_file=None)
    assert s.anthropic_api_key.get_secret_value() == SECRET and s.llm_model == "claude-x"


def test_secrets_not_in_str_or_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TELEGRAM_BOT_TOKEN", "AVE_API_KEY", "AUTOMATON_API_KEY", "ANTHROPIC_API_KEY"):
        monkeypatch.setenv(name, SECRET)
    s = load_settings(_env_file=None)
    assert s.telegram_bot_token.get_secret_value() == SECRET
    for text in (str(s), repr(s), s.model_dump_json(), str(s.model_dump())):
        assert SECRET not in text


def test_overrides_and_env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = load_settings(_env_file=None, agent_tick_seconds=2, ave_api_plan="normal")
    assert s.agent_tick_seconds == 2 and s.ave_api_plan == "normal"
    env_file = tmp_path / "test.env"
    env_file.write_text("AGENT_TICK_SECONDS=7\nAVE_API_PLAN=pro\n")
    assert load_settings(_env_file=env_file).agent_tick_seconds == 7
    monkeypatch.setenv("AGENT_TICK_SECONDS", "9")      # the environment wins over the file
    assert load_settings(_env_file=env_file).agent_tick_seconds == 9


@pytest.mark.parametrize("url", ["sqlite:///./data/bot.db", "postgresql://bot:pw@db.internal:5432/bot",
                                 "postgres://bot:pw@db.internal:5432/bot", "postgresql://postgres:@/db?host=/run/pg"])
def test_database_urls_of_both_backends_are_accepted(url: str) -> None:
    assert load_settings(_env_file=None, telegram_bot_token="123:abc", database_url=url).database_url == url
