"""Offline fake of the Telegram Bot API, served over loopback HTTP.

Point python-telegram-bot at it with `Application.builder().token(fake.token)
.base_url(f"{fake.base_url}/bot")` (or `TELEGRAM_BASE_URL=<base_url>/bot` for a subprocess).
It answers `POST|GET /bot<TOKEN>/<method>` with JSON, form-urlencoded or multipart bodies,
exactly in the Bot API envelope: `{"ok": true, "result": ...}` or
`{"ok": false, "error_code": N, "description": "..."}` with the same HTTP status.

It is deliberately at least as strict as the real service (HTML entity parsing, length
limits, button data, flood control), so a bot that passes against it does not get
`BadRequest` in production. Limitations: Markdown/MarkdownV2 text is accepted as plain
text (the product uses HTML), inline-mode messages are not modelled, and URL photos
cannot be fetched offline.

Updates reach the bot by long polling (`getUpdates`) or, after `setWebhook`, by webhook
delivery, modelled on telegram-bot-api (Client.cpp, WebhookActor.cpp):

* `setWebhook` validates like Telegram: an `https://` URL (a URL without a scheme is https)
  on port 80, 88, 443 or 8443, a `secret_token` of at most 256 `A-Za-z0-9_-` characters,
  at most one call with a URL per `set_webhook_interval` second (429 otherwise), the same
  settings again answer "Webhook is already set", and a new URL closes the old webhook
  before the new one is validated. Offline relaxations: `http://127.0.0.1:<port>/...` and
  `http://localhost:<port>/...` are accepted (no TLS), and an `https://` host is reachable
  only after `route_webhook_host(host, "http://127.0.0.1:<port>")` (a TLS-terminating edge);
  any other host "fails to resolve". Stricter than Telegram: `max_connections` outside
  1-100 is a 400 (Telegram silently clamps it).
* While a webhook is set `getUpdates` answers 409, and a pending long poll ends with 409.
* A dispatcher thread POSTs each queued update as JSON with `X-Telegram-Bot-Api-Secret-Token`,
  oldest first, at most `max_connections` requests at once over keep-alive connections, and
  like Telegram one update at a time per queue (a chat's messages, a user's callback
  queries...): the next update of a chat waits until the previous one was acknowledged.
  Only a 2xx answer removes an update; anything else is recorded in `getWebhookInfo`
  (`last_error_message`) and retried after `webhook_retry_delay` seconds (or the answer's
  `Retry-After`). A 2xx answer carrying a Bot API call (`{"method": "sendMessage", ...}`)
  is executed, as Telegram does. An update in flight when the webhook is deleted or
  changed stays queued (its acknowledgement is lost), so it can be delivered twice.
* Not modelled: Telegram's exponential back-off (1 s doubling to ~60 s) and its slow
  connection ramp-up after errors, update expiry (callback queries after 150 s), closing
  the webhook after repeated 410 answers, `ip_address`, certificate contents (an uploaded
  `certificate` only sets `has_custom_certificate`), and Telegram's ~60 s response timeout
  (here `webhook_timeout`, 10 s by default).

The test side (`user_sends`, `user_presses`, `sent`, `messages`, `wait_for`,
`webhook_attempts`...) is thread-safe and may be used from the test thread or an asyncio test.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import gzip
import http.client
import ipaddress
import itertools
import json
import math
import re
import socket
import struct
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Self
from urllib.parse import urlsplit

from .http_server import (
    BodyError,
    FakeRequest,
    FakeResponse,
    LoopbackHTTPService,
    UploadedFile,
    decode_body,
    json_response,
)
from .telegram_html import EntityParseError, parse_html, utf16_len

MESSAGE_LIMIT = 4096
CAPTION_LIMIT = 1024
CALLBACK_DATA_LIMIT = 64
MAX_INLINE_BUTTONS = 100
MAX_PHOTO_BYTES = 10 * 1024 * 1024

NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)
QUERY_TOO_OLD = "Bad Request: query is too old and response timeout expired or query ID is invalid"
CONFLICT = (
    "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"
)
WEBHOOK_ACTIVE = (
    "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"
)
TERMINATED_BY_SET_WEBHOOK = "Conflict: terminated by setWebhook request"
WEBHOOK_PORTS = frozenset({80, 88, 443, 8443})
MAX_WEBHOOK_CONNECTIONS = 100
DEFAULT_WEBHOOK_CONNECTIONS = 40
SECRET_TOKEN_LIMIT = 256
WEBHOOK_SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# Update types in telegram-bot-api's order (getWebhookInfo lists allowed_updates in it).
UPDATE_TYPES = (
    "message", "edited_message", "channel_post", "edited_channel_post", "inline_query",
    "chosen_inline_result", "callback_query", "shipping_query", "pre_checkout_query", "poll",
    "poll_answer", "my_chat_member", "chat_member", "chat_join_request", "chat_boost",
    "removed_chat_boost", "message_reaction", "message_reaction_count", "business_connection",
    "business_message", "edited_business_message", "deleted_business_messages", "purchased_paid_media",
)
# Webhook queues: Telegram sends one update at a time per queue, keyed like this (WebhookActor).
_MESSAGE_UPDATES = frozenset(
    {"message", "edited_message", "channel_post", "edited_channel_post", "business_message",
     "edited_business_message"}
)
_CHAT_KEYED_UPDATES = frozenset(
    {"my_chat_member", "message_reaction", "message_reaction_count", "chat_boost", "removed_chat_boost"}
)
_USER_KEYED_UPDATES = frozenset(
    {"callback_query", "inline_query", "chosen_inline_result", "chat_member", "chat_join_request",
     "shipping_query", "pre_checkout_query"}
)
# Methods Telegram does not execute when a webhook answer carries them (besides get*).
_IGNORED_REPLY_METHODS = frozenset({"setwebhook", "deletewebhook", "close", "logout"})

# Methods that send or change a message: these count towards flood control.
FLOOD_METHODS = frozenset(
    {
        "sendMessage", "sendPhoto", "sendDocument", "editMessageText", "editMessageCaption",
        "editMessageReplyMarkup",
    }
)
# Update types delivered when allowed_updates was never set or set to [] (Bot API docs).
DEFAULT_EXCLUDED_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
CHAT_ACTIONS = frozenset(
    {
        "typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice",
        "upload_document", "choose_sticker", "find_location", "record_video_note", "upload_video_note",
    }
)
BUTTON_ACTIONS = (
    "url", "callback_data", "web_app", "login_url", "switch_inline_query",
    "switch_inline_query_current_chat", "switch_inline_query_chosen_chat", "copy_text",
    "callback_game", "pay",
)
# Fields PTB sends JSON-encoded inside form bodies; decoded once so records hold real values.
_JSON_FIELDS = frozenset(
    {
        "reply_markup", "entities", "caption_entities", "commands", "scope", "allowed_updates",
        "link_preview_options", "reply_parameters",
    }
)
_INT_FIELDS = frozenset({"message_id", "offset", "limit", "message_thread_id", "cache_time"})
_BUTTON_ERROR = "can't parse inline keyboard button"
_COMMAND_RE = re.compile(r"^[a-z0-9_]{1,32}$")
_BOT_COMMAND_RE = re.compile(r"^/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{1,64})?(?=\s|$)")
_PATH_RE = re.compile(r"^/bot(?P<token>[^/]+)/(?P<method>[A-Za-z0-9_]+)/?$")
_SECRET_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]*$")
_URL_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_LOOPBACK_WEBHOOK_HOSTS = frozenset({"127.0.0.1", "localhost"})


class ApiError(Exception):
    """An error answer of the Bot API."""

    def __init__(self, status: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after


def _bad(description: str) -> ApiError:
    return ApiError(400, f"Bad Request: {description}")


# --------------------------------------------------------------------------------------------
# Records and state visible to tests
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SentCall:
    """One successful Bot API call made by the bot (getUpdates is not recorded)."""

    method: str
    params: dict[str, Any]
    time: float  # time.monotonic() when answered
    result: Any


@dataclass(frozen=True)
class ErrorAnswer:
    """One 4xx answer the fake gave (409 getUpdates conflicts excluded)."""

    method: str
    params: dict[str, Any]
    status: int
    description: str
    time: float


@dataclass(frozen=True)
class AnsweredCallback:
    """A successful answerCallbackQuery."""

    callback_query_id: str
    text: str | None
    show_alert: bool
    url: str | None
    time: float


class WebhookAttempt(NamedTuple):
    """One webhook delivery attempt: the update and the HTTP status answered, or the error text
    (`"Connection refused"`, `"Read timeout expired"`...). Compares equal to a plain tuple."""

    update_id: int
    outcome: int | str


@dataclass(frozen=True)
class _Webhook:
    """Settings of the webhook in place (what setWebhook stored)."""

    url: str
    secret_token: str
    max_connections: int
    has_certificate: bool
    connect_host: str  # where the fake connects (loopback)
    connect_port: int
    host_header: str
    target: str  # path and query of the POST
    authorization: str | None  # from user:password@ in the URL
    ip_address: str


@dataclass
class _WebhookRun:
    """Delivery state of one webhook while the fake serves it; `closed` ends it."""

    hook: _Webhook
    closed: bool = False
    in_flight: set[int] = field(default_factory=set)
    busy_queues: set[tuple[str, Any]] = field(default_factory=set)
    retry_at: dict[int, float] = field(default_factory=dict)  # update_id -> time.monotonic()
    idle: list[http.client.HTTPConnection] = field(default_factory=list)
    active: set[http.client.HTTPConnection] = field(default_factory=set)
    threads: set[threading.Thread] = field(default_factory=set)


@dataclass(frozen=True)
class _Described:
    """A method result whose envelope carries a `description` too (setWebhook, deleteWebhook)."""

    value: Any
    description: str


@dataclass(frozen=True)
class _DeliveryResult:
    outcome: int | str
    error: str | None  # getWebhookInfo's last_error_message when the attempt failed
    retry_after: float | None = None
    reply: bytes = b""
    reply_type: str = ""


@dataclass
class StoredMessage:
    """Current state of one message in a chat (bot messages unless `from_bot` is False)."""

    chat_id: int
    message_id: int
    date: int
    from_bot: bool
    user_id: int | None = None
    text: str | None = None
    entities: list[dict[str, Any]] = field(default_factory=list)
    caption: str | None = None
    caption_entities: list[dict[str, Any]] = field(default_factory=list)
    reply_markup: dict[str, Any] | None = None
    edited: bool = False
    edit_date: int | None = None
    photo: bytes | None = None
    document: bytes | None = None
    document_name: str | None = None
    file_id: str | None = None
    silent: bool = False
    reply_to_message_id: int | None = None
    raw_text: str | None = None  # text or caption exactly as the bot sent it (markup included)
    parse_mode: str | None = None

    @property
    def photo_size(self) -> int | None:
        """Size in bytes of the uploaded photo, None for non-photo messages."""
        return None if self.photo is None else len(self.photo)

    @property
    def content(self) -> str:
        """Visible text or caption."""
        return self.text if self.text is not None else (self.caption or "")

    def buttons(self) -> list[dict[str, Any]]:
        """All inline keyboard buttons, row by row."""
        if not self.reply_markup:
            return []
        return [button for row in self.reply_markup.get("inline_keyboard", []) for button in row]

    def callback_data(self) -> list[str]:
        """callback_data of every callback button, in order."""
        return [b["callback_data"] for b in self.buttons() if "callback_data" in b]

    def button(self, text_contains: str) -> dict[str, Any]:
        """The first button whose text contains `text_contains` (KeyError when none)."""
        for b in self.buttons():
            if text_contains in b.get("text", ""):
                return b
        raise KeyError(f"no button containing {text_contains!r} in message {self.message_id}")


@dataclass
class _Chat:
    id: int
    type: str
    title: str | None = None
    user_id: int | None = None

    def to_api(self, users: dict[int, dict[str, Any]]) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "type": self.type}
        if self.type == "private" and self.user_id in users:
            user = users[self.user_id]
            data["first_name"] = user["first_name"]
            for key in ("last_name", "username"):
                if key in user:
                    data[key] = user[key]
        else:
            data["title"] = self.title or f"Chat {self.id}"
        return data


class _Params:
    """Typed access to decoded request parameters, raising Bot API errors."""

    def __init__(self, raw: dict[str, Any], files: dict[str, UploadedFile]) -> None:
        self.raw = raw
        self.files = files

    def get(self, name: str) -> Any:
        return self.raw.get(name)

    def opt_str(self, name: str) -> str | None:
        value = self.raw.get(name)
        if value is None:
            return None
        return value if isinstance(value, str) else str(value)

    def opt_int(self, name: str) -> int | None:
        value = self.raw.get(name)
        if value is None or value == "":
            return None
        if isinstance(value, bool):
            raise _bad(f"invalid {name} specified")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise _bad(f"invalid {name} specified") from None

    def opt_float(self, name: str) -> float | None:
        value = self.raw.get(name)
        if value is None or value == "":
            return None
        try:
            return float(value)
        except (TypeError, ValueError):
            raise _bad(f"invalid {name} specified") from None

    def opt_bool(self, name: str) -> bool:
        value = self.raw.get(name)
        if isinstance(value, str):
            return value.lower() in ("true", "1")
        return bool(value)

    def opt_json(self, name: str, error: str) -> Any:
        value = self.raw.get(name)
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                raise _bad(error) from None
        return value


def _normalize(raw: dict[str, Any], files: dict[str, UploadedFile]) -> dict[str, Any]:
    """Decode JSON-in-form fields and obvious ints so recorded params hold real values."""
    params: dict[str, Any] = dict(raw)
    for key, value in raw.items():
        if key in _JSON_FIELDS and isinstance(value, str):
            try:
                params[key] = json.loads(value)
            except ValueError:
                params[key] = value  # left raw; the method reports the parse error
        elif (key in _INT_FIELDS or key == "chat_id") and isinstance(value, str):
            if re.fullmatch(r"-?\d+", value):
                params[key] = int(value)
    params.update(files)
    return params


def _image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height of a PNG, JPEG, GIF or WEBP image; None when it is not one."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    if data.startswith(b"GIF8") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return width, height
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return 1, 1
    if data.startswith(b"\xff\xd8"):
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                i += 1
                continue
            marker = data[i + 1]
            if marker in (0xC0, 0xC1, 0xC2):
                height, width = struct.unpack(">HH", data[i + 5:i + 9])
                return width, height
            (seg_len,) = struct.unpack(">H", data[i + 2:i + 4])
            i += 2 + seg_len
        return 1, 1
    return None


def _update_kind(update: dict[str, Any]) -> str:
    """The update's type: its one key besides update_id."""
    return next((k for k in update if k != "update_id"), "")


