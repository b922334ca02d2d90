"""Telegram HTML parse mode, as the Bot API applies it, for the offline Telegram fake.

A port of the rules of tdlib's `parse_html` (supported tags, attributes, nesting, entity
offsets in UTF-16 code units), deliberately stricter about bare `<`, `>` and `&`, which the
Bot API documentation says must always be escaped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit Telegram counts limits and offsets in."""
    return len(text.encode("utf-16-le")) // 2


class EntityParseError(ValueError):
    """The HTML text is not valid Telegram HTML."""


_SUPPORTED_TAGS = {
    "b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline",
    "ins": "underline", "s": "strikethrough", "strike": "strikethrough", "del": "strikethrough",
    "tg-spoiler": "spoiler", "span": "spoiler", "a": "text_link", "code": "code", "pre": "pre",
    "blockquote": "blockquote", "tg-emoji": "custom_emoji",
}
_ENTITY_RE = re.compile(r"&(?:(lt|gt|amp|quot)|#([0-9]{1,7})|#[xX]([0-9a-fA-F]{1,6}));")
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


@dataclass
class _OpenTag:
    name: str
    attrs: dict[str, str]
    start: int  # UTF-16 offset in the visible text


def _decode_html_entity(text: str, pos: int) -> tuple[str, int] | None:
    """Decode the entity starting at `text[pos] == "&"`: (character, consumed) or None."""
    match = _ENTITY_RE.match(text, pos)
    if match is None:
        return None
    named, dec, hexa = match.groups()
    if named:
        return _NAMED_ENTITIES[named], match.end() - pos
    code = int(dec) if dec else int(hexa, 16)
    if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return None
    return chr(code), match.end() - pos


