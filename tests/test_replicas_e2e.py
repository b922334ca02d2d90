"""Two replicas of `python main.py` in webhook mode behind a round-robin balancer, on one PostgreSQL
database, driven as Telegram users would; one replica is killed (SIGKILL) in the middle of the
burst. Every update is answered once in effect, every account is funded once, the ledger
invariants hold, and the survivor takes over the dead replica's work."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import httpx
import pytest

from storage import open_database
from tests import pg_server
from tests.e2e_driver import BotProcess, User
from tests.fakes.balancer import LoopbackBalancer
from tests.fakes.telegram_api import TelegramFake
from tests.invariants import check_invariants

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not pg_server.available(), reason="PostgreSQL tests are off")]
USERS = 16


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _healthy(port: int, timeout: float = 60.0) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(int(timeout / 0.2)):
            try:
                if (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError(f"replica on port {port} never became healthy")


async def test_two_replicas_one_killed_mid_burst_answer_everyone_once(tmp_path: Path) -> None:
    url = pg_server.fresh_database_url()
    ports = [free_port(), free_port()]
    with TelegramFake(per_chat_limit=10_000, global_limit=1_000_000) as tg, \
            LoopbackBalancer([f"http://127.0.0.1:{p}" for p in ports]) as balancer:
        hook = f"{balancer.base_url}/tg"
        replicas = []
        for i, port in enumerate(ports):
            env = {"TELEGRAM_BOT_TOKEN": tg.token, "TELEGRAM_BASE_URL": f"{tg.base_url}/bot", "DATABASE_URL": url,
                   "WEBHOOK_URL": hook, "PORT": str(port), "AGENT_TICK_SECONDS": "3600", "BACKTEST_WORKERS": "1",
                   "LOG_LEVEL": "INFO"}
            replicas.append(BotProcess(env, tmp_path / f"replica{i}.log").start())
        try:
            for port in ports:
                await _healthy(port)
            await tg.wait_for_async(lambda: tg.webhook_url == hook or None, timeout=30)
            users = [User(tg, 7_000 + i, f"U{i}") for i in range(USERS)]
            await asyncio.gather(*(u.say("/start", timeout=30) for u in users))
            delivered = len(tg.webhook_delivered())
            for user in users:  # everyone at once; the balancer spreads them over both replicas
                tg.user_sends(user.id, "/automaton 100", first_name=user.first_name)
            await tg.wait_for_async(lambda: len(tg.webhook_delivered()) >= delivered + 4 or None, timeout=30)
            replicas[0].proc.kill()  # SIGKILL while it holds stored, unfinished and unsent work
            await tg.wait_for_async(lambda: all(len(u.bot_messages()) >= 2 for u in users) or None, timeout=60)
            await asyncio.gather(*(u.say("/ai_portfolio", timeout=30) for u in users))
            assert replicas[1].alive()
            for user in users:  # one answer per update: nothing repeated by the takeover
                texts = [m.content for m in user.bot_messages()]
                assert len(texts) == 3 and "100.00 USDC" in texts[1], texts
        finally:
            logs = [r.log() for r in replicas]
            codes = [r.stop() for r in replicas[1:]]
        assert codes == [0], logs[1][-3000:]
    db = await open_database(url)
    try:
        funded = await db.fetchall("SELECT user_id, COUNT(*), SUM(amount) FROM ledger_entries WHERE kind = 'deposit'"
                                   " GROUP BY user_id ORDER BY user_id")
        assert [tuple(r) for r in funded] == [(7_000 + i, 1, 100_000_000) for i in range(USERS)]
        assert await db.fetchval("SELECT COUNT(*) FROM inbox_updates WHERE state = 'pending'") == 0
        await check_invariants(db)
    finally:
        await db.close()
