"""The console channel: the real PTB `Application` with the Bot API played in-process.

`ConsoleBotApi` is a local stand-in for Telegram's servers: typed lines become updates
(`/command` lines carry a `bot_command` entity, a bare number presses that button of the
last inline keyboard, a leading `'` sends the rest verbatim), and what the bot sends is
printed. It applies the Bot API's limits and HTML rules, so a bug that would be a
`BadRequest` on Telegram is one here too.
`ConsoleRequest` is the `BaseRequest` seam PTB talks to; `run_console` wires both into an
application built by the caller and runs it until `quit`, `exit` or end of input.

Piped input is paced like a person typing: a line is turned into an update only after the
bot has finished handling the previous one, so `/start` followed by `1` presses a button of
the reply to `/start`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import struct
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO, Any, TextIO

from telegram.ext import Application
from telegram.request import BaseRequest, RequestData

from bot.console_render import (
    HtmlParseError,
    ParsedText,
    format_message,
    number_buttons,
    parse_html,
    plain_text,
    render_text,
    utf16_len,
)
from bot.lifecycle import running

PROMPT = "> "
BOT_USER_ID = 1_000_000_001
MESSAGE_LIMIT = 4096
CAPTION_LIMIT = 1024
CALLBACK_DATA_LIMIT = 64
MAX_INLINE_BUTTONS = 100
PHOTO_LIMIT = 10 * 1024 * 1024
DOCUMENT_LIMIT = 50 * 1024 * 1024
QUIT_WORDS = frozenset({"quit", "exit"})

NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)
QUERY_INVALID = "Bad Request: query is too old and response timeout expired or query ID is invalid"
CHAT_ACTIONS = frozenset({
    "typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice",
    "upload_document", "choose_sticker", "find_location", "record_video_note", "upload_video_note",
})
_COMMAND_RE = re.compile(r"^/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{1,64})?(?=\s|$)")
_BOT_COMMAND_NAME_RE = re.compile(r"^[a-z0-9_]{1,32}$")
_IMAGE_MAGIC = {b"\x89PNG\r\n\x1a\n": ".png", b"\xff\xd8\xff": ".jpg", b"GIF8": ".gif", b"BM": ".bmp"}
_SAFE_NAME_RE = re.compile(r"[^A-Za-z0-9._-]+")

BANNER = (
    "Console channel: the bot runs here, nothing goes to Telegram.\n"
    "Type /start or /help. A number presses that button of the last keyboard "
    "('42 sends the text 42). quit, exit or Ctrl-D ends."
)


class ApiError(Exception):
    """An error answer of the Bot API: HTTP status and Telegram's description."""

    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description


def _bad(description: str) -> ApiError:
    return ApiError(400, f"Bad Request: {description}")


def _isatty(stream: object) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except (OSError, ValueError):
        return False


class ConsoleOutput:
    """Writes blocks of text; on an interactive terminal it keeps the input prompt intact.

    A message that arrives while the user is typing clears the prompt line, prints, then
    redraws the prompt and the half-typed text (via `readline` when available).
    """

    def __init__(self, stream: TextIO, *, ansi: bool = False, interactive: bool = False) -> None:
        self.stream = stream
        self.ansi = ansi
        self.interactive = interactive
        # Set by the reader thread while `input()` shows the prompt: only then is there a
        # prompt to redraw (a plain bool is enough, the GIL makes the flip atomic).
        self.prompt_visible = False
        self._readline: Any = None
        if interactive:
            # Importing readline makes input() use it: line editing, history, and a readable
            # line buffer so half-typed input survives a notification.
            with contextlib.suppress(ImportError):
                import readline

                self._readline = readline

    def _line_buffer(self) -> str:
        return self._readline.get_line_buffer() if self._readline is not None else ""

    def show(self, block: str) -> None:
        """Print one block (a message, a toast, an error line)."""
        if self.interactive and self.prompt_visible:
            self.stream.write(f"\r\x1b[K{block}\n{PROMPT}{self._line_buffer()}")
        else:
            self.stream.write(block + "\n")
        self.stream.flush()