def _webhook_queue_key(update: dict[str, Any]) -> tuple[str, Any]:
    """The webhook queue of an update: Telegram sends one update per queue at a time (a chat's
    messages, a user's callback queries...); an update of no known queue has its own."""
    kind = _update_kind(update)
    body = update.get(kind)
    if isinstance(body, dict):
        chat = body.get("chat")
        sender = body.get("from")
        if kind in _MESSAGE_UPDATES and isinstance(chat, dict) and "id" in chat:
            return "chat", chat["id"]
        if kind in _CHAT_KEYED_UPDATES and isinstance(chat, dict) and "id" in chat:
            return kind, chat["id"]
        if kind in _USER_KEYED_UPDATES and isinstance(sender, dict) and "id" in sender:
            return kind, sender["id"]
        if kind == "poll" and "id" in body:
            return "poll", body["id"]
        if kind == "poll_answer" and "poll_id" in body:
            return "poll", body["poll_id"]
    return "update", update.get("update_id")


def _webhook_error_text(exc: Exception, stage: str) -> str:
    """getWebhookInfo's wording for a failed delivery."""
    if isinstance(exc, TimeoutError):
        return "Connection timed out" if stage == "connect" else "Read timeout expired"
    if isinstance(exc, ConnectionRefusedError):
        return "Connection refused"
    if isinstance(exc, http.client.RemoteDisconnected):  # closed without an answer (a ConnectionResetError)
        return "Webhook connection closed"
    if isinstance(exc, ConnectionResetError):
        return "Connection reset by peer"
    if isinstance(exc, http.client.HTTPException):
        return f"Wrong response from the webhook: {type(exc).__name__}"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return f"{type(exc).__name__}: {exc}"


def _retry_after_header(value: str | None) -> float | None:
    """Seconds of a webhook answer's Retry-After header (Telegram honours up to an hour)."""
    if value is None or not value.strip().isdigit():
        return None
    return float(min(int(value.strip()), 3600))


def _decompress(data: bytes, encoding: str | None) -> bytes:
    """Undo gzip/deflate (the fake sends Accept-Encoding like Telegram); b"" when corrupt."""
    try:
        if encoding and encoding.lower() == "gzip":
            return gzip.decompress(data)
        if encoding and encoding.lower() == "deflate":
            return zlib.decompress(data)
    except (OSError, zlib.error, EOFError):
        return b""
    return data


OutageMode = Literal["502", "close"]