class _HtmlParser:
    """Single-pass parser producing the visible text and Bot API entity dicts."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.out: list[str] = []
        self.out_len = 0
        self.stack: list[_OpenTag] = []
        self.entities: list[dict[str, Any]] = []

    def _offset(self, index: int) -> int:
        return len(self.text[:index].encode("utf-8"))

    def _fail(self, message: str) -> EntityParseError:
        return EntityParseError(message)

    def _emit(self, chunk: str) -> None:
        self.out.append(chunk)
        self.out_len += utf16_len(chunk)

    def _decode_value(self, raw: str, at: int) -> str:
        parts: list[str] = []
        i = 0
        while i < len(raw):
            if raw[i] == "&":
                decoded = _decode_html_entity(raw, i)
                if decoded is None:
                    raise self._fail(
                        f"Character '&' is reserved and must be escaped with &amp; at byte offset "
                        f"{self._offset(at)}"
                    )
                parts.append(decoded[0])
                i += decoded[1]
            else:
                parts.append(raw[i])
                i += 1
        return "".join(parts)

    def _read_name(self, j: int) -> tuple[str, int]:
        start = j
        while j < len(self.text) and self.text[j] in _NAME_CHARS:
            j += 1
        return self.text[start:j].lower(), j

    def _skip_spaces(self, j: int) -> int:
        while j < len(self.text) and self.text[j].isspace():
            j += 1
        return j

    def parse(self) -> tuple[str, list[dict[str, Any]]]:
        text = self.text
        while self.pos < len(text):
            ch = text[self.pos]
            if ch == "&":
                decoded = _decode_html_entity(text, self.pos)
                if decoded is None:
                    raise self._fail(
                        f"Character '&' is reserved and must be escaped with &amp; at byte offset "
                        f"{self._offset(self.pos)}"
                    )
                self._emit(decoded[0])
                self.pos += decoded[1]
            elif ch == ">":
                raise self._fail(
                    f"Character '>' is reserved and must be escaped with &gt; at byte offset "
                    f"{self._offset(self.pos)}"
                )
            elif ch == "<":
                if text.startswith("</", self.pos):
                    self._end_tag()
                else:
                    self._start_tag()
            else:
                # Copy a run of ordinary characters at once.
                end = self.pos
                while end < len(text) and text[end] not in "&<>":
                    end += 1
                self._emit(text[self.pos:end])
                self.pos = end
        if self.stack:
            raise self._fail(f'Can\'t find end tag corresponding to start tag "{self.stack[-1].name}"')
        self.entities.sort(key=lambda e: (e["offset"], -e["length"]))
        return "".join(self.out), self.entities

    def _start_tag(self) -> None:
        text, begin = self.text, self.pos
        name, j = self._read_name(begin + 1)
        if not name:
            raise self._fail(
                f"Character '<' is reserved and must be escaped with &lt; at byte offset "
                f"{self._offset(begin)}"
            )
        if name not in _SUPPORTED_TAGS:
            raise self._fail(f'Unsupported start tag "{name}" at byte offset {self._offset(begin)}')
        attrs: dict[str, str] = {}
        while True:
            j = self._skip_spaces(j)
            if j >= len(text):
                raise self._fail(f"Unclosed start tag at byte offset {self._offset(begin)}")
            if text[j] == ">":
                j += 1
                break
            attr, k = self._read_name(j)
            if not attr:
                raise self._fail(f'Empty attribute name in the tag "{name}" at byte offset {self._offset(j)}')
            k = self._skip_spaces(k)
            value = ""
            if k < len(text) and text[k] == "=":
                k = self._skip_spaces(k + 1)
                if k >= len(text):
                    raise self._fail(f"Unclosed start tag at byte offset {self._offset(begin)}")
                if text[k] in "'\"":
                    close = text.find(text[k], k + 1)
                    if close < 0:
                        raise self._fail(f"Unclosed start tag at byte offset {self._offset(begin)}")
                    value = self._decode_value(text[k + 1:close], k)
                    k = close + 1
                else:
                    end = k
                    while end < len(text) and not text[end].isspace() and text[end] != ">":
                        end += 1
                    value = self._decode_value(text[k:end], k)
                    k = end
            attrs[attr] = value
            j = k
        if name == "span" and attrs.get("class") != "tg-spoiler":
            raise self._fail(f'Tag "span" must have class "tg-spoiler" at byte offset {self._offset(begin)}')
        if name == "tg-emoji" and not attrs.get("emoji-id", "").isdigit():
            raise self._fail(
                f"Custom emoji identifier must be specified at byte offset {self._offset(begin)}"
            )
        self.stack.append(_OpenTag(name, attrs, self.out_len))
        self.pos = j

    def _end_tag(self) -> None:
        text, begin = self.text, self.pos
        name, j = self._read_name(begin + 2)
        j = self._skip_spaces(j)
        if j >= len(text) or text[j] != ">":
            raise self._fail(f"Unclosed end tag at byte offset {self._offset(begin)}")
        if not self.stack:
            raise self._fail(f"Unexpected end tag at byte offset {self._offset(begin)}")
        top = self.stack[-1]
        if top.name != name:
            raise self._fail(
                f'Unmatched end tag at byte offset {self._offset(begin)}, expected "</{top.name}>", '
                f'found "</{name}>"'
            )
        self.stack.pop()
        self.pos = j + 1
        self._close_entity(top)

    def _close_entity(self, tag: _OpenTag) -> None:
        length = self.out_len - tag.start
        parent = self.stack[-1] if self.stack else None
        if tag.name == "code" and parent is not None and parent.name == "pre":
            # <pre><code class="language-x"> is one pre entity with a language.
            css = tag.attrs.get("class", "")
            if css.startswith("language-") and len(css) > len("language-"):
                parent.attrs["_language"] = css[len("language-"):]
            return
        if length == 0:
            return  # Telegram drops empty entities
        kind = _SUPPORTED_TAGS[tag.name]
        entity: dict[str, Any] = {"type": kind, "offset": tag.start, "length": length}
        if tag.name == "a":
            href = tag.attrs.get("href", "")
            if not href:
                return
            entity["url"] = href
        elif tag.name == "pre" and "_language" in tag.attrs:
            entity["language"] = tag.attrs["_language"]
        elif tag.name == "blockquote" and "expandable" in tag.attrs:
            entity["type"] = "expandable_blockquote"
        elif tag.name == "tg-emoji":
            entity["custom_emoji_id"] = tag.attrs["emoji-id"]
        self.entities.append(entity)


def parse_html(text: str) -> tuple[str, list[dict[str, Any]]]:
    """Parse Telegram HTML into (visible text, entities); EntityParseError when invalid."""
    return _HtmlParser(text).parse()
