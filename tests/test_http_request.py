"""The aiohttp transport (bot/http_request.py) against the loopback Bot API fake.

Covers a real PTB polling round trip, multipart uploads, parity of the bodies with PTB's own
HTTPXRequest, the error mapping (HTTP status codes, dropped connections, refused connections,
read and pool timeouts) and that shutdown leaves no open session behind.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import struct
import warnings
import zlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TimedOut
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, ContextTypes
from telegram.request import BaseRequest, HTTPXRequest

from bot.app import build_application
from bot.http_request import AiohttpRequest
from bot.settings import load_settings
from tests.fakes.telegram_api import TelegramFake

USER = 42
OTHER = 43


def png_bytes(width: int, height: int) -> bytes:
    """A valid tiny PNG image."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\x00\x80\xff" * width for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


@pytest.fixture
def fake() -> Iterator[TelegramFake]:
    with TelegramFake() as server:
        server.add_chat(USER, first_name="Alice", username="alice")
        server.add_chat(OTHER, first_name="Bob", username="bob")
        yield server


def make_bot(fake: TelegramFake, request: BaseRequest | None = None, **kwargs: Any) -> Bot:
    return Bot(fake.token, base_url=f"{fake.base_url}/bot",
               request=request or AiohttpRequest(**kwargs),
               get_updates_request=AiohttpRequest(connection_pool_size=1))


@pytest.fixture
async def bot(fake: TelegramFake) -> AsyncIterator[Bot]:
    async with make_bot(fake) as client:
        yield client


def method_url(fake: TelegramFake, method: str) -> str:
    return f"{fake.base_url}/bot{fake.token}/{method}"


# ---------------------------------------------------------------------------- PTB round trips


async def test_application_round_trip_with_polling(fake: TelegramFake) -> None:
    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        markup = InlineKeyboardMarkup([[InlineKeyboardButton("Go", callback_data="go:1")]])
        await update.effective_message.reply_text("<b>Hello</b> &amp; welcome", parse_mode="HTML",
                                                  reply_markup=markup)

    async def pressed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None
        await query.answer("done")
        await query.edit_message_text(f"pressed {query.data}")

    app = (Application.builder().token(fake.token).base_url(f"{fake.base_url}/bot")
           .request(AiohttpRequest(connection_pool_size=4))
           .get_updates_request(AiohttpRequest(connection_pool_size=1)).build())
    app.add_handler(CommandHandler("start", start))
    app.add_handler(CallbackQueryHandler(pressed))
    async with app:
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0.0, timeout=1)
        await app.start()
        try:
            fake.user_sends(USER, "/start")
            [sent] = await fake.wait_for_sent_async("sendMessage", chat_id=USER)
            message = fake.last_message(USER)
            assert message is not None and message.text == "Hello & welcome"
            assert message.entities == [{"type": "bold", "offset": 0, "length": 5}]
            fake.user_presses(USER, message.message_id, message.callback_data()[0])
            await fake.wait_for_sent_async("editMessageText", chat_id=USER)
            await fake.wait_for_async(lambda: fake.pending_updates == 0)
        finally:
            await app.updater.stop()
            await app.stop()
    edited = fake.message(USER, message.message_id)
    assert edited is not None and edited.text == "pressed go:1" and edited.edited
    assert [a.text for a in fake.answered_callbacks] == ["done"]
    assert sent.params["reply_markup"] == {"inline_keyboard": [[{"text": "Go", "callback_data": "go:1"}]]}
    assert fake.malformed_calls == []


async def test_send_photo_is_multipart_with_caption(fake: TelegramFake, bot: Bot) -> None:
    image = png_bytes(8, 6)
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("Again", callback_data="again")]])
    message = await bot.send_photo(USER, photo=image, caption="<i>Equity</i> curve", parse_mode="HTML",
                                   reply_markup=markup)
    assert message.caption == "Equity curve"
    assert message.photo[-1].file_size == len(image)
    stored = fake.last_message(USER)
    assert stored is not None and stored.photo == image
    assert stored.caption_entities == [{"type": "italic", "offset": 0, "length": 6}]
    assert stored.callback_data() == ["again"]
    [call] = fake.sent("sendPhoto")
    assert call.params["photo"].data == image  # a file part, not a form field
    # The returned file_id is reused without a file part: a plain form body.
    again = await bot.send_photo(OTHER, photo=message.photo[-1].file_id)
    assert again.photo[-1].file_size == len(image)
    assert fake.malformed_calls == []


async def test_bodies_match_ptbs_httpx_request(fake: TelegramFake) -> None:
    """What the fake decodes from our bodies equals what it decodes from HTTPXRequest's."""
    image = png_bytes(3, 2)
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("ü & <x>", callback_data="a b=c&d")]])

    async def calls(bot: Bot, chat_id: int) -> None:
        sent = await bot.send_message(chat_id, "Tom &amp; <b>Jerry</b> 🚀 a+b=c", parse_mode="HTML",
                                      reply_markup=markup, disable_notification=True)
        await bot.edit_message_text("edited ✓", chat_id=chat_id, message_id=sent.message_id)
        await bot.send_photo(chat_id, photo=image, caption="<b>c</b>aption", parse_mode="HTML")

    async with make_bot(fake, HTTPXRequest()) as reference:
        await calls(reference, USER)
    async with make_bot(fake) as ours:
        await calls(ours, OTHER)

    def recorded(chat_id: int) -> list[tuple[str, dict[str, Any]]]:
        return [(c.method, {k: v for k, v in c.params.items() if k != "chat_id"})
                for c in fake.sent(chat_id=chat_id)]

    assert len(recorded(USER)) == 3
    assert recorded(OTHER) == recorded(USER)
    assert fake.malformed_calls == []


# ---------------------------------------------------------------------------- error mapping