class TelegramFake(LoopbackHTTPService):
    """A loopback Telegram Bot API server with a test-side control API.

    Flood-control defaults: at most `per_chat_limit` message sends/edits per chat within
    `per_chat_window` seconds and `global_limit` within `global_window`. The global default
    (60/s) is what a bot honouring Telegram's 30/s with a burst of 30 (PTB's AIORateLimiter)
    can reach in a sliding one-second window, so only a bot without rate limiting trips it.

    Webhook knobs (plain attributes, settable at any time): `webhook_timeout` (seconds to
    connect and to wait for an answer, 10), `webhook_retry_delay` (seconds before a failed
    delivery is retried, 0.2) and `set_webhook_interval` (Telegram's one setWebhook with a URL
    per second; 0 lifts it). Records: `webhook_attempts()`, `webhook_delivered()`,
    `webhook_in_flight`, `webhook_peak_in_flight`; routing: `route_webhook_host()`.
    """

    def __init__(
        self,
        token: str = "123456789:TEST-fake-token",
        *,
        bot_username: str = "fake_trading_bot",
        bot_first_name: str = "Fake Trading Bot",
        per_chat_limit: int = 30,
        per_chat_window: float = 1.0,
        global_limit: int = 60,
        global_window: float = 1.0,
    ) -> None:
        super().__init__()
        bot_id, sep, secret = token.partition(":")
        if not bot_id.isdigit() or not sep or not secret:
            raise ValueError("token must look like '<digits>:<secret>'")
        self.token = token
        self.bot_id = int(bot_id)
        self.bot_username = bot_username
        self.bot_first_name = bot_first_name
        self.per_chat_limit = per_chat_limit
        self.per_chat_window = per_chat_window
        self.global_limit = global_limit
        self.global_window = global_window
        self._users: dict[int, dict[str, Any]] = {}
        self._chats: dict[int, _Chat] = {}
        self._blocked: set[int] = set()
        self._messages: dict[int, dict[int, StoredMessage]] = {}
        self._next_message_id: dict[int, int] = {}
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1000)
        self._callback_ids = itertools.count(4_000_000_000_000_000)
        self._file_ids = itertools.count(1)
        self._pending_callbacks: dict[str, dict[str, Any]] = {}
        self._files: dict[str, bytes] = {}
        self._allowed_updates: frozenset[str] | None = None
        self._poll_generation = 0
        self._commands: dict[tuple[str, str], list[dict[str, str]]] = {}
        self._sent: list[SentCall] = []
        self._errors: list[ErrorAnswer] = []
        self._answered: list[AnsweredCallback] = []
        self._request_counts: dict[str, int] = {}
        self._chat_sends: dict[int, deque[float]] = {}
        self._global_sends: deque[float] = deque()
        self._forced_floods = 0
        self._forced_retry_after = 1
        self._forced_methods: frozenset[str] = FLOOD_METHODS
        self._outage_mode: OutageMode | None = None
        self._outage_until: float | None = None
        self._outage_hits = 0
        self._conflicts = 0
        self._slow: dict[str, tuple[float, int | None]] = {}  # method -> (seconds, calls left; None: all)
        # Webhook: settings, the delivery run while served, and test-side records.
        self.webhook_timeout = 10.0  # seconds to connect and to wait for the webhook's answer
        self.webhook_retry_delay = 0.2  # seconds before a failed delivery is retried
        self.set_webhook_interval = 1.0  # Telegram allows one setWebhook with a URL per second
        self._webhook: _Webhook | None = None
        self._webhook_run: _WebhookRun | None = None
        self._webhook_routes: dict[str, tuple[str, int]] = {}
        self._last_webhook_error: tuple[int, str] | None = None
        self._last_set_webhook: float | None = None  # time.monotonic() of the last setWebhook with a URL
        self._webhook_attempts: list[WebhookAttempt] = []
        self._webhook_delivered: list[int] = []
        self._webhook_peak_in_flight = 0
        self._methods: dict[str, tuple[str, Callable[[_Params], Any]]] = {
            name.lower(): (name, fn)
            for name, fn in {
                "getMe": self._get_me,
                "getUpdates": self._get_updates,
                "setWebhook": self._set_webhook,
                "deleteWebhook": self._delete_webhook,
                "getWebhookInfo": self._get_webhook_info,
                "setMyCommands": self._set_my_commands,
                "getMyCommands": self._get_my_commands,
                "deleteMyCommands": self._delete_my_commands,
                "sendMessage": self._send_message,
                "sendPhoto": self._send_photo,
                "sendDocument": self._send_document,
                "editMessageText": self._edit_message_text,
                "editMessageCaption": self._edit_message_caption,
                "editMessageReplyMarkup": self._edit_message_reply_markup,
                "deleteMessage": self._delete_message,
                "answerCallbackQuery": self._answer_callback_query,
                "sendChatAction": self._send_chat_action,
            }.items()
        }

    # ======================================================================================
    # Test-side API
    # ======================================================================================

    @property
    def bot_user(self) -> dict[str, Any]:
        """The bot's User object as getMe returns it."""
        return {
            "id": self.bot_id, "is_bot": True, "first_name": self.bot_first_name,
            "username": self.bot_username, "can_join_groups": True,
            "can_read_all_group_messages": False, "supports_inline_queries": False,
            "can_connect_to_business": False, "has_main_web_app": False,
        }

    def add_chat(
        self,
        chat_id: int,
        chat_type: str = "private",
        *,
        title: str | None = None,
        first_name: str | None = None,
        username: str | None = None,
    ) -> None:
        """Make a chat known to the bot without a message (e.g. a user from a previous run)."""
        with self._cond:
            self._ensure_chat(chat_id, chat_type, chat_id if chat_type == "private" else None, title)
            if chat_type == "private":
                self._ensure_user(chat_id, first_name, username)

    def user_sends(
        self,
        user_id: int,
        text: str,
        *,
        chat_id: int | None = None,
        chat_type: str = "private",
        first_name: str | None = None,
        username: str | None = None,
        last_name: str | None = None,
        language_code: str = "en",
        title: str | None = None,
    ) -> int:
        """Queue a text message from a user; returns its update_id.

        A leading `/command` (optionally `@botname`) gets a bot_command entity. Group chats
        need a negative id (one is derived from the user id when omitted).
        """
        if chat_type not in ("private", "group", "supergroup"):
            raise ValueError(f"unsupported chat_type {chat_type!r}")
        if chat_id is None:
            chat_id = user_id if chat_type == "private" else (
                -user_id if chat_type == "group" else -(10**12 + user_id)
            )
        if chat_type != "private" and chat_id >= 0:
            raise ValueError("group chats have negative ids")
        if chat_type == "private" and chat_id != user_id:
            raise ValueError("a private chat id equals the user id")
        with self._cond:
            user = self._ensure_user(user_id, first_name, username, last_name, language_code)
            chat = self._ensure_chat(chat_id, chat_type, user_id if chat_type == "private" else None, title)
            message = StoredMessage(
                chat_id=chat_id, message_id=self._new_message_id(chat_id), date=int(time.time()),
                from_bot=False, user_id=user_id, text=text, raw_text=text,
            )
            command = _BOT_COMMAND_RE.match(text)
            if command:
                length = utf16_len(command.group(0))
                message.entities = [{"type": "bot_command", "offset": 0, "length": length}]
            self._messages.setdefault(chat_id, {})[message.message_id] = message
            payload = self._message_dict(message)
            payload["from"] = dict(user)
            payload["chat"] = chat.to_api(self._users)
            return self._enqueue({"message": payload})

    def user_edits(self, user_id: int, message_id: int, text: str) -> int:
        """Queue an `edited_message` update: the user changed the text of their private message."""
        with self._cond:
            message = self._messages.get(user_id, {}).get(message_id)
            if message is None or message.from_bot or message.user_id != user_id:
                raise ValueError("users can only edit their own messages")
            message.text = message.raw_text = text
            command = _BOT_COMMAND_RE.match(text)
            message.entities = ([{"type": "bot_command", "offset": 0, "length": utf16_len(command.group(0))}]
                                if command else [])
            payload = self._message_dict(message)
            payload["from"] = dict(self._users[user_id])
            payload["chat"] = self._chats[user_id].to_api(self._users)
            payload["edit_date"] = int(time.time())
            return self._enqueue({"edited_message": payload})

    def user_sends_media(self, user_id: int, kind: str, *, caption: str | None = None) -> int:
        """Queue a non-text private message (`sticker`, `photo`, `location` or `voice`), as clients send them."""
        bodies: dict[str, Any] = {
            "sticker": {"file_id": "CAACAgIAAx0", "file_unique_id": "AgADsticker", "type": "regular", "width": 512,
                        "height": 512, "is_animated": False, "is_video": False},
            "photo": [{"file_id": "AgACAgIAAx0", "file_unique_id": "AQADphoto", "width": 90, "height": 90}],
            "location": {"latitude": -6.2, "longitude": 106.8},
            "voice": {"file_id": "AwACAgIAAx0", "file_unique_id": "AgADvoice", "duration": 2},
        }
        if kind not in bodies:
            raise ValueError(f"unsupported media kind {kind!r}")
        with self._cond:
            user = self._ensure_user(user_id, None, None)
            chat = self._ensure_chat(user_id, "private", user_id, None)
            message_id = self._new_message_id(user_id)
            payload: dict[str, Any] = {"message_id": message_id, "date": int(time.time()), "from": dict(user),
                                       "chat": chat.to_api(self._users), kind: bodies[kind]}
            if caption is not None:
                payload["caption"] = caption
            return self._enqueue({"message": payload})

    def user_presses(self, user_id: int, message_id: int, data: str, *, chat_id: int | None = None) -> str:
        """Queue a callback query for a button press; returns the callback_query_id.

        `data` is sent verbatim, so tests can forge data a modified client could send. A
        message that no longer exists is delivered as an inaccessible message (date 0).
        """
        if chat_id is None:
            chat_id = user_id
        with self._cond:
            user = self._ensure_user(user_id, None, None)
            chat = self._chats.get(chat_id) or self._ensure_chat(
                chat_id, "private" if chat_id > 0 else "group", user_id if chat_id > 0 else None, None
            )
            stored = self._messages.get(chat_id, {}).get(message_id)
            if stored is None:
                message = {"chat": chat.to_api(self._users), "message_id": message_id, "date": 0}
            else:
                message = self._message_dict(stored)
            query_id = str(next(self._callback_ids))
            query = {
                "id": query_id, "from": dict(user), "message": message,
                "chat_instance": str(abs(chat_id) * 7919 + 17), "data": data,
            }
            self._pending_callbacks[query_id] = query
            self._enqueue({"callback_query": query})
            return query_id

    def user_presses_inline(self, user_id: int, inline_message_id: str, data: str) -> str:
        """Queue a press on a button of an inline-mode message (no `message`, only an
        `inline_message_id`, as Telegram sends it); returns the callback_query_id."""
        with self._cond:
            user = self._ensure_user(user_id, None, None)
            query_id = str(next(self._callback_ids))
            query = {"id": query_id, "from": dict(user), "inline_message_id": inline_message_id,
                     "chat_instance": str(user_id * 7919 + 17), "data": data}
            self._pending_callbacks[query_id] = query
            self._enqueue({"callback_query": query})
            return query_id

    def add_update(self, update: dict[str, Any]) -> int:
        """Queue a raw update dict (update_id assigned when missing); returns its update_id."""
        with self._cond:
            body = {k: v for k, v in update.items() if k != "update_id"}
            return self._enqueue(body, update.get("update_id"))

    def block(self, user_id: int, *, emit_update: bool = True) -> None:
        """Mark the user as having blocked the bot: sends to them answer 403.

        Like Telegram, a `my_chat_member` update (status kicked) is queued unless disabled.
        """
        with self._cond:
            self._blocked.add(user_id)
            if emit_update:
                user = self._ensure_user(user_id, None, None)
                chat = self._ensure_chat(user_id, "private", user_id, None)
                self._enqueue({"my_chat_member": {
                    "chat": chat.to_api(self._users), "from": dict(user), "date": int(time.time()),
                    "old_chat_member": {"status": "member", "user": self.bot_user},
                    "new_chat_member": {"status": "kicked", "user": self.bot_user, "until_date": 0},
                }})

    def unblock(self, user_id: int) -> None:
        """The user unblocked the bot."""
        with self._cond:
            self._blocked.discard(user_id)

    def sent(self, method: str | None = None, chat_id: int | None = None) -> list[SentCall]:
        """Successful calls, optionally filtered by method name and chat_id."""
        with self._cond:
            return [
                call for call in self._sent
                if (method is None or call.method == method)
                and (chat_id is None or call.params.get("chat_id") == chat_id)
            ]

    def sent_since(self, index: int) -> tuple[list[SentCall], int]:
        """Successful calls after the first `index` ones, and the new count: a poller that keeps
        the count reads each call once (O(new calls), not O(all calls) per poll)."""
        with self._cond:
            return self._sent[index:], len(self._sent)

    def messages(self, chat_id: int) -> list[StoredMessage]:
        """Current state of the bot's messages in a chat, oldest first (copies)."""
        with self._cond:
            store = self._messages.get(chat_id, {})
            return [copy.deepcopy(m) for _, m in sorted(store.items()) if m.from_bot]

    def user_messages(self, chat_id: int) -> list[StoredMessage]:
        """What users sent in a chat, oldest first (copies; their current text after edits)."""
        with self._cond:
            store = self._messages.get(chat_id, {})
            return [copy.deepcopy(m) for _, m in sorted(store.items()) if not m.from_bot]

    def last_message(self, chat_id: int) -> StoredMessage | None:
        """The newest bot message still present in the chat."""
        messages = self.messages(chat_id)
        return messages[-1] if messages else None

    def message(self, chat_id: int, message_id: int) -> StoredMessage | None:
        """One message (bot or user) by id, or None when missing or deleted."""
        with self._cond:
            found = self._messages.get(chat_id, {}).get(message_id)
            return copy.deepcopy(found) if found else None

    @property
    def answered_callbacks(self) -> list[AnsweredCallback]:
        """Successful answerCallbackQuery calls."""
        with self._cond:
            return list(self._answered)

    @property
    def unanswered_callbacks(self) -> list[str]:
        """Callback query ids the bot has not answered yet."""
        with self._cond:
            return list(self._pending_callbacks)

    @property
    def errors(self) -> list[ErrorAnswer]:
        """Every 4xx answer given (including forced 429s and 403s to blocked users)."""
        with self._cond:
            return list(self._errors)

    @property
    def malformed_calls(self) -> list[ErrorAnswer]:
        """4xx answers that mean the bot made a wrong call (400, 401, 404)."""
        return [e for e in self.errors if e.status in (400, 401, 404)]

    @property
    def pending_updates(self) -> int:
        """Updates queued and not yet confirmed by a getUpdates offset or acknowledged by the webhook."""
        with self._cond:
            return len(self._updates)

    @property
    def request_counts(self) -> dict[str, int]:
        """Requests received per method (getUpdates included, outage hits excluded)."""
        with self._cond:
            return dict(self._request_counts)

    @property
    def outage_hits(self) -> int:
        """Requests answered with an outage (502 or dropped connection)."""
        with self._cond:
            return self._outage_hits

    @property
    def conflicts(self) -> int:
        """getUpdates requests ended with 409 because a newer one arrived."""
        with self._cond:
            return self._conflicts

    def my_commands(
        self, scope: dict[str, Any] | None = None, language_code: str = ""
    ) -> list[dict[str, str]]:
        """Commands registered with setMyCommands for a scope (default scope when None)."""
        with self._cond:
            return list(self._commands.get(self._commands_key(scope, language_code), []))

    def reset_records(self) -> None:
        """Forget sent calls, errors, answered callbacks and counters (chats and messages stay)."""
        with self._cond:
            self._sent.clear()
            self._errors.clear()
            self._answered.clear()
            self._request_counts.clear()
            self._outage_hits = 0
            self._conflicts = 0
            self._webhook_attempts.clear()
            self._webhook_delivered.clear()
            self._webhook_peak_in_flight = 0

    def force_flood(self, count: int, retry_after: int = 1, methods: Iterable[str] | None = None) -> None:
        """Answer the next `count` calls of `methods` (default: message sends/edits) with 429."""
        with self._cond:
            self._forced_floods = count
            self._forced_retry_after = retry_after
            self._forced_methods = frozenset(methods) if methods is not None else FLOOD_METHODS

    def start_outage(self, mode: OutageMode = "502", duration: float | None = None) -> None:
        """Fail every request with 502 Bad Gateway ("502") or a dropped connection ("close").

        Lasts `duration` seconds, or until `end_outage()` when None.
        """
        with self._cond:
            self._outage_mode = mode
            self._outage_until = None if duration is None else time.monotonic() + duration

    def end_outage(self) -> None:
        """Serve normally again."""
        with self._cond:
            self._outage_mode = None
            self._outage_until = None
            self._cond.notify_all()

    def slow_down(self, method: str, seconds: float, count: int | None = 1) -> None:
        """Answer the next `count` successful `method` calls (None: every one) `seconds` late.

        The call takes effect first (a sendMessage is stored and recorded in `sent`), then the
        answer waits: a Telegram that delivered the message but whose answer a client with a
        shorter read timeout never sees, so it cannot know the outcome. `seconds <= 0` or
        `count == 0` ends it. Getting updates is never slowed.
        """
        with self._cond:
            if seconds <= 0 or count == 0:
                self._slow.pop(method, None)
            else:
                self._slow[method] = (seconds, count)

    def _slow_delay(self, method: str) -> float:
        """Seconds to hold back this answer (uses up one of `slow_down`'s calls); call under the lock."""
        entry = self._slow.get(method)
        if entry is None:
            return 0.0
        seconds, left = entry
        if left is not None:
            if left <= 1:
                del self._slow[method]
            else:
                self._slow[method] = (seconds, left - 1)
        return seconds

    @property
    def outage_active(self) -> bool:
        """True while requests are failed by an outage."""
        with self._cond:
            return self._outage_now()

    def wait_for_sent(
        self, method: str, *, chat_id: int | None = None, count: int = 1, timeout: float = 10.0
    ) -> list[SentCall]:
        """Block until at least `count` matching calls were made; returns them."""
        return self.wait_for(lambda: self._enough(method, chat_id, count), timeout)

    async def wait_for_sent_async(
        self,
        method: str,
        *,
        chat_id: int | None = None,
        count: int = 1,
        timeout: float = 10.0,
    ) -> list[SentCall]:
        """Async `wait_for_sent`."""
        return await self.wait_for_async(lambda: self._enough(method, chat_id, count), timeout)

    def _enough(self, method: str, chat_id: int | None, count: int) -> list[SentCall]:
        calls = self.sent(method, chat_id)
        return calls if len(calls) >= count else []

    # webhook (test side) -----------------------------------------------------------------------

    @property
    def webhook_url(self) -> str:
        """The URL set with setWebhook, "" when updates are fetched with getUpdates."""
        with self._cond:
            return self._webhook.url if self._webhook else ""

    def webhook_attempts(self, update_id: int | None = None) -> list[WebhookAttempt]:
        """Every delivery attempt in order of completion: `(update_id, status or error text)`.

        Attempts cut short because the webhook was deleted or the fake stopped are not listed.
        """
        with self._cond:
            return [a for a in self._webhook_attempts if update_id is None or a.update_id == update_id]

    def webhook_delivered(self) -> list[int]:
        """update_ids the webhook answered with 2xx, in order of delivery (a redelivery appears twice)."""
        with self._cond:
            return list(self._webhook_delivered)

    @property
    def webhook_in_flight(self) -> int:
        """Webhook requests currently waiting for an answer."""
        with self._cond:
            return len(self._webhook_run.in_flight) if self._webhook_run else 0

    @property
    def webhook_peak_in_flight(self) -> int:
        """Most webhook requests that were in flight at once (since the start or `reset_records`)."""
        with self._cond:
            return self._webhook_peak_in_flight

    def route_webhook_host(self, host: str, base_url: str | None) -> None:
        """Make `https://<host>/...` webhooks reachable offline: deliveries go as plain HTTP to
        `base_url` (`http://127.0.0.1:<port>`, e.g. a `LoopbackBalancer`), with the original Host
        header and path, as through a TLS-terminating edge. `None` removes the route.
        Takes effect for the next setWebhook.
        """
        with self._cond:
            if base_url is None:
                self._webhook_routes.pop(host.lower(), None)
                return
            parts = urlsplit(base_url)
            if parts.scheme != "http" or parts.hostname not in _LOOPBACK_WEBHOOK_HOSTS or not parts.port:
                raise ValueError("route to a loopback base URL such as http://127.0.0.1:8080")
            if parts.path not in ("", "/"):
                raise ValueError("the route's base URL cannot have a path")
            self._webhook_routes[host.lower()] = ("127.0.0.1", parts.port)

    def wait_for_webhook_delivery(self, update_id: int, *, count: int = 1, timeout: float = 10.0) -> None:
        """Block until the webhook acknowledged `update_id` at least `count` times."""
        self.wait_for(lambda: self._webhook_delivered.count(update_id) >= count, timeout)

    async def wait_for_webhook_delivery_async(self, update_id: int, *, count: int = 1, timeout: float = 10.0) -> None:
        """Async `wait_for_webhook_delivery`."""
        await self.wait_for_async(lambda: self._webhook_delivered.count(update_id) >= count, timeout)

    # lifecycle -----------------------------------------------------------------------------------

    def start(self) -> Self:
        """Serve; a webhook set before a `stop()` is delivered to again."""
        super().start()
        with self._cond:
            if self._webhook is not None and self._webhook_run is None:
                self._start_webhook_run(self._webhook)
        return self

    def stop(self) -> None:
        """Stop webhook delivery (in-flight requests are cut), then stop serving. The webhook
        stays set, as on Telegram."""
        with self._cond:
            run = self._webhook_run
            self._webhook_run = None
            if run is not None:
                self._close_webhook_run(run)
        if run is not None:
            for thread in list(run.threads):
                thread.join(timeout=5)
        super().stop()

    # ======================================================================================
    # HTTP entry point
    # ======================================================================================

    def handle(self, request: FakeRequest) -> FakeResponse:
        """Route one Bot API request."""
        match = _PATH_RE.match(request.path)
        with self._cond:
            if self._outage_now():
                self._outage_hits += 1
                if self._outage_mode == "close":
                    return FakeResponse(drop_connection=True)
                return FakeResponse(
                    status=502, content_type="text/html",
                    body=b"<html><head><title>502 Bad Gateway</title></head>"
                    b"<body><center><h1>502 Bad Gateway</h1></center></body></html>",
                )
        if match is None:
            return self._error_response("", {}, ApiError(404, "Not Found"), record=True)
        token, method_name = match.group("token"), match.group("method")
        if token != self.token:
            return self._error_response(method_name, {}, ApiError(401, "Unauthorized"), record=True)
        entry = self._methods.get(method_name.lower())
        if entry is None:
            return self._error_response(method_name, {}, ApiError(404, "Not Found"), record=True)
        canonical, fn = entry
        try:
            raw, files = decode_body(request)
        except BodyError as exc:
            return self._error_response(canonical, {}, _bad(str(exc)), record=True)
        params = _normalize(raw, files)
        with self._cond:
            self._request_counts[canonical] = self._request_counts.get(canonical, 0) + 1
        if canonical == "getUpdates":
            # Long polling waits on the condition itself, so it runs outside the lock.
            try:
                return self._ok(self._get_updates(_Params(raw, files)))
            except ApiError as exc:
                return self._error_response(canonical, params, exc, record=True)
        description: str | None = None
        try:
            with self._cond:
                self._check_forced_flood(canonical)
                result = fn(_Params(raw, files))
                if isinstance(result, _Described):
                    result, description = result.value, result.description
                self._sent.append(SentCall(canonical, params, time.monotonic(), copy.deepcopy(result)))
                self._cond.notify_all()
                delay = self._slow_delay(canonical)
        except ApiError as exc:
            return self._error_response(canonical, params, exc, record=True)
        if delay:  # outside the lock: other requests are served meanwhile
            self._sleep(delay)
        return self._ok(result, description)

    def _ok(self, result: Any, description: str | None = None) -> FakeResponse:
        body: dict[str, Any] = {"ok": True, "result": result}
        if description is not None:
            body["description"] = description
        return json_response(200, body)

    def _error_response(
        self, method: str, params: dict[str, Any], exc: ApiError, *, record: bool
    ) -> FakeResponse:
        body: dict[str, Any] = {"ok": False, "error_code": exc.status, "description": exc.description}
        if exc.retry_after is not None:
            body["parameters"] = {"retry_after": exc.retry_after}
        if record and exc.status != 409:
            with self._cond:
                answer = ErrorAnswer(method, params, exc.status, exc.description, time.monotonic())
                self._errors.append(answer)
                self._cond.notify_all()
        return json_response(exc.status, body)

    def _outage_now(self) -> bool:
        if self._outage_mode is None:
            return False
        if self._outage_until is not None and time.monotonic() >= self._outage_until:
            self._outage_mode = None
            self._outage_until = None
            return False
        return True

    # ======================================================================================
    # getUpdates (long polling)
    # ======================================================================================

    def _get_updates(self, p: _Params) -> Any:
        """Answer getUpdates: confirm by offset, filter, and long-poll up to `timeout`."""
        with self._cond:
            if self._webhook is not None:  # checked first: offsets are not confirmed either
                raise ApiError(409, WEBHOOK_ACTIVE)
        offset = p.opt_int("offset") or 0
        limit = min(max(p.opt_int("limit") or 100, 1), 100)
        timeout = max(p.opt_float("timeout") or 0.0, 0.0)
        allowed = self._parse_allowed_updates(p)
        with self._cond:
            if self._webhook is not None:
                raise ApiError(409, WEBHOOK_ACTIVE)
            self._poll_generation += 1
            generation = self._poll_generation
            self._cond.notify_all()  # an older poll still waiting ends with 409
            self._apply_allowed_updates(allowed)
            if offset > 0:
                self._updates = [u for u in self._updates if u["update_id"] >= offset]
            elif offset < 0:
                self._updates = self._updates[offset:]
            deadline = time.monotonic() + timeout
            while True:
                if self._webhook is not None:
                    raise ApiError(409, TERMINATED_BY_SET_WEBHOOK)
                if generation != self._poll_generation:
                    self._conflicts += 1
                    raise ApiError(409, CONFLICT)
                self._drop_disallowed_updates()
                if self._updates or self._stopping.is_set():
                    self._cond.notify_all()
                    return copy.deepcopy(self._updates[:limit])
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                self._cond.wait(remaining)

    def _drop_disallowed_updates(self) -> None:
        def allowed(update: dict[str, Any]) -> bool:
            kind = _update_kind(update)
            if self._allowed_updates is None:
                return kind not in DEFAULT_EXCLUDED_UPDATES
            return kind in self._allowed_updates

        self._updates = [u for u in self._updates if allowed(u)]

    @staticmethod
    def _parse_allowed_updates(p: _Params) -> list[str] | None:
        """The `allowed_updates` JSON list of getUpdates and setWebhook (None when absent)."""
        allowed = p.opt_json("allowed_updates", "can't parse allowed updates")
        if allowed is not None and not (
            isinstance(allowed, list) and all(isinstance(a, str) for a in allowed)
        ):
            raise _bad("can't parse allowed updates")
        return allowed

    def _apply_allowed_updates(self, allowed: list[str] | None) -> None:
        """Remember allowed update types (shared by both delivery modes, as on Telegram); [] is the default."""
        if allowed is not None:
            self._allowed_updates = frozenset(allowed) if allowed else None

    # ======================================================================================
    # Webhook delivery
    # ======================================================================================

    def _remove_webhook(self) -> None:
        """Forget the webhook and cut its deliveries (lock held)."""
        self._webhook = None
        self._last_webhook_error = None
        run = self._webhook_run
        self._webhook_run = None
        if run is not None:
            self._close_webhook_run(run)

    def _start_webhook_run(self, hook: _Webhook) -> None:
        """Start delivering to `hook` from a dispatcher thread (lock held; only while serving)."""
        if self._server is None:
            return
        run = _WebhookRun(hook)
        self._webhook_run = run
        thread = threading.Thread(
            target=self._dispatch_webhook, args=(run,), name="TelegramFake-webhook", daemon=True
        )
        run.threads.add(thread)
        thread.start()

    def _close_webhook_run(self, run: _WebhookRun) -> None:
        """End a run: the dispatcher exits, in-flight requests are cut, idle connections closed (lock held)."""
        run.closed = True
        for conn in run.active:
            sock = conn.sock
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        for conn in run.idle:
            conn.close()
        run.idle.clear()
        self._cond.notify_all()

    def _dispatch_webhook(self, run: _WebhookRun) -> None:
        """Dispatcher thread: start a delivery for every update that may be sent now."""
        with self._cond:
            try:
                while not run.closed and not self._stopping.is_set():
                    wait = self._start_deliveries(run)
                    self._cond.wait(0.5 if wait is None else min(max(wait, 0.001), 0.5))
            finally:
                run.threads.discard(threading.current_thread())

    def _start_deliveries(self, run: _WebhookRun) -> float | None:
        """Claim the oldest sendable updates, one per queue, up to max_connections in flight;
        returns seconds until the next retry is due (None: nothing waiting). Lock held."""
        self._drop_disallowed_updates()
        now = time.monotonic()
        free = run.hook.max_connections - len(run.in_flight)
        seen: set[tuple[str, Any]] = set()
        next_retry: float | None = None
        for update in self._updates:
            if free <= 0:
                break
            update_id = update["update_id"]
            key = _webhook_queue_key(update)
            if key in seen:  # a later update of a queue waits for the queue's oldest
                continue
            seen.add(key)
            if update_id in run.in_flight or key in run.busy_queues:
                continue
            due = run.retry_at.get(update_id, 0.0)
            if due > now:
                next_retry = due - now if next_retry is None else min(next_retry, due - now)
                continue
            run.in_flight.add(update_id)
            run.busy_queues.add(key)
            free -= 1
            body = json.dumps(update, ensure_ascii=False, separators=(",", ":")).encode()
            thread = threading.Thread(
                target=self._deliver_webhook_update, args=(run, update_id, key, body),
                name=f"TelegramFake-webhook-{update_id}", daemon=True,
            )
            run.threads.add(thread)
            thread.start()
        self._webhook_peak_in_flight = max(self._webhook_peak_in_flight, len(run.in_flight))
        return next_retry

    def _deliver_webhook_update(self, run: _WebhookRun, update_id: int, key: tuple[str, Any], body: bytes) -> None:
        """Delivery thread: POST one update and record the outcome."""
        result: _DeliveryResult | None = None
        try:
            result = self._post_webhook(run, body)
        finally:
            with self._cond:
                run.in_flight.discard(update_id)
                run.busy_queues.discard(key)
                run.threads.discard(threading.current_thread())
                if result is not None:
                    self._record_delivery(run, update_id, result)
                self._cond.notify_all()

    def _record_delivery(self, run: _WebhookRun, update_id: int, result: _DeliveryResult) -> None:
        """Apply one attempt's outcome (lock held). An answer to a webhook that was since deleted
        or replaced is recorded, but the update stays queued: Telegram lost that acknowledgement."""
        self._webhook_attempts.append(WebhookAttempt(update_id, result.outcome))
        current = self._webhook_run is run and not run.closed
        if result.error is None:
            self._webhook_delivered.append(update_id)
            if current:
                self._updates = [u for u in self._updates if u["update_id"] != update_id]
                run.retry_at.pop(update_id, None)
                if result.reply:
                    self._run_webhook_reply(result.reply, result.reply_type)
        elif current:
            self._last_webhook_error = (int(time.time()), result.error)
            delay = self.webhook_retry_delay if result.retry_after is None else result.retry_after
            run.retry_at[update_id] = time.monotonic() + max(delay, 0.0)

    def _post_webhook(self, run: _WebhookRun, body: bytes) -> _DeliveryResult | None:
        """POST one update body (no lock held); None when the run was closed meanwhile."""
        hook = run.hook
        headers = {
            "Host": hook.host_header, "Content-Type": "application/json", "Connection": "keep-alive",
            "Accept-Encoding": "gzip, deflate",
        }
        if hook.authorization:
            headers["Authorization"] = hook.authorization
        if hook.secret_token:
            headers[WEBHOOK_SECRET_HEADER] = hook.secret_token
        with self._cond:
            if run.closed:
                return None
            conn = run.idle.pop() if run.idle else None
            reused = conn is not None
            if conn is None:
                conn = http.client.HTTPConnection(hook.connect_host, hook.connect_port, timeout=self.webhook_timeout)
            run.active.add(conn)
        keep = False
        stage = "connect"
        try:
            for attempt in (1, 2):
                stage = "connect"
                try:
                    if conn.sock is None:
                        conn.connect()
                        with self._cond:
                            if run.closed:
                                return None
                    stage = "read"
                    conn.request("POST", hook.target, body=body, headers=headers)
                    response = conn.getresponse()
                    data = response.read()
                except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                    if reused and attempt == 1 and not run.closed:
                        conn.close()  # the receiver closed an idle keep-alive connection: use a new one
                        reused = False
                        continue
                    raise
                break
            keep = not response.will_close
            status = response.status
            if 200 <= status < 300:
                return _DeliveryResult(status, None, reply=_decompress(data, response.getheader("Content-Encoding")),
                                       reply_type=response.getheader("Content-Type") or "")
            return _DeliveryResult(
                status, f"Wrong response from the webhook: {status} {response.reason}".rstrip(),
                _retry_after_header(response.getheader("Retry-After")),
            )
        except Exception as exc:
            keep = False
            with self._cond:
                if run.closed or self._stopping.is_set():
                    return None
            message = _webhook_error_text(exc, stage)
            return _DeliveryResult(message, message)
        finally:
            with self._cond:
                run.active.discard(conn)
                if keep and not run.closed:
                    run.idle.append(conn)
                else:
                    conn.close()

    def _run_webhook_reply(self, data: bytes, content_type: str) -> None:
        """Execute a Bot API call carried by a 2xx webhook answer, as Telegram does (lock held).
        Telegram ignores get* methods and webhook/close/logOut, and reports the result to nobody:
        it is recorded in `sent` or `errors`."""
        try:
            raw, files = decode_body(FakeRequest("POST", "", {}, {"content-type": content_type}, data))
        except BodyError:
            return
        name = raw.get("method")
        if not isinstance(name, str) or not name:
            return
        lower = name.lower()
        if lower in _IGNORED_REPLY_METHODS or lower.startswith("get"):
            return
        raw = {k: v for k, v in raw.items() if k != "method"}
        params = _normalize(raw, files)
        now = time.monotonic()
        entry = self._methods.get(lower)
        if entry is None:
            self._errors.append(ErrorAnswer(name, params, 404, "Not Found", now))
            return
        canonical, fn = entry
        self._request_counts[canonical] = self._request_counts.get(canonical, 0) + 1
        try:
            self._check_forced_flood(canonical)
            result = fn(_Params(raw, files))
        except ApiError as exc:
            self._errors.append(ErrorAnswer(canonical, params, exc.status, exc.description, now))
            return
        if isinstance(result, _Described):
            result = result.value
        self._sent.append(SentCall(canonical, params, now, copy.deepcopy(result)))

    # ======================================================================================
    # Bot API methods (called with the lock held)
    # ======================================================================================

    def _get_me(self, p: _Params) -> Any:
        return self.bot_user

    def _set_webhook(self, p: _Params) -> Any:
        return self._change_webhook(p, p.opt_str("url") or "")

    def _delete_webhook(self, p: _Params) -> Any:
        return self._change_webhook(p, "")

    def _change_webhook(self, p: _Params, url: str) -> _Described:
        """setWebhook and deleteWebhook, in telegram-bot-api's order of checks and effects."""
        if url:
            now = time.monotonic()
            if self._last_set_webhook is not None and now < self._last_set_webhook + self.set_webhook_interval:
                raise ApiError(429, "Too Many Requests: retry after 1", retry_after=1)
            self._last_set_webhook = now  # even when the call fails validation, as on Telegram
        max_connections = self._webhook_max_connections(p) if url else 0
        secret = (p.opt_str("secret_token") or "") if url else ""
        allowed = self._parse_allowed_updates(p)
        certificate = p.files.get("certificate")
        attach = p.opt_str("certificate") or ""
        if certificate is None and attach.startswith("attach://"):
            certificate = p.files.get(attach.removeprefix("attach://"))
        has_certificate = bool(url) and certificate is not None
        drop = p.opt_bool("drop_pending_updates")
        current = self._webhook
        unchanged = (
            (current.url if current else "") == url
            and (current.max_connections if current else 0) == max_connections
            and (current.secret_token if current else "") == secret
            and not has_certificate and not (current and current.has_certificate) and not drop
        )
        if unchanged:
            self._apply_allowed_updates(allowed)
            return _Described(True, "Webhook is already set" if url else "Webhook is already deleted")
        if current is not None:
            # Telegram closes the old webhook first: a new URL that fails validation leaves none.
            self._remove_webhook()
        if drop:
            self._updates.clear()
        if not url:
            return _Described(True, "Webhook was deleted" if current else "Webhook is already deleted")
        hook = self._validate_webhook(url, secret, max_connections, has_certificate)
        self._apply_allowed_updates(allowed)
        self._webhook = hook
        self._last_webhook_error = None
        self._start_webhook_run(hook)
        self._cond.notify_all()  # a pending long poll ends with 409
        return _Described(True, "Webhook was set")

    @staticmethod
    def _webhook_max_connections(p: _Params) -> int:
        value = p.opt_int("max_connections")
        if value is None:
            return DEFAULT_WEBHOOK_CONNECTIONS
        if not 1 <= value <= MAX_WEBHOOK_CONNECTIONS:
            # Telegram clamps to 1-100; the fake rejects, so a misconfigured bot is noticed.
            raise _bad(f"max_connections must be between 1 and {MAX_WEBHOOK_CONNECTIONS}")
        return value

    def _validate_webhook(self, url: str, secret: str, max_connections: int, has_certificate: bool) -> _Webhook:
        """Parse and check a webhook URL like Telegram (plus the offline relaxations)."""
        parts = urlsplit(url if _URL_SCHEME_RE.match(url) else f"https://{url}")
        scheme = parts.scheme.lower()
        try:
            port = parts.port
        except ValueError:
            port = -1
        if scheme not in ("http", "https") or not parts.hostname or port == -1 or re.search(r"\s", url):
            raise _bad("invalid webhook URL specified")
        if len(secret) > SECRET_TOKEN_LIMIT:
            raise _bad("secret token is too long")
        if not _SECRET_TOKEN_RE.match(secret):
            raise _bad("secret token contains unallowed characters")
        host = parts.hostname
        port = port or (443 if scheme == "https" else 80)
        if scheme == "http":
            if host not in _LOOPBACK_WEBHOOK_HOSTS:  # offline relaxation: plain HTTP on loopback only
                raise _bad("bad webhook: An HTTPS URL must be provided for webhook")
            connect_host, connect_port = "127.0.0.1", port
            host_header = f"{host}:{port}" if port != 80 else host
        else:
            if port not in WEBHOOK_PORTS:
                raise _bad("bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443")
            route = self._webhook_routes.get(host)
            if route is None:
                try:
                    ip = ipaddress.ip_address("127.0.0.1" if host == "localhost" else host)
                except ValueError:
                    ip = None
                if ip is not None and ip.version == 6:
                    raise _bad("bad webhook: IPv6-only addresses are not allowed")
                if ip is not None and not ip.is_global:
                    raise _bad(f"bad webhook: IP address {ip} is reserved")
                # Offline, only hosts routed with route_webhook_host exist.
                raise _bad("bad webhook: Failed to resolve host: Name or service not known")
            connect_host, connect_port = route
            host_header = f"{host}:{port}" if port != 443 else host
        userinfo = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return _Webhook(
            url=url, secret_token=secret, max_connections=max_connections, has_certificate=has_certificate,
            connect_host=connect_host, connect_port=connect_port, host_header=host_header, target=target,
            authorization=f"Basic {base64.b64encode(userinfo.encode()).decode()}" if userinfo else None,
            ip_address=connect_host,
        )

    def _get_webhook_info(self, p: _Params) -> Any:
        self._drop_disallowed_updates()
        hook = self._webhook
        info: dict[str, Any] = {
            "url": hook.url if hook else "",
            "has_custom_certificate": bool(hook and hook.has_certificate),
            "pending_update_count": len(self._updates),
        }
        if self._last_webhook_error is not None:
            info["last_error_date"], info["last_error_message"] = self._last_webhook_error
        if hook is not None:
            info["max_connections"] = hook.max_connections
            info["ip_address"] = hook.ip_address
        if self._allowed_updates is not None:
            order = {name: i for i, name in enumerate(UPDATE_TYPES)}
            info["allowed_updates"] = sorted(self._allowed_updates, key=lambda n: (order.get(n, len(order)), n))
        return info

    def _set_my_commands(self, p: _Params) -> Any:
        commands = p.opt_json("commands", "can't parse commands JSON object")
        if not isinstance(commands, list):
            raise _bad("can't parse commands JSON object")
        if len(commands) > 100:
            raise _bad("too many commands")
        cleaned: list[dict[str, str]] = []
        for item in commands:
            if not isinstance(item, dict):
                raise _bad("can't parse BotCommand")
            command, description = item.get("command"), item.get("description")
            if not isinstance(command, str) or not _COMMAND_RE.match(command):
                raise _bad("BOT_COMMAND_INVALID")
            if not isinstance(description, str) or not 1 <= len(description.strip()) <= 256:
                raise _bad("BOT_COMMAND_DESCRIPTION_INVALID")
            cleaned.append({"command": command, "description": description})
        scope = p.opt_json("scope", "can't parse BotCommandScope")
        self._commands[self._commands_key(scope, p.opt_str("language_code") or "")] = cleaned
        return True

    def _get_my_commands(self, p: _Params) -> Any:
        scope = p.opt_json("scope", "can't parse BotCommandScope")
        return list(self._commands.get(self._commands_key(scope, p.opt_str("language_code") or ""), []))

    def _delete_my_commands(self, p: _Params) -> Any:
        scope = p.opt_json("scope", "can't parse BotCommandScope")
        self._commands.pop(self._commands_key(scope, p.opt_str("language_code") or ""), None)
        return True

    @staticmethod
    def _commands_key(scope: Any, language_code: str) -> tuple[str, str]:
        if not scope:
            scope = {"type": "default"}
        return json.dumps(scope, sort_keys=True), language_code

    def _send_message(self, p: _Params) -> Any:
        chat = self._resolve_chat(p)
        text, entities = self._parse_text(p, "text", "entities", MESSAGE_LIMIT, "message is too long")
        markup = self._parse_markup(p)
        reply_to = self._reply_target(p, chat.id)
        self._flood_check(chat.id)
        message = StoredMessage(
            chat_id=chat.id, message_id=self._new_message_id(chat.id), date=int(time.time()),
            from_bot=True, text=text, entities=entities, reply_markup=markup,
            silent=p.opt_bool("disable_notification"), reply_to_message_id=reply_to,
            raw_text=p.opt_str("text"), parse_mode=p.opt_str("parse_mode"),
        )
        return self._store_sent(message)

    def _send_photo(self, p: _Params) -> Any:
        chat = self._resolve_chat(p)
        data, file_id = self._input_file(p, "photo", "there is no photo in the request")
        if len(data) > MAX_PHOTO_BYTES:
            raise _bad("PHOTO_INVALID_DIMENSIONS")
        if _image_size(data) is None:
            raise _bad("IMAGE_PROCESS_FAILED")
        caption, entities = self._parse_caption(p)
        markup = self._parse_markup(p)
        reply_to = self._reply_target(p, chat.id)
        self._flood_check(chat.id)
        message = StoredMessage(
            chat_id=chat.id, message_id=self._new_message_id(chat.id), date=int(time.time()),
            from_bot=True, caption=caption, caption_entities=entities, reply_markup=markup,
            photo=data, file_id=file_id, silent=p.opt_bool("disable_notification"),
            reply_to_message_id=reply_to, raw_text=p.opt_str("caption"), parse_mode=p.opt_str("parse_mode"),
        )
        return self._store_sent(message)

    def _send_document(self, p: _Params) -> Any:
        chat = self._resolve_chat(p)
        data, file_id = self._input_file(p, "document", "there is no document in the request")
        upload = p.files.get("document")
        caption, entities = self._parse_caption(p)
        markup = self._parse_markup(p)
        reply_to = self._reply_target(p, chat.id)
        self._flood_check(chat.id)
        message = StoredMessage(
            chat_id=chat.id, message_id=self._new_message_id(chat.id), date=int(time.time()),
            from_bot=True, caption=caption, caption_entities=entities, reply_markup=markup,
            document=data, document_name=(upload.filename if upload else None) or "document",
            file_id=file_id, silent=p.opt_bool("disable_notification"), reply_to_message_id=reply_to,
            raw_text=p.opt_str("caption"), parse_mode=p.opt_str("parse_mode"),
        )
        return self._store_sent(message)

    def _edit_message_text(self, p: _Params) -> Any:
        message = self._editable_message(p, "message to edit not found")
        text, entities = self._parse_text(p, "text", "entities", MESSAGE_LIMIT, "message is too long")
        markup = self._parse_markup(p)
        if message.text is None:
            raise _bad("there is no text in the message to edit")
        if (message.text, message.entities, message.reply_markup) == (text, entities, markup):
            raise _bad(NOT_MODIFIED.removeprefix("Bad Request: "))
        self._flood_check(message.chat_id)
        message.text, message.entities, message.reply_markup = text, entities, markup
        message.raw_text, message.parse_mode = p.opt_str("text"), p.opt_str("parse_mode")
        return self._store_edit(message)

    def _edit_message_caption(self, p: _Params) -> Any:
        message = self._editable_message(p, "message to edit not found")
        caption, entities = self._parse_caption(p)
        markup = self._parse_markup(p)
        if message.text is not None:
            raise _bad("there is no caption in the message to edit")
        if (message.caption, message.caption_entities, message.reply_markup) == (caption, entities, markup):
            raise _bad(NOT_MODIFIED.removeprefix("Bad Request: "))
        self._flood_check(message.chat_id)
        message.caption, message.caption_entities, message.reply_markup = caption, entities, markup
        message.raw_text, message.parse_mode = p.opt_str("caption"), p.opt_str("parse_mode")
        return self._store_edit(message)

    def _edit_message_reply_markup(self, p: _Params) -> Any:
        message = self._editable_message(p, "message to edit not found")
        markup = self._parse_markup(p)
        if message.reply_markup == markup:
            raise _bad(NOT_MODIFIED.removeprefix("Bad Request: "))
        self._flood_check(message.chat_id)
        message.reply_markup = markup
        return self._store_edit(message)

    def _delete_message(self, p: _Params) -> Any:
        chat = self._resolve_chat(p)
        message_id = p.opt_int("message_id")
        if message_id is None:
            raise _bad("message identifier is not specified")
        store = self._messages.get(chat.id, {})
        if message_id not in store:
            raise _bad("message to delete not found")
        del store[message_id]
        return True

    def _answer_callback_query(self, p: _Params) -> Any:
        query_id = p.opt_str("callback_query_id")
        if not query_id or query_id not in self._pending_callbacks:
            raise _bad(QUERY_TOO_OLD.removeprefix("Bad Request: "))
        del self._pending_callbacks[query_id]
        self._answered.append(
            AnsweredCallback(
                query_id, p.opt_str("text"), p.opt_bool("show_alert"), p.opt_str("url"), time.monotonic()
            )
        )
        return True

    def _send_chat_action(self, p: _Params) -> Any:
        self._resolve_chat(p)
        if p.opt_str("action") not in CHAT_ACTIONS:
            raise _bad("wrong parameter action in request")
        return True

    # ======================================================================================
    # Helpers (lock held)
    # ======================================================================================

    def _ensure_user(
        self,
        user_id: int,
        first_name: str | None,
        username: str | None,
        last_name: str | None = None,
        language_code: str | None = None,
    ) -> dict[str, Any]:
        user = self._users.setdefault(
            user_id, {"id": user_id, "is_bot": False, "first_name": f"User{user_id}"}
        )
        if first_name:
            user["first_name"] = first_name
        if username:
            user["username"] = username
        if last_name:
            user["last_name"] = last_name
        if language_code:
            user["language_code"] = language_code
        return user

    def _ensure_chat(self, chat_id: int, chat_type: str, user_id: int | None, title: str | None) -> _Chat:
        chat = self._chats.get(chat_id)
        if chat is None:
            chat = _Chat(chat_id, chat_type, title, user_id)
            self._chats[chat_id] = chat
        elif title:
            chat.title = title
        return chat

    def _new_message_id(self, chat_id: int) -> int:
        # Message ids are per chat and shared by both sides, as in private chats.
        next_id = self._next_message_id.get(chat_id, 1)
        self._next_message_id[chat_id] = next_id + 1
        return next_id

    def _enqueue(self, body: dict[str, Any], update_id: int | None = None) -> int:
        uid = update_id if update_id is not None else next(self._update_ids)
        self._updates.append({"update_id": uid, **body})
        self._updates.sort(key=lambda u: u["update_id"])
        self._cond.notify_all()
        return uid

    def _resolve_chat(self, p: _Params) -> _Chat:
        raw = p.get("chat_id")
        if raw is None or raw == "":
            raise _bad("chat_id is empty")
        chat: _Chat | None = None
        if isinstance(raw, str) and raw.startswith("@"):
            wanted = raw[1:].lower()
            for candidate in self._chats.values():
                user = self._users.get(candidate.user_id) if candidate.user_id is not None else None
                if user is not None and user.get("username", "").lower() == wanted:
                    chat = candidate
                    break
        else:
            try:
                chat = self._chats.get(int(raw))
            except (TypeError, ValueError):
                chat = None
        if chat is None:
            raise _bad("chat not found")
        if chat.type == "private" and chat.user_id in self._blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        return chat

    def _parse_text(
        self, p: _Params, name: str, entities_name: str, limit: int, too_long: str
    ) -> tuple[str, list[dict[str, Any]]]:
        raw = p.opt_str(name)
        if raw is None or not raw.strip():
            raise _bad("message text is empty")
        text, entities = self._apply_parse_mode(p, raw, entities_name)
        if not text.strip():
            raise _bad("message text is empty")
        if utf16_len(text) > limit:
            raise _bad(too_long)
        return text, entities

    def _parse_caption(self, p: _Params) -> tuple[str | None, list[dict[str, Any]]]:
        raw = p.opt_str("caption")
        if raw is None or raw == "":
            return None, []
        text, entities = self._apply_parse_mode(p, raw, "caption_entities")
        if utf16_len(text) > CAPTION_LIMIT:
            raise _bad("message caption is too long")
        return (text or None), entities

    def _apply_parse_mode(self, p: _Params, raw: str, entities_name: str) -> tuple[str, list[dict[str, Any]]]:
        mode = (p.opt_str("parse_mode") or "").lower()
        if mode == "html":
            try:
                return parse_html(raw)
            except EntityParseError as exc:
                raise _bad(f"can't parse entities: {exc}") from None
        if mode in ("", "markdown", "markdownv2"):
            entities = p.opt_json(entities_name, "can't parse entities JSON object") or []
            if not isinstance(entities, list) or not all(
                isinstance(e, dict) and {"type", "offset", "length"} <= e.keys() for e in entities
            ):
                raise _bad("can't parse entities JSON object")
            return raw, entities
        raise _bad("unsupported parse_mode")

    def _parse_markup(self, p: _Params) -> dict[str, Any] | None:
        """Validate reply_markup; returns the inline keyboard to store (others are not kept)."""
        markup = p.opt_json("reply_markup", "can't parse reply keyboard markup JSON object")
        if markup is None or markup == "":
            return None
        if not isinstance(markup, dict):
            raise _bad("can't parse reply keyboard markup JSON object")
        if "inline_keyboard" in markup:
            return {"inline_keyboard": self._validate_inline_keyboard(markup["inline_keyboard"])}
        if "keyboard" in markup:
            rows = markup["keyboard"]
            if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
                raise _bad('field "keyboard" of the ReplyKeyboardMarkup must be an Array of Arrays')
            return None
        if markup.get("remove_keyboard") is True or markup.get("force_reply") is True:
            return None
        raise _bad("can't parse reply keyboard markup JSON object")

    @staticmethod
    def _validate_inline_keyboard(rows: Any) -> list[list[dict[str, Any]]]:
        if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
            raise _bad('field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays')
        if sum(len(r) for r in rows) > MAX_INLINE_BUTTONS:
            raise _bad("reply markup is too long")
        cleaned: list[list[dict[str, Any]]] = []
        for row in rows:
            new_row = []
            for button in row:
                if not isinstance(button, dict):
                    raise _bad(f"{_BUTTON_ERROR}: InlineKeyboardButton must be an Object")
                text = button.get("text")
                if not isinstance(text, str) or not text.strip():
                    raise _bad(f"{_BUTTON_ERROR}: Text must be non-empty")
                actions = [a for a in BUTTON_ACTIONS if a in button]
                if not actions:
                    raise _bad(f"{_BUTTON_ERROR}: Text buttons are unallowed in the inline keyboard")
                if len(actions) > 1:
                    raise _bad(f"{_BUTTON_ERROR}: exactly one of the optional fields must be used")
                if "callback_data" in button:
                    data = button["callback_data"]
                    if not isinstance(data, str) or not 1 <= len(data.encode("utf-8")) <= CALLBACK_DATA_LIMIT:
                        raise _bad("BUTTON_DATA_INVALID")
                if "url" in button:
                    url = button["url"]
                    if not isinstance(url, str) or not re.match(r"^(https?|tg)://\S+$", url):
                        raise _bad("BUTTON_URL_INVALID")
                new_row.append(dict(button))
            cleaned.append(new_row)
        return cleaned

    def _reply_target(self, p: _Params, chat_id: int) -> int | None:
        params = p.opt_json("reply_parameters", "can't parse reply parameters JSON object")
        target: int | None = None
        allow_missing = p.opt_bool("allow_sending_without_reply")
        if isinstance(params, dict):
            target = params.get("message_id") if isinstance(params.get("message_id"), int) else None
            allow_missing = allow_missing or bool(params.get("allow_sending_without_reply"))
            if params.get("chat_id") not in (None, chat_id):
                raise _bad("replies to other chats are not supported by the fake")
        elif params is not None:
            raise _bad("can't parse reply parameters JSON object")
        else:
            target = p.opt_int("reply_to_message_id")
        if target is None:
            return None
        if target not in self._messages.get(chat_id, {}):
            if allow_missing:
                return None
            raise _bad("message to be replied not found")
        return target

    def _input_file(self, p: _Params, name: str, missing: str) -> tuple[bytes, str]:
        upload = p.files.get(name)
        value = p.opt_str(name)
        if upload is None and value and value.startswith("attach://"):
            upload = p.files.get(value.removeprefix("attach://"))
        if upload is not None:
            if not upload.data:
                raise _bad("file must be non-empty")
            file_id = f"AgACfake{next(self._file_ids):08d}"
            self._files[file_id] = upload.data
            return upload.data, file_id
        if not value:
            raise _bad(missing)
        if value in self._files:
            return self._files[value], value
        if value.startswith(("http://", "https://")):
            raise _bad("failed to get HTTP URL content")
        raise _bad("wrong file identifier/HTTP URL specified")

    def _editable_message(self, p: _Params, missing: str) -> StoredMessage:
        if p.get("inline_message_id"):
            raise _bad("MESSAGE_ID_INVALID")
        chat = self._resolve_chat(p)
        message_id = p.opt_int("message_id")
        if message_id is None:
            raise _bad("message identifier is not specified")
        message = self._messages.get(chat.id, {}).get(message_id)
        if message is None:
            raise _bad(missing)
        if not message.from_bot:
            raise _bad("message can't be edited")
        return message

    def _check_forced_flood(self, method: str) -> None:
        if self._forced_floods > 0 and method in self._forced_methods:
            self._forced_floods -= 1
            n = self._forced_retry_after
            raise ApiError(429, f"Too Many Requests: retry after {n}", retry_after=n)

    def _flood_check(self, chat_id: int) -> None:
        """Sliding-window flood control; counts the send when it is allowed."""
        now = time.monotonic()
        window = self._chat_sends.setdefault(chat_id, deque())
        for sends, limit, span in ((window, self.per_chat_limit, self.per_chat_window),
                                   (self._global_sends, self.global_limit, self.global_window)):
            while sends and sends[0] <= now - span:
                sends.popleft()
            if len(sends) >= limit:
                n = max(1, math.ceil(sends[0] + span - now))
                raise ApiError(429, f"Too Many Requests: retry after {n}", retry_after=n)
        window.append(now)
        self._global_sends.append(now)

    def _store_sent(self, message: StoredMessage) -> dict[str, Any]:
        self._messages.setdefault(message.chat_id, {})[message.message_id] = message
        return self._message_dict(message)

    def _store_edit(self, message: StoredMessage) -> dict[str, Any]:
        message.edited = True
        message.edit_date = int(time.time())
        return self._message_dict(message)

    def _message_dict(self, message: StoredMessage) -> dict[str, Any]:
        """Full Bot API Message object for a stored message."""
        chat = self._chats[message.chat_id]
        sender = self.bot_user if message.from_bot else dict(self._users.get(message.user_id or 0, {}))
        if message.from_bot:
            sender = {k: sender[k] for k in ("id", "is_bot", "first_name", "username")}
        data: dict[str, Any] = {
            "message_id": message.message_id, "from": sender, "chat": chat.to_api(self._users),
            "date": message.date,
        }
        if message.edit_date is not None:
            data["edit_date"] = message.edit_date
        if message.text is not None:
            data["text"] = message.text
            if message.entities:
                data["entities"] = copy.deepcopy(message.entities)
        if message.photo is not None:
            width, height = _image_size(message.photo) or (1, 1)
            data["photo"] = [{
                "file_id": message.file_id, "file_unique_id": f"u{message.file_id}",
                "width": width, "height": height, "file_size": len(message.photo),
            }]
        if message.document is not None:
            data["document"] = {
                "file_id": message.file_id, "file_unique_id": f"u{message.file_id}",
                "file_name": message.document_name, "file_size": len(message.document),
            }
        if message.caption is not None:
            data["caption"] = message.caption
            if message.caption_entities:
                data["caption_entities"] = copy.deepcopy(message.caption_entities)
        if message.reply_to_message_id is not None:
            target = self._messages.get(message.chat_id, {}).get(message.reply_to_message_id)
            if target is not None and target is not message:
                replied = self._message_dict(target)
                replied.pop("reply_to_message", None)  # Telegram nests one level only
                data["reply_to_message"] = replied
        if message.reply_markup is not None:
            data["reply_markup"] = copy.deepcopy(message.reply_markup)
        return data