def _now() -> int:
    return int(time.time())


def _as_chat_id(value: object) -> int | str:
    if isinstance(value, int):
        return value
    text = str(value)
    with contextlib.suppress(ValueError):
        return int(text)
    return text


def _image_extension(content: bytes) -> str | None:
    for magic, ext in _IMAGE_MAGIC.items():
        if content.startswith(magic):
            return ext
    if content[:4] == b"RIFF" and content[8:12] == b"WEBP":
        return ".webp"
    return None


def _png_size(content: bytes) -> tuple[int, int]:
    if content.startswith(b"\x89PNG\r\n\x1a\n") and len(content) >= 24:
        width, height = struct.unpack(">II", content[16:24])
        return int(width), int(height)
    return 0, 0


def _read_upload(content: bytes | IO[bytes]) -> bytes:
    return content if isinstance(content, bytes) else content.read()


class ConsoleBotApi:
    """In-process Bot API for one console user: turns lines into updates, prints what the bot sends.

    Lines arrive through `feed` (a string, or None for end of input). `call` answers one Bot
    API method and raises `ApiError` with Telegram's status and wording on invalid requests.
    `settle`, when set, is awaited before each line is delivered (run_console sets it to
    `app.update_queue.join`) so piped input waits for the bot like a person would.
    """

    def __init__(self, output: ConsoleOutput, *, user_id: int = 1, first_name: str = "Console",
                 media_dir: Path = Path("data/console"), echo_input: bool = False,
                 settle_timeout: float = 5.0) -> None:
        self.output = output
        self.user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name,
                                     "language_code": "en"}
        self.bot_user: dict[str, Any] = {
            "id": BOT_USER_ID, "is_bot": True, "first_name": "Console Bot", "username": "console_bot",
            "can_join_groups": False, "can_read_all_group_messages": False, "supports_inline_queries": False,
        }
        self.media_dir = media_dir
        self.echo_input = echo_input
        self.settle: Callable[[], Awaitable[object]] | None = None
        self.settle_timeout = settle_timeout
        self.finished = asyncio.Event()
        self.commands: list[dict[str, Any]] = []
        self._inbox: asyncio.Queue[str | None] = asyncio.Queue()
        self._messages: dict[tuple[int | str, int], dict[str, Any]] = {}
        self._shown_order: list[tuple[int | str, int]] = []  # last rendered at the end
        self._pending: list[dict[str, Any]] = []  # delivered, not yet confirmed by an offset
        self._open_queries: set[str] = set()
        self._file_paths: dict[str, Path] = {}
        self._next_message_id = 1
        self._next_update_id = 1
        self._next_query_id = 1
        self._next_file = 1
        self._busy = 0  # updates handed to the bot whose handling has not finished
        self._trackers: set[asyncio.Task[None]] = set()
        self._methods: dict[str, Callable[[dict[str, Any]], Any]] = {
            "getMe": lambda _p: dict(self.bot_user),
            "deleteWebhook": lambda _p: True,
            "setWebhook": lambda _p: True,
            "getWebhookInfo": lambda _p: {"url": "", "has_custom_certificate": False, "pending_update_count": 0},
            "setMyCommands": self._set_my_commands,
            "getMyCommands": lambda _p: list(self.commands),
            "deleteMyCommands": self._delete_my_commands,
            "setMyDescription": lambda _p: True,
            "setMyShortDescription": lambda _p: True,
            "setMyName": lambda _p: True,
            "setChatMenuButton": lambda _p: True,
            "getChat": self._get_chat,
            "sendChatAction": self._send_chat_action,
            "sendMessage": self._send_message,
            "editMessageText": self._edit_text,
            "editMessageCaption": self._edit_caption,
            "editMessageReplyMarkup": self._edit_markup,
            "deleteMessage": self._delete_message,
            "answerCallbackQuery": self._answer_callback,
        }

    # ---------------------------------------------------------------------------- input side
    @property
    def chat(self) -> dict[str, Any]:
        """The console user's private chat."""
        return {"id": self.user["id"], "type": "private", "first_name": self.user["first_name"]}

    def feed(self, line: str | None) -> None:
        """Queue one typed line; None means end of input. Call on the event loop thread."""
        self._inbox.put_nowait(line)

    async def _settle(self) -> None:
        if self.settle is None:
            return
        # A handler that runs for minutes (a long backtest) must not freeze the console.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.settle(), self.settle_timeout)

    async def _track(self, count: int) -> None:
        try:
            await self._settle()
        finally:
            self._busy -= count

    def _confirm(self, offset: int | None) -> None:
        """Drop updates below `offset`; the Updater has queued them, so start tracking their handling."""
        if offset is None:
            return
        confirmed = [u for u in self._pending if u["update_id"] < offset]
        if not confirmed:
            return
        self._pending = [u for u in self._pending if u["update_id"] >= offset]
        task = asyncio.get_running_loop().create_task(self._track(len(confirmed)))
        self._trackers.add(task)
        task.add_done_callback(self._trackers.discard)

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = params.get("offset")
        self._confirm(int(offset) if offset is not None else None)
        if self._pending:
            return self._pending[: int(params.get("limit") or 100)]
        timeout = float(params.get("timeout") or 0)
        if self.finished.is_set():
            await asyncio.sleep(min(timeout, 1.0))
            return []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            try:
                if remaining > 0:
                    line = await asyncio.wait_for(self._inbox.get(), remaining)
                else:
                    line = self._inbox.get_nowait()
            except (TimeoutError, asyncio.QueueEmpty):
                return []
            await self._settle()
            if line is None or line.strip().lower() in QUIT_WORDS:
                self.finished.set()
                return []
            update = self._update_from_line(line)
            if update is not None:
                self._pending.append(update)
                self._busy += 1
                return [update]

    def _update_from_line(self, line: str) -> dict[str, Any] | None:
        text = line.strip()
        if not text:
            return None
        if self.echo_input:
            self.output.show(f"» {text}")
        if text.isascii() and text.isdigit():
            return self._press(int(text))
        if text.startswith("'") and len(text) > 1:
            text = text[1:]
        message: dict[str, Any] = {"message_id": self._new_message_id(), "from": dict(self.user),
                                   "chat": self.chat, "date": _now(), "text": text}
        command = _COMMAND_RE.match(text)
        if command:
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": utf16_len(command.group(0))}]
        self._messages[(self.user["id"], message["message_id"])] = message
        return {"update_id": self._new_update_id(), "message": message}

    def _press(self, number: int) -> dict[str, Any] | None:
        key = next((k for k in reversed(self._shown_order)
                    if k[0] == self.user["id"] and number_buttons(self._messages[k].get("reply_markup"))), None)
        if key is None:
            self.output.show(f"⚠ no button {number}: there is no keyboard to press")
            return None
        message = self._messages[key]
        buttons = number_buttons(message.get("reply_markup"))
        if not 1 <= number <= len(buttons):
            self.output.show(f"⚠ no button {number}: the last keyboard has buttons 1-{len(buttons)}")
            return None
        button = buttons[number - 1]
        if button.url:
            self.output.show(f"🔗 {button.text}: opens {button.url}")
            return None
        if button.callback_data is None:
            self.output.show(f"⚠ button {number} is a {button.kind} button, which the console cannot press")
            return None
        query_id = str(self._next_query_id)
        self._next_query_id += 1
        self._open_queries.add(query_id)
        query = {"id": query_id, "from": dict(self.user), "message": json.loads(json.dumps(message)),
                 "chat_instance": f"console-{self.user['id']}", "data": button.callback_data}
        return {"update_id": self._new_update_id(), "callback_query": query}

    def _new_message_id(self) -> int:
        self._next_message_id += 1
        return self._next_message_id - 1

    def _new_update_id(self) -> int:
        self._next_update_id += 1
        return self._next_update_id - 1

    # ---------------------------------------------------------------------------- bot side
    async def call(self, method: str, params: dict[str, Any],
                   files: dict[str, tuple[str, bytes]] | None = None) -> Any:
        """Answer one Bot API method; raises `ApiError` as Telegram would answer."""
        files = files or {}
        if method == "getUpdates":
            return await self._get_updates(params)
        handler = self._methods.get(method)
        if handler is not None:
            return handler(params)
        if method == "sendPhoto":
            return self._send_file(params, files, kind="photo")
        if method == "sendDocument":
            return self._send_file(params, files, kind="document")
        raise _bad(f"method {method} is not available in the console channel")

    def _set_my_commands(self, params: dict[str, Any]) -> bool:
        commands = list(params.get("commands") or [])
        if len(commands) > 100:
            raise _bad("too many commands")
        for command in commands:
            if not _BOT_COMMAND_NAME_RE.match(str(command.get("command", ""))):
                raise _bad("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise _bad("command description is empty or too long")
        self.commands = commands
        return True

    def _delete_my_commands(self, _params: dict[str, Any]) -> bool:
        self.commands = []
        return True

    def _get_chat(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = _as_chat_id(params.get("chat_id"))
        if chat_id != self.user["id"]:
            raise _bad("chat not found")
        return {**self.chat, "accent_color_id": 0, "max_reaction_count": 11}

    def _send_chat_action(self, params: dict[str, Any]) -> bool:
        if params.get("action") not in CHAT_ACTIONS:
            raise _bad("wrong parameter action in request")
        return True

    @staticmethod
    def _parse(text: object, parse_mode: object, entities: object) -> ParsedText:
        source = "" if text is None else str(text)
        if str(parse_mode or "").upper() == "HTML":
            try:
                return parse_html(source)
            except HtmlParseError as exc:
                raise _bad(str(exc)) from None
        # Markdown modes are shown as typed: the product formats everything as HTML.
        return ParsedText(source, list(entities)) if isinstance(entities, list) else plain_text(source)

    @staticmethod
    def _check_markup(markup: object) -> dict[str, Any] | None:
        if markup is None:
            return None
        if not isinstance(markup, dict):
            raise _bad("can't parse reply keyboard markup JSON object")
        rows = markup.get("inline_keyboard")
        if rows is None:
            return markup
        if sum(len(row) for row in rows) > MAX_INLINE_BUTTONS:
            raise _bad("reply markup is too long")
        for row in rows:
            for button in row:
                if not str(button.get("text", "")):
                    raise _bad("text buttons are unallowed in the inline keyboard")
                if "callback_data" in button:
                    data = str(button["callback_data"]).encode("utf-8")
                    if not 1 <= len(data) <= CALLBACK_DATA_LIMIT:
                        raise _bad("BUTTON_DATA_INVALID")
                elif "url" in button:
                    if not re.match(r"^(https?|tg)://\S+$", str(button["url"])):
                        raise _bad(f"inline keyboard button URL '{button['url']}' is invalid: "
                                   "Unsupported URL protocol")
                elif len(button) == 1:
                    raise _bad("text buttons are unallowed in the inline keyboard")
        return markup

    def _chat_of(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = _as_chat_id(params.get("chat_id"))
        if chat_id in ("", "None"):
            raise _bad("chat_id is empty")
        if chat_id == self.user["id"]:
            return self.chat
        return {"id": chat_id, "type": "private", "first_name": f"User {chat_id}"}

    def _store(self, chat: dict[str, Any], content: dict[str, Any]) -> dict[str, Any]:
        message = {"message_id": self._new_message_id(), "from": dict(self.bot_user), "chat": chat,
                   "date": _now(), **{k: v for k, v in content.items() if v not in (None, [], "")}}
        self._messages[(chat["id"], message["message_id"])] = message
        return message

    @staticmethod
    def _text_fields(parsed: ParsedText, key: str) -> dict[str, Any]:
        entities_key = "entities" if key == "text" else "caption_entities"
        return {key: parsed.text, entities_key: parsed.entities}

    def _send_message(self, params: dict[str, Any]) -> dict[str, Any]:
        chat = self._chat_of(params)
        parsed = self._parse(params.get("text"), params.get("parse_mode"), params.get("entities"))
        if not parsed.text.strip():
            raise _bad("message text is empty")
        if utf16_len(parsed.text) > MESSAGE_LIMIT:
            raise _bad("message is too long")
        markup = self._check_markup(params.get("reply_markup"))
        message = self._store(chat, {**self._text_fields(parsed, "text"), "reply_markup": markup})
        self._show(message)
        return message

    def _caption(self, params: dict[str, Any]) -> ParsedText:
        parsed = self._parse(params.get("caption"), params.get("parse_mode"), params.get("caption_entities"))
        if utf16_len(parsed.text) > CAPTION_LIMIT:
            raise _bad("message caption is too long")
        return parsed

    def _save(self, content: bytes, stem: str, suffix: str) -> Path:
        self.media_dir.mkdir(parents=True, exist_ok=True)
        path = self.media_dir / f"{stem}-{self._next_file}{suffix}"
        self._next_file += 1
        path.write_bytes(content)
        return path

    def _send_file(self, params: dict[str, Any], files: dict[str, tuple[str, bytes]], *,
                   kind: str) -> dict[str, Any]:
        chat = self._chat_of(params)
        caption = self._caption(params)
        markup = self._check_markup(params.get("reply_markup"))
        upload = files.get(kind)
        reference = params.get(kind)
        if upload is None and isinstance(reference, str) and reference.startswith("attach://"):
            upload = files.get(reference.removeprefix("attach://"))
        if upload is not None:
            filename, content = upload
            path, size = self._store_upload(kind, filename, content)
            file_id = f"console-file-{path.stem}"
            self._file_paths[file_id] = path
            label = f"[{kind} saved to {path}]"
        elif isinstance(reference, str) and reference:
            file_id, size, path = reference, 0, self._file_paths.get(reference)
            label = f"[{kind}: {path or reference}]"
            content = path.read_bytes() if path is not None and path.exists() else b""
        else:
            raise _bad(f"there is no {kind} in the request")
        if kind == "photo":
            width, height = _png_size(content)
            media: Any = [{"file_id": file_id, "file_unique_id": file_id, "width": width, "height": height,
                           "file_size": size}]
        else:
            media = {"file_id": file_id, "file_unique_id": file_id, "file_size": size,
                     "file_name": path.name if path is not None else str(reference)}
        message = self._store(chat, {kind: media, **self._text_fields(caption, "caption"),
                                     "reply_markup": markup})
        self._show(message, header=label)
        return message

    def _store_upload(self, kind: str, filename: str, content: bytes) -> tuple[Path, int]:
        if kind == "photo":
            if len(content) > PHOTO_LIMIT:
                raise ApiError(413, "Request Entity Too Large")
            suffix = _image_extension(content)
            if suffix is None:
                raise _bad("IMAGE_PROCESS_FAILED")
            stem = Path(filename).stem if Path(filename).suffix.lower() in (suffix, ".jpeg") else "photo"
        else:
            if len(content) > DOCUMENT_LIMIT:
                raise ApiError(413, "Request Entity Too Large")
            if not content:
                raise _bad("file must be non-empty")
            suffix = Path(filename).suffix
            stem = Path(filename).stem or "document"
        stem = _SAFE_NAME_RE.sub("_", stem).strip("._") or kind
        return self._save(content, stem, _SAFE_NAME_RE.sub("", suffix)), len(content)

    def _find_editable(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("inline_message_id"):
            raise _bad("inline messages are not available in the console channel")
        key = (_as_chat_id(params.get("chat_id")), int(params.get("message_id") or 0))
        message = self._messages.get(key)
        if message is None:
            raise _bad("message to edit not found")
        if not message["from"].get("is_bot"):
            raise _bad("message can't be edited")
        return message

    def _apply_edit(self, message: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
        current = {k: message.get(k) or None for k in changes}
        wanted = {k: v or None for k, v in changes.items()}
        if current == wanted:
            raise _bad(NOT_MODIFIED.removeprefix("Bad Request: "))
        for key, value in wanted.items():
            if value is None:
                message.pop(key, None)
            else:
                message[key] = value
        message["edit_date"] = _now()
        self._show(message, prefix="(edited) ")
        return message

    def _edit_text(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self._find_editable(params)
        if "text" not in message:
            raise _bad("there is no text in the message to edit")
        parsed = self._parse(params.get("text"), params.get("parse_mode"), params.get("entities"))
        if not parsed.text.strip():
            raise _bad("message text is empty")
        if utf16_len(parsed.text) > MESSAGE_LIMIT:
            raise _bad("message is too long")
        # Like Telegram, an edit without reply_markup removes the inline keyboard.
        markup = self._check_markup(params.get("reply_markup"))
        return self._apply_edit(message, {**self._text_fields(parsed, "text"), "reply_markup": markup})

    def _edit_caption(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self._find_editable(params)
        if "text" in message:
            raise _bad("there is no caption in the message to edit")
        caption = self._caption(params)
        markup = self._check_markup(params.get("reply_markup"))
        return self._apply_edit(message, {**self._text_fields(caption, "caption"), "reply_markup": markup})

    def _edit_markup(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self._find_editable(params)
        return self._apply_edit(message, {"reply_markup": self._check_markup(params.get("reply_markup"))})

    def _delete_message(self, params: dict[str, Any]) -> bool:
        key = (_as_chat_id(params.get("chat_id")), int(params.get("message_id") or 0))
        message = self._messages.pop(key, None)
        if message is None:
            raise _bad("message to delete not found")
        if key in self._shown_order:
            self._shown_order.remove(key)
        first_line = str(message.get("text") or message.get("caption") or "").split("\n", 1)[0]
        self.output.show(f"(deleted: {first_line[:60]})")
        return True

    def _answer_callback(self, params: dict[str, Any]) -> bool:
        query_id = str(params.get("callback_query_id", ""))
        if query_id not in self._open_queries:
            raise _bad(QUERY_INVALID.removeprefix("Bad Request: "))
        self._open_queries.discard(query_id)
        text = params.get("text")
        if text:
            self.output.show(f"[! {text} ]" if params.get("show_alert") else f"[ {text} ]")
        if params.get("url"):
            self.output.show(f"🔗 opens {params['url']}")
        return True

    # ---------------------------------------------------------------------------- printing
    def _show(self, message: dict[str, Any], *, prefix: str = "", header: str = "") -> None:
        key = (message["chat"]["id"], message["message_id"])
        if key in self._shown_order:
            self._shown_order.remove(key)
        self._shown_order.append(key)
        if self._busy == 0 and not prefix:
            prefix = "🔔 "  # nothing the user typed is being handled: the bot pushed this
        if message["chat"]["id"] != self.user["id"]:
            prefix += f"→ chat {message['chat']['id']}: "
        if "text" in message:
            body = render_text(message["text"], message.get("entities"), ansi=self.output.ansi)
        else:
            caption = render_text(message.get("caption", ""), message.get("caption_entities"),
                                  ansi=self.output.ansi)
            body = "\n".join(part for part in (header, caption) if part)
        self.output.show(format_message(body, message.get("reply_markup"), prefix=prefix))

    async def close(self) -> None:
        """Cancel the handling trackers (run_console calls this after the application stopped)."""
        for task in list(self._trackers):
            task.cancel()
        for task in list(self._trackers):
            with contextlib.suppress(asyncio.CancelledError):
                await task


class ConsoleRequest(BaseRequest):
    """PTB's HTTP seam answered in-process by a `ConsoleBotApi` (one instance per PTB request slot)."""

    def __init__(self, api: ConsoleBotApi) -> None:
        self.api = api

    @property
    def read_timeout(self) -> float | None:
        """No network, so no read timeout; getUpdates honours its own `timeout` parameter."""
        return None

    async def initialize(self) -> None:
        """Nothing to open: there is no connection pool."""

    async def shutdown(self) -> None:
        """Nothing to close."""

    async def do_request(self, url: str, method: str, request_data: RequestData | None = None,
                         read_timeout: object = None, write_timeout: object = None,
                         connect_timeout: object = None, pool_timeout: object = None) -> tuple[int, bytes]:
        """Answer `.../bot<token>/<method>` with the Bot API JSON envelope and HTTP status."""
        name = url.rsplit("/", 1)[-1]
        params: dict[str, Any] = dict(request_data.parameters) if request_data is not None else {}
        files: dict[str, tuple[str, bytes]] = {}
        if request_data is not None and request_data.contains_files:
            for part, field_tuple in request_data.multipart_data.items():
                files[part] = (field_tuple[0], _read_upload(field_tuple[1]))
        try:
            result = await self.api.call(name, params, files)
        except ApiError as exc:
            body = {"ok": False, "error_code": exc.status, "description": exc.description}
            return exc.status, json.dumps(body).encode()
        return 200, json.dumps({"ok": True, "result": result}).encode()


class _LineReader(threading.Thread):
    """Reads stdin on its own thread so the event loop never blocks on input.

    A daemon thread rather than the loop's executor: an executor thread stuck in `readline`
    would make `asyncio.run` wait for it at exit.
    """

    def __init__(self, stdin: TextIO, deliver: Callable[[str | None], bool], *,
                 output: ConsoleOutput) -> None:
        super().__init__(name="console-stdin", daemon=True)
        self.stdin = stdin
        self.deliver = deliver
        self.output = output

    def _read(self) -> str | None:
        try:
            if self.output.interactive:
                self.output.prompt_visible = True
                try:
                    return input(PROMPT)
                finally:
                    self.output.prompt_visible = False
            raw = self.stdin.readline()
        except EOFError:
            return None
        except (OSError, ValueError):  # stream closed under us: same as end of input
            return None
        return raw.rstrip("\r\n") if raw else None

    def run(self) -> None:
        while True:
            line = self._read()
            if not self.deliver(line) or line is None or line.strip().lower() in QUIT_WORDS:
                return


async def run_console(build_app: Callable[[BaseRequest, BaseRequest], Application], *, user_id: int = 1,
                      stdin: TextIO | None = None, stdout: TextIO | None = None,
                      media_dir: Path = Path("data/console"), settle_timeout: float = 5.0) -> None:
    """Run the application built by `build_app(request, get_updates_request)` on the console.

    Runs the same lifecycle as `Application.run_polling` (post_init, post_stop and
    post_shutdown included) without its signal handlers or blocking loop. Returns after
    `quit`/`exit` or end of input, once the bot has handled every earlier line (at most
    `settle_timeout` seconds per line). `stdin`/`stdout` default to the process's.
    """
    stdin = sys.stdin if stdin is None else stdin
    stdout = sys.stdout if stdout is None else stdout
    interactive = stdin is sys.stdin and stdout is sys.stdout and _isatty(stdin) and _isatty(stdout)
    output = ConsoleOutput(stdout, ansi=_isatty(stdout) and "NO_COLOR" not in os.environ,
                           interactive=interactive)
    api = ConsoleBotApi(output, user_id=user_id, media_dir=media_dir, echo_input=not interactive,
                        settle_timeout=settle_timeout)
    app = build_app(ConsoleRequest(api), ConsoleRequest(api))
    if app.updater is None:
        raise ValueError("the console channel needs an Application with an Updater")
    api.settle = app.update_queue.join
    loop = asyncio.get_running_loop()

    def deliver(line: str | None) -> bool:
        try:
            loop.call_soon_threadsafe(api.feed, line)
        except RuntimeError:  # the loop is closed: the console has ended
            return False
        return True

    stdout.write(BANNER + "\n")
    stdout.flush()
    try:
        async with running(app):
            _LineReader(stdin, deliver, output=output).start()
            await api.finished.wait()
    finally:
        await api.close()
        if interactive:
            stdout.write("\n")
            stdout.flush()
