"""The console conversation's messages, shared by the update side (pressing buttons) and the API side."""

from __future__ import annotations

import time
from typing import Any

from bot.console.render import number_buttons

Key = tuple[int | str, int]  # (chat id, message id)


def now() -> int:
    """A Bot API timestamp."""
    return int(time.time())


def private_chat(user: dict[str, Any]) -> dict[str, Any]:
    """The Bot API chat object of `user`'s private chat with the bot."""
    return {"id": user["id"], "type": "private", "first_name": user["first_name"]}


class MessageStore:
    """Every message by (chat id, message id), and the order in which they were last printed."""

    def __init__(self) -> None:
        self.messages: dict[Key, dict[str, Any]] = {}
        self._shown: list[Key] = []  # the last printed at the end
        self._next_id = 1

    def new_id(self) -> int:
        """The next message id (one sequence for the user's and the bot's messages)."""
        self._next_id += 1
        return self._next_id - 1

    def add(self, message: dict[str, Any]) -> dict[str, Any]:
        """Keep `message` (it has its chat and message_id already)."""
        self.messages[(message["chat"]["id"], message["message_id"])] = message
        return message

    def get(self, key: Key) -> dict[str, Any] | None:
        """The message at `key`, if it still exists."""
        return self.messages.get(key)

    def pop(self, key: Key) -> dict[str, Any] | None:
        """Delete the message at `key` and return it."""
        if key in self._shown:
            self._shown.remove(key)
        return self.messages.pop(key, None)

    def shown(self, message: dict[str, Any]) -> None:
        """Record that `message` was just printed (an edit moves it to the end too)."""
        key = (message["chat"]["id"], message["message_id"])
        if key in self._shown:
            self._shown.remove(key)
        self._shown.append(key)

    def last_keyboard(self, chat_id: int) -> dict[str, Any] | None:
        """The most recently printed message in `chat_id` that has buttons a number can press."""
        key = next((k for k in reversed(self._shown)
                    if k[0] == chat_id and number_buttons(self.messages[k].get("reply_markup"))), None)
        return None if key is None else self.messages[key]
