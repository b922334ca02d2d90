"""End to end (issue 12): `python main.py` against the Bot API fake through kill -9, a token Telegram
rejects and an unreachable Bot API."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage import open_database
from tests.e2e_driver import ROOT, BotProcess
from tests.fakes.telegram_api import TelegramFake
from tests.invariants import check_invariants

pytestmark = pytest.mark.e2e
USERS = list(range(801, 811))


@pytest.fixture
def tg() -> Iterator[TelegramFake]:
    with TelegramFake() as fake:
        yield fake


def _env(tg: TelegramFake, tmp_path: Path, database_url: str | None = None, **extra: str) -> dict[str, str]:
    env = {"TELEGRAM_BOT_TOKEN": tg.token, "TELEGRAM_BASE_URL": f"{tg.base_url}/bot",
           "DATABASE_URL": database_url or f"sqlite:///{tmp_path / 'bot.db'}", "AGENT_TICK_SECONDS": "3600",
           "BACKTEST_WORKERS": "1", "LOG_LEVEL": "INFO", "USER_BURST": "1000"}
    env.update(extra)
    return env


async def _totals(database_url: str) -> tuple[int, int, int]:
    """(deposits booked, the sum of all balances, updates still pending), on either backend."""
    db = await open_database(database_url)
    try:
        deposits = await db.fetchval("SELECT COUNT(*) FROM ledger_entries WHERE kind = 'deposit'")
        total = await db.fetchval("SELECT SUM(isolated_balance) FROM automaton_agents")
        pending = await db.fetchval("SELECT COUNT(*) FROM inbox_updates WHERE state = 'pending'")
        await check_invariants(db)
    finally:
        await db.close()
    return int(deposits), int(total), int(pending)


def _answered(tg: TelegramFake, user_id: int) -> int:
    return sum(1 for m in tg.messages(user_id) if m.from_bot and "Deposited" in (m.content or ""))


@pytest.mark.both_backends  # the inbox, the outbox and the money effects on SQLite and on PostgreSQL
async def test_kill_9_mid_burst_then_restart_answers_everything_once_in_effect(tg: TelegramFake, tmp_path: Path,
                                                                               db_url: str) -> None:
    bot = BotProcess(_env(tg, tmp_path, db_url), tmp_path / "bot.log").start()
    try:
        await tg.wait_for_async(lambda: tg.my_commands() or None, timeout=60)
        for uid in USERS:
            tg.user_sends(uid, "/automaton 100")
        await tg.wait_for_async(lambda: all(tg.messages(u) and any(m.from_bot for m in tg.messages(u))
                                            for u in USERS) or None, timeout=60)
        for _ in range(3):
            for uid in USERS:
                tg.user_sends(uid, "/deposit 10")
        # kill -9 while the burst is being processed
        await tg.wait_for_async(lambda: sum(_answered(tg, u) for u in USERS) >= 3 or None, timeout=60)
        assert bot.proc is not None
        bot.proc.send_signal(signal.SIGKILL)
        bot.proc.wait(10)
        bot = BotProcess(_env(tg, tmp_path, db_url), tmp_path / "bot.log").start()
        await tg.wait_for_async(lambda: all(_answered(tg, u) >= 3 for u in USERS) or None, timeout=90)
        await asyncio.sleep(1.0)
        # every deposit booked exactly once (30 + 10 initial), every one answered at least once
        deposits, total, pending = await _totals(db_url)
        assert deposits == 40, bot.log()[-3000:]
        assert total == len(USERS) * 130 * 10**6 and pending == 0
    finally:
        assert bot.stop() == 0, bot.log()[-3000:]
    assert "Traceback" not in bot.log() and tg.token not in bot.log()


async def test_a_token_telegram_keeps_rejecting_ends_the_process_non_zero(tg: TelegramFake, tmp_path: Path) -> None:
    bad = "123456789:WRONG-secret-token-value"
    bot = BotProcess(_env(tg, tmp_path, TELEGRAM_BOT_TOKEN=bad, TOKEN_REJECTED_GRACE_SECONDS="3"),
                     tmp_path / "bot.log").start()
    assert bot.proc is not None
    code = await asyncio.to_thread(bot.proc.wait, 60)
    log = bot.log()
    assert code == 3, log
    assert "rejected the bot token" in log and "TELEGRAM_BOT_TOKEN" in log
    assert "WRONG-secret" not in log and "Traceback" not in log and "Unclosed" not in log


async def test_an_unreachable_bot_api_is_retried_visibly_and_stops_cleanly(tmp_path: Path) -> None:
    fake = TelegramFake().start()
    url = f"{fake.base_url}/bot"
    token = fake.token
    fake.stop()  # nothing listens on that port any more
    env = {"TELEGRAM_BOT_TOKEN": token, "TELEGRAM_BASE_URL": url, "DATABASE_URL": f"sqlite:///{tmp_path / 'b.db'}",
           "AGENT_TICK_SECONDS": "3600", "BACKTEST_WORKERS": "1", "LOG_LEVEL": "INFO"}
    bot = BotProcess(env, tmp_path / "bot.log").start()
    try:
        for _ in range(100):
            if "unreachable" in bot.log():
                break
            await asyncio.sleep(0.2)
        assert bot.alive()
    finally:
        code = bot.stop()
    log = bot.log()
    assert code == 0 and "unreachable" in log and "retrying in" in log
    assert token.split(":")[1] not in log and "Traceback" not in log and "Unclosed" not in log


async def test_a_database_with_an_edited_migration_stops_with_one_clear_line(tmp_path: Path) -> None:
    db = tmp_path / "b.db"
    with sqlite3.connect(db) as conn:  # as if migration 001 had been applied with other contents
        conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                     " checksum TEXT NOT NULL, applied_at TEXT)")
        conn.execute("INSERT INTO schema_migrations(version, name, checksum) VALUES (1, '001_init', 'bogus')")
    done = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "main.py"), "--console", cwd=tmp_path, env={**_clean_env(),
                                                                             "DATABASE_URL": f"sqlite:///{db}"},
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(done.communicate(), 60)
    text = (out + err).decode()
    assert done.returncode == 2, text
    assert "database problem: migration 001 was edited after being applied" in text and "Traceback" not in text


def _clean_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "DATABASE_", "LOG_"))}
