"""The Bot API's rules as the console applies them: limits, HTML, keyboards, commands, uploads.

Each check raises `ApiError` with Telegram's HTTP status and wording, so a request that would
be a `BadRequest` on Telegram is one in the console channel too.
"""

from __future__ import annotations

import contextlib
import re
import struct
from pathlib import Path
from typing import IO, Any

from bot.console.render import HtmlParseError, ParsedText, parse_html, plain_text, utf16_len

MESSAGE_LIMIT = 4096
CAPTION_LIMIT = 1024
CALLBACK_DATA_LIMIT = 64
MAX_INLINE_BUTTONS = 100
MAX_COMMANDS = 100
PHOTO_LIMIT = 10 * 1024 * 1024
DOCUMENT_LIMIT = 50 * 1024 * 1024

NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)
QUERY_INVALID = "Bad Request: query is too old and response timeout expired or query ID is invalid"
CHAT_ACTIONS = frozenset({
    "typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice",
    "upload_document", "choose_sticker", "find_location", "record_video_note", "upload_video_note",
})
_BOT_COMMAND_NAME_RE = re.compile(r"^[a-z0-9_]{1,32}$")
_IMAGE_MAGIC = {b"\x89PNG\r\n\x1a\n": ".png", b"\xff\xd8\xff": ".jpg", b"GIF8": ".gif", b"BM": ".bmp"}
_SAFE_NAME_RE = re.compile(r"[^A-Za-z0-9._-]+")


class ApiError(Exception):
    """An error answer of the Bot API: HTTP status and Telegram's description."""

    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description


def bad(description: str) -> ApiError:
    """A 400 answer with Telegram's "Bad Request: " prefix."""
    return ApiError(400, f"Bad Request: {description}")


def as_chat_id(value: object) -> int | str:
    """A chat id as the Bot API reads it: an int when it looks like one, else the @username text."""
    if isinstance(value, int):
        return value
    text = str(value)
    with contextlib.suppress(ValueError):
        return int(text)
    return text


def parse_text(text: object, parse_mode: object, entities: object) -> ParsedText:
    """The visible text and entities of a text or caption parameter."""
    source = "" if text is None else str(text)
    if str(parse_mode or "").upper() == "HTML":
        try:
            return parse_html(source)
        except HtmlParseError as exc:
            raise bad(str(exc)) from None
    # Markdown modes are shown as typed: the product formats everything as HTML.
    return ParsedText(source, list(entities)) if isinstance(entities, list) else plain_text(source)


def check_message_text(parsed: ParsedText) -> ParsedText:
    """A message text must be non-blank and within the message limit."""
    if not parsed.text.strip():
        raise bad("message text is empty")
    if utf16_len(parsed.text) > MESSAGE_LIMIT:
        raise bad("message is too long")
    return parsed


def check_caption(parsed: ParsedText) -> ParsedText:
    """A caption must be within the caption limit (it may be empty)."""
    if utf16_len(parsed.text) > CAPTION_LIMIT:
        raise bad("message caption is too long")
    return parsed


def check_markup(markup: object) -> dict[str, Any] | None:
    """A `reply_markup` as Telegram validates it (inline keyboards in detail)."""
    if markup is None:
        return None
    if not isinstance(markup, dict):
        raise bad("can't parse reply keyboard markup JSON object")
    rows = markup.get("inline_keyboard")
    if rows is None:
        return markup
    if sum(len(row) for row in rows) > MAX_INLINE_BUTTONS:
        raise bad("reply markup is too long")
    for row in rows:
        for button in row:
            _check_button(button)
    return markup


def _check_button(button: dict[str, Any]) -> None:
    if not str(button.get("text", "")):
        raise bad("text buttons are unallowed in the inline keyboard")
    if "callback_data" in button:
        data = str(button["callback_data"]).encode("utf-8")
        if not 1 <= len(data) <= CALLBACK_DATA_LIMIT:
            raise bad("BUTTON_DATA_INVALID")
    elif "url" in button:
        if not re.match(r"^(https?|tg)://\S+$", str(button["url"])):
            raise bad(f"inline keyboard button URL '{button['url']}' is invalid: Unsupported URL protocol")
    elif len(button) == 1:
        raise bad("text buttons are unallowed in the inline keyboard")


def check_commands(commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The `setMyCommands` list: at most 100, lowercase names, 1-256 character descriptions."""
    if len(commands) > MAX_COMMANDS:
        raise bad("too many commands")
    for command in commands:
        if not _BOT_COMMAND_NAME_RE.match(str(command.get("command", ""))):
            raise bad("BOT_COMMAND_INVALID")
        if not 1 <= len(str(command.get("description", ""))) <= 256:
            raise bad("command description is empty or too long")
    return commands


def check_chat_action(action: object) -> None:
    """`sendChatAction` knows a fixed list of actions."""
    if action not in CHAT_ACTIONS:
        raise bad("wrong parameter action in request")


def read_upload(content: bytes | IO[bytes]) -> bytes:
    """The bytes of a multipart upload (PTB hands over bytes or an open file)."""
    return content if isinstance(content, bytes) else content.read()


def image_extension(content: bytes) -> str | None:
    """The file extension of a supported image format, by its magic bytes."""
    for magic, ext in _IMAGE_MAGIC.items():
        if content.startswith(magic):
            return ext
    if content[:4] == b"RIFF" and content[8:12] == b"WEBP":
        return ".webp"
    return None


def png_size(content: bytes) -> tuple[int, int]:
    """Width and height of a PNG (0, 0 for anything else)."""
    if content.startswith(b"\x89PNG\r\n\x1a\n") and len(content) >= 24:
        width, height = struct.unpack(">II", content[16:24])
        return int(width), int(height)
    return 0, 0


def upload_name(kind: str, filename: str, content: bytes) -> tuple[str, str]:
    """Check an uploaded photo or document and choose a safe (stem, suffix) to save it under."""
    if kind == "photo":
        if len(content) > PHOTO_LIMIT:
            raise ApiError(413, "Request Entity Too Large")
        suffix = image_extension(content)
        if suffix is None:
            raise bad("IMAGE_PROCESS_FAILED")
        stem = Path(filename).stem if Path(filename).suffix.lower() in (suffix, ".jpeg") else "photo"
    else:
        if len(content) > DOCUMENT_LIMIT:
            raise ApiError(413, "Request Entity Too Large")
        if not content:
            raise bad("file must be non-empty")
        suffix = Path(filename).suffix
        stem = Path(filename).stem or "document"
    return _SAFE_NAME_RE.sub("_", stem).strip("._") or kind, _SAFE_NAME_RE.sub("", suffix)
