"""The bot side of the console channel: Bot API methods answered in-process, what the bot sends printed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.console.checks import (
    NOT_MODIFIED,
    QUERY_INVALID,
    as_chat_id,
    bad,
    check_caption,
    check_chat_action,
    check_commands,
    check_markup,
    check_message_text,
    parse_text,
    png_size,
    upload_name,
)
from bot.console.render import ParsedText, format_message, render_text
from bot.console.store import MessageStore, now, private_chat
from bot.console.terminal import ConsoleOutput
from bot.console.updates import ConsoleUpdates

BOT_USER_ID = 1_000_000_001
Files = dict[str, tuple[str, bytes]]


def _text_fields(parsed: ParsedText, key: str) -> dict[str, Any]:
    entities_key = "entities" if key == "text" else "caption_entities"
    return {key: parsed.text, entities_key: parsed.entities}


class ConsoleBotApi:
    """In-process Bot API for one console user: turns lines into updates, prints what the bot sends.

    Lines arrive through `updates.feed` (a string, or None for end of input). `call` answers one
    Bot API method and raises `ApiError` with Telegram's status and wording on invalid requests.
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
        self.store = MessageStore()
        self.updates = ConsoleUpdates(output, self.store, self.user, echo_input=echo_input,
                                      settle_timeout=settle_timeout)
        self.commands: list[dict[str, Any]] = []
        self._file_paths: dict[str, Path] = {}
        self._next_file = 1
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

    async def call(self, method: str, params: dict[str, Any], files: Files | None = None) -> Any:
        """Answer one Bot API method; raises `ApiError` as Telegram would answer."""
        files = files or {}
        if method == "getUpdates":
            return await self.updates.get_updates(params)
        handler = self._methods.get(method)
        if handler is not None:
            return handler(params)
        if method == "sendPhoto":
            return self._send_file(params, files, kind="photo")
        if method == "sendDocument":
            return self._send_file(params, files, kind="document")
        raise bad(f"method {method} is not available in the console channel")

    def _set_my_commands(self, params: dict[str, Any]) -> bool:
        self.commands = check_commands(list(params.get("commands") or []))
        return True

    def _delete_my_commands(self, _params: dict[str, Any]) -> bool:
        self.commands = []
        return True

    def _get_chat(self, params: dict[str, Any]) -> dict[str, Any]:
        if as_chat_id(params.get("chat_id")) != self.user["id"]:
            raise bad("chat not found")
        return {**private_chat(self.user), "accent_color_id": 0, "max_reaction_count": 11}

    @staticmethod
    def _send_chat_action(params: dict[str, Any]) -> bool:
        check_chat_action(params.get("action"))
        return True

    def _chat_of(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = as_chat_id(params.get("chat_id"))
        if chat_id in ("", "None"):
            raise bad("chat_id is empty")
        if chat_id == self.user["id"]:
            return private_chat(self.user)
        return {"id": chat_id, "type": "private", "first_name": f"User {chat_id}"}

    def _store(self, chat: dict[str, Any], content: dict[str, Any]) -> dict[str, Any]:
        return self.store.add({"message_id": self.store.new_id(), "from": dict(self.bot_user), "chat": chat,
                               "date": now(), **{k: v for k, v in content.items() if v not in (None, [], "")}})

    # ---------------------------------------------------------------------------- sending
    def _send_message(self, params: dict[str, Any]) -> dict[str, Any]:
        chat = self._chat_of(params)
        parsed = check_message_text(parse_text(params.get("text"), params.get("parse_mode"), params.get("entities")))
        markup = check_markup(params.get("reply_markup"))
        message = self._store(chat, {**_text_fields(parsed, "text"), "reply_markup": markup})
        self._show(message)
        return message

    def _caption(self, params: dict[str, Any]) -> ParsedText:
        return check_caption(parse_text(params.get("caption"), params.get("parse_mode"),
                                        params.get("caption_entities")))

    def _save(self, kind: str, filename: str, content: bytes) -> tuple[Path, int]:
        stem, suffix = upload_name(kind, filename, content)
        self.media_dir.mkdir(parents=True, exist_ok=True)
        path = self.media_dir / f"{stem}-{self._next_file}{suffix}"
        self._next_file += 1
        path.write_bytes(content)
        return path, len(content)

    def _send_file(self, params: dict[str, Any], files: Files, *, kind: str) -> dict[str, Any]:
        chat = self._chat_of(params)
        caption = self._caption(params)
        markup = check_markup(params.get("reply_markup"))
        upload = files.get(kind)
        reference = params.get(kind)
        if upload is None and isinstance(reference, str) and reference.startswith("attach://"):
            upload = files.get(reference.removeprefix("attach://"))
        if upload is not None:
            filename, content = upload
            path, size = self._save(kind, filename, content)
            file_id, file_name = f"console-file-{path.stem}", path.name
            self._file_paths[file_id] = path
            label = f"[{kind} saved to {path}]"
        elif isinstance(reference, str) and reference:  # a file_id sent before
            file_id, size, known = reference, 0, self._file_paths.get(reference)
            label = f"[{kind}: {known or reference}]"
            content = known.read_bytes() if known is not None and known.exists() else b""
            file_name = known.name if known is not None else reference
        else:
            raise bad(f"there is no {kind} in the request")
        message = self._store(chat, {kind: self._media(kind, file_id, size, content, file_name),
                                     **_text_fields(caption, "caption"), "reply_markup": markup})
        self._show(message, header=label)
        return message

    @staticmethod
    def _media(kind: str, file_id: str, size: int, content: bytes, file_name: str) -> Any:
        if kind == "photo":
            width, height = png_size(content)
            return [{"file_id": file_id, "file_unique_id": file_id, "width": width, "height": height,
                     "file_size": size}]
        return {"file_id": file_id, "file_unique_id": file_id, "file_size": size, "file_name": file_name}

    # ---------------------------------------------------------------------------- editing
    def _find_editable(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("inline_message_id"):
            raise bad("inline messages are not available in the console channel")
        message = self.store.get((as_chat_id(params.get("chat_id")), int(params.get("message_id") or 0)))
        if message is None:
            raise bad("message to edit not found")
        if not message["from"].get("is_bot"):
            raise bad("message can't be edited")
        return message

    def _apply_edit(self, message: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
        current = {k: message.get(k) or None for k in changes}
        wanted = {k: v or None for k, v in changes.items()}
        if current == wanted:
            raise bad(NOT_MODIFIED.removeprefix("Bad Request: "))
        for key, value in wanted.items():
            if value is None:
                message.pop(key, None)
            else:
                message[key] = value
        message["edit_date"] = now()
        self._show(message, prefix="(edited) ")
        return message

    def _edit_text(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self._find_editable(params)
        if "text" not in message:
            raise bad("there is no text in the message to edit")
        parsed = check_message_text(parse_text(params.get("text"), params.get("parse_mode"), params.get("entities")))
        # Like Telegram, an edit without reply_markup removes the inline keyboard.
        markup = check_markup(params.get("reply_markup"))
        return self._apply_edit(message, {**_text_fields(parsed, "text"), "reply_markup": markup})

    def _edit_caption(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self._find_editable(params)
        if "text" in message:
            raise bad("there is no caption in the message to edit")
        caption = self._caption(params)
        markup = check_markup(params.get("reply_markup"))
        return self._apply_edit(message, {**_text_fields(caption, "caption"), "reply_markup": markup})

    def _edit_markup(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self._find_editable(params)
        return self._apply_edit(message, {"reply_markup": check_markup(params.get("reply_markup"))})

    def _delete_message(self, params: dict[str, Any]) -> bool:
        message = self.store.pop((as_chat_id(params.get("chat_id")), int(params.get("message_id") or 0)))
        if message is None:
            raise bad("message to delete not found")
        first_line = str(message.get("text") or message.get("caption") or "").split("\n", 1)[0]
        self.output.show(f"(deleted: {first_line[:60]})")
        return True

    def _answer_callback(self, params: dict[str, Any]) -> bool:
        query_id = str(params.get("callback_query_id", ""))
        if query_id not in self.updates.open_queries:
            raise bad(QUERY_INVALID.removeprefix("Bad Request: "))
        self.updates.open_queries.discard(query_id)
        text = params.get("text")
        if text:
            self.output.show(f"[! {text} ]" if params.get("show_alert") else f"[ {text} ]")
        if params.get("url"):
            self.output.show(f"🔗 opens {params['url']}")
        return True

    # ---------------------------------------------------------------------------- printing
    def _show(self, message: dict[str, Any], *, prefix: str = "", header: str = "") -> None:
        self.store.shown(message)
        if self.updates.busy == 0 and not prefix:
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

