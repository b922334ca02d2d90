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

The test side (`user_sends`, `user_presses`, `sent`, `messages`, `wait_for`...) is
thread-safe and may be used from the test thread or an asyncio test.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import re
import struct
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

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


OutageMode = Literal["502", "close"]


class TelegramFake(LoopbackHTTPService):
    """A loopback Telegram Bot API server with a test-side control API.

    Flood-control defaults: at most `per_chat_limit` message sends/edits per chat within
    `per_chat_window` seconds and `global_limit` within `global_window`. The global default
    (60/s) is what a bot honouring Telegram's 30/s with a burst of 30 (PTB's AIORateLimiter)
    can reach in a sliding one-second window, so only a bot without rate limiting trips it.
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
        self._methods: dict[str, tuple[str, Callable[[_Params], Any]]] = {
            name.lower(): (name, fn)
            for name, fn in {
                "getMe": self._get_me,
                "getUpdates": self._get_updates,
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
        """Updates queued and not yet confirmed by a getUpdates offset."""
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
        try:
            with self._cond:
                self._check_forced_flood(canonical)
                result = fn(_Params(raw, files))
                self._sent.append(SentCall(canonical, params, time.monotonic(), copy.deepcopy(result)))
                self._cond.notify_all()
                delay = self._slow_delay(canonical)
        except ApiError as exc:
            return self._error_response(canonical, params, exc, record=True)
        if delay:  # outside the lock: other requests are served meanwhile
            self._sleep(delay)
        return self._ok(result)

    def _ok(self, result: Any) -> FakeResponse:
        return json_response(200, {"ok": True, "result": result})

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
        offset = p.opt_int("offset") or 0
        limit = min(max(p.opt_int("limit") or 100, 1), 100)
        timeout = max(p.opt_float("timeout") or 0.0, 0.0)
        allowed = p.opt_json("allowed_updates", "can't parse allowed updates")
        if allowed is not None and not (
            isinstance(allowed, list) and all(isinstance(a, str) for a in allowed)
        ):
            raise _bad("can't parse allowed updates")
        with self._cond:
            self._poll_generation += 1
            generation = self._poll_generation
            self._cond.notify_all()  # an older poll still waiting ends with 409
            if allowed is not None:
                self._allowed_updates = frozenset(allowed) if allowed else None
            if offset > 0:
                self._updates = [u for u in self._updates if u["update_id"] >= offset]
            elif offset < 0:
                self._updates = self._updates[offset:]
            deadline = time.monotonic() + timeout
            while True:
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
            kind = next((k for k in update if k != "update_id"), "")
            if self._allowed_updates is None:
                return kind not in DEFAULT_EXCLUDED_UPDATES
            return kind in self._allowed_updates

        self._updates = [u for u in self._updates if allowed(u)]

    # ======================================================================================
    # Bot API methods (called with the lock held)
    # ======================================================================================

    def _get_me(self, p: _Params) -> Any:
        return self.bot_user

    def _delete_webhook(self, p: _Params) -> Any:
        if p.opt_bool("drop_pending_updates"):
            self._updates.clear()
        return True

    def _get_webhook_info(self, p: _Params) -> Any:
        return {"url": "", "has_custom_certificate": False, "pending_update_count": len(self._updates)}

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

