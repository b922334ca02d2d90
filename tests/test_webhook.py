"""Webhook mode and /healthz: Telegram (the fake) posts updates to WEBHOOK_URL; the bot checks the
secret, stores the update in the inbox before answering 200, and replies as in polling mode."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.bot_harness import bot_settings, run_app
from tests.fakes.telegram_api import TelegramFake

pytestmark = pytest.mark.both_backends
ALICE = 601


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_updates_come_by_webhook_with_the_secret_and_are_answered(tmp_path: Path, db_url: str) -> None:
    port = free_port()
    with TelegramFake() as fake:
        fake.set_webhook_interval = 0
        settings = bot_settings(fake, tmp_path, database_url=db_url, port=port,
                                webhook_url=f"http://127.0.0.1:{port}/telegram/hook")
        async with run_app(fake, settings) as h:
            assert fake.webhook_url == f"http://127.0.0.1:{port}/telegram/hook"
            reply = await h.send(ALICE, "/automaton 100")
            assert "100.00 USDC" in reply.text
            assert fake.request_counts.get("getUpdates", 0) == 0  # nothing polled
            secret = await h.services.shared.agreed("webhook_secret", "unused")
            sent = [a for a in fake.webhook_attempts() if a[1] == 200]
            assert sent and len(secret) >= 32
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                update = {"update_id": 99_000_001, "message": {"message_id": 1, "date": 0,
                          "chat": {"id": ALICE, "type": "private"}, "from": {"id": ALICE, "is_bot": False,
                                                                           "first_name": "A"}, "text": "/help"}}
                wrong = await client.post("/telegram/hook", json=update,
                                          headers={"X-Telegram-Bot-Api-Secret-Token": "guess"})
                missing = await client.post("/telegram/hook", json=update)
                assert wrong.status_code == missing.status_code == 403
                bad = await client.post("/telegram/hook", content=b"{not json",
                                        headers={"X-Telegram-Bot-Api-Secret-Token": secret})
                odd = await client.post("/telegram/hook", json=[1, 2],
                                        headers={"X-Telegram-Bot-Api-Secret-Token": secret})
                assert bad.status_code == odd.status_code == 400
                health = await client.get("/healthz")
                assert health.status_code == 200
                assert health.json() | {"processed": 0} == {"status": "ok", "mode": "webhook", "intake": "running",
                                                            "database": "ok", "processed": 0}
            await h.idle()
            stored = await h.services.db.fetchval("SELECT COUNT(*) FROM inbox_updates WHERE update_id = 99000001")
            assert stored == 0  # refused requests store nothing
            before = len(fake.messages(ALICE))
            # Telegram delivers at least once: the same update twice (at once, then again) is processed once
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                def post() -> Any:
                    return client.post("/telegram/hook", content=json.dumps(update),
                                       headers={"X-Telegram-Bot-Api-Secret-Token": secret,
                                                "Content-Type": "application/json"})
                answers = [*await asyncio.gather(post(), post(), post()), await post()]
                assert [a.status_code for a in answers] == [200] * 4
            await h.idle()
            assert len(fake.messages(ALICE)) == before + 1


async def test_polling_serves_healthz_on_port_and_removes_a_leftover_webhook(tmp_path: Path) -> None:
    port = free_port()
    with TelegramFake() as fake:
        fake.set_webhook_interval = 0
        async with httpx.AsyncClient() as client:  # an earlier deployment ran in webhook mode
            done = await client.post(f"{fake.base_url}/bot{fake.token}/setWebhook",
                                     data={"url": "http://127.0.0.1:9/old"})
            assert done.json()["ok"]
        fake.user_sends(ALICE, "/start")  # waiting at Telegram while nobody could receive it
        settings = bot_settings(fake, tmp_path, port=port)
        async with run_app(fake, settings) as h:
            await fake.wait_for_sent_async("sendMessage", chat_id=ALICE, count=1)
            assert fake.webhook_url == ""
            reply = await h.send(ALICE, "/help")
            assert "/automaton" in reply.text
            async with httpx.AsyncClient() as client:
                health = await client.get(f"http://127.0.0.1:{port}/healthz")
                assert health.status_code == 200 and health.json()["mode"] == "polling"
                assert (await client.post(f"http://127.0.0.1:{port}/telegram/hook", json={})).status_code in (404, 405)


def test_webhook_url_must_be_https_except_on_loopback(tmp_path: Path) -> None:
    from bot.settings import SettingsError, load_settings

    for bad in ("http://example.com/hook", "ftp://x/hook", "not a url"):
        with pytest.raises(SettingsError, match="WEBHOOK_URL"):
            load_settings(_env_file=None, webhook_url=bad)
    ok = load_settings(_env_file=None, webhook_url="https://bot.up.railway.app/tg")
    assert ok.webhook_path == "/tg" and ok.listen_port == 8080
    assert load_settings(_env_file=None).listen_port is None
    assert load_settings(_env_file=None, port=9000).listen_port == 9000


async def test_a_webhook_url_telegram_refuses_stops_the_start_with_one_clear_error(tmp_path: Path) -> None:
    from bot.app import build_application
    from bot.delivery.webhook import WebhookRefused
    from bot.lifecycle import running

    with TelegramFake() as fake:
        fake.set_webhook_interval = 0
        settings = bot_settings(fake, tmp_path, port=free_port(), webhook_url="https://nowhere.invalid/hook")
        refused = r"Telegram refused WEBHOOK_URL https://nowhere\.invalid/hook: .*resolve"
        with pytest.raises(WebhookRefused, match=refused):
            async with running(build_application(settings), poll_timeout=1):
                pass
        assert fake.webhook_url == ""
