"""Tests of the offline Telegram Bot API fake: strictness rules over plain HTTP, plus a
round trip with the real python-telegram-bot pointed at it."""

from __future__ import annotations

import json
import struct
import threading
import zlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest, Forbidden, RetryAfter
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, ContextTypes

from tests.fakes.telegram_api import NOT_MODIFIED, QUERY_TOO_OLD, TelegramFake
from tests.fakes.telegram_html import parse_html

USER = 42


def png_bytes(width: int = 3, height: int = 2) -> bytes:
    """A valid tiny PNG image."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )


@pytest.fixture
def fake() -> Iterator[TelegramFake]:
    with TelegramFake() as server:
        server.add_chat(USER, first_name="Alice", username="alice")
        yield server


@pytest.fixture
def api(fake: TelegramFake) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{fake.base_url}/bot{fake.token}", timeout=10) as client:
        yield client


def call(api: httpx.Client, method: str, **params: Any) -> tuple[int, dict[str, Any]]:
    """POST a JSON body and return (HTTP status, decoded envelope)."""
    response = api.post(f"/{method}", json=params)
    body = response.json()
    if body["ok"] is False:
        assert body["error_code"] == response.status_code
    return response.status_code, body


def keyboard(*buttons: dict[str, Any]) -> dict[str, Any]:
    return {"inline_keyboard": [list(buttons)]}


# ---------------------------------------------------------------------------- envelope and routing


def test_get_me_answers_the_bot_user(api: httpx.Client, fake: TelegramFake) -> None:
    status, body = call(api, "getMe")
    assert status == 200
    assert body["ok"] is True
    assert body["result"]["id"] == fake.bot_id
    assert body["result"]["is_bot"] is True


def test_wrong_token_is_401_unauthorized(fake: TelegramFake) -> None:
    response = httpx.post(f"{fake.base_url}/bot1:wrong/getMe")
    assert response.status_code == 401
    assert response.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}


def test_unknown_method_is_404_not_found(api: httpx.Client) -> None:
    status, body = call(api, "sendTelepathy", chat_id=USER)
    assert status == 404
    assert body["description"] == "Not Found"


def test_method_names_are_case_insensitive(api: httpx.Client) -> None:
    status, _ = call(api, "getme")
    assert status == 200


def test_form_encoded_parameters_are_accepted(api: httpx.Client, fake: TelegramFake) -> None:
    markup = json.dumps(keyboard({"text": "Go", "callback_data": "go"}))
    response = api.post("/sendMessage", data={"chat_id": str(USER), "text": "hi", "reply_markup": markup})
    assert response.status_code == 200
    [record] = fake.sent("sendMessage", chat_id=USER)
    assert record.params["reply_markup"] == keyboard({"text": "Go", "callback_data": "go"})


# ---------------------------------------------------------------------------- HTML parse mode


@pytest.mark.parametrize(
    "text",
    [
        "<foo>x</foo>",  # unknown tag
        "<b>x",  # unclosed tag
        "<b>x</i>",  # mismatched tag
        "</b>",  # end tag without start
        "a < b",  # bare <
        "a > b",  # bare >
        "fish & chips",  # bare &
        "&nbsp;",  # named entity Telegram does not support
        "<span>x</span>",  # span without the spoiler class
        '<a href="x>link</a>',  # unclosed attribute quote
    ],
)
def test_invalid_html_is_rejected(api: httpx.Client, fake: TelegramFake, text: str) -> None:
    status, body = call(api, "sendMessage", chat_id=USER, text=text, parse_mode="HTML")
    assert status == 400
    assert body["description"].startswith("Bad Request: can't parse entities: ")
    assert fake.messages(USER) == []


def test_valid_html_produces_entities_in_utf16_units(api: httpx.Client) -> None:
    text = (
        '😀 <b>bold</b> <i>it</i> &lt;&gt;&amp;&quot;&#65;&#x42; <a href="https://e.x/?a=1&amp;b=2">l</a> '
        '<tg-spoiler>s</tg-spoiler> <span class="tg-spoiler">t</span> <code>c</code> '
        '<pre><code class="language-python">p</code></pre><blockquote expandable>q</blockquote>'
    )
    status, body = call(api, "sendMessage", chat_id=USER, text=text, parse_mode="HTML")
    assert status == 200
    result = body["result"]
    assert result["text"].startswith('😀 bold it <>&"AB l s t c pq')
    kinds = {e["type"]: e for e in result["entities"]}
    assert kinds["bold"] == {"type": "bold", "offset": 3, "length": 4}  # the emoji is 2 UTF-16 units
    assert kinds["text_link"]["url"] == "https://e.x/?a=1&b=2"
    assert kinds["pre"]["language"] == "python"
    assert "expandable_blockquote" in kinds
    assert "spoiler" in kinds


def test_parse_html_drops_empty_entities() -> None:
    assert parse_html("a<b></b>b") == ("ab", [])


# ---------------------------------------------------------------------------- limits


def test_text_length_is_counted_after_entity_parsing(api: httpx.Client) -> None:
    status, _ = call(api, "sendMessage", chat_id=USER, text="<b>" + "a" * 4096 + "</b>", parse_mode="HTML")
    assert status == 200
    status, body = call(api, "sendMessage", chat_id=USER, text="a" * 4097)
    assert status == 400
    assert body["description"] == "Bad Request: message is too long"


def test_text_length_counts_utf16_code_units(api: httpx.Client) -> None:
    status, _ = call(api, "sendMessage", chat_id=USER, text="😀" * 2048)  # 4096 units
    assert status == 200
    status, body = call(api, "sendMessage", chat_id=USER, text="😀" * 2049)
    assert (status, body["description"]) == (400, "Bad Request: message is too long")


def test_caption_too_long_is_rejected(api: httpx.Client) -> None:
    files = {"photo": ("chart.png", png_bytes(), "image/png")}
    response = api.post("/sendPhoto", data={"chat_id": str(USER), "caption": "x" * 1025}, files=files)
    assert response.status_code == 400
    assert response.json()["description"] == "Bad Request: message caption is too long"


@pytest.mark.parametrize(
    "params", [{"text": ""}, {"text": "   "}, {}, {"text": "<b></b>", "parse_mode": "HTML"}]
)
def test_empty_text_is_rejected(api: httpx.Client, params: dict[str, Any]) -> None:
    status, body = call(api, "sendMessage", chat_id=USER, **params)
    assert (status, body["description"]) == (400, "Bad Request: message text is empty")


# ---------------------------------------------------------------------------- keyboards


@pytest.mark.parametrize("data", ["x" * 65, "é" * 33, ""])
def test_invalid_callback_data_is_rejected(api: httpx.Client, data: str) -> None:
    status, body = call(
        api,
        "sendMessage",
        chat_id=USER,
        text="t",
        reply_markup=keyboard({"text": "b", "callback_data": data}),
    )
    assert (status, body["description"]) == (400, "Bad Request: BUTTON_DATA_INVALID")


def test_callback_data_of_64_bytes_is_accepted(api: httpx.Client) -> None:
    status, _ = call(
        api,
        "sendMessage",
        chat_id=USER,
        text="t",
        reply_markup=keyboard({"text": "b", "callback_data": "é" * 32}),
    )
    assert status == 200


@pytest.mark.parametrize(
    "button",
    [
        {"text": "no action"},
        {"text": "two", "callback_data": "a", "url": "https://e.x"},
        {"callback_data": "a"},
    ],
)
def test_button_needs_text_and_exactly_one_action(api: httpx.Client, button: dict[str, Any]) -> None:
    status, body = call(api, "sendMessage", chat_id=USER, text="t", reply_markup=keyboard(button))
    assert status == 400
    assert body["description"].startswith("Bad Request: can't parse inline keyboard button")


# ---------------------------------------------------------------------------- edits, deletes, callbacks


def test_edit_of_missing_message_is_rejected(api: httpx.Client) -> None:
    status, body = call(api, "editMessageText", chat_id=USER, message_id=999, text="new")
    assert (status, body["description"]) == (400, "Bad Request: message to edit not found")


def test_identical_edit_is_not_modified(api: httpx.Client, fake: TelegramFake) -> None:
    markup = keyboard({"text": "b", "callback_data": "d"})
    _, sent = call(
        api, "sendMessage", chat_id=USER, text="<b>same</b>", parse_mode="HTML", reply_markup=markup
    )
    message_id = sent["result"]["message_id"]
    status, body = call(
        api,
        "editMessageText",
        chat_id=USER,
        message_id=message_id,
        text="<b>same</b>",
        parse_mode="HTML",
        reply_markup=markup,
    )
    assert (status, body["description"]) == (400, NOT_MODIFIED)
    # Same text without markup is a change: Telegram removes the keyboard.
    status, body = call(
        api, "editMessageText", chat_id=USER, message_id=message_id, text="<b>same</b>", parse_mode="HTML"
    )
    assert status == 200
    assert "reply_markup" not in body["result"]
    stored = fake.last_message(USER)
    assert stored is not None
    assert stored.edited and stored.reply_markup is None and stored.text == "same"


def test_edit_reply_markup_changes_the_keyboard(api: httpx.Client, fake: TelegramFake) -> None:
    _, sent = call(api, "sendMessage", chat_id=USER, text="t")
    message_id = sent["result"]["message_id"]
    markup = keyboard({"text": "b", "callback_data": "d"})
    status, _ = call(api, "editMessageReplyMarkup", chat_id=USER, message_id=message_id, reply_markup=markup)
    assert status == 200
    status, body = call(
        api, "editMessageReplyMarkup", chat_id=USER, message_id=message_id, reply_markup=markup
    )
    assert (status, body["description"]) == (400, NOT_MODIFIED)
    stored = fake.message(USER, message_id)
    assert stored is not None and stored.callback_data() == ["d"]


def test_delete_message_then_it_is_gone(api: httpx.Client, fake: TelegramFake) -> None:
    _, sent = call(api, "sendMessage", chat_id=USER, text="t")
    message_id = sent["result"]["message_id"]
    assert call(api, "deleteMessage", chat_id=USER, message_id=message_id)[0] == 200
    status, body = call(api, "deleteMessage", chat_id=USER, message_id=message_id)
    assert (status, body["description"]) == (400, "Bad Request: message to delete not found")
    assert fake.messages(USER) == []


def test_answer_callback_query_once_only(api: httpx.Client, fake: TelegramFake) -> None:
    _, sent = call(
        api, "sendMessage", chat_id=USER, text="t", reply_markup=keyboard({"text": "b", "callback_data": "d"})
    )
    query_id = fake.user_presses(USER, sent["result"]["message_id"], "d")
    assert call(api, "answerCallbackQuery", callback_query_id=query_id, text="ok")[0] == 200
    status, body = call(api, "answerCallbackQuery", callback_query_id=query_id)
    assert (status, body["description"]) == (400, QUERY_TOO_OLD)
    status, body = call(api, "answerCallbackQuery", callback_query_id="123")
    assert (status, body["description"]) == (400, QUERY_TOO_OLD)
    assert [a.callback_query_id for a in fake.answered_callbacks] == [query_id]


def test_user_presses_delivers_forged_data_verbatim(api: httpx.Client, fake: TelegramFake) -> None:
    _, sent = call(
        api, "sendMessage", chat_id=USER, text="t", reply_markup=keyboard({"text": "b", "callback_data": "d"})
    )
    forged = "agent:999;" + "x" * 200
    fake.user_presses(USER, sent["result"]["message_id"], forged)
    _, body = call(api, "getUpdates")
    query = body["result"][-1]["callback_query"]
    assert query["data"] == forged
    assert query["message"]["reply_markup"] == keyboard({"text": "b", "callback_data": "d"})


# ---------------------------------------------------------------------------- chats


def test_unknown_chat_is_not_found(api: httpx.Client) -> None:
    status, body = call(api, "sendMessage", chat_id=777, text="hi")
    assert (status, body["description"]) == (400, "Bad Request: chat not found")


def test_blocked_user_is_403(api: httpx.Client, fake: TelegramFake) -> None:
    fake.block(USER)
    status, body = call(api, "sendMessage", chat_id=USER, text="hi")
    assert (status, body["description"]) == (403, "Forbidden: bot was blocked by the user")
    _, updates = call(api, "getUpdates")
    assert updates["result"][-1]["my_chat_member"]["new_chat_member"]["status"] == "kicked"
    fake.unblock(USER)
    assert call(api, "sendMessage", chat_id=USER, text="hi")[0] == 200


def test_group_messages_have_negative_chat_ids_and_command_entities(
    api: httpx.Client, fake: TelegramFake
) -> None:
    fake.user_sends(7, "/status@fake_trading_bot now", chat_type="supergroup", title="Traders")
    _, body = call(api, "getUpdates")
    message = body["result"][0]["message"]
    assert message["chat"]["id"] < 0
    assert message["chat"]["type"] == "supergroup"
    assert message["entities"] == [
        {"type": "bot_command", "offset": 0, "length": len("/status@fake_trading_bot")}
    ]
    assert call(api, "sendMessage", chat_id=message["chat"]["id"], text="hi")[0] == 200


def test_send_chat_action_validates_the_action(api: httpx.Client) -> None:
    assert call(api, "sendChatAction", chat_id=USER, action="typing")[0] == 200
    status, body = call(api, "sendChatAction", chat_id=USER, action="dancing")
    assert (status, body["description"]) == (400, "Bad Request: wrong parameter action in request")


def test_commands_are_stored_and_validated(api: httpx.Client, fake: TelegramFake) -> None:
    commands = [{"command": "start", "description": "Start"}, {"command": "help", "description": "Help"}]
    assert call(api, "setMyCommands", commands=commands)[0] == 200
    assert call(api, "getMyCommands")[1]["result"] == commands
    assert fake.my_commands() == commands
    status, body = call(api, "setMyCommands", commands=[{"command": "/Start", "description": "x"}])
    assert (status, body["description"]) == (400, "Bad Request: BOT_COMMAND_INVALID")


# ---------------------------------------------------------------------------- photos


def test_send_photo_multipart_stores_the_image(api: httpx.Client, fake: TelegramFake) -> None:
    image = png_bytes(4, 3)
    response = api.post(
        "/sendPhoto",
        data={"chat_id": str(USER), "caption": "<b>Equity</b>", "parse_mode": "HTML"},
        files={"photo": ("chart.png", image, "image/png")},
    )
    assert response.status_code == 200
    photo = response.json()["result"]["photo"][0]
    assert (photo["width"], photo["height"], photo["file_size"]) == (4, 3, len(image))
    stored = fake.last_message(USER)
    assert stored is not None
    assert stored.photo_size == len(image) and stored.caption == "Equity"
    # The returned file_id can be reused without uploading again.
    again = api.post("/sendPhoto", data={"chat_id": str(USER), "photo": photo["file_id"]})
    assert again.status_code == 200


def test_send_photo_rejects_non_images(api: httpx.Client) -> None:
    response = api.post(
        "/sendPhoto", data={"chat_id": str(USER)}, files={"photo": ("x.png", b"not an image", "image/png")}
    )
    assert (response.status_code, response.json()["description"]) == (
        400,
        "Bad Request: IMAGE_PROCESS_FAILED",
    )


def test_send_document_multipart(api: httpx.Client, fake: TelegramFake) -> None:
    response = api.post(
        "/sendDocument",
        data={"chat_id": str(USER), "caption": "report"},
        files={"document": ("report.csv", b"a,b\n1,2\n", "text/csv")},
    )
    assert response.status_code == 200
    assert response.json()["result"]["document"]["file_name"] == "report.csv"
    stored = fake.last_message(USER)
    assert stored is not None and stored.document == b"a,b\n1,2\n" and stored.caption == "report"


# ---------------------------------------------------------------------------- flood control and outages


def test_per_chat_flood_limit_answers_429_with_retry_after() -> None:
    with TelegramFake(per_chat_limit=3, per_chat_window=60) as fake, httpx.Client() as client:
        fake.add_chat(USER)
        url = f"{fake.base_url}/bot{fake.token}/sendMessage"
        codes = [client.post(url, json={"chat_id": USER, "text": "x"}).status_code for _ in range(3)]
        assert codes == [200, 200, 200]
        response = client.post(url, json={"chat_id": USER, "text": "x"})
        body = response.json()
        assert response.status_code == 429
        retry = body["parameters"]["retry_after"]
        assert 1 <= retry <= 60
        assert body["description"] == f"Too Many Requests: retry after {retry}"


def test_global_flood_limit_spans_chats() -> None:
    with TelegramFake(global_limit=2, global_window=60) as fake, httpx.Client() as client:
        url = f"{fake.base_url}/bot{fake.token}/sendMessage"
        for chat in (1, 2, 3):
            fake.add_chat(chat)
        codes = [client.post(url, json={"chat_id": c, "text": "x"}).status_code for c in (1, 2, 3)]
        assert codes == [200, 200, 429]


def test_forced_flood_applies_to_the_next_calls_only(api: httpx.Client, fake: TelegramFake) -> None:
    fake.force_flood(2, retry_after=5)
    first = call(api, "sendMessage", chat_id=USER, text="a")
    second = call(api, "sendMessage", chat_id=USER, text="a")
    third = call(api, "sendMessage", chat_id=USER, text="a")
    assert [first[0], second[0], third[0]] == [429, 429, 200]
    assert first[1]["parameters"] == {"retry_after": 5}
    assert [e.status for e in fake.errors] == [429, 429]
    assert fake.malformed_calls == []


def test_outage_answers_502_until_it_ends(api: httpx.Client, fake: TelegramFake) -> None:
    fake.start_outage("502")
    assert api.post("/getMe").status_code == 502
    assert fake.outage_hits == 1
    fake.end_outage()
    assert api.post("/getMe").status_code == 200


def test_outage_can_drop_connections_and_expire(api: httpx.Client, fake: TelegramFake) -> None:
    fake.start_outage("close", duration=0.3)
    with pytest.raises(httpx.TransportError):
        api.post("/getMe")
    fake.wait_for(lambda: not fake.outage_active, timeout=5)
    assert api.post("/getMe").status_code == 200


# ---------------------------------------------------------------------------- getUpdates


def test_get_updates_redelivers_until_confirmed_by_offset(api: httpx.Client, fake: TelegramFake) -> None:
    first = fake.user_sends(USER, "one")
    second = fake.user_sends(USER, "two")
    ids = [u["update_id"] for u in call(api, "getUpdates")[1]["result"]]
    assert ids == [first, second]
    assert [u["update_id"] for u in call(api, "getUpdates")[1]["result"]] == [first, second]
    assert [u["update_id"] for u in call(api, "getUpdates", offset=second)[1]["result"]] == [second]
    assert call(api, "getUpdates", offset=second + 1)[1]["result"] == []
    assert fake.pending_updates == 0


def test_get_updates_negative_offset_keeps_the_last_ones(api: httpx.Client, fake: TelegramFake) -> None:
    ids = [fake.user_sends(USER, str(i)) for i in range(3)]
    assert [u["update_id"] for u in call(api, "getUpdates", offset=-1)[1]["result"]] == ids[-1:]
    assert fake.pending_updates == 1


def test_get_updates_honours_allowed_updates(api: httpx.Client, fake: TelegramFake) -> None:
    _, sent = call(
        api, "sendMessage", chat_id=USER, text="t", reply_markup=keyboard({"text": "b", "callback_data": "d"})
    )
    fake.user_sends(USER, "text")
    fake.user_presses(USER, sent["result"]["message_id"], "d")
    result = call(api, "getUpdates", allowed_updates=["callback_query"])[1]["result"]
    assert [next(k for k in u if k != "update_id") for u in result] == ["callback_query"]


def test_get_updates_long_poll_returns_when_an_update_arrives(api: httpx.Client, fake: TelegramFake) -> None:
    results: list[Any] = []
    poller = threading.Thread(target=lambda: results.append(call(api, "getUpdates", timeout=20)))
    poller.start()
    fake.wait_for(lambda: fake.request_counts.get("getUpdates", 0) >= 1)
    update_id = fake.user_sends(USER, "wake up")
    poller.join(timeout=10)
    assert not poller.is_alive()
    assert [u["update_id"] for u in results[0][1]["result"]] == [update_id]


def test_get_updates_timeout_returns_empty(api: httpx.Client) -> None:
    assert call(api, "getUpdates", timeout=0.2)[1]["result"] == []


def test_concurrent_get_updates_conflict(fake: TelegramFake) -> None:
    url = f"{fake.base_url}/bot{fake.token}/getUpdates"
    results: list[httpx.Response] = []
    poller = threading.Thread(
        target=lambda: results.append(httpx.post(url, json={"timeout": 20}, timeout=30))
    )
    poller.start()
    fake.wait_for(lambda: fake.request_counts.get("getUpdates", 0) >= 1)
    assert httpx.post(url, json={"timeout": 0}).status_code == 200
    poller.join(timeout=10)
    assert results[0].status_code == 409
    assert results[0].json()["description"].startswith("Conflict: terminated by other getUpdates request")
    assert fake.conflicts == 1


# ---------------------------------------------------------------------------- records


def test_records_and_reset(api: httpx.Client, fake: TelegramFake) -> None:
    call(api, "sendMessage", chat_id=USER, text="a")
    call(api, "sendMessage", chat_id=USER, text="")
    assert [c.method for c in fake.sent()] == ["sendMessage"]
    assert [(e.status, e.method) for e in fake.malformed_calls] == [(400, "sendMessage")]
    fake.reset_records()
    assert fake.sent() == [] and fake.errors == []
    assert len(fake.messages(USER)) == 1  # message state survives a reset


def test_wait_for_times_out(fake: TelegramFake) -> None:
    with pytest.raises(TimeoutError):
        fake.wait_for(lambda: fake.sent("sendMessage"), timeout=0.1)


async def test_wait_for_async_sees_changes_from_other_threads(fake: TelegramFake) -> None:
    def send() -> None:
        httpx.post(f"{fake.base_url}/bot{fake.token}/sendMessage", json={"chat_id": USER, "text": "x"})

    thread = threading.Thread(target=send)
    thread.start()
    calls = await fake.wait_for_sent_async("sendMessage", chat_id=USER)
    thread.join()
    assert calls[0].params["text"] == "x"


# ---------------------------------------------------------------------------- real PTB


def build_app(fake: TelegramFake) -> Application[Any, Any, Any, Any, Any, Any]:
    return Application.builder().token(fake.token).base_url(f"{fake.base_url}/bot").build()


async def test_real_ptb_round_trip(fake: TelegramFake) -> None:
    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        markup = InlineKeyboardMarkup([[InlineKeyboardButton("Go", callback_data="go")]])
        await update.effective_message.reply_text(
            "<b>Hello</b> &amp; welcome", parse_mode="HTML", reply_markup=markup
        )

    async def pressed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None
        await query.answer("done")
        await query.edit_message_text(f"pressed {query.data}")

    app = build_app(fake)
    app.add_handler(CommandHandler("start", start))
    app.add_handler(CallbackQueryHandler(pressed))
    async with app:
        await app.bot.set_my_commands([("start", "Start the bot")])
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0.0, timeout=1)
        await app.start()
        try:
            fake.user_sends(USER, "/start")
            [call_] = await fake.wait_for_sent_async("sendMessage", chat_id=USER)
            message = fake.last_message(USER)
            assert message is not None
            assert message.text == "Hello & welcome"
            assert message.entities == [{"type": "bold", "offset": 0, "length": 5}]
            fake.user_presses(USER, message.message_id, message.callback_data()[0])
            await fake.wait_for_sent_async("editMessageText", chat_id=USER)
            edited = fake.message(USER, message.message_id)
            assert edited is not None and edited.text == "pressed go" and edited.edited
            assert [a.text for a in fake.answered_callbacks] == ["done"]
            await fake.wait_for_async(lambda: fake.pending_updates == 0)
        finally:
            await app.updater.stop()
            await app.stop()
    assert fake.my_commands() == [{"command": "start", "description": "Start the bot"}]
    assert fake.sent("deleteWebhook")
    assert fake.malformed_calls == []
    assert call_.params["parse_mode"] == "HTML"


async def test_real_ptb_uploads_photos_and_maps_errors(fake: TelegramFake) -> None:
    image = png_bytes(8, 6)
    async with build_app(fake) as app:
        message = await app.bot.send_photo(USER, photo=image, caption="<i>chart</i>", parse_mode="HTML")
        assert message.photo[-1].file_size == len(image)
        assert message.caption == "chart"
        stored = fake.last_message(USER)
        assert stored is not None and stored.photo == image

        with pytest.raises(BadRequest, match="Chat not found"):
            await app.bot.send_message(999, "x")
        with pytest.raises(BadRequest, match="Message is too long"):
            await app.bot.send_message(USER, "x" * 5000)
        fake.block(USER, emit_update=False)
        with pytest.raises(Forbidden):
            await app.bot.send_message(USER, "x")
        fake.unblock(USER)
        fake.force_flood(1, retry_after=3)
        # The message names the delay; reading `.retry_after` would warn about its future type.
        with pytest.raises(RetryAfter, match="Retry in 3 seconds"):
            await app.bot.send_message(USER, "x")


async def test_real_ptb_polling_survives_an_outage(fake: TelegramFake) -> None:
    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        await update.effective_message.reply_text("back")

    app = build_app(fake)
    app.add_handler(CommandHandler("start", start))
    async with app:
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0.0, timeout=1, error_callback=lambda _err: None)
        await app.start()
        try:
            fake.start_outage("502")
            await fake.wait_for_async(lambda: fake.outage_hits >= 2, timeout=10)
            fake.end_outage()
            fake.user_sends(USER, "/start")
            await fake.wait_for_sent_async("sendMessage", chat_id=USER, timeout=20)
        finally:
            await app.updater.stop()
            await app.stop()
    last = fake.last_message(USER)
    assert last is not None and last.text == "back"