async def test_http_errors_map_like_httpx(fake: TelegramFake, bot: Bot) -> None:
    with pytest.raises(BadRequest, match="Chat not found"):
        await bot.send_message(999, "x")
    fake.block(USER, emit_update=False)
    with pytest.raises(Forbidden):
        await bot.send_message(USER, "x")
    fake.unblock(USER)
    fake.force_flood(1, retry_after=3)
    with pytest.raises(RetryAfter, match="Retry in 3 seconds"):
        await bot.send_message(USER, "x")
    fake.start_outage("502")
    with pytest.raises(NetworkError, match="Bad Gateway") as outage:
        await bot.send_message(USER, "x")
    assert not isinstance(outage.value, TimedOut)
    fake.end_outage()
    assert (await bot.send_message(USER, "after the outage")).text == "after the outage"


async def test_dropped_connection_is_network_error(fake: TelegramFake, bot: Bot) -> None:
    fake.start_outage("close")
    with pytest.raises(NetworkError, match=r"^aiohttp\.") as dropped:
        await bot.send_message(USER, "x")
    assert not isinstance(dropped.value, TimedOut)
    fake.end_outage()
    assert (await bot.get_me()).username == fake.bot_username


async def test_refused_connection_is_network_error() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago and has no listener now
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with AiohttpRequest(connect_timeout=2) as request:
        with pytest.raises(NetworkError, match=r"^aiohttp\.ClientConnector") as refused:
            await request.do_request(f"http://127.0.0.1:{port}/bot1:x/getMe", "POST")
    assert not isinstance(refused.value, TimedOut)


async def test_default_read_timeout_is_used_unless_the_call_overrides_it(fake: TelegramFake) -> None:
    # getUpdates with ?timeout=1 is a slow endpoint: the fake answers only after a second.
    slow = method_url(fake, "getUpdates") + "?timeout=1"
    async with AiohttpRequest(read_timeout=0.2) as request:
        assert request.read_timeout == 0.2
        with pytest.raises(TimedOut):
            await request.do_request(slow, "POST")
        status, body = await request.do_request(slow, "POST", read_timeout=5)
    assert status == 200 and body == b'{"ok": true, "result": []}'


async def test_explicit_read_timeout_beats_a_generous_default(fake: TelegramFake) -> None:
    async with AiohttpRequest(read_timeout=30) as request:
        with pytest.raises(TimedOut):
            await request.do_request(method_url(fake, "getUpdates") + "?timeout=1", "POST", read_timeout=0.2)


async def test_full_pool_times_out_with_ptbs_pool_message(fake: TelegramFake) -> None:
    async with AiohttpRequest(connection_pool_size=1, pool_timeout=0.1, read_timeout=5) as request:
        long_poll = asyncio.create_task(request.do_request(method_url(fake, "getUpdates") + "?timeout=1", "POST"))
        await fake.wait_for_async(lambda: fake.request_counts.get("getUpdates", 0) == 1)
        with pytest.raises(TimedOut, match="Pool timeout"):
            await request.do_request(method_url(fake, "getMe"), "POST")
        assert (await long_poll)[0] == 200
        # The slot is free again once the long poll has been answered.
        assert (await request.do_request(method_url(fake, "getMe"), "POST"))[0] == 200


# ---------------------------------------------------------------------------- lifecycle


async def test_shutdown_closes_the_session_without_warnings(fake: TelegramFake) -> None:
    request = AiohttpRequest()
    with pytest.raises(RuntimeError, match="not initialized"):
        await request.do_request(method_url(fake, "getMe"), "POST")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        await request.initialize()
        await request.initialize()  # idempotent: PTB may initialize a shared request twice
        session = request._session
        assert session is not None
        assert (await request.do_request(method_url(fake, "getMe"), "POST"))[0] == 200
        await request.shutdown()
        await request.shutdown()
        assert session.closed and session.connector is None
        assert not request.is_initialized
        del session
        gc.collect()
    assert [w for w in caught if "Unclosed" in str(w.message)] == []
    with pytest.raises(RuntimeError, match="not initialized"):
        await request.do_request(method_url(fake, "getMe"), "POST")
    # PTB can initialize an Application again after shutting it down.
    async with request:
        assert (await request.do_request(method_url(fake, "getMe"), "POST"))[0] == 200
    assert not request.is_initialized


async def test_unclosed_session_would_be_reported() -> None:
    """Control for the test above: the warning it checks for does exist when a session leaks."""
    request = AiohttpRequest()
    await request.initialize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        request._session = None  # leak it
        gc.collect()
    assert any("Unclosed client session" in str(w.message) for w in caught)


def test_build_application_uses_aiohttp_for_both_requests(fake: TelegramFake) -> None:
    settings = load_settings(_env_file=None, telegram_bot_token=fake.token,
                             telegram_base_url=f"{fake.base_url}/bot", database_url="sqlite:///unused.db")
    app = build_application(settings)
    assert isinstance(app.bot.request, AiohttpRequest)
    updates_request = app.bot._request[0]
    assert isinstance(updates_request, AiohttpRequest) and updates_request is not app.bot.request
    assert app.bot.request.read_timeout == 60 and updates_request.read_timeout == 35


async def test_proxy_settings_are_read_once_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    request = AiohttpRequest()
    await request.initialize()
    try:
        assert request._proxy_for("https://api.telegram.org/bot1/getMe") == "http://proxy.invalid:3128"
        assert request._proxy_for("https://127.0.0.1:8443/bot1/getMe") is None  # NO_PROXY
        monkeypatch.setenv("HTTPS_PROXY", "http://other.invalid:1")
        assert request._proxy_for("https://api.telegram.org/bot1/sendMessage") == "http://proxy.invalid:3128"
    finally:
        await request.shutdown()
